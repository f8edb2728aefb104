"""A small decoder-only language model with dense, MoE or memory-augmented blocks.

The three models the book trains side by side differ only in what sits in the FFN slot and
whether memory layers are wired in:

    x = tok_emb(idx) + pos_emb(t)                   learned absolute positions (GPT-2)
    for block b = 0 .. L-1:
        x = x + attn(LN1(x))                        causal self-attention
        h_b = LN2(x)                                the pre-FFN normalised hidden state
        x = x + ffn(h_b)                            dense MLP or top-k MoE
        for each wiring pair (i, j) with i == b:    memory k reads h_i ...
            o_k = memory_k(h_b)
        for each wiring pair (i, j) with j == b:    ... and writes after block j
            x = x + o_k
    logits = lm_head(LN_f(x))

Skip-layer wiring (paper §3.2, "split one big memory into several layers"): memory k reads the
pre-FFN normalised state of block i and its output joins the residual stream after block j ≥ i,
so the memory-bound lookup can overlap the compute-bound blocks i+1 .. j. i == j is a memory
branch in parallel with block i's FFN. Block indices are 0-based throughout.

Positions are learned absolute embeddings (as in GPT-2/nanoGPT) rather than rotary: the memory
layers never see positions directly, so the simpler choice changes nothing the book measures.

Initialisation is GPT-2's: every Linear/Embedding weight N(0, 0.02²), biases zero, and the
projections that write into the residual stream (attention and FFN ``out_proj``) N(0, (0.02/√(2L))²).
Memory layers keep their own initialisation (method.md §7) — this module does not touch them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_choice, check_index_tensor, check_int
from .moe import DenseFFN, DenseFFNConfig, MoEConfig, MoEFFN
from .types import MemoryOutput

__all__ = [
    "LMConfig",
    "LMOutput",
    "TransformerLM",
    "Block",
    "CausalSelfAttention",
    "build_memory_layer",
    "default_wiring",
    "normalise_wiring",
]

Wiring = tuple[tuple[int, int], ...]


def default_wiring(n_layers: int, n_memory_layers: int) -> Wiring:
    """Spread ``n_memory_layers`` skip-layer memories evenly over ``n_layers`` blocks (0-based).

    Stride s = n_layers // (n_memory_layers + 1) (at least 1); memory k reads block
    i_k = s//2 + k·s and writes after block j_k = i_k + s − 1. For 20 layers and 4 memories this
    gives (2, 5), (6, 9), (10, 13), (14, 17) — the released config "2:5, 6:9, 10:13, 14:17", which
    we read as 0-based because it then leaves two plain blocks at each end. For 4 layers and one
    memory: ((1, 2),). When s = 1 the memories are parallel branches, (k, k).
    """
    check_int("n_layers", n_layers, low=1)
    check_int("n_memory_layers", n_memory_layers, low=0, high=n_layers)
    if n_memory_layers == 0:
        return ()
    stride = max(1, n_layers // (n_memory_layers + 1))
    offset = stride // 2
    return tuple(
        (offset + k * stride, offset + k * stride + stride - 1) for k in range(n_memory_layers)
    )


def normalise_wiring(wiring: object, n_layers: int) -> Wiring:
    """Validate (i, j) pairs: 0 <= i <= j < n_layers; return them as a tuple of int pairs."""
    if not isinstance(wiring, (tuple, list)):
        raise TypeError(f"memory_wiring must be a tuple of (i, j) pairs, got {type(wiring).__name__}")
    pairs = []
    for k, pair in enumerate(wiring):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"memory_wiring[{k}] must be an (i, j) pair, got {pair!r}")
        i = check_int(f"memory_wiring[{k}][0]", pair[0], low=0, high=n_layers - 1)
        j = check_int(f"memory_wiring[{k}][1]", pair[1], low=0, high=n_layers - 1)
        if i > j:
            raise ValueError(
                f"memory_wiring[{k}] must read at or before it writes (i <= j), got ({i}, {j})"
            )
        pairs.append((i, j))
    return tuple(pairs)


@dataclass
class LMConfig:
    """Configuration of :class:`TransformerLM`.

    Attributes:
        vocab_size: V.
        d_model: D.
        n_layers: L transformer blocks.
        n_heads: attention heads (must divide D).
        seq_len: maximum context length (size of the position table).
        ffn: "dense" (DenseFFN) or "moe" (MoEFFN).
        ffn_hidden: dense MLP hidden width; None means 4·D. Ignored for "moe".
        moe: the MoE configuration; None with ffn="moe" means ``MoEConfig(d_model)``.
        memory: a memory-layer configuration (``PKMConfig``, ``UltraMemConfig``, or a config with a
            ``build_layers(wiring)`` method such as ``UltraMemV2Config``, ``PEERConfig``,
            ``MemoryPlusConfig``) with a ``d_model`` field equal to D, or None for no memory layers.
        memory_wiring: one (i, j) pair per memory layer, 0-based, i <= j: read LN2 output of block
            i, add the output to the residual stream after block j. See :func:`default_wiring`.
        dropout: on the embeddings, attention weights and the attention/FFN residual branches.
        tie_embeddings: share the token embedding with the output head (GPT-2).
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    seq_len: int
    ffn: str = "dense"
    ffn_hidden: int | None = None
    moe: MoEConfig | None = None
    memory: object | None = None
    memory_wiring: Wiring = ()
    dropout: float = 0.0
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, low=1)
        check_int("d_model", self.d_model, low=1)
        check_int("n_layers", self.n_layers, low=1)
        check_int("n_heads", self.n_heads, low=1)
        check_int("seq_len", self.seq_len, low=1)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads must divide d_model, got d_model={self.d_model}, n_heads={self.n_heads}"
            )
        check_choice("ffn", self.ffn, ("dense", "moe"))
        if self.ffn_hidden is not None:
            check_int("ffn_hidden", self.ffn_hidden, low=1)
        if self.ffn == "moe":
            if self.moe is None:
                self.moe = MoEConfig(self.d_model)
            if not isinstance(self.moe, MoEConfig):
                raise TypeError(f"moe must be a MoEConfig, got {type(self.moe).__name__}")
            if self.moe.d_model != self.d_model:
                raise ValueError(
                    f"moe.d_model must equal d_model={self.d_model}, got {self.moe.d_model}"
                )
        self.memory_wiring = normalise_wiring(self.memory_wiring, self.n_layers)
        if self.memory is None and self.memory_wiring:
            raise ValueError(
                f"memory_wiring is {self.memory_wiring} but memory is None; give a memory config"
            )
        if self.memory is not None:
            if not self.memory_wiring:
                raise ValueError(
                    "memory is set but memory_wiring is empty; use e.g. "
                    f"default_wiring({self.n_layers}, 1) = {default_wiring(self.n_layers, 1)}"
                )
            width = getattr(self.memory, "d_model", None)
            if width != self.d_model:
                raise ValueError(
                    f"memory.d_model must equal d_model={self.d_model}, got {width!r} "
                    f"(memory config {type(self.memory).__name__})"
                )
            # UltraMemConfig.num_layers sets the memory's init variance 1/(2L) (method.md §7).
            depth = getattr(self.memory, "num_layers", None)
            if depth is not None and depth != self.n_layers:
                raise ValueError(
                    f"memory.num_layers must equal n_layers={self.n_layers} (it sets the memory's "
                    f"initialisation), got {depth}"
                )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise TypeError(f"dropout must be a float, got {type(self.dropout).__name__}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"tie_embeddings must be a bool, got {type(self.tie_embeddings).__name__}")


def build_memory_layer(memory_config: object) -> nn.Module:
    """The default memory factory: ``PKMConfig`` -> ``PKMLayer``, ``UltraMemConfig`` -> ``UltraMemLayer``.

    The layer modules are imported here, not at the top, so that this module does not depend on
    them being importable.
    """
    kind = type(memory_config).__name__
    if kind == "PKMConfig":
        from .product_keys import PKMConfig, PKMLayer

        if isinstance(memory_config, PKMConfig):
            return PKMLayer(memory_config)
    elif kind == "UltraMemConfig":
        from .layer import UltraMemConfig, UltraMemLayer

        if isinstance(memory_config, UltraMemConfig):
            return UltraMemLayer(memory_config)
    raise TypeError(
        "memory must be an ultramem_edu.product_keys.PKMConfig or ultramem_edu.layer.UltraMemConfig "
        f"(or pass memory_factory=), got {type(memory_config).__module__}.{kind}"
    )


@dataclass
class LMOutput:
    """What :meth:`TransformerLM.forward` returns.

    Attributes:
        logits: (B, T, V).
        loss: lm_loss + aux_loss, or None without targets.
        lm_loss: mean next-token cross-entropy, or None without targets.
        aux_loss: moe_aux_loss + memory_aux_loss (scalar, always present).
        moe_aux_loss: sum over blocks of the MoE load-balancing losses (0 for dense FFNs).
        memory_aux_loss: sum over memory layers of ``MemoryOutput.aux_loss`` (0 without memory).
        memory: one MemoryOutput per wiring pair, in wiring order, when ``return_memory``; else None.
    """

    logits: torch.Tensor
    loss: torch.Tensor | None
    lm_loss: torch.Tensor | None
    aux_loss: torch.Tensor
    moe_aux_loss: torch.Tensor
    memory_aux_loss: torch.Tensor
    memory: list[MemoryOutput] | None = None


class CausalSelfAttention(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)                          # 3 × (B, T, D)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(                             # (B, nh, T, hd)
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).reshape(b, t, d)                          # (B, T, D)
        return self.out_proj(y)


