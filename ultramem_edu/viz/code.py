"""Show the package's own source next to the equation it implements, so the two never drift apart."""
from __future__ import annotations

import inspect
import textwrap


class SourceLines:
    """Lines of source code with a Markdown representation (a Python code block) for notebooks."""

    def __init__(self, text: str, origin: str):
        self.text = text
        self.origin = origin

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.text}\n```\n<small>from <code>{self.origin}</code></small>"


def show_source(obj: object, contains: str | None = None, context: int = 0) -> SourceLines:
    """The source of ``obj`` (function, class or method), or only the lines containing ``contains``.

    Args:
        obj: anything :func:`inspect.getsource` accepts.
        contains: keep only lines containing this text, plus ``context`` lines after each.
    Raises:
        ValueError: if ``contains`` matches no line (the book would otherwise show nothing).
    """
    source = textwrap.dedent(inspect.getsource(obj))
    origin = f"{obj.__module__}.{obj.__qualname__}"
    if contains is None:
        return SourceLines(source.rstrip(), origin)
    lines = source.splitlines()
    keep: list[int] = []
    for i, line in enumerate(lines):
        if contains in line:
            keep.extend(range(i, min(i + context + 1, len(lines))))
    if not keep:
        raise ValueError(f"contains={contains!r} matches no line of {origin}")
    picked = [lines[i] for i in sorted(set(keep))]
    return SourceLines(textwrap.dedent("\n".join(picked)).rstrip(), origin)
