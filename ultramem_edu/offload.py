"""A memory table in host memory: the bytes one decode step fetches over the host link, and when
the copy can start — Engram against UltraMem.

A table too large for GPU memory can stay in host DRAM; every decode step then copies the rows it
reads over PCIe. The time that costs depends on *when* the copy can begin:

* **Engram** (:mod:`ultramem_edu.engram`): the rows are a function of the token ids
  (:meth:`~ultramem_edu.engram.EngramLayer.addresses`). At decode the new token is known when the
  step starts, so the copy starts then and overlaps the compute of every block before the Engram
  layer; only what outlasts those blocks is exposed.
* **UltraMem** (and PKM, Memory+): the rows are the top-m of scores computed from the hidden state
  of the block the memory reads; the copy starts after that routing. With skip-layer wiring (i, j)
  it still overlaps blocks i+1 .. j (the lookup's output is needed only after block j); as a
  parallel branch (i = j) the whole copy is on the critical path.

Conventions are :mod:`ultramem_edu.cost`'s: ``bytes_per_param`` per stored number; a row read by
several tokens of one step is fetched once; selections are uniform and independent, so "expected"
is the expected number of distinct rows (:func:`~ultramem_edu.cost.expected_distinct`) and "worst"
counts every selection as distinct. For Engram too the uniform model is an upper estimate: real
N-grams are Zipf-distributed, and frequent ones repeat within a batch. Added here: a host link with
bandwidth β (bytes/s) and a fixed latency λ per transfer, so fetching b bytes takes λ + b/β, and a
compute time per block that the caller supplies (from a measurement or from ``cost``'s bytes over
the GPU's memory bandwidth). :class:`HostLink`'s defaults are nominal figures, not measurements.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np

from ._checks import check_choice, check_int
from .cost import UltraMemSpec

__all__ = ["EngramSpec", "HostLink", "fetch_seconds", "exposed_seconds", "ultramem_fetch_bytes",
           "host_offload_comparison"]

MODES = ("expected", "worst")
Batch = Union[int, np.ndarray]


def _batch(batch_size: object) -> tuple[np.ndarray, bool]:
    """int >= 1 or an integer array of them -> (float64 array, is_scalar)."""
    if isinstance(batch_size, np.ndarray):
        if batch_size.dtype.kind not in "iu":
            raise TypeError(f"batch_size must be an integer array, got dtype {batch_size.dtype}")
        if batch_size.size and int(batch_size.min()) < 1:
            raise ValueError(f"batch_size must be >= 1 everywhere, got minimum {int(batch_size.min())}")
        return batch_size.astype(np.float64), False
    check_int("batch_size", batch_size, low=1)
    return np.asarray(float(batch_size)), True


def _distinct(num_rows: int, draws: np.ndarray, mode: str) -> np.ndarray:
    """Distinct rows hit by ``draws`` single-row draws from ``num_rows``: expected or worst case."""
    check_choice("mode", mode, MODES)
    draws = np.asarray(draws, dtype=np.float64)
    if mode == "worst":
        return np.minimum(draws, float(num_rows))
    if num_rows == 1:
        return np.ones_like(draws)
    return -num_rows * np.expm1(draws * math.log1p(-1.0 / num_rows))   # cost.expected_distinct, k = 1


def _out(x: np.ndarray, scalar: bool):
    return float(x) if scalar else x


def _nonnegative(name: str, v: object) -> np.ndarray:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.ndarray)):
        raise TypeError(f"{name} must be a float or a float array, got {type(v).__name__}")
    a = np.asarray(v, dtype=np.float64)
    if a.size and (not np.all(np.isfinite(a)) or float(a.min()) < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    return a


@dataclass(frozen=True)
class EngramSpec:
    """An Engram layer whose hashed tables live in host memory (names as in ``EngramConfig``).

    Attributes:
        d_model: D.
        table_rows_per_head: rows of one hash head's table (a prime at or above the order's
            ``engram_vocab_size``; the demo: 129280·5 = 646,400).
        max_ngram_size: N; orders 2..N are hashed.
        n_embed_per_ngram: d_ngram, the width of one order's concatenated heads.
        n_head_per_ngram: K heads per order; each token reads one row of width d_ngram/K per head.
        kernel_size: w of the depthwise convolution.
        bytes_per_param: 2 for bf16.
    Only the tables are in host memory; the projections, norms and convolution stay on the GPU.
    """

    d_model: int
    table_rows_per_head: int
    max_ngram_size: int = 3
    n_embed_per_ngram: int = 512
    n_head_per_ngram: int = 8
    kernel_size: int = 4
    bytes_per_param: int = 2
    name: str = "Engram layer"

    def __post_init__(self) -> None:
        for name in ("d_model", "table_rows_per_head", "n_embed_per_ngram", "n_head_per_ngram",
                     "kernel_size", "bytes_per_param"):
            check_int(name, getattr(self, name), low=1)
        check_int("max_ngram_size", self.max_ngram_size, low=2)
        if self.n_embed_per_ngram % self.n_head_per_ngram:
            raise ValueError(f"n_head_per_ngram must divide n_embed_per_ngram, got {self.n_head_per_ngram} "
                             f"and {self.n_embed_per_ngram}")

    @property
    def num_hash_heads(self) -> int:
        """(N-1)·K rows read per token."""
        return (self.max_ngram_size - 1) * self.n_head_per_ngram

    @property
    def head_dim(self) -> int:
        return self.n_embed_per_ngram // self.n_head_per_ngram

    @property
    def table_params(self) -> int:
        """Numbers stored in host memory: every head's table."""
        return self.num_hash_heads * self.table_rows_per_head * self.head_dim

    @property
    def dense_params(self) -> int:
        """What stays on the GPU: W_K and W_V with biases, three RMSNorm weights, the conv taps."""
        e = (self.max_ngram_size - 1) * self.n_embed_per_ngram
        return 2 * (e * self.d_model + self.d_model) + 3 * self.d_model + self.d_model * self.kernel_size

    def rows_touched(self, batch_size: Batch, mode: str = "expected") -> Batch:
        """Distinct table rows one step of B tokens reads: each head draws one row per token."""
        b, scalar = _batch(batch_size)
        return _out(self.num_hash_heads * _distinct(self.table_rows_per_head, b, mode), scalar)

    def fetch_bytes(self, batch_size: Batch, mode: str = "expected") -> Batch:
        """Bytes one step copies from host memory: distinct rows × d_h × bytes_per_param."""
        b, scalar = _batch(batch_size)
        rows = self.num_hash_heads * _distinct(self.table_rows_per_head, b, mode)
        return _out(rows * self.head_dim * self.bytes_per_param, scalar)


