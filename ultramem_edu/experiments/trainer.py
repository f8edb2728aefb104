"""One training run of a chapter-11 language model, with a *recipe* and a device.

A recipe is what a model family trains with besides the architecture:

* ``lr``: the peak learning rate (linear warm-up, cosine to ``min_lr_frac``·lr; AdamW β = (0.9, 0.95),
  weight decay 0.1 on everything but the value tables);
* ``value_lr_k``: UltraMem's value learning-rate multiplier k — values train at
  lr(t)·(1 + (k − 1)·max(0, 1 − t/T)) (paper text k = 10, released script k = 4, 1 = off);
* ``value_lr``: a *constant* value learning rate instead (PKM as Lample et al. train it: 10⁻³),
  which overrides ``value_lr_k`` and ignores warm-up and cosine.

The loop is :func:`ultramem_edu.train.train_lm`'s (same data order for the same seed, gradient clipping,
checkpoints every ``checkpoint_every`` steps), plus the device and the recipe's value group, and it
reports the loss on two disjoint evaluation splits: ``select`` (curves, choosing the learning rate)
and ``test`` (held out, the number reported). Every run counts the characters it trained on.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from ..data import batches
from ..layer import memory_param_groups, value_lr_multiplier
from ..train import cosine_with_warmup

__all__ = ["train_run", "evaluate_on", "make_optimizer", "RECIPE_KEYS"]

RECIPE_KEYS = ("lr", "value_lr_k", "value_lr")


@torch.no_grad()
def evaluate_on(model: nn.Module, tokens: torch.Tensor, batch_size: int, seq_len: int, num_batches: int, seed: int,
                device: str = "cpu") -> float:
    """Mean next-token cross-entropy (nats) on ``num_batches`` fixed random windows of ``tokens``."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed + 1_000_003)
    losses = [model(x.to(device), y.to(device)).lm_loss.item()
              for x, y in batches(tokens, batch_size, seq_len, g, num_batches)]
    model.train(was)
    return sum(losses) / len(losses)


def _lr_lambdas(groups: list[dict], steps: int, warmup_frac: float, min_lr_frac: float, recipe: dict):
    base = cosine_with_warmup(steps, warmup_frac, min_lr_frac)
    k, const = float(recipe.get("value_lr_k", 1.0)), recipe.get("value_lr")

    def make(name):
        if name == "values" and const is not None:
            return lambda step: 1.0                       # the group's lr is set to the constant itself
        if name == "values":
            return lambda step: base(step) * value_lr_multiplier(min(step, steps), steps, k)
        return base
    return [make(g["name"]) for g in groups]


def make_optimizer(model: nn.Module, recipe: dict, steps: int, warmup_frac: float, weight_decay: float = 0.1,
                   min_lr_frac: float = 0.1):
    """AdamW (β = 0.9, 0.95) over two groups (values without weight decay) and the recipe's schedule:
    warm-up + cosine for everything, times the value-lr multiplier k on the values, or a constant value lr."""
    groups = memory_param_groups(model, recipe["lr"], weight_decay)
    if recipe.get("value_lr") is not None:
        for g in groups:
            if g["name"] == "values":
                g["lr"] = float(recipe["value_lr"])
    opt = torch.optim.AdamW(groups, lr=recipe["lr"], betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambdas(groups, steps, warmup_frac, min_lr_frac, recipe))
    return opt, sched


