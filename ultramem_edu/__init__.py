"""ultramem_edu — UltraMem (Ultra-Sparse Memory Network, ICLR 2025) from the ground up.

One module per concept, each with a plain reference and the efficient path it checks:
memory → product_keys → tdqkr → ive → mcs → init → layer → model; kernels/ holds the value lookup.
"""
__version__ = "0.1.0"
