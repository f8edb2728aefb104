"""Data-parallel training of the tiny LM with its memory layers' value tables sharded.

Every rank holds the whole model except the value tables, of which it holds one shard each
(:func:`shard_memories`). :class:`~torch.nn.parallel.DistributedDataParallel` averages the
gradients of the replicated parameters and is told to leave the shards alone
(:func:`wrap_ddp`): a shard's gradient already arrives complete through the sharded lookup's
backward, summed over every rank's tokens, so it only needs the same 1/P as DDP's average.
The global gradient norm for clipping adds the shards' squared norms across ranks
(:func:`clip_grad_norm`). With equal local batches this is the single-process step on the
global batch: same loss, same update (``tests/test_distributed.py`` checks one step; the
``__main__`` run writes the two loss curves side by side).

Run on 2 processes of this machine (gloo) or on 2 GPUs (NCCL, chosen when CUDA is there)::

    torchrun --nproc_per_node 2 -m ultramem_edu.distributed --steps 30 --scheme column --compare
"""
from __future__ import annotations

import inspect
import math
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..layer import UltraMemConfig, memory_param_groups, value_lr_scheduler
from ..model import LMConfig, TransformerLM, default_wiring
from ..train import cosine_with_warmup
from .shard import ShardedUltraMemLayer, shard_layer

__all__ = ["tiny_lm", "shard_memories", "shard_parameter_names", "wrap_ddp", "clip_grad_norm", "train_steps",
           "make_optimizer", "ddp_step_check"]


def tiny_lm(vocab_size: int = 64, d_model: int = 64, n_layers: int = 4, seq_len: int = 64, seed: int = 0,
            num_values: int = 32 * 32, init_samples: int = 256) -> TransformerLM:
    """A small TransformerLM with one UltraMem layer (TDQKR, MCS, IVE on; D_v = D/2), seeded."""
    memory = UltraMemConfig(d_model, num_values=num_values, key_dim=16, num_heads=2, topm=8, num_layers=n_layers,
                            init_samples=init_samples)
    torch.manual_seed(seed)
    cfg = LMConfig(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=4, seq_len=seq_len,
                   memory=memory, memory_wiring=default_wiring(n_layers, 1))
    return TransformerLM(cfg)


def shard_memories(model: TransformerLM, group=None, scheme: str = "column", dedup: bool = True) -> TransformerLM:
    """Replace each UltraMem layer of ``model.memories`` by its sharded form, in place (collective)."""
    for k, memory in enumerate(model.memories):
        model.memories[k] = shard_layer(memory, group, scheme, dedup)
    return model


def shard_parameter_names(model: nn.Module) -> list[str]:
    """Fully qualified names of the value-table shards in ``model``."""
    names = []
    for prefix, module in model.named_modules():
        if isinstance(module, ShardedUltraMemLayer):
            names.append(f"{prefix}.layer.values" if prefix else "layer.values")
    return names


def _shards(model: nn.Module) -> list[nn.Parameter]:
    return [m.layer.values for m in model.modules() if isinstance(m, ShardedUltraMemLayer)]


def wrap_ddp(model: nn.Module, group=None, **ddp_kwargs) -> DistributedDataParallel:
    """DDP over ``model`` that skips the value shards and gives their gradients DDP's 1/P average.

    Buffers are not re-broadcast at every forward (``forward_sync_buffers=False``): the IVE shuffle
    is fixed and TDQKR's factor buffers follow the (synchronised) Tucker cores identically.
    """
    world = dist.get_world_size(group)
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, shard_parameter_names(model))
    for p in _shards(model):
        p.register_hook(lambda g, world=world: g / world)
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        ddp_kwargs.setdefault("forward_sync_buffers", False)           # torch >= 2.13
    else:
        ddp_kwargs.setdefault("broadcast_buffers", False)
    return DistributedDataParallel(model, process_group=group, **ddp_kwargs)


def _is_sharded(g: torch.Tensor) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:                   # pragma: no cover
        return False
    return isinstance(g, DTensor)


