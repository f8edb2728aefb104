"""Memory per rank when the value tables are sharded and the rest is replicated (data parallel).

Training state per parameter with Adam in mixed precision (the accounting of the ZeRO paper,
Rajbhandari et al. 2020): the bf16 weight (2 bytes) and gradient (2), an fp32 master copy (4) and
Adam's two fp32 moments (4 + 4): 16 bytes. Plain fp32 training also comes to 16 (weight, grad,
two moments, 4 each). Activations, buffers and the communication scratch are not counted.

A sharded table keeps all of this for its shard only; the replicated part (attention, FFNs,
query/key/core/projection parameters of the memories, embeddings) sits whole on every rank.
"""
from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_choice, check_int
from ..cost import ModelSpec, paper_1p6b_configs

__all__ = ["BYTES_PER_PARAM", "RankMemory", "rank_memory", "table_and_rest", "paper_rank_memory", "min_ranks"]

# bytes per parameter: (weight, gradient, master weight, Adam moments)
BYTES_PER_PARAM = {
    "mixed": (2, 2, 4, 8),
    "fp32": (4, 4, 0, 8),
    "weights_bf16": (2, 0, 0, 0),       # inference: the weights alone
}


@dataclass(frozen=True)
class RankMemory:
    """Bytes on one rank: ``table_*`` for its value-table shard, ``replicated_*`` for the rest."""

    ranks: int
    table_weights: float
    table_grads: float
    table_optimizer: float
    replicated: float

    @property
    def table(self) -> float:
        return self.table_weights + self.table_grads + self.table_optimizer

    @property
    def total(self) -> float:
        return self.table + self.replicated


def rank_memory(table_params: float, replicated_params: float, ranks: int, precision: str = "mixed") -> RankMemory:
    """Per-rank training memory for ``table_params`` sharded over ``ranks`` and the rest replicated.

    The shard is table_params/ranks parameters (either scheme: rows or columns, same count).
    """
    check_int("ranks", ranks, 1)
    check_choice("precision", precision, tuple(BYTES_PER_PARAM))
    if table_params < 0 or replicated_params < 0:
        raise ValueError(f"parameter counts must be >= 0, got {table_params}, {replicated_params}")
    w, g, master, adam = BYTES_PER_PARAM[precision]
    shard = table_params / ranks
    return RankMemory(
        ranks=ranks,
        table_weights=shard * w,
        table_grads=shard * g,
        table_optimizer=shard * (master + adam),
        replicated=replicated_params * (w + g + master + adam),
    )


def table_and_rest(spec: ModelSpec) -> tuple[int, int]:
    """(value-table parameters, all other parameters) of a model spec (embeddings not counted, as in
    :mod:`ultramem_edu.cost`)."""
    table = spec.num_memory_layers * spec.memory.value_params if spec.memory is not None else 0
    return table, spec.params - table


def paper_rank_memory(ranks=(1, 2, 4, 8, 16, 32, 64), precision: str = "mixed", **config) -> list[RankMemory]:
    """Per-rank memory of UltraMem-1.6B-x12 (:func:`ultramem_edu.cost.paper_1p6b_configs`) over ``ranks``."""
    table, rest = table_and_rest(paper_1p6b_configs(**config)["ultramem"])
    return [rank_memory(table, rest, int(p), precision) for p in ranks]


def min_ranks(table_params: float, replicated_params: float, device_bytes: float, precision: str = "mixed",
              max_ranks: int = 1 << 16) -> int | None:
    """Fewest ranks (a power of two, as tables are split evenly) whose per-rank memory fits in
    ``device_bytes``, or None when even the replicated part alone does not fit."""
    p = 1
    while p <= max_ranks:
        if rank_memory(table_params, replicated_params, p, precision).total <= device_bytes:
            return p
        p *= 2
    return None
