"""Fully sharded data parallelism (ZeRO-3) for the replicated part, beside the sharded value tables.

:mod:`.ddp` keeps a whole copy of everything but the value tables on every rank: weights,
gradients and Adam state. ZeRO (Rajbhandari et al. 2020) removes that redundancy along the
data-parallel axis itself: stage 1 shards the optimizer state, stage 2 also the gradients, stage 3
also the weights, each rank keeping 1/P of them and gathering a layer's weights just before it
runs. PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``) is stage 3: it turns each parameter
into a ``DTensor`` sharded along dim 0, all-gathers a module's parameters before its forward and
backward, frees them after, and reduce-scatters the gradients so that each rank keeps the averaged
gradient of its own slice only. The optimizer then steps on the shards.

The value tables are already sharded by :func:`~.shard.shard_layer`; FSDP must leave them alone
(``ignored_params``), exactly as DDP is told to skip them in :func:`~.ddp.wrap_ddp`, and their
gradient gets the same 1/P. :func:`fully_shard_model` applies ``fully_shard`` to every transformer
block and then to the root (the embeddings, the final norm, the head and the memories' small
replicated parameters), so that at most one block's weights are whole at a time.

FSDP2 runs on gloo and CPU tensors in torch 2.13 (its collectives are ``all_gather_into_tensor``
and ``reduce_scatter_tensor``, which gloo provides): ``tests/test_distributed.py`` trains two steps
on two gloo processes against one process, and

    torchrun --nproc_per_node 2 -m ultramem_edu.distributed --fsdp --steps 40

writes the two loss curves, as the DDP run does.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ..model import TransformerLM
from .ddp import _random_batches, _shards, max_param_diff, shard_memories, tiny_lm, train_steps

__all__ = ["fully_shard_model", "is_dtensor", "fsdp_step_check"]


def is_dtensor(t) -> bool:
    """True for a ``torch.distributed.tensor.DTensor`` (a parameter or gradient FSDP2 has sharded)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:                       # pragma: no cover  (torch without DTensor)
        return False
    return isinstance(t, DTensor)


def fully_shard_model(model: TransformerLM, group=None, reshard_after_forward: bool = True) -> TransformerLM:
    """Shard every parameter of ``model`` except the value-table shards with FSDP2, in place (collective).

    Call after :func:`~.ddp.shard_memories`. Each block becomes one FSDP unit, the root another;
    the value shards are ``ignored_params`` and get their gradient divided by the group's size, as
    in :func:`~.ddp.wrap_ddp`. Returns ``model`` (now also an ``FSDPModule``). Build the optimizer
    afterwards, from the sharded parameters.
    """
    if not isinstance(model, TransformerLM):
        raise TypeError(f"model must be a TransformerLM, got {type(model).__name__}")
    if not isinstance(reshard_after_forward, bool):
        raise TypeError(f"reshard_after_forward must be a bool, got {type(reshard_after_forward).__name__}")
    if not dist.is_initialized():
        raise RuntimeError("fully_shard_model needs an initialised process group (torch.distributed.init_process_group)")
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.fsdp import fully_shard

    device_type = next(model.parameters()).device.type
    group = group if group is not None else dist.group.WORLD
    mesh = DeviceMesh.from_group(group, device_type)
    world = dist.get_world_size(group)
    shards = set(_shards(model))
    for p in shards:
        p.register_hook(lambda g, world=world: g / world)
    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward, ignored_params=shards)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward, ignored_params=shards)
    return model


def _full(p: torch.Tensor) -> torch.Tensor:
    """The whole tensor: gathered from the ranks for a DTensor (collective), else itself."""
    return p.full_tensor() if is_dtensor(p) else p


def fsdp_step_check(rank: int, world: int, scheme: str = "column", steps: int = 2, batch: int = 4,
                    seq_len: int = 16, seed: int = 0, grad_clip: float = 0.5) -> dict:
    """Train the tiny LM ``steps`` steps with FSDP2 over the replicated part and sharded value tables
    on ``world`` ranks, and the same model in one process on the whole batch (on every rank, as the
    reference). Returns the losses, the gradient norms before clipping, the largest difference of
    any parameter after training (FSDP shards gathered, table shards against their slice), how far
    training moved the parameters, and what this rank stores: its numbers of replicated and table
    parameters, against those of the unsharded model."""
    kwargs = dict(vocab_size=32, d_model=32, n_layers=2, seq_len=seq_len, seed=seed, num_values=16 * 16,
                  init_samples=64)
    reference = tiny_lm(**kwargs)
    ref_norms, norms = [], []
    ref_losses = train_steps(reference, _random_batches(32, batch, seq_len, seed), steps, grad_clip=grad_clip,
                             norms=ref_norms)

    model = fully_shard_model(shard_memories(tiny_lm(**kwargs), scheme=scheme))
    shard_ids = {id(p) for p in _shards(model)}
    stored = {"replicated_local": 0, "table_local": 0}
    for p in model.parameters():
        if id(p) in shard_ids:
            stored["table_local"] += p.numel()
        else:
            stored["replicated_local"] += (p.to_local() if is_dtensor(p) else p).numel()
    dtensors = sum(is_dtensor(p) for p in model.parameters())
    losses = train_steps(model, _random_batches(32, batch, seq_len, seed), steps, grad_clip=grad_clip, rank=rank,
                         world=world, norms=norms)
    worst = max_param_diff(model, reference, _full)
    moved = max(float((p.detach() - q.detach()).abs().max())
                for p, q in zip(reference.parameters(), tiny_lm(**kwargs).parameters()))
    table_total = sum(p.numel() for n, p in reference.named_parameters() if n.endswith(".values"))
    return {"losses": losses, "reference_losses": ref_losses, "grad_norms": norms, "reference_grad_norms": ref_norms,
            "grad_clip": grad_clip, "max_param_diff": worst, "max_param_change": moved, "dtensor_params": dtensors,
            **stored, "replicated_total": sum(p.numel() for p in reference.parameters()) - table_total,
            "table_total": table_total}