def _local(g: torch.Tensor) -> torch.Tensor:
    """This rank's part of a DTensor (FSDP2's sharded parameters and gradients), else the tensor itself."""
    return g.to_local() if _is_sharded(g) else g


def clip_grad_norm(model: nn.Module, max_norm: float, group=None) -> float:
    """Clip by the norm of the *whole* model's gradient: replicated parameters once, shards (the
    value tables' and FSDP2's) summed over ranks. Without a process group (or sharded layers) this is
    ``clip_grad_norm_``."""
    shards = {id(p) for p in _shards(model)}
    replicated, sharded = [], []
    for p in model.parameters():
        if p.grad is None:
            continue
        if id(p) in shards:
            sharded.append(p.grad)
        elif _is_sharded(p.grad):      # FSDP2: a DTensor holding this rank's slice, summed across ranks too
            sharded.append(_local(p.grad))
        else:
            replicated.append(p.grad)
    sq = sum((g.double().pow(2).sum() for g in replicated), torch.zeros((), dtype=torch.float64))
    sq_shards = sum((g.double().pow(2).sum() for g in sharded), torch.zeros((), dtype=torch.float64))
    if sharded and dist.is_initialized():
        dist.all_reduce(sq_shards, group=group)
    norm = float((sq + sq_shards).sqrt())
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in replicated + sharded:
            g.mul_(scale)
    return norm


def make_optimizer(model: nn.Module, lr: float, steps: int):
    """AdamW (paper's betas and weight decay) over the two groups of :func:`memory_param_groups`,
    with warm-up + cosine and the value-lr multiplier k = 1."""
    optimizer = torch.optim.AdamW(memory_param_groups(model, lr, 0.1), lr=lr, betas=(0.9, 0.95))
    scheduler = value_lr_scheduler(optimizer, steps, k=1.0, base=cosine_with_warmup(steps, 0.1))
    return optimizer, scheduler


def train_steps(model: nn.Module, batches, steps: int, lr: float = 3e-3, grad_clip: float = 1.0, group=None,
                rank: int = 0, world: int = 1, norms: list | None = None) -> list[float]:
    """Train for ``steps`` global batches; rank r takes rows [r·B/P, (r+1)·B/P) of each.

    ``model`` is the DDP-wrapped sharded model on each rank, or the plain model with world = 1.
    Returns the loss of each global batch (the mean of the ranks' local means: equal local
    batches make it the global mean), the same on every rank. ``norms``: a list to which each
    step's gradient norm before clipping is appended.
    """
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    optimizer, scheduler = make_optimizer(inner, lr, steps)
    losses = []
    for _ in range(steps):
        x, y = next(batches)
        if x.shape[0] % world:
            raise ValueError(f"the global batch ({x.shape[0]} rows) must split evenly over {world} ranks")
        b = x.shape[0] // world
        x, y = x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b]
        out = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        norm = clip_grad_norm(inner, grad_clip, group)
        if norms is not None:
            norms.append(norm)
        optimizer.step()
        scheduler.step()
        loss = out.loss.detach().clone()
        if world > 1:
            dist.all_reduce(loss, group=group)
            loss /= world
        losses.append(float(loss))
    return losses


