"""What this environment can run: ``python -m ultramem_edu.check_env``.

Prints the versions of the libraries the book uses, whether a CUDA device is there, whether
Triton's interpreter runs a small kernel on the CPU (in a subprocess with ``TRITON_INTERPRET=1``,
which must be set before Triton is imported), the plotly renderer in use, and the host
(Colab, Binder or other). Exit status 0 means everything the CPU chapters need is present.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

LIBRARIES = ("torch", "numpy", "plotly", "ipywidgets", "triton")
# Without these no chapter runs; triton is optional on a CPU (the kernel chapter needs it).
REQUIRED = ("torch", "numpy", "plotly", "ipywidgets")

# A vector add, checked against torch: the smallest kernel that exercises loads, masks and stores.
TRITON_PROBE = """
import torch
import triton
import triton.language as tl


@triton.jit
def add(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)


x = torch.arange(37, dtype=torch.float32)
y = torch.full((37,), 0.5)
out = torch.empty_like(x)
add[(triton.cdiv(37, 16),)](x, y, out, 37, BLOCK=16)
torch.testing.assert_close(out, x + y)
print("ok")
"""


def version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# Colab's kernel imports google.colab, and every process of a Colab runtime (also `!python ...`)
# sees COLAB_RELEASE_TAG. BinderHub starts the server with BINDER_LAUNCH_HOST, BINDER_REPO_URL,
# BINDER_REF_URL, BINDER_REQUEST and BINDER_PERSISTENT_REQUEST; any BINDER_* variable counts.
COLAB_ENV = "COLAB_RELEASE_TAG"
BINDER_PREFIX = "BINDER_"
HOST_NOTES = {
    "colab": "the first cell of each chapter installs what is missing",
    "binder": "1-2 GB of memory: shut a chapter's kernel down before opening the next",
}


def detect_host(modules: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """'colab', 'binder' or 'local'."""
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    if "google.colab" in modules or COLAB_ENV in environ:
        return "colab"
    if any(key.startswith(BINDER_PREFIX) for key in environ):
        return "binder"
    return "local"


def cuda_device() -> str | None:
    """Name of CUDA device 0, or None when there is none (or no torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def triton_interpreter(code: str = TRITON_PROBE, timeout: float = 180.0) -> tuple[bool, str]:
    """Run ``code`` in a fresh interpreter with ``TRITON_INTERPRET=1``; (ok, short message)."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:g} s"
    seconds = time.perf_counter() - start
    if proc.returncode == 0 and proc.stdout.strip().endswith("ok"):
        return True, f"runs a kernel on the CPU ({seconds:.1f} s)"
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return False, f"failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}"


def plotly_renderer() -> str:
    try:
        from ultramem_edu.viz._plotly import setup_renderer
    except ImportError:
        return "plotly not installed"
    return setup_renderer() or "none chosen (not in a notebook)"


def collect(run_triton: bool = True) -> dict[str, Any]:
    """Everything :func:`report` prints, as a dict."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "versions": {name: version(name) for name in LIBRARIES},
        "cuda": cuda_device(),
        "host": detect_host(),
        "book_build": os.environ.get("ULTRAMEM_BOOK_BUILD", "") == "1",
    }
    if info["versions"]["plotly"]:
        info["plotly_renderer"] = plotly_renderer()
    if run_triton and info["versions"]["triton"] and info["versions"]["torch"]:
        info["triton_interpreter"] = triton_interpreter()
    else:
        info["triton_interpreter"] = (False, "not checked" if info["versions"]["triton"] else "triton not installed")
    return info


def report(info: dict[str, Any] | None = None) -> str:
    """A human-readable table of :func:`collect`'s findings."""
    info = collect() if info is None else info
    rows = [("python", f"{info['python']} ({info['platform']})")]
    rows += [(name, v or "not installed") for name, v in info["versions"].items()]
    rows.append(("CUDA", f"yes: {info['cuda']}" if info["cuda"] else "no (CPU only)"))
    ok, message = info["triton_interpreter"]
    rows.append(("Triton on CPU", message))
    rows.append(("plotly renderer", info.get("plotly_renderer", "plotly not installed")))
    host = info["host"] + (f" ({HOST_NOTES[info['host']]})" if info["host"] in HOST_NOTES else "")
    rows.append(("host", host + (", building the book" if info["book_build"] else "")))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def missing_required(info: dict[str, Any]) -> list[str]:
    return [name for name in REQUIRED if not info["versions"].get(name)]


def main() -> int:
    info = collect()
    print(report(info))
    missing = missing_required(info)
    if missing:
        print(f"\nmissing: {', '.join(missing)} (pip install -r requirements.txt)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
