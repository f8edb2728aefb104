"""The harness behind the coding exercises: run the reader's function, compare, explain.

A coding exercise is a function the reader writes in the chapter. It comes with

* a **stub** (:attr:`CodingExercise.stub`): the signature and a docstring with the shapes, and a
  body that raises ``NotImplementedError``; the student edition of the book keeps it;
* a **solution** (:attr:`CodingExercise.solution`), the instructor's version;
* a **check** (:attr:`CodingExercise.check`), which calls the reader's function on random inputs
  and on targeted edge cases (ties, m = 1, m = n, ragged sizes, negative scores, duplicate indices),
  compares it with the package's reference, and when they differ says *what* is wrong — wrong shape,
  wrong order, an address off by one, the missed negative corner — by matching the answer against the
  typical mistakes it knows. A stub that still raises ``NotImplementedError`` is reported as such
  (the same exception type, so that the unfinished exercises of a student notebook fail in one
  recognisable way); any other error becomes an ``AssertionError`` naming the case.

Every exercise registers itself in :data:`REGISTRY`; :func:`coding_exercises` lists them by chapter.
"""
from __future__ import annotations

import inspect
import linecache
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch

__all__ = [
    "CodingExercise",
    "REGISTRY",
    "register",
    "coding_exercises",
    "stub_source",
    "load_stub",
    "call",
    "fail",
    "expect_tensor",
    "close",
    "diagnose",
    "source_of",
]


@dataclass(frozen=True)
class CodingExercise:
    """One function the reader writes.

    Attributes:
        chapter: the chapter (1–9) whose notebook holds the exercise.
        name: the name of the function the reader defines (the stub defines the same name).
        stub: Python source of the stub: signature, docstring with shapes, ``raise NotImplementedError``.
        solution: the instructor's solution, with the stub's signature.
        check: ``check(fn)`` prints a confirmation or raises with a diagnosis.
    """

    chapter: int
    name: str
    stub: str
    solution: Callable[..., Any]
    check: Callable[[Callable[..., Any]], None]


REGISTRY: dict[str, CodingExercise] = {}


def register(chapter: int, stub: str, solution: Callable[..., Any], check: Callable[..., None]) -> CodingExercise:
    """Add an exercise; its name is the function the stub defines (which must match the solution's)."""
    stub = textwrap.dedent(stub).strip() + "\n"
    name = stub.split("def ", 1)[1].split("(", 1)[0]
    if solution.__name__ != name:
        raise ValueError(f"the solution must be called {name!r} like the stub, got {solution.__name__!r}")
    if name in REGISTRY:
        raise ValueError(f"a coding exercise named {name!r} is already registered")
    exercise = CodingExercise(chapter, name, stub, solution, check)
    REGISTRY[name] = exercise
    return exercise


def coding_exercises(chapter: int | None = None) -> list[CodingExercise]:
    """The registered exercises (of one chapter, or all), in chapter and registration order."""
    _load_all()
    found = [e for e in REGISTRY.values() if chapter is None or e.chapter == chapter]
    return sorted(found, key=lambda e: e.chapter)


def stub_source(name: str) -> str:
    """The source of the stub of exercise ``name``, to paste into a notebook cell."""
    _load_all()
    if name not in REGISTRY:
        raise ValueError(f"no coding exercise named {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name].stub


def load_stub(name: str, namespace: dict[str, Any] | None = None) -> Callable[..., Any]:
    """Execute the stub of ``name`` (with ``torch`` and ``triton`` names available) and return it."""
    source = stub_source(name)
    scope: dict[str, Any] = {"torch": torch}
    if "triton" in source:
        import triton
        import triton.language as tl

        scope.update(triton=triton, tl=tl)
    scope.update(namespace or {})
    filename = f"<stub {name}>"
    # Registered like a notebook cell's source, so that inspect.getsource (which @triton.jit needs
    # outside the interpreter) finds it.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), scope)
    return scope[name]


def _load_all() -> None:
    """Import the chapter modules, which register their exercises (the puzzles need triton)."""
    from . import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08  # noqa: F401

    try:
        from . import puzzles  # noqa: F401
    except ImportError:  # no triton: the kernel puzzles are not available
        pass


def _label(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def call(fn: Callable[..., Any], case: str, *args: Any, **kwargs: Any) -> Any:
    """Call the reader's ``fn``; turn its errors into messages that name the case.

    NotImplementedError passes through (as NotImplementedError, with a clearer message).
    """
    if not callable(fn):
        raise AssertionError(f"Pass the function itself (without calling it), got {type(fn).__name__}.")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        raise NotImplementedError(
            f"{_label(fn)} is still the stub: write its body, run that cell, then run this check again."
        ) from err
    except AssertionError:
        raise
    except Exception as err:  # the reader's code failed: say where, keep the original as the cause
        raise AssertionError(
            f"On the case '{case}', {_label(fn)} raised {type(err).__name__}: {err}"
        ) from err


def fail(case: str, message: str) -> None:
    """Raise the AssertionError of a failed case."""
    raise AssertionError(f"On the case '{case}': {message}")


def expect_tensor(out: Any, shape: tuple[int, ...], case: str, what: str, shape_doc: str) -> torch.Tensor:
    """``out`` must be a tensor of ``shape``; ``what`` names it, ``shape_doc`` spells the shape in symbols."""
    if not isinstance(out, torch.Tensor):
        fail(case, f"{what} must be a torch.Tensor, got {type(out).__name__}.")
    if tuple(out.shape) != tuple(shape):
        fail(case, f"wrong shape: {what} should be {shape_doc} = {tuple(shape)}, got {tuple(out.shape)}.")
    return out


def close(a: Any, b: torch.Tensor, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """True when ``a`` is a tensor of ``b``'s shape and allclose to it (in float64)."""
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol)))


def diagnose(case: str, out: torch.Tensor, expected: torch.Tensor,
             mistakes: Iterable[tuple[torch.Tensor | Callable[[], torch.Tensor], str]], generic: str,
             atol: float = 1e-6) -> None:
    """Pass if ``out`` matches ``expected``; otherwise fail with the message of the first mistake it
    matches (each given as the tensor that mistake would produce, or a function computing it), or with
    ``generic`` and the largest difference."""
    if close(out, expected, atol=atol):
        return
    for wrong, message in mistakes:
        value = wrong() if callable(wrong) else wrong
        if close(out, value, atol=atol) and not close(value, expected, atol=atol):
            fail(case, message)
    diff = float((out.detach().double() - expected.double()).abs().max())
    fail(case, f"{generic} (largest difference from the reference: {diff:.3g}).")


def source_of(fn: Callable[..., Any]) -> str:
    """The source of a solution (a @triton.jit kernel's with its decorator), to paste into a notebook's
    solution cell; the solutions use only ``math``, ``torch`` and ``triton``/``tl``."""
    return textwrap.dedent(inspect.getsource(getattr(fn, "fn", fn)))