def _random_batches(vocab: int, batch: int, seq_len: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randint(0, vocab, (batch, seq_len + 1), generator=gen)
        yield x[:, :-1], x[:, 1:]


def max_param_diff(model: nn.Module, reference: nn.Module, to_full=lambda t: t) -> float:
    """The largest |difference| between a sharded model's parameters and the one-process reference's: each
    value-table shard against its block of the full table, everything else name for name. ``to_full``
    turns a parameter into a full local tensor (FSDP's DTensors are gathered by it)."""
    ref_params = dict(reference.named_parameters())
    worst = 0.0
    for name, p in model.named_parameters():
        if name.endswith("layer.values"):
            mem = model.get_submodule(name.rsplit(".layer.values", 1)[0])
            full = ref_params[name.replace(".layer.values", ".values")]
            ref = full[mem.rows[0]:mem.rows[1], mem.cols[0]:mem.cols[1]]
        else:
            ref = ref_params[name.replace(".layer.", ".")]
        worst = max(worst, float((to_full(p.detach()) - ref.detach()).abs().max()))
    return worst


def ddp_step_check(rank: int, world: int, scheme: str = "column", steps: int = 1, batch: int = 4,
                   seq_len: int = 16, seed: int = 0, grad_clip: float = 0.5) -> dict:
    """Train the tiny LM ``steps`` steps with DDP + sharded memories on ``world`` ranks, and the same
    model in one process on the whole batch (on every rank, as the reference); return the losses,
    the gradient norms before clipping (``grad_clip`` below them tests the distributed norm) and
    the largest parameter difference after training (shards against their slice)."""
    kwargs = dict(vocab_size=32, d_model=32, n_layers=2, seq_len=seq_len, seed=seed, num_values=16 * 16,
                  init_samples=64)
    reference = tiny_lm(**kwargs)
    ref_norms, norms = [], []
    ref_losses = train_steps(reference, _random_batches(32, batch, seq_len, seed), steps, grad_clip=grad_clip,
                             norms=ref_norms)

    model = shard_memories(tiny_lm(**kwargs), scheme=scheme)
    ddp = wrap_ddp(model)
    losses = train_steps(ddp, _random_batches(32, batch, seq_len, seed), steps, grad_clip=grad_clip, rank=rank,
                         world=world, norms=norms)
    worst = max_param_diff(model, reference)
    moved = max(float((p.detach() - q.detach()).abs().max())
                for p, q in zip(reference.parameters(), tiny_lm(**kwargs).parameters()))
    return {"losses": losses, "reference_losses": ref_losses, "grad_norms": norms, "reference_grad_norms": ref_norms,
            "grad_clip": grad_clip, "max_param_diff": worst, "max_param_change": moved}


def _to(stream, device):
    for x, y in stream:
        yield x.to(device), y.to(device)


def train_compare(rank: int, world: int, steps: int, scheme: str, batch: int, seq_len: int, lr: float,
                  seed: int = 0, group=None, device: str = "cpu", parallel: str = "ddp") -> dict:
    """Train the tiny LM on KJV characters with sharded memories and the rest under DDP
    (``parallel="ddp"``) or FSDP2 (``"fsdp"``, :mod:`.fsdp`); rank 0 then trains the same model alone
    on the same global batches. Returns both loss curves (rank 0) and timings."""
    if parallel not in ("ddp", "fsdp"):
        raise ValueError(f"parallel must be one of ['ddp', 'fsdp'], got {parallel!r}")
    from ..data import CharTokenizer, batches, load_corpus, split_corpus

    train_text, _ = split_corpus(load_corpus("kjv"))
    tok = CharTokenizer.from_text(train_text)
    ids = tok.encode(train_text)
    kwargs = dict(vocab_size=tok.vocab_size, d_model=64, n_layers=4, seq_len=seq_len, seed=seed)
    model = shard_memories(tiny_lm(**kwargs).to(device), group, scheme)
    if parallel == "fsdp":
        from .fsdp import fully_shard_model
        ddp = fully_shard_model(model, group)
    else:
        ddp = wrap_ddp(model, group)
    t0 = time.perf_counter()
    stream = _to(batches(ids, batch, seq_len, torch.Generator().manual_seed(seed)), device)
    losses = train_steps(ddp, stream, steps, lr, group=group, rank=rank, world=world)
    elapsed = time.perf_counter() - t0
    result = {"losses": losses, "seconds": elapsed}
    if rank == 0:
        reference = tiny_lm(**kwargs).to(device)
        t0 = time.perf_counter()
        stream = _to(batches(ids, batch, seq_len, torch.Generator().manual_seed(seed)), device)
        result["reference_losses"] = train_steps(reference, stream, steps, lr)
        result["reference_seconds"] = time.perf_counter() - t0
        diffs = [abs(a - b) for a, b in zip(losses, result["reference_losses"])]
        result["max_loss_diff"] = max(diffs)
        result["first_step_diff"] = diffs[0]
    if not all(math.isfinite(v) for v in losses):
        raise FloatingPointError("non-finite loss")
    return result
