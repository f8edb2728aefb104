"""Learning new facts without forgetting: sparse memory finetuning (Lin et al., 2025, "Continual
Learning via Sparse Memory Finetuning", arXiv 2510.15103) and the baselines it is compared with.

A memory layer reads only a few rows ("slots") of its value table per token. Sparse memory
finetuning trains only the slots that a new batch uses much more than the pretraining data does,
ranked by TF-IDF over slot accesses:

    c(i)     = number of times slot i is read by the batch (every token, head and top-m pick)
    df(i)    = number of background batches (a sample of the pretraining data) that read slot i
    tfidf(i) = c(i) / Σ_j c(j) · log((|B| + 1) / (df(i) + 1)),   |B| = number of background batches

and the top t slots of the batch by this score are the only rows of the value table that the
optimiser step may change; every other parameter of the model is frozen. Source of the formula
and of t: the method as re-implemented in ``dtunai/continual_learning_via_sparse_memory_finetuning``
(``src/sparse_finetuning/tfidf_ranker.py``, whose docstring attributes it to the paper, and
``configs/triviaqa_sparse_finetuning.yaml``: t = 500, 1000 background batches, SGD); the paper's
own method section could not be read while this module was written; chapter 14 states both as the
re-implementation's, not checked against the paper.

Building blocks here (the experiment that uses them lives in ``experiments``):

* :func:`memory_tables`, :func:`slot_rows`: which value tables a model has and which rows a layer's
  ``MemoryOutput.indices`` address (UltraMem's IVE shuffle and UltraMemV2's pool window included);
* :func:`slot_access_counts`, :func:`background_document_frequency`: c and df;
* :func:`tfidf_scores`, :func:`tfidf_top_slots` and their brute-force references;
* :func:`masked_optimizer_step`: one optimiser step that changes only the chosen rows — with AdamW a
  zeroed gradient is not enough (weight decay shrinks every row, and Adam's moments keep moving rows
  trained at an earlier step), so the other rows and their optimiser state are restored bit for bit;
* :func:`freeze_all_but`, :func:`value_table_parameters`: full finetuning, finetuning the whole
  value table;
* :class:`LoRALinear`, :func:`apply_lora`: LoRA (Hu et al., 2021). The maintained library ``peft``
  (0.21.2) requires ``transformers`` and ``accelerate`` (about twenty more packages, among them
  tokenizers and pydantic) for a wrapper of a few lines, so the book writes its own;
* :func:`fact_recall`, :func:`heldout_loss`: the metrics (recall of a fact set through
  :func:`~ultramem_edu.data.fact_recall_accuracy`, chapter 11's facts harness; loss on held-out text).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_index_tensor, check_int
from .data import Facts, fact_recall_accuracy
from .layer import UltraMemLayer

__all__ = [
    "MemoryTable",
    "memory_tables",
    "slot_rows",
    "slot_access_counts",
    "counts_from_outputs",
    "background_document_frequency",
    "tfidf_scores",
    "tfidf_scores_reference",
    "tfidf_top_slots",
    "tfidf_top_slots_reference",
    "row_mask",
    "masked_optimizer_step",
    "sparse_memory_finetune_step",
    "freeze_all_but",
    "value_table_parameters",
    "changed_rows",
    "LoRALinear",
    "apply_lora",
    "fact_recall",
    "heldout_loss",
]


# ---------------------------------------------------------------------- tables and slots
@dataclass(frozen=True)
class MemoryTable:
    """One value table of a model: its slots are the rows of ``params`` (all with ``num_slots`` rows).

    Attributes:
        name: the qualified name of the first parameter (e.g. ``memories.0.values``).
        params: the parameters whose row i is slot i (PEER: both expert tables; UltraMemV2: the pool's
            values and pre-values; otherwise the one value table).
        layers: positions in ``model.memories`` of the layers that read this table (Memory+ and
            UltraMemV2 layers share one).
        num_slots: N, the number of rows.
    """

    name: str
    params: tuple[nn.Parameter, ...]
    layers: tuple[int, ...]
    num_slots: int


def _memories(model: nn.Module) -> nn.ModuleList:
    memories = getattr(model, "memories", None)
    if not isinstance(memories, nn.ModuleList):
        raise TypeError(f"model must have a .memories ModuleList (a TransformerLM), got {type(model).__name__}")
    return memories


def memory_tables(model: nn.Module) -> list[MemoryTable]:
    """Every distinct value table of ``model``'s memory layers, in the order first read."""
    memories = _memories(model)
    names = {id(p): n for n, p in model.named_parameters()}
    tables: dict[int, list] = {}
    for k, layer in enumerate(memories):
        # the layer's own table, or the shared one it holds (MemoryPlusTable, UltraMemV2Pool)
        params = tuple(p for m in layer.modules() if hasattr(m, "value_parameters") for p in m.value_parameters())
        if not params:
            raise TypeError(f"memory layer {k} ({type(layer).__name__}) has no value table (value_parameters())")
        key = id(params[0])
        if key not in tables:
            tables[key] = [params, []]
        tables[key][1].append(k)
    out = []
    for params, layers in tables.values():
        rows = {p.shape[0] for p in params}
        if len(rows) != 1:
            raise ValueError(f"the value parameters of memory layer {layers[0]} differ in rows: {sorted(rows)}")
        out.append(MemoryTable(names.get(id(params[0]), f"memories.{layers[0]}"), params, tuple(layers), rows.pop()))
    return out


