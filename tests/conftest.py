"""Test-wide setup.

Triton kernels run on CPU through Triton's interpreter, which must be switched on before any kernel
is decorated; conftest is imported before every test module, so this is the place. On a machine with
CUDA the kernels are compiled instead.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Tests run on small tensors, several processes at once (pytest -n): one thread each avoids
# oversubscribing the cores, which otherwise slows the suite down many times over.
torch.set_num_threads(1)