def ultramem_fetch_bytes(spec: UltraMemSpec, batch_size: Batch, mode: str = "expected") -> Batch:
    """Bytes one step of an UltraMem layer with its value table in host memory copies: the distinct
    physical rows of the B·m·H selections (:meth:`UltraMemSpec.rows_touched`) × D_v × bytes."""
    b, scalar = _batch(batch_size)
    return _out(_ultramem_bytes(spec, b, mode), scalar)


def _ultramem_bytes(spec: UltraMemSpec, b: np.ndarray, mode: str) -> np.ndarray:
    if not isinstance(spec, UltraMemSpec):
        raise TypeError(f"spec must be an UltraMemSpec, got {type(spec).__name__}")
    rows = _distinct(spec.num_values, b * spec.top_m * spec.num_heads, mode)
    return rows * spec.value_dim * spec.bytes_per_param


@dataclass(frozen=True)
class HostLink:
    """The host-to-GPU link. Defaults are nominal, not measured: 64e9 bytes/s is PCIe 5.0 ×16's
    nominal rate per direction; a 10 µs fixed cost per transfer is an assumed round figure."""

    bandwidth_bytes_per_s: float = 64e9
    latency_s: float = 10e-6

    def __post_init__(self) -> None:
        if isinstance(self.bandwidth_bytes_per_s, bool) or not isinstance(self.bandwidth_bytes_per_s, (int, float)):
            raise TypeError(f"bandwidth_bytes_per_s must be a float, got {type(self.bandwidth_bytes_per_s).__name__}")
        if not self.bandwidth_bytes_per_s > 0 or not np.isfinite(self.bandwidth_bytes_per_s):
            raise ValueError(f"bandwidth_bytes_per_s must be finite and > 0, got {self.bandwidth_bytes_per_s}")
        _nonnegative("latency_s", self.latency_s)


