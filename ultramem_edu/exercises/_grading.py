"""The harness behind the coding exercises: run the reader's function, compare, explain.

A coding exercise is a function the reader writes in the chapter. It comes with

* a **stub** (:attr:`CodingExercise.stub`): the signature and a docstring with the shapes, and a
  body that raises ``NotImplementedError``; the student edition of the book keeps it;
* a **check** (:attr:`CodingExercise.check`), which calls the reader's function on random inputs
  and on targeted edge cases (ties, m = 1, m = n, ragged sizes, negative scores, duplicate indices),
  compares it with a reference computed from the package's production code (or stored values), and
  when they differ says *what* is wrong — wrong shape, wrong order, an address off by one, the
  missed negative corner — by matching the answer against the typical mistakes it knows. A stub
  that still raises ``NotImplementedError`` is reported as such (the same exception type, so that
  the unfinished exercises of a student notebook fail in one recognisable way); any other error
  becomes an ``AssertionError`` naming the case.

The package holds no solution: the instructor's solutions are the ``solution`` cells of the
instructor edition of the chapters (the student edition leaves them out). A check never grades the
package's own code either: while the reader's function runs under a check, the package functions
that compute the exercise's answer (:attr:`CodingExercise.guarded`) are swapped for ones that raise
:class:`PackageImplementationCalled` (:func:`refusing`), and passing one of them to the check fails
at once.

The hidden inputs of every check derive from :func:`seed_for`: the book's fixed seeds by default,
and other inputs, with the same edge cases, when an instructor sets a grading seed
(:func:`grading_seed`, used by :mod:`ultramem_edu.exercises.grade`).

Every exercise registers itself in :data:`REGISTRY`; :func:`coding_exercises` lists them by chapter.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import linecache
import textwrap
import threading
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch

__all__ = [
    "CodingExercise",
    "PackageImplementationCalled",
    "REGISTRY",
    "exercise",
    "coding_exercises",
    "stub_source",
    "load_stub",
    "refusing",
    "seed_for",
    "grading_seed",
    "current_seed",
    "SEED_ENV",
    "call",
    "fail",
    "expect_tensor",
    "close",
    "diagnose",
    "LargestTensor",
]


class PackageImplementationCalled(AssertionError):
    """The reader's function called (or is) the package's implementation of the exercise it is graded on."""


@dataclass(frozen=True)
class CodingExercise:
    """One function the reader writes.

    Attributes:
        chapter: the chapter (1–9) whose notebook holds the exercise.
        name: the name of the function the reader defines (the stub defines the same name).
        stub: Python source of the stub: signature, docstring with shapes, ``raise NotImplementedError``.
        check: ``check(fn)`` prints a confirmation or raises with a diagnosis.
        guarded: the package functions that compute the exercise's answer, as ``"module:attribute"``
            (``attribute`` may be ``Class.method``); refused while the reader's function runs.
    """

    chapter: int
    name: str
    stub: str
    check: Callable[[Callable[..., Any]], None]
    guarded: tuple[str, ...] = ()


REGISTRY: dict[str, CodingExercise] = {}

# The exercise whose check is running (set by the wrapper of :func:`exercise`), read by :func:`call`.
_ACTIVE: contextvars.ContextVar[CodingExercise | None] = contextvars.ContextVar("active_exercise", default=None)
_SEED: contextvars.ContextVar[int | None] = contextvars.ContextVar("grading_seed", default=None)


def exercise(chapter: int, stub: str, guarded: Iterable[str] = ()) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a check: register its exercise (named by the function the stub defines) and make the
    check refuse the package functions ``guarded`` while it runs the reader's function."""
    stub = textwrap.dedent(stub).strip() + "\n"
    name = stub.split("def ", 1)[1].split("(", 1)[0]
    guarded = tuple(guarded)
    for target in guarded:
        _resolve(target)                                              # a typo fails at import time
    if name in REGISTRY:
        raise ValueError(f"a coding exercise named {name!r} is already registered")

    def decorate(check: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(check)
        def graded_check(fn: Any, *args: Any, **kwargs: Any) -> None:
            token = _ACTIVE.set(REGISTRY[name])
            try:
                _refuse_identity(fn, REGISTRY[name])
                return check(fn, *args, **kwargs)
            finally:
                _ACTIVE.reset(token)

        REGISTRY[name] = CodingExercise(chapter, name, stub, graded_check, guarded)
        return graded_check

    return decorate


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
    from . import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch14  # noqa: F401

    try:
        from . import puzzles  # noqa: F401
    except ImportError:  # no triton: the kernel puzzles are not available
        pass


def _label(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


# --- the package's implementation refused while the reader's function runs -------------------

_LOCK = threading.RLock()


def _resolve(target: str) -> tuple[Any, str, Any]:
    """``"module:attr"`` or ``"module:Class.method"`` -> (owner, attribute name, current value)."""
    module_name, sep, path = target.partition(":")
    if not sep or not path:
        raise ValueError(f"a guarded target is 'module:attribute', got {target!r}")
    owner: Any = importlib.import_module(module_name)
    *parents, attr = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, attr, getattr(owner, attr)


def _display(target: str) -> str:
    return target.replace(":", ".")


def _refusal_message(target: str, exercise_name: str) -> str:
    return (f"this calls the package's implementation of the exercise ({_display(target)}): the check grades "
            f"your own {exercise_name}, so write it with torch operations rather than calling the package's "
            "version (which the check refuses while it runs your function).")


def _refusing_code(message: str) -> types.CodeType:
    """A code object that raises PackageImplementationCalled(message); no free variables, so it can
    replace the ``__code__`` of any plain function (looked up through ``__import__``, a builtin, since
    the function keeps its own module's globals)."""
    source = ("def refused(*args, **kwargs):\n"
              "    raise __import__('ultramem_edu.exercises._grading', fromlist=['_'])"
              f".PackageImplementationCalled({message!r})\n")
    scope: dict[str, Any] = {}
    exec(compile(source, "<refused>", "exec"), scope)
    return scope["refused"].__code__


def _plain_functions(value: Any) -> list[types.FunctionType]:
    """The Python functions behind ``value`` whose code can be swapped (the function, what it wraps)."""
    found = []
    seen: set[int] = set()
    while value is not None and id(value) not in seen:
        seen.add(id(value))
        inner = getattr(value, "__func__", value)
        if isinstance(inner, types.FunctionType) and inner.__closure__ is None:
            found.append(inner)
        value = getattr(inner, "__wrapped__", None)
    return found


@contextlib.contextmanager
def refusing(targets: Iterable[str], exercise_name: str = "function") -> Iterator[None]:
    """Within the block, each package function of ``targets`` (``"module:attribute"``) raises
    :class:`PackageImplementationCalled`: the module attribute is replaced, and the function's own
    code is swapped too, so that other names bound to it (``from ultramem_edu.tdqkr import
    tucker_scores``) and the package's internal callers are refused as well. Everything is restored
    in ``finally``. A lock serialises checks across threads; while one runs, other threads calling a
    refused function are refused too."""
    targets = tuple(targets)
    with _LOCK:
        restore_attrs: list[tuple[Any, str, bool, Any]] = []
        restore_code: list[tuple[types.FunctionType, types.CodeType]] = []
        try:
            for target in targets:
                owner, attr, value = _resolve(target)
                message = _refusal_message(target, exercise_name)
                code = _refusing_code(message)
                for fn in _plain_functions(value):
                    restore_code.append((fn, fn.__code__))
                    fn.__code__ = code

                def refused(*args: Any, _message: str = message, **kwargs: Any) -> Any:
                    raise PackageImplementationCalled(_message)

                own = attr in vars(owner)                             # else inherited by a class
                restore_attrs.append((owner, attr, own, vars(owner).get(attr)))
                setattr(owner, attr, refused)
            yield
        finally:
            for owner, attr, own, value in reversed(restore_attrs):
                if own:
                    setattr(owner, attr, value)
                else:
                    delattr(owner, attr)
            for fn, code in reversed(restore_code):
                fn.__code__ = code


def _refuse_identity(fn: Any, exercise: CodingExercise) -> None:
    """Fail at once when ``fn`` is (or wraps) one of the package functions the exercise refuses."""
    mine = {id(f) for f in _plain_functions(getattr(fn, "fn", fn))}
    for target in exercise.guarded:
        if mine & {id(f) for f in _plain_functions(_resolve(target)[2])}:
            raise PackageImplementationCalled(_refusal_message(target, exercise.name))


# --- the hidden inputs' seed ------------------------------------------------------------------

SEED_ENV = "ULTRAMEM_EDU_GRADING_SEED"


@contextlib.contextmanager
def grading_seed(seed: int | None) -> Iterator[None]:
    """Within the block the checks draw their hidden inputs from ``seed`` (None: the book's inputs)."""
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    token = _SEED.set(seed)
    try:
        yield
    finally:
        _SEED.reset(token)


def current_seed() -> int | None:
    """The grading seed in force: :func:`grading_seed`'s, else the environment's ``ULTRAMEM_EDU_GRADING_SEED``
    (how a grader passes it into a notebook's kernel), else None."""
    import os

    seed = _SEED.get()
    if seed is not None:
        return seed
    text = os.environ.get(SEED_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"{SEED_ENV} must be a non-negative integer, got {text!r}")
    return int(text)


def seed_for(base: int) -> int:
    """The seed of a check's random inputs: ``base`` (the book's) unless a grading seed is in force,
    then a number mixed from both, so that each check still draws its own inputs."""
    seed = current_seed()
    if seed is None:
        return base
    return (base * 1_000_003 + (seed + 1) * 998_244_353) % (2**31 - 1)


def call(fn: Callable[..., Any], case: str, *args: Any, **kwargs: Any) -> Any:
    """Call the reader's ``fn`` with the package's implementation of the running exercise refused;
    turn its errors into messages that name the case.

    NotImplementedError passes through (as NotImplementedError, with a clearer message), and so does
    :class:`PackageImplementationCalled`.
    """
    if not callable(fn):
        raise AssertionError(f"Pass the function itself (without calling it), got {type(fn).__name__}.")
    active = _ACTIVE.get()
    guard = refusing(active.guarded, active.name) if active is not None else contextlib.nullcontext()
    try:
        with guard:
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


class LargestTensor:
    """Records the largest tensor any torch operation produces while it is active (a dispatch mode)."""

    def __init__(self):
        self.numel = 0
        self.mode = None
        try:
            from torch.utils._python_dispatch import TorchDispatchMode
        except ImportError:  # an old torch: the size check is skipped
            return
        outer = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                result = func(*args, **(kwargs or {}))
                for t in result if isinstance(result, (tuple, list)) else (result,):
                    if isinstance(t, torch.Tensor):
                        outer.numel = max(outer.numel, t.numel())
                return result

        self.mode = _Mode()

    def __enter__(self):
        if self.mode is not None:
            self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        if self.mode is not None:
            return self.mode.__exit__(*exc)
        return False
