"""Kernels for UltraMem's value lookup (see :mod:`ultramem_edu.kernels.value_lookup`)."""
from .reference import value_lookup_reference
from .value_lookup import value_lookup

__all__ = ["value_lookup", "value_lookup_reference"]
