"""Test-wide setup.

Triton kernels run on CPU through Triton's interpreter, which must be switched on before any kernel
is decorated; conftest is imported before every test module, so this is the place. On a machine with
CUDA the kernels are compiled instead.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Tests run on small tensors, several processes at once (pytest -n): one thread each avoids
# oversubscribing the cores, which otherwise slows the suite down many times over.
torch.set_num_threads(1)


@pytest.fixture
def one_thread():
    """One torch thread for the test, and the caller's count restored after it (the experiment CLI sets
    its own)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