def slot_rows(layer: nn.Module, indices: torch.Tensor) -> torch.Tensor:
    """The table rows that ``MemoryOutput.indices`` of ``layer`` address (same shape, int64).

    UltraMem: grid address → IVE shuffle → physical row (virtual address mod N). UltraMemV2: the
    layer's own ``physical_rows`` (shuffle, window, pool offset). PKM, Memory+, PEER and Engram:
    the indices are the rows.
    """
    if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"indices must be an integer tensor, got {type(indices).__name__}")
    if hasattr(layer, "physical_rows"):
        return layer.physical_rows(indices.long())
    if isinstance(layer, UltraMemLayer) and layer.shuffle is not None:
        return layer.shuffle[indices.long()] % layer.config.num_values
    return indices.long()


def counts_from_outputs(model: nn.Module, memory_outputs: Sequence, tables: Sequence[MemoryTable] | None = None
                        ) -> list[torch.Tensor]:
    """c per table from a forward pass already made with ``return_memory=True``: one (N,) int64
    tensor per table, the number of reads of each slot (over tokens, heads and top-m picks)."""
    memories = _memories(model)
    tables = memory_tables(model) if tables is None else list(tables)
    if len(memory_outputs) != len(memories):
        raise ValueError(f"memory_outputs must hold one MemoryOutput per memory layer ({len(memories)}), "
                         f"got {len(memory_outputs)}")
    counts = []
    for table in tables:
        c = torch.zeros(table.num_slots, dtype=torch.int64, device=table.params[0].device)
        for k in table.layers:
            rows = slot_rows(memories[k], memory_outputs[k].indices).flatten()
            c += torch.bincount(rows, minlength=table.num_slots)
        counts.append(c)
    return counts


@torch.no_grad()
def slot_access_counts(model: nn.Module, idx: torch.Tensor, tables: Sequence[MemoryTable] | None = None
                       ) -> list[torch.Tensor]:
    """Run ``model`` on ``idx`` (B, T) in eval mode and count the slot reads: one (N,) int64 per table."""
    was_training = model.training
    model.eval()
    try:
        out = model(idx, return_memory=True)
    finally:
        model.train(was_training)
    return counts_from_outputs(model, out.memory, tables)


@torch.no_grad()
def background_document_frequency(model: nn.Module, batches: Iterable[torch.Tensor],
                                  tables: Sequence[MemoryTable] | None = None) -> tuple[list[torch.Tensor], int]:
    """df per table over background batches: ((N,) int64 per table, |B|). Each batch is one
    "document": df(i) counts the batches that read slot i at least once."""
    tables = memory_tables(model) if tables is None else list(tables)
    dfs = [torch.zeros(t.num_slots, dtype=torch.int64, device=t.params[0].device) for t in tables]
    num = 0
    for idx in batches:
        for df, c in zip(dfs, slot_access_counts(model, idx, tables)):
            df += (c > 0).long()
        num += 1
    if num == 0:
        raise ValueError("batches must hold at least one background batch")
    return dfs, num