def train_run(model: nn.Module, splits: dict, recipe: dict, train: dict, seed: int, checkpoint: str | None = None,
              device: str = "cpu", progress: bool = True, description: str = "train") -> dict:
    """Train ``model`` on ``splits["train"]`` and evaluate on ``splits["select"]`` / ``splits["test"]``.

    Args:
        splits: {"train", "select", "test"} (N,) int64 token ids (CPU).
        recipe: {"lr", "value_lr_k", "value_lr"} (see the module docstring).
        train: {"steps", "batch_size", "seq_len", "warmup_frac", "eval_every", "eval_batches",
            "final_eval_batches"} and optionally "weight_decay" (0.1), "min_lr_frac" (0.1),
            "grad_clip" (1.0), "checkpoint_every" (100).
        checkpoint: a path to save to and resume from (None = none).
    Returns:
        {"history": [{"step", "train_loss", "select_loss", "tokens"}], "select_loss", "test_loss",
         "tokens_trained", "tokens_per_s", "train_s"}.
    """
    from tqdm.auto import tqdm

    for key in ("lr",):
        if key not in recipe:
            raise ValueError(f"recipe must give {key!r}, got {sorted(recipe)}")
    unknown = set(recipe) - set(RECIPE_KEYS)
    if unknown:
        raise ValueError(f"unknown recipe keys {sorted(unknown)}; expected some of {RECIPE_KEYS}")
    steps, bs, T = int(train["steps"]), int(train["batch_size"]), int(train["seq_len"])
    if steps < 1 or bs < 1 or T < 1:
        raise ValueError(f"steps, batch_size and seq_len must be >= 1, got {steps}, {bs}, {T}")
    if not float(recipe.get("value_lr_k", 1.0)) >= 1:
        raise ValueError(f"value_lr_k must be >= 1, got {recipe.get('value_lr_k')}")
    eval_every = max(1, min(int(train["eval_every"]), steps))
    ckpt_every = int(train.get("checkpoint_every", 100))
    torch.manual_seed(seed)
    model.to(device)
    opt, sched = make_optimizer(model, recipe, steps, train["warmup_frac"], train.get("weight_decay", 0.1),
                                train.get("min_lr_frac", 0.1))
    gen = torch.Generator().manual_seed(seed)
    history, start = [], 0
    path = Path(checkpoint) if checkpoint else None
    if path is not None and path.exists():
        try:
            state = torch.load(path, weights_only=False, map_location=device)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            start, history = state["step"], state["history"]
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
            raise ValueError(f"checkpoint {path} cannot be resumed ({type(e).__name__}: {e}); delete it to "
                             "restart this run") from e
    eval_args = (bs, T, int(train["eval_batches"]), seed, device)
    if start == 0:
        history.append({"step": 0, "train_loss": None, "select_loss": evaluate_on(model, splits["select"], *eval_args),
                        "tokens": 0})
    model.train()
    stream = batches(splits["train"], bs, T, gen)
    running, compute = [], 0.0
    clip = float(train.get("grad_clip", 1.0))
    bar = tqdm(range(start, steps), desc=description, disable=not progress, leave=False)
    for step in bar:
        x, y = next(stream)
        x, y = x.to(device), y.to(device)
        t0 = time.perf_counter()
        loss = model(x, y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        if device != "cpu":
            torch.cuda.synchronize()
        compute += time.perf_counter() - t0
        running.append(loss.item())
        done = step + 1
        if done % eval_every == 0 or done == steps:
            val = evaluate_on(model, splits["select"], *eval_args)
            history.append({"step": done, "train_loss": sum(running) / len(running), "select_loss": val,
                            "tokens": done * bs * T, "tokens_per_s": bs * T * len(running) / max(compute, 1e-9)})
            bar.set_postfix(val=f"{val:.3f}")
            running, compute = [], 0.0
        if path is not None and (done % ckpt_every == 0 or done == steps):
            tmp = path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "step": done, "generator": gen.get_state(), "history": history}, tmp)
            os.replace(tmp, path)
    final = int(train["final_eval_batches"])
    rates = [h["tokens_per_s"] for h in history if h.get("tokens_per_s")]
    select = evaluate_on(model, splits["select"], bs, T, final, seed=12345, device=device)
    test = evaluate_on(model, splits["test"], bs, T, final, seed=54321, device=device)
    if not (math.isfinite(select) and math.isfinite(test)):
        select, test = float("nan"), float("nan")
    return {"history": history, "select_loss": select, "test_loss": test, "tokens_trained": steps * bs * T,
            "tokens_per_s": sum(rates) / len(rates) if rates else float("nan")}
