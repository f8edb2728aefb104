"""Training loop for the small language models of chapter 11.

AdamW (β = 0.9, 0.95, weight decay 0.1 as in the paper), linear warm-up then cosine decay, gradient
clipping, the value-table learning-rate multiplier of :func:`ultramem_edu.layer.value_lr_scheduler`,
fixed validation batches, tokens/s, a tqdm progress bar, and resumable checkpoints: a run stopped at
any point continues from its last checkpoint with the same data order and the same result.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ._checks import check_int
from .data import batches
from .layer import memory_param_groups, value_lr_scheduler

__all__ = ["TrainConfig", "TrainResult", "cosine_with_warmup", "evaluate", "train_lm"]


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes:
        steps: optimiser steps. batch_size, seq_len: tokens per step = batch_size·seq_len.
        lr: peak learning rate; weight_decay, betas: AdamW (paper: 0.1, (0.9, 0.95)).
        warmup_frac: fraction of steps of linear warm-up (paper: 1 %); min_lr_frac: cosine floor.
        value_lr_k: the value tables' initial lr multiplier k (1 = off; paper text 10, code 4).
        grad_clip: max global gradient norm (0 = off).
        eval_every, eval_batches: validation cadence and size (fixed batches, same for every model).
        seed: model-independent data order and evaluation batches.
        checkpoint_path: where to save/resume (None = no checkpoints); checkpoint_every: steps.
    """

    steps: int = 200
    batch_size: int = 16
    seq_len: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_frac: float = 0.01
    min_lr_frac: float = 0.1
    value_lr_k: float = 1.0
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_batches: int = 8
    seed: int = 0
    checkpoint_path: str | None = None
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "eval_every", "eval_batches", "checkpoint_every"):
            check_int(name, getattr(self, name), 1)
        if not 0 <= self.warmup_frac < 1:
            raise ValueError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}")
        if not self.value_lr_k >= 1:
            raise ValueError(f"value_lr_k must be >= 1, got {self.value_lr_k}")


@dataclass
class TrainResult:
    """history: one dict per evaluation (step, train_loss, val_loss, lr, tokens_per_s); step 0 first."""

    history: list[dict] = field(default_factory=list)
    final_val_loss: float = float("nan")
    tokens_per_s: float = float("nan")
    num_parameters: int = 0


def cosine_with_warmup(total_steps: int, warmup_frac: float = 0.01, min_lr_frac: float = 0.1):
    """step → lr factor: linear warm-up over max(1, warmup_frac·T) steps, then cosine to min_lr_frac."""
    warmup = max(1, int(round(warmup_frac * total_steps)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@torch.no_grad()
def evaluate(model: nn.Module, tokens: torch.Tensor, batch_size: int, seq_len: int, num_batches: int, seed: int) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on ``num_batches`` fixed random windows."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed + 1_000_003)
    losses = [model(x, y).lm_loss.item() for x, y in batches(tokens, batch_size, seq_len, generator, num_batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


def _save(path: Path, model, optimizer, scheduler, step, generator, result) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "generator": generator.get_state(),
            "history": result.history,
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


def train_lm(
    model: nn.Module,
    train_tokens: torch.Tensor,
    val_tokens: torch.Tensor,
    config: TrainConfig,
    progress: bool = True,
    description: str = "train",
) -> TrainResult:
    """Train ``model`` (a :class:`ultramem_edu.model.TransformerLM`) on next-token prediction.

    Args:
        train_tokens, val_tokens: (N,) int64 token ids.
        config: see :class:`TrainConfig`.
        progress: show a tqdm bar.
    Returns:
        :class:`TrainResult`. Resumes from ``config.checkpoint_path`` if it exists.
    """
    from tqdm.auto import tqdm

    c = config
    torch.manual_seed(c.seed)
    optimizer = torch.optim.AdamW(memory_param_groups(model, c.lr, c.weight_decay), lr=c.lr, betas=c.betas)
    base = cosine_with_warmup(c.steps, c.warmup_frac, c.min_lr_frac)
    scheduler = value_lr_scheduler(optimizer, c.steps, k=c.value_lr_k, base=base)
    generator = torch.Generator().manual_seed(c.seed)
    result = TrainResult(num_parameters=sum(p.numel() for p in model.parameters()))
    start = 0
    path = Path(c.checkpoint_path) if c.checkpoint_path else None
    if path is not None and path.exists():
        state = torch.load(path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start, result.history = state["step"], state["history"]

    if start == 0:
        val = evaluate(model, val_tokens, c.batch_size, c.seq_len, c.eval_batches, c.seed)
        result.history.append({"step": 0, "train_loss": None, "val_loss": val,
                               "lr": optimizer.param_groups[0]["lr"], "tokens_per_s": None})
    model.train()
    stream = batches(train_tokens, c.batch_size, c.seq_len, generator)
    tokens_per_step = c.batch_size * c.seq_len
    compute_time, running = 0.0, []
    bar = tqdm(range(start, c.steps), desc=description, disable=not progress, leave=False)
    for step in bar:
        x, y = next(stream)
        t0 = time.perf_counter()
        loss = model(x, y).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optimizer.step()
        scheduler.step()
        compute_time += time.perf_counter() - t0
        running.append(loss.item())
        done = step + 1
        if done % c.eval_every == 0 or done == c.steps:
            val = evaluate(model, val_tokens, c.batch_size, c.seq_len, c.eval_batches, c.seed)
            result.history.append(
                {
                    "step": done,
                    "train_loss": sum(running) / len(running),
                    "val_loss": val,
                    "lr": optimizer.param_groups[0]["lr"],
                    "tokens_per_s": tokens_per_step * len(running) / max(compute_time, 1e-9),
                }
            )
            bar.set_postfix(val=f"{val:.3f}")
            running, compute_time = [], 0.0
        if path is not None and (done % c.checkpoint_every == 0 or done == c.steps):
            _save(path, model, optimizer, scheduler, done, generator, result)
    if result.history:
        result.final_val_loss = result.history[-1]["val_loss"]
        rates = [h["tokens_per_s"] for h in result.history if h["step"] > 0]
        result.tokens_per_s = sum(rates) / len(rates)
    return result


def config_dict(config: TrainConfig) -> dict:
    """A JSON-ready dict of the config (for result files)."""
    return asdict(config)
