"""The value table across devices: sharding with ``torch.distributed`` (chapter 13).

- :mod:`.shard`: :func:`shard_layer` (column or row scheme) and the functional lookups.
- :mod:`.collectives`: autograd-aware all-to-all / all-gather that count the bytes they send.
- :mod:`.comm_model`: bytes per rank per step of each scheme, and where they cross; rows pooled at
  their owner (TorchRec's row-wise) and an MoE's expert-parallel all-to-all, for comparison.
- :mod:`.memory`: value table + Adam state per rank for the paper's 1.6B configurations, and the
  rest under ZeRO stages 0-3.
- :mod:`.ddp`: data-parallel training of the tiny LM with sharded memories
  (``torchrun --nproc_per_node 2 -m ultramem_edu.distributed``).
- :mod:`.fsdp`: the rest of the model under FSDP2 (``fully_shard``, ZeRO stage 3) beside the sharded
  tables (``torchrun --nproc_per_node 2 -m ultramem_edu.distributed --fsdp``).
- :mod:`.launch`: a small loopback gloo group for tests and the book.
"""
from .collectives import CommLog, all_gather_v, all_to_all, count_bytes, exchange_counts
from .shard import SCHEMES, ShardedUltraMemLayer, column_lookup, row_lookup, shard_layer

__all__ = [
    "CommLog", "count_bytes", "all_to_all", "all_gather_v", "exchange_counts",
    "SCHEMES", "ShardedUltraMemLayer", "shard_layer", "column_lookup", "row_lookup",
]