# ---------------------------------------------------------------------- TF-IDF ranking
def _check_ranking_inputs(counts: object, doc_freq: object, num_docs: object) -> None:
    check_int("num_docs", num_docs, low=1)
    check_index_tensor("counts", counts, high=2**62, ndim=1)
    check_index_tensor("doc_freq", doc_freq, high=num_docs + 1, ndim=1)
    if counts.shape != doc_freq.shape:
        raise ValueError(f"doc_freq must have the shape of counts {tuple(counts.shape)}, got {tuple(doc_freq.shape)}")
    if int(counts.sum()) == 0:
        raise ValueError("counts must record at least one slot access, got all zeros")


def tfidf_scores(counts: torch.Tensor, doc_freq: torch.Tensor, num_docs: int) -> torch.Tensor:
    """TF-IDF of every slot: (N,) float64, c(i)/Σc · log((|B| + 1)/(df(i) + 1)).

    Args:
        counts: (N,) int, the batch's reads of each slot.
        doc_freq: (N,) int in [0, |B|], background batches that read each slot.
        num_docs: |B| >= 1, the number of background batches.
    """
    _check_ranking_inputs(counts, doc_freq, num_docs)
    tf = counts.double() / counts.sum().double()
    idf = torch.log((num_docs + 1.0) / (doc_freq.double() + 1.0))
    return tf * idf


def tfidf_top_slots(counts: torch.Tensor, doc_freq: torch.Tensor, num_docs: int, t: int) -> torch.Tensor:
    """The slots to train: the batch's accessed slots (c > 0) in decreasing TF-IDF, ties by lower
    slot index, at most ``t`` of them. Returns (min(t, #accessed),) int64."""
    check_int("t", t, low=1)
    scores = tfidf_scores(counts, doc_freq, num_docs)
    accessed = torch.nonzero(counts > 0).flatten()                  # ascending slot index
    order = torch.sort(-scores[accessed], stable=True).indices      # stable: equal scores keep index order
    return accessed[order[:t]]


def tfidf_scores_reference(counts: torch.Tensor, doc_freq: torch.Tensor, num_docs: int) -> torch.Tensor:
    """Brute force, one slot at a time with Python floats: the specification of :func:`tfidf_scores`."""
    _check_ranking_inputs(counts, doc_freq, num_docs)
    c, df = counts.tolist(), doc_freq.tolist()
    total = sum(c)
    return torch.tensor([c[i] / total * math.log((num_docs + 1) / (df[i] + 1)) for i in range(len(c))],
                        dtype=torch.float64)


def tfidf_top_slots_reference(counts: torch.Tensor, doc_freq: torch.Tensor, num_docs: int, t: int) -> torch.Tensor:
    """Brute force: score every accessed slot, sort the (−score, slot) pairs, keep the first t."""
    check_int("t", t, low=1)
    scores = tfidf_scores_reference(counts, doc_freq, num_docs).tolist()
    ranked = sorted((-scores[i], i) for i, c in enumerate(counts.tolist()) if c > 0)
    return torch.tensor([i for _, i in ranked[:t]], dtype=torch.int64)


# ---------------------------------------------------------------------- masked updates
def row_mask(num_slots: int, rows: torch.Tensor, device=None) -> torch.Tensor:
    """(N,) bool, True at ``rows`` (the slots that may change)."""
    check_int("num_slots", num_slots, low=1)
    check_index_tensor("rows", rows, high=num_slots, ndim=1)
    mask = torch.zeros(num_slots, dtype=torch.bool, device=device if device is not None else rows.device)
    mask[rows.long()] = True
    return mask


def _state_tensors(optimizer: torch.optim.Optimizer, p: nn.Parameter) -> dict:
    return {k: v for k, v in optimizer.state.get(p, {}).items()
            if isinstance(v, torch.Tensor) and v.shape == p.shape}