class Block(nn.Module):
    """Pre-LN transformer block that also hands out its pre-FFN normalised state h."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        if config.ffn == "moe":
            self.ffn: nn.Module = MoEFFN(config.moe)
        else:
            self.ffn = DenseFFN(DenseFFNConfig(config.d_model, config.ffn_hidden))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, T, D) -> (x after the block, h = LN2 output, FFN aux loss scalar)."""
        x = x + self.drop(self.attn(self.ln1(x)))                       # (B, T, D)
        h = self.ln2(x)                                                 # (B, T, D)
        if isinstance(self.ffn, MoEFFN):
            y, aux = self.ffn(h)
        else:
            y, aux = self.ffn(h), h.new_zeros(())
        x = x + self.drop(y)                                            # (B, T, D)
        return x, h, aux


class TransformerLM(nn.Module):
    """Decoder-only LM; memory layers are reachable as ``model.memories`` (one per wiring pair).

    Args:
        config: the model configuration.
        memory_factory: builds one memory layer from ``config.memory``; called once per wiring
            pair, so each pair gets its own parameters. Default: ``config.memory.build_layers(wiring)``
            when the config has that method (UltraMemV2, Memory+ and PEER configs: layers that share
            one value pool are built together), else :func:`build_memory_layer`. The layer must map
            (B, T, D) to a :class:`~ultramem_edu.types.MemoryOutput`; a layer whose
            ``reads_token_ids`` is true (:class:`~ultramem_edu.engram.EngramLayer`) is called as
            ``layer(h, token_ids=idx)``.
    """

    def __init__(
        self,
        config: LMConfig,
        memory_factory: Callable[[object], nn.Module] | None = None,
    ):
        super().__init__()
        if not isinstance(config, LMConfig):
            raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
        if memory_factory is not None and not callable(memory_factory):
            raise TypeError(f"memory_factory must be callable, got {type(memory_factory).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.seq_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self._init_gpt2()

        # Built after the GPT-2 init so that the memory layers keep their own initialisation.
        self.memory_wiring: Wiring = config.memory_wiring
        if memory_factory is None and hasattr(config.memory, "build_layers"):
            # configs whose layers share parameters (one value pool for all layers) build them together
            memories = list(config.memory.build_layers(self.memory_wiring))
            if len(memories) != len(self.memory_wiring):
                raise ValueError(f"memory.build_layers returned {len(memories)} layers for "
                                 f"{len(self.memory_wiring)} wiring pairs")
        else:
            factory = build_memory_layer if memory_factory is None else memory_factory
            memories = [factory(config.memory) for _ in self.memory_wiring]
        for k, memory in enumerate(memories):
            if not isinstance(memory, nn.Module):
                raise TypeError(
                    f"memory_factory must return an nn.Module, got {type(memory).__name__} for pair {k}"
                )
        self.memories = nn.ModuleList(memories)
        self._reads_at = [[k for k, (i, _) in enumerate(self.memory_wiring) if i == b]
                          for b in range(config.n_layers)]
        self._writes_at = [[k for k, (_, j) in enumerate(self.memory_wiring) if j == b]
                           for b in range(config.n_layers)]

    def _init_gpt2(self) -> None:
        for module in (self.tok_emb, self.pos_emb, self.blocks, self.lm_head):
            for m in module.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, mean=0.0, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for name, p in self.blocks.named_parameters():
            if name.endswith("out_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=residual_std)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, return_memory: bool = False
    ) -> LMOutput:
        """Run the model.

        Args:
            idx: (B, T) int64 token ids in [0, V), T <= seq_len.
            targets: optional (B, T) int64 next-token ids in [0, V).
            return_memory: also return each memory layer's MemoryOutput (for visualisation).
        """
        cfg = self.config
        check_index_tensor("idx", idx, high=cfg.vocab_size, ndim=2)
        b, t = idx.shape
        if not 1 <= t <= cfg.seq_len:
            raise ValueError(f"idx must have 1 <= T <= seq_len={cfg.seq_len}, got T={t}")
        if targets is not None:
            check_index_tensor("targets", targets, high=cfg.vocab_size, ndim=2)
            if targets.shape != idx.shape:
                raise ValueError(
                    f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}"
                )

        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))            # (B, T, D)
        moe_aux = x.new_zeros(())
        memory_outputs: list[MemoryOutput | None] = [None] * len(self.memories)
        for block_index, block in enumerate(self.blocks):
            x, h, aux = block(x)                                        # (B, T, D), (B, T, D), ()
            moe_aux = moe_aux + aux
            for k in self._reads_at[block_index]:
                memory_outputs[k] = self._run_memory(k, h, idx)
            for k in self._writes_at[block_index]:
                x = x + memory_outputs[k].output                        # (B, T, D)
        logits = self.lm_head(self.ln_f(x))                             # (B, T, V)

        memory_aux = sum((m.aux_loss for m in memory_outputs), x.new_zeros(()))
        aux_loss = moe_aux + memory_aux
        lm_loss = loss = None
        if targets is not None:
            lm_loss = F.cross_entropy(logits.reshape(b * t, -1), targets.reshape(b * t))
            loss = lm_loss + aux_loss
        return LMOutput(
            logits=logits,
            loss=loss,
            lm_loss=lm_loss,
            aux_loss=aux_loss,
            moe_aux_loss=moe_aux,
            memory_aux_loss=memory_aux,
            memory=list(memory_outputs) if return_memory else None,
        )

    def _run_memory(self, k: int, h: torch.Tensor, idx: torch.Tensor) -> MemoryOutput:
        memory = self.memories[k]
        # a layer addressed by the input tokens (Engram) says so; every other layer sees only h
        out = memory(h, token_ids=idx) if getattr(memory, "reads_token_ids", False) else memory(h)
        if not isinstance(out, MemoryOutput):
            raise TypeError(
                f"memory layer {k} must return a MemoryOutput, got {type(out).__name__}"
            )
        if out.output.shape != h.shape:
            raise ValueError(
                f"memory layer {k} output must have shape {tuple(h.shape)}, "
                f"got {tuple(out.output.shape)}"
            )
        return out
