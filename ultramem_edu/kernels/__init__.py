"""Kernels for UltraMem's value lookup.

- :mod:`.reference`: the specification in plain torch (``value_lookup_reference``).
- :mod:`.value_lookup`: the public, validated entry point ``value_lookup(..., backend=...)``.
- :mod:`.value_lookup_triton`: the Triton kernels (forward, atomic and deterministic backward),
  imported only when the triton backend is first used, so triton stays optional.
- :mod:`.bench`: ``python -m ultramem_edu.kernels.bench`` measures them against the roofline.
- :mod:`.inspect`: ``python -m ultramem_edu.kernels.inspect`` compiles them ahead of time for sm_80 and
  sm_90a (no GPU needed) and reports registers, spills, occupancy and the width of the value-row loads.
"""
from .reference import value_lookup_reference
from .value_lookup import triton_available, value_lookup

__all__ = ["value_lookup", "value_lookup_reference", "triton_available"]