def masked_optimizer_step(optimizer: torch.optim.Optimizer, masks: dict) -> None:
    """``optimizer.step()`` that changes only the masked rows of the given parameters.

    Args:
        optimizer: any torch optimiser (SGD, Adam, AdamW with weight decay ...).
        masks: {parameter: (N,) bool} — True rows may change; the parameter's first dim is N.
    Before the step the gradient of every other row is zeroed (so gradient clipping and the new
    moments see only the trained rows); after it, those rows of the parameter and of every
    optimiser-state tensor shaped like it (Adam's moments, SGD's momentum) are put back exactly as
    they were. A row outside the mask is bit-identical before and after; its moments stay what
    they were when it was last trained. Adam's step count is per parameter, so a row trained for
    the first time late gets the late step's bias correction.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(masks, dict):
        raise TypeError(f"masks must be a dict {{parameter: bool mask}}, got {type(masks).__name__}")
    saved = []
    for p, mask in masks.items():
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != p.shape[:1]:
            raise ValueError(f"masks must map each parameter to a ({p.shape[0]},) bool tensor, "
                             f"got {getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
        keep = ~mask
        if p.grad is not None:
            p.grad[keep] = 0
        saved.append((p, keep, p.detach()[keep].clone(),
                      {k: v[keep].clone() for k, v in _state_tensors(optimizer, p).items()}))
    optimizer.step()
    with torch.no_grad():
        for p, keep, rows, state in saved:
            p[keep] = rows
            current = _state_tensors(optimizer, p)
            for k, v in state.items():
                current[k][keep] = v


def sparse_memory_finetune_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                                loss_fn: Callable, idx: torch.Tensor, doc_freqs: Sequence[torch.Tensor],
                                num_docs: int, t: int, tables: Sequence[MemoryTable] | None = None) -> dict:
    """One step of sparse memory finetuning on the batch ``idx`` (B, T).

    Call it with the model in eval mode: gradients flow all the same, and the frozen parts keep
    their buffers too (BatchNorm statistics, UltraMem's stored rank-1 factors), so nothing but the
    chosen rows moves. The forward pass that computes the loss also yields the slot reads; each table's top-``t``
    slots by TF-IDF against ``doc_freqs`` (from :func:`background_document_frequency`) are the only
    rows the step changes. ``loss_fn(out)`` maps the model's output to a scalar loss. The optimiser
    should hold only the value tables (see :func:`freeze_all_but`). Returns {"loss": float,
    "slots": [(≤t,) int64 per table]}.
    """
    tables = memory_tables(model) if tables is None else list(tables)
    if len(doc_freqs) != len(tables):
        raise ValueError(f"doc_freqs must hold one tensor per table ({len(tables)}), got {len(doc_freqs)}")
    out = model(idx, return_memory=True)
    loss = loss_fn(out)
    counts = counts_from_outputs(model, out.memory, tables)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    slots, masks = [], {}
    for table, c, df in zip(tables, counts, doc_freqs):
        top = tfidf_top_slots(c.cpu(), df.cpu(), num_docs, t)
        slots.append(top)
        mask = row_mask(table.num_slots, top, device=table.params[0].device)
        for p in table.params:
            masks[p] = mask
    masked_optimizer_step(optimizer, masks)
    return {"loss": float(loss.detach()), "slots": slots}


def freeze_all_but(model: nn.Module, params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Set ``requires_grad`` False on every parameter of ``model`` except ``params``; return those."""
    keep = list(params)
    ids = {id(p) for p in keep}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return keep


def value_table_parameters(model: nn.Module, tables: Sequence[MemoryTable] | None = None) -> list[nn.Parameter]:
    """Every value-table parameter (the set that value-table finetuning trains)."""
    tables = memory_tables(model) if tables is None else tables
    return [p for table in tables for p in table.params]


@torch.no_grad()
def changed_rows(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Row indices where two snapshots of a table differ (for the figure of which slots moved)."""
    if before.shape != after.shape or before.dim() != 2:
        raise ValueError(f"before and after must be tables of one shape (N, d), got {tuple(before.shape)} "
                         f"and {tuple(after.shape)}")
    return torch.nonzero((before != after).any(dim=1)).flatten()


# ---------------------------------------------------------------------- LoRA
class LoRALinear(nn.Module):
    """y = W x + b + (α/r)·B A x with W, b frozen (Hu et al., 2021, "LoRA", arXiv 2106.09685).

    A (r, in) is Kaiming-uniform like an ``nn.Linear`` weight (``peft``'s default) and B (out, r)
    starts at zero, so the wrapped layer first computes exactly what the base layer did.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        check_int("rank", rank, low=1, high=min(base.in_features, base.out_features))
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"alpha must be a number > 0, got {alpha!r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank, self.alpha, self.scaling = rank, float(alpha), float(alpha) / rank
        w = base.weight
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        """W + (α/r)·B A, the weight of one Linear that computes the same function."""
        return self.base.weight + self.scaling * self.lora_b @ self.lora_a


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, targets: Sequence[str] | None = None,
               within: str = "blocks") -> list[nn.Parameter]:
    """Freeze ``model`` and wrap its ``nn.Linear`` modules under ``within`` in :class:`LoRALinear`.

    Args:
        rank, alpha: r and α (scaling α/r).
        targets: name suffixes to wrap (e.g. ``("qkv", "out_proj")``); None wraps every Linear under
            ``within`` — attention and FFN of every block; the memory layers (``memories``) and the
            tied embedding are not wrapped.
        within: the submodule to search.
    Returns:
        The LoRA parameters (A and B of every wrapped layer), the only trainable ones.
    """
    root = getattr(model, within, None)
    if not isinstance(root, nn.Module):
        raise ValueError(f"within must name a submodule of model, got {within!r}")
    for p in model.parameters():
        p.requires_grad_(False)
    chosen = [(name, m) for name, m in root.named_modules()
              if isinstance(m, nn.Linear) and (targets is None or any(name.endswith(s) for s in targets))]
    if not chosen:
        raise ValueError(f"targets {targets!r} match no nn.Linear under {within!r}")
    params = []
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        wrapped = LoRALinear(linear, rank, alpha)
        setattr(parent, child, wrapped)
        params += [wrapped.lora_a, wrapped.lora_b]
    return params


# ---------------------------------------------------------------------- metrics
@torch.no_grad()
def fact_recall(model: nn.Module, facts: Facts, token_offset: int = 0, batch_size: int = 4096) -> float:
    """Exact-match recall of ``facts`` by a language model whose vocabulary holds the facts' tokens
    at ``token_offset`` .. ``token_offset + facts.vocab_size`` (e.g. after the characters of a text):
    the model reads ``[s, r]`` and its prediction is the argmax over the facts' tokens at the last
    position (:func:`~ultramem_edu.data.fact_recall_accuracy`)."""
    if not isinstance(facts, Facts):
        raise TypeError(f"facts must be a Facts (from make_facts), got {type(facts).__name__}")
    check_int("token_offset", token_offset, low=0)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None and token_offset + facts.vocab_size > vocab:
        raise ValueError(f"token_offset + facts.vocab_size must be <= the model's vocab_size {vocab}, "
                         f"got {token_offset} + {facts.vocab_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return fact_recall_accuracy(
            lambda x: model((x + token_offset).to(device)).logits[:, -1, token_offset:token_offset + facts.vocab_size].cpu(),
            facts, batch_size)
    finally:
        model.train(was_training)


@torch.no_grad()
def heldout_loss(model: nn.Module, tokens: torch.Tensor, seq_len: int, batch_size: int = 32,
                 max_windows: int | None = None) -> float:
    """Mean next-token cross-entropy on held-out text: the non-overlapping windows of
    ``seq_len + 1`` tokens from the start of ``tokens`` (1-D int64), at most ``max_windows``."""
    check_index_tensor("tokens", tokens, high=2**62, ndim=1)
    check_int("seq_len", seq_len, low=1)
    check_int("batch_size", batch_size, low=1)
    num = (tokens.numel() - 1) // seq_len
    if max_windows is not None:
        num = min(num, check_int("max_windows", max_windows, low=1))
    if num < 1:
        raise ValueError(f"tokens must hold at least seq_len + 1 = {seq_len + 1} tokens, got {tokens.numel()}")
    starts = torch.arange(num) * seq_len
    windows = tokens[starts.unsqueeze(1) + torch.arange(seq_len + 1)]   # (W, seq_len + 1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for i in range(0, num, batch_size):
            w = windows[i:i + batch_size].to(device)
            logits = model(w[:, :-1]).logits
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum"))
    finally:
        model.train(was_training)
    return total / (num * seq_len)