def fetch_seconds(num_bytes, link: HostLink):
    """λ + bytes/β: the time to copy ``num_bytes`` (float or array, >= 0) over ``link``."""
    if not isinstance(link, HostLink):
        raise TypeError(f"link must be a HostLink, got {type(link).__name__}")
    b = _nonnegative("num_bytes", num_bytes)
    t = link.latency_s + b / link.bandwidth_bytes_per_s
    return float(t) if t.ndim == 0 else t


def exposed_seconds(num_bytes, link: HostLink, overlap_s):
    """max(0, λ + bytes/β − overlap): what the copy adds to the step when ``overlap_s`` seconds of
    independent compute can run while it is in flight."""
    t = np.asarray(fetch_seconds(num_bytes, link)) - _nonnegative("overlap_s", overlap_s)
    t = np.maximum(t, 0.0)
    return float(t) if t.ndim == 0 else t


def host_offload_comparison(engram: EngramSpec, ultramem: UltraMemSpec, batch_size: Batch, link: HostLink,
                            block_seconds, engram_blocks_before: int, ultramem_blocks_between: int = 0,
                            mode: str = "expected") -> dict:
    """One decode step with each table in host memory: bytes, copy time and exposed time.

    Args:
        engram, ultramem: the two layers.
        batch_size: B tokens per step (int or integer array).
        link: the host link.
        block_seconds: compute time of one transformer block at this batch (float or array like B).
        engram_blocks_before: blocks that run before the Engram layer; its copy, started with the
            step, overlaps them (the demo places Engram in blocks 1 and 15: one and fifteen blocks).
        ultramem_blocks_between: j − i of the memory's wiring (i, j): the blocks its copy, started
            after routing at block i, can overlap (0 for a parallel branch).
        mode: "expected" or "worst" (see the module docstring).
    Returns:
        dict of floats (or arrays shaped like ``batch_size``): ``{engram,ultramem}_bytes`` per step,
        ``..._bytes_per_token``, ``..._fetch_s`` (λ + bytes/β), ``..._overlap_s`` and ``..._exposed_s``.
    """
    if not isinstance(engram, EngramSpec):
        raise TypeError(f"engram must be an EngramSpec, got {type(engram).__name__}")
    check_int("engram_blocks_before", engram_blocks_before, low=0)
    check_int("ultramem_blocks_between", ultramem_blocks_between, low=0)
    b, scalar = _batch(batch_size)
    per_block = _nonnegative("block_seconds", block_seconds)
    out = {}
    for name, nbytes, blocks in (
        ("engram", engram.num_hash_heads * _distinct(engram.table_rows_per_head, b, mode)
         * engram.head_dim * engram.bytes_per_param, engram_blocks_before),
        ("ultramem", _ultramem_bytes(ultramem, b, mode), ultramem_blocks_between),
    ):
        overlap = blocks * per_block * np.ones_like(b)
        values = {"bytes": nbytes, "bytes_per_token": nbytes / b,
                  "fetch_s": np.asarray(fetch_seconds(nbytes, link)), "overlap_s": overlap,
                  "exposed_s": np.asarray(exposed_seconds(nbytes, link, overlap))}
        for key, v in values.items():
            out[f"{name}_{key}"] = _out(np.asarray(v, dtype=np.float64), scalar)
    return out
