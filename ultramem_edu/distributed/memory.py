"""Memory per rank when the value tables are sharded and the rest is replicated (data parallel).

Training state per parameter with Adam in mixed precision (the accounting of the ZeRO paper,
Rajbhandari et al. 2020): the bf16 weight (2 bytes) and gradient (2), an fp32 master copy (4) and
Adam's two fp32 moments (4 + 4): 16 bytes. Plain fp32 training also comes to 16 (weight, grad,
two moments, 4 each). Activations, buffers and the communication scratch are not counted.

A sharded table keeps all of this for its shard only; the replicated part (attention, FFNs,
query/key/core/projection parameters of the memories, embeddings) sits whole on every rank.

ZeRO (:func:`zero_rank_memory`) shards that rest along the data-parallel axis too: stage 1 keeps
1/P of its optimizer state (master copy and moments) per rank, stage 2 also 1/P of its gradients,
stage 3 (FSDP) also 1/P of its weights. :func:`zero_comm_bytes` counts what each stage sends per
step for the rest: with ring collectives a rank sends (P−1)/P of a tensor per all-gather or
reduce-scatter and twice that per all-reduce, so stages 0–2 send 2·(P−1)/P·Ψ values (an
all-reduce, or a reduce-scatter of the gradients and an all-gather of the updated weights) and
stage 3 sends 3·(P−1)/P·Ψ (the weights gathered for the forward and again for the backward, the
gradients reduce-scattered): the ZeRO paper's 1.5× (Rajbhandari et al. 2020, §7).
"""
from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_choice, check_int
from ..cost import ModelSpec, paper_1p6b_configs

__all__ = ["BYTES_PER_PARAM", "RankMemory", "rank_memory", "table_and_rest", "paper_rank_memory", "min_ranks",
           "ZERO_STAGES", "ZeroRankMemory", "zero_rank_memory", "zero_comm_bytes"]

ZERO_STAGES = (0, 1, 2, 3)      # 0: plain data parallelism (DDP), 3: FSDP

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


@dataclass(frozen=True)
class ZeroRankMemory:
    """Bytes on one rank with the tables sharded and the rest under ZeRO ``stage``."""

    ranks: int
    stage: int
    table: float
    rest_weights: float
    rest_grads: float
    rest_optimizer: float

    @property
    def rest(self) -> float:
        return self.rest_weights + self.rest_grads + self.rest_optimizer

    @property
    def total(self) -> float:
        return self.table + self.rest


def zero_rank_memory(table_params: float, rest_params: float, ranks: int, stage: int,
                     precision: str = "mixed") -> ZeroRankMemory:
    """Per-rank training memory: ``table_params`` sharded over ``ranks`` (as :func:`rank_memory`) and
    the other ``rest_params`` under ZeRO ``stage`` 0 (replicated), 1 (optimizer state sharded),
    2 (+ gradients) or 3 (+ weights: FSDP)."""
    check_int("ranks", ranks, 1)
    check_int("stage", stage, 0, 3)
    check_choice("precision", precision, tuple(BYTES_PER_PARAM))
    if table_params < 0 or rest_params < 0:
        raise ValueError(f"parameter counts must be >= 0, got {table_params}, {rest_params}")
    w, g, master, adam = BYTES_PER_PARAM[precision]
    table = rank_memory(table_params, 0, ranks, precision).table
    share = rest_params / ranks
    return ZeroRankMemory(
        ranks=ranks, stage=stage, table=table,
        rest_weights=(share if stage >= 3 else rest_params) * w,
        rest_grads=(share if stage >= 2 else rest_params) * g,
        rest_optimizer=(share if stage >= 1 else rest_params) * (master + adam),
    )


def zero_comm_bytes(rest_params: float, ranks: int, stage: int, bytes_per_value: int = 2) -> float:
    """Bytes one rank sends per training step to keep the non-table parameters in step under ZeRO
    ``stage``, with ring collectives: 2·(P−1)/P·Ψ·b for stages 0–2, 3·(P−1)/P·Ψ·b for stage 3
    (Ψ = ``rest_params``, b = ``bytes_per_value``, 2 for bf16 weights and gradients)."""
    check_int("ranks", ranks, 1)
    check_int("stage", stage, 0, 3)
    check_int("bytes_per_value", bytes_per_value, 1)
    if rest_params < 0:
        raise ValueError(f"rest_params must be >= 0, got {rest_params}")
    passes = 3 if stage == 3 else 2
    return passes * (ranks - 1) / ranks * rest_params * bytes_per_value
