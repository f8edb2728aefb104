"""Engram: conditional memory by hashed N-gram lookup (DeepSeek-AI, 2026, "Conditional Memory via
Scalable Lookup: A New Axis of Sparsity for Large Language Models", arXiv 2601.07372; demo code
``engram_demo_v1.py`` in github.com/deepseek-ai/Engram).

UltraMem, PKM and Memory+ find their rows by *scoring* a query made from the hidden state: the
addresses are known only after the routing computation. Engram addresses its table with the input
tokens themselves, so every address of a step is known before the model runs a single layer:

    c_t      = P(x_t)                                 tokenizer compression (surjective id map)
    g_{t,n}  = (c_{t-n+1}, ..., c_t)                  the suffix N-gram of order n = 2 .. N
    z_{t,n,k}= φ_{n,k}(g_{t,n}) mod p_{n,k}           K hash heads per order, distinct primes p
    e_t      = ‖_{n,k} E_{n,k}[z_{t,n,k}]             concatenated rows, width (N-1)·d_ngram
    k_t, v_t = W_K e_t + b_K,  W_V e_t + b_V
    α_t      = σ(s(RMSNorm(h_t) · RMSNorm(k_t) / √D)) context-aware gate, s(g) = sign(g)·√|g|
    ṽ_t      = α_t · v_t
    Y        = ṽ + SiLU(CausalConv1D_{w, δ=N}(RMSNorm(ṽ)))    short depthwise convolution
    h_t     ← h_t + Y_t                               (added to the residual stream)

The hash φ_{n,k} is the demo's multiplicative-XOR hash: odd random multipliers m_0 .. m_{N-1}
(one set per layer, seeded by ``seed + 10007·layer_id``), mix = (c_t·m_0) ⊕ (c_{t-1}·m_1) ⊕ ...,
and head k of order n takes mix mod p_{n,k}; the p_{n,k} are consecutive primes at or above the
order's table size, all different across orders, heads and layers. Positions before the start of
the sequence read a padding id. Each head has its own table E_{n,k} of p_{n,k} rows of width
d_ngram/K; here they are stored as one table with row offsets, as in the demo.

Defaults and names are the demo's ``EngramConfig``: ``max_ngram_size`` 3, ``n_embed_per_ngram``
512, ``n_head_per_ngram`` 8, ``kernel_size`` 4, ``seed`` 0, ``engram_vocab_size`` five times the
tokenizer's vocabulary per order (the demo: 129280·5). Deviations, all stated:

* **No hyper-connections.** The demo (like the paper's model) runs on mHC's ``hc_mult`` = 4 residual
  branches, each with its own key projection and norms; this book's models have one residual stream,
  so there is one branch (``hc_mult`` = 1).
* **Placement.** The demo adds Engram's output to the residual stream *before* a block's attention.
  Here the layer plugs in like every other memory layer of :class:`~ultramem_edu.model.TransformerLM`:
  it reads block i's pre-FFN normalised state and its output joins the stream after block j of its
  wiring pair (a parallel branch with i = j). The gate's query is that state, RMS-normalised again.
* **Padding.** The demo pads with a real token id (its tokenizer's id 2, compressed); here the pad is
  an id of its own, one past the compressed vocabulary, so a sequence start is never confused with a
  token. Hash multipliers are bounded so that no product overflows 64 bits (the demo's bound, with the
  pad counted in the vocabulary): the hash is exact integer arithmetic.
* **Tokenizer compression at character level.** The demo normalises each token's text (NFKC, NFD,
  strip accents, lowercase, collapse whitespace) and merges tokens with equal normal forms. With the
  book's character tokenizer the same rule merges each capital with its lower-case letter and every
  whitespace character (space, newline) into one id: 64 KJV characters become fewer N-gram symbols,
  so more of the table is shared by "The"/"the". :func:`compress_vocabulary` applies the rule to any
  list of token strings; ``token_strings=None`` turns compression off.
* **Initialisation.** The demo uses PyTorch's defaults (table N(0, 1), Kaiming-uniform Linear, the
  Conv1d default). ``conv_init="zero"`` starts the convolution branch at zero instead (Y = ṽ), and
  ``value_init_std`` draws W_V from N(0, std²) with a zero bias, to put the layer's first output at the
  residual scale of a small GPT-2-initialised model. Neither is the demo's default.
* ``gate_sqrt``: the demo applies s(g) = sign(g)·√|g| (|g| clamped at 1e-6) before the sigmoid; the
  equation the paper states is σ(g). True (the demo) by default.

Shapes: B batch, T time, D model width, N = max_ngram_size, K = n_head_per_ngram,
H = (N-1)·K hash heads, d_h = n_embed_per_ngram / K.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_float_tensor, check_index_tensor, check_int
from .types import MemoryOutput

__all__ = [
    "EngramConfig",
    "EngramLayer",
    "compress_vocabulary",
    "normalise_token_text",
    "is_prime",
    "hash_moduli",
    "hash_multipliers",
    "ngram_hashes",
    "prefetch_addresses",
]

_INT64_MAX = int(np.iinfo(np.int64).max)
_LAYER_SEED_STRIDE = 10007          # the demo's PRIME_1: layer l hashes with seed + 10007·l
_GATE_CLAMP = 1e-6                  # the demo's clamp of |g| before the square root


# ---------------------------------------------------------------------- tokenizer compression
def normalise_token_text(text: str) -> str:
    """The demo's normal form of one token's text: NFKC, NFD, drop non-spacing marks (accents),
    lowercase, whitespace runs to one space, strip — except that a token of only whitespace
    normalises to a single space. A token whose text is empty after this keeps its own text."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    s = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Mn").lower()
    s = re.sub(r"[ \t\r\n]+", " ", s)
    s = " " if s == " " else s.strip()
    return s if s else text


def compress_vocabulary(token_strings: Sequence[str]) -> tuple[torch.Tensor, int]:
    """Tokenizer compression P: map token ids with the same normal form to one new id.

    Args:
        token_strings: the text of token id i at position i (length V). Text containing U+FFFD
            (an unknown or partial character) keeps its own raw text as its key, as in the demo.
    Returns:
        (table (V,) int64 with new ids in [0, V'), V'): new ids are given in order of first
        appearance, so the map is deterministic.
    """
    if isinstance(token_strings, str) or not isinstance(token_strings, (list, tuple)):
        raise TypeError(f"token_strings must be a list or tuple of str, got {type(token_strings).__name__}")
    if not token_strings:
        raise ValueError("token_strings must not be empty")
    keys: dict[str, int] = {}
    table = []
    for i, text in enumerate(token_strings):
        if not isinstance(text, str):
            raise TypeError(f"token_strings[{i}] must be a str, got {type(text).__name__}")
        key = text if "\ufffd" in text else normalise_token_text(text)
        table.append(keys.setdefault(key, len(keys)))
    return torch.tensor(table, dtype=torch.int64), len(keys)


# ---------------------------------------------------------------------- primes and hash parameters
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)   # deterministic for every n < 3.3e24


def is_prime(n: int) -> bool:
    """Deterministic Miller–Rabin primality test for n < 3.3·10²⁴ (every table size we will see)."""
    check_int("n", n)
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _next_prime(start: int, taken: set[int]) -> int:
    """The smallest prime > start that is not in ``taken``."""
    candidate = start + 1
    while not is_prime(candidate) or candidate in taken:
        candidate += 1
    return candidate


def hash_moduli(engram_vocab_size: Sequence[int], n_head_per_ngram: int,
                layer_ids: Sequence[int]) -> dict[int, list[list[int]]]:
    """The table size of every hash head: {layer_id: [[p_{n,k} for k < K] for n = 2..N]}.

    For each layer (in the given order), each order n and each head k: the next prime after the
    previous head's (starting the search at ``engram_vocab_size[n-2] - 1``), never one already used
    by another head or layer — the demo's ``calculate_vocab_size_across_layers``.
    """
    sizes = list(engram_vocab_size)
    for i, size in enumerate(sizes):
        check_int(f"engram_vocab_size[{i}]", size, low=2)
    check_int("n_head_per_ngram", n_head_per_ngram, low=1)
    ids = [check_int(f"layer_ids[{i}]", layer_id, low=0) for i, layer_id in enumerate(layer_ids)]
    if len(set(ids)) != len(ids):
        raise ValueError(f"layer_ids must be distinct, got {ids}")
    taken: set[int] = set()
    out = {}
    for layer_id in ids:
        per_order = []
        for size in sizes:
            heads, start = [], size - 1
            for _ in range(n_head_per_ngram):
                p = _next_prime(start, taken)
                taken.add(p)
                heads.append(p)
                start = p
            per_order.append(heads)
        out[layer_id] = per_order
    return out


def hash_multipliers(hash_vocab_size: int, max_ngram_size: int, layer_id: int, seed: int = 0) -> torch.Tensor:
    """Odd multipliers m_0 .. m_{N-1} (int64) of one layer's hash: 2·r + 1 with r uniform in
    [0, max(1, ⌊⌊(2⁶³−1)/V_h⌋/2⌋)), drawn by ``numpy.random.default_rng(seed + 10007·layer_id)``.

    The bound keeps every product id·m below 2⁶³ for ids < ``hash_vocab_size`` = V_h (compressed
    vocabulary plus the pad id), so the hash is exact integer arithmetic.
    """
    check_int("hash_vocab_size", hash_vocab_size, low=1)
    check_int("max_ngram_size", max_ngram_size, low=2)
    check_int("layer_id", layer_id, low=0)
    check_int("seed", seed, low=0)
    half_bound = max(1, (_INT64_MAX // hash_vocab_size) // 2)
    rng = np.random.default_rng(seed + _LAYER_SEED_STRIDE * layer_id)
    r = rng.integers(low=0, high=half_bound, size=(max_ngram_size,), dtype=np.int64)
    return torch.from_numpy(r * 2 + 1)


def ngram_hashes(ids: torch.Tensor, multipliers: torch.Tensor, moduli: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Hash every suffix N-gram of every position (vectorised).

    Args:
        ids: (B, T) int64 compressed token ids.
        multipliers: (N,) int64 odd multipliers.
        moduli: (N-1, K) int64 table sizes p_{n,k}, row n-2 for order n.
        pad_id: the id read before the start of a sequence.
    Returns:
        (B, T, N-1, K) int64: z_{t,n,k} = mix_n(t) mod p_{n,k} in [0, p_{n,k}), with
        mix_n(t) = ⊕_{j<n} (c_{t-j}·m_j) (c_s = pad_id for s < 0).
    """
    check_index_tensor("ids", ids, high=_INT64_MAX, ndim=2)
    b, t = ids.shape
    n_max = multipliers.shape[0]
    ids = ids.long()
    mix = ids * multipliers[0]                                            # (B, T) order-1 mix
    orders = []
    for j in range(1, n_max):
        shifted = F.pad(ids, (j, 0), value=pad_id)[:, :t]                 # c_{t-j}
        mix = torch.bitwise_xor(mix, shifted * multipliers[j])
        orders.append(mix)                                                # order j + 1
    mixes = torch.stack(orders, dim=2)                                    # (B, T, N-1)
    return torch.remainder(mixes.unsqueeze(-1), moduli)                   # (B, T, N-1, K)


# ---------------------------------------------------------------------- configuration
@dataclass
class EngramConfig:
    """One Engram layer (names and defaults: the demo's ``EngramConfig``).

    Attributes:
        d_model: D, the width of the residual stream (the demo's ``hidden_size``).
        vocab_size: V of the model's tokenizer (ids in [0, V)).
        engram_vocab_size: per N-gram order 2..N, the smallest size of one head's table; each head
            gets a distinct prime at or above it. None: 5·V for every order (the demo: 129280·5).
        max_ngram_size: N, the longest N-gram (orders 2..N are hashed).
        n_embed_per_ngram: d_ngram, the width of one order's concatenated heads.
        n_head_per_ngram: K hash heads per order; d_h = d_ngram / K per head.
        kernel_size: w of the causal depthwise convolution; its dilation is N (the demo).
        seed: base seed of the hash multipliers (layer l uses seed + 10007·l).
        token_strings: the text of each token id (length V) for tokenizer compression, or None for
            no compression (then the compressed vocabulary is the vocabulary).
        gate_sqrt: apply sign(g)·√|g| to the gate logit before the sigmoid (the demo) or not.
        conv_init: "default" (PyTorch's Conv1d initialisation, the demo) or "zero".
        value_init_std: None (PyTorch's Linear default, the demo) or the std of W_V (bias zero).
    """

    d_model: int
    vocab_size: int
    engram_vocab_size: tuple[int, ...] | None = None
    max_ngram_size: int = 3
    n_embed_per_ngram: int = 512
    n_head_per_ngram: int = 8
    kernel_size: int = 4
    seed: int = 0
    token_strings: tuple[str, ...] | None = None
    gate_sqrt: bool = True
    conv_init: str = "default"
    value_init_std: float | None = None

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model, low=1)
        check_int("vocab_size", self.vocab_size, low=1)
        check_int("max_ngram_size", self.max_ngram_size, low=2)
        check_int("n_embed_per_ngram", self.n_embed_per_ngram, low=1)
        check_int("n_head_per_ngram", self.n_head_per_ngram, low=1)
        if self.n_embed_per_ngram % self.n_head_per_ngram:
            raise ValueError(f"n_head_per_ngram must divide n_embed_per_ngram, got n_embed_per_ngram="
                             f"{self.n_embed_per_ngram}, n_head_per_ngram={self.n_head_per_ngram}")
        check_int("kernel_size", self.kernel_size, low=1)
        check_int("seed", self.seed, low=0)
        if self.engram_vocab_size is None:
            self.engram_vocab_size = (5 * self.vocab_size,) * (self.max_ngram_size - 1)
        if not isinstance(self.engram_vocab_size, (tuple, list)):
            raise TypeError(f"engram_vocab_size must be a tuple of ints, got {type(self.engram_vocab_size).__name__}")
        self.engram_vocab_size = tuple(self.engram_vocab_size)
        if len(self.engram_vocab_size) != self.max_ngram_size - 1:
            raise ValueError(f"engram_vocab_size must have one size per order 2..{self.max_ngram_size} "
                             f"({self.max_ngram_size - 1} entries), got {len(self.engram_vocab_size)}")
        for i, size in enumerate(self.engram_vocab_size):
            check_int(f"engram_vocab_size[{i}]", size, low=2)
        if self.token_strings is not None:
            if not isinstance(self.token_strings, (tuple, list)):
                raise TypeError(f"token_strings must be a tuple of str or None, got {type(self.token_strings).__name__}")
            self.token_strings = tuple(self.token_strings)
            if len(self.token_strings) != self.vocab_size:
                raise ValueError(f"token_strings must hold one string per token id (vocab_size={self.vocab_size}), "
                                 f"got {len(self.token_strings)}")
        if not isinstance(self.gate_sqrt, bool):
            raise TypeError(f"gate_sqrt must be a bool, got {type(self.gate_sqrt).__name__}")
        check_choice("conv_init", self.conv_init, ("default", "zero"))
        if self.value_init_std is not None:
            if isinstance(self.value_init_std, bool) or not isinstance(self.value_init_std, (int, float)):
                raise TypeError(f"value_init_std must be a float or None, got {type(self.value_init_std).__name__}")
            if not self.value_init_std > 0:
                raise ValueError(f"value_init_std must be > 0, got {self.value_init_std}")

    @property
    def head_dim(self) -> int:
        """d_h = d_ngram / K, the width of one hash head's rows."""
        return self.n_embed_per_ngram // self.n_head_per_ngram

    @property
    def num_hash_heads(self) -> int:
        """H = (N-1)·K rows read per token."""
        return (self.max_ngram_size - 1) * self.n_head_per_ngram

    @property
    def embed_dim(self) -> int:
        """(N-1)·d_ngram, the width of e_t."""
        return (self.max_ngram_size - 1) * self.n_embed_per_ngram

    def compression(self) -> tuple[torch.Tensor, int]:
        """(table (V,) int64, V'): the tokenizer compression, the identity without ``token_strings``."""
        if self.token_strings is None:
            return torch.arange(self.vocab_size), self.vocab_size
        return compress_vocabulary(self.token_strings)

    def build_layers(self, wiring) -> list["EngramLayer"]:
        """One layer per wiring pair (i, j), hashed with layer id i; the i must be distinct so that
        every layer has its own multipliers and primes (the demo's ``layer_ids``)."""
        check_int("len(wiring)", len(wiring), 1)
        layer_ids = [int(pair[0]) for pair in wiring]
        moduli = hash_moduli(self.engram_vocab_size, self.n_head_per_ngram, layer_ids)
        return [EngramLayer(self, layer_id=i, moduli=moduli[i]) for i in layer_ids]


# ---------------------------------------------------------------------- the layer
class EngramLayer(nn.Module):
    """An Engram layer: forward(x (B, T, D), token_ids (B, T)) -> MemoryOutput.

    ``MemoryOutput.indices`` (B, T, H, 1) are the table rows read (one per hash head, row offsets
    included), ``scores`` (B, T, H, 1) the gate α_t repeated per head (Engram has no scores), and
    ``aux_loss`` is zero. :meth:`addresses` gives the same rows from the token ids alone.
    ``reads_token_ids`` tells :class:`~ultramem_edu.model.TransformerLM` to pass the input ids.
    """

    reads_token_ids = True

    def __init__(self, config: EngramConfig, layer_id: int = 0, moduli: Sequence[Sequence[int]] | None = None):
        super().__init__()
        if not isinstance(config, EngramConfig):
            raise TypeError(f"config must be an EngramConfig, got {type(config).__name__}")
        self.config = c = config
        self.layer_id = check_int("layer_id", layer_id, low=0)
        if moduli is None:
            moduli = hash_moduli(c.engram_vocab_size, c.n_head_per_ngram, [layer_id])[layer_id]
        moduli_t = torch.tensor(moduli, dtype=torch.int64)
        if moduli_t.shape != (c.max_ngram_size - 1, c.n_head_per_ngram):
            raise ValueError(f"moduli must have shape ({c.max_ngram_size - 1}, {c.n_head_per_ngram}), "
                             f"got {tuple(moduli_t.shape)}")
        compression, compressed_vocab = c.compression()
        self.compressed_vocab_size = compressed_vocab
        self.pad_id = compressed_vocab                                   # an id of its own
        self.register_buffer("compression", compression, persistent=False)
        self.register_buffer("multipliers", hash_multipliers(compressed_vocab + 1, c.max_ngram_size,
                                                             layer_id, c.seed), persistent=False)
        self.register_buffer("moduli", moduli_t, persistent=False)
        sizes = moduli_t.flatten()
        self.register_buffer("offsets", (torch.cumsum(sizes, 0) - sizes).view_as(moduli_t), persistent=False)
        self.num_rows = int(sizes.sum())
        d, e = c.d_model, c.embed_dim
        self.table = nn.Parameter(torch.empty(self.num_rows, c.head_dim))
        self.key_proj = nn.Linear(e, d)
        self.value_proj = nn.Linear(e, d)
        self.key_norm = nn.RMSNorm(d)
        self.query_norm = nn.RMSNorm(d)
        self.conv_norm = nn.RMSNorm(d, eps=1e-5)
        self.conv = nn.Conv1d(d, d, c.kernel_size, groups=d, bias=False, dilation=c.max_ngram_size,
                              padding=(c.kernel_size - 1) * c.max_ngram_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        c = self.config
        nn.init.normal_(self.table)                                       # nn.Embedding's N(0, 1)
        self.key_proj.reset_parameters()
        self.value_proj.reset_parameters()
        if c.value_init_std is not None:
            nn.init.normal_(self.value_proj.weight, std=c.value_init_std)
            nn.init.zeros_(self.value_proj.bias)
        for norm in (self.key_norm, self.query_norm, self.conv_norm):
            norm.reset_parameters()
        if c.conv_init == "zero":
            nn.init.zeros_(self.conv.weight)
        else:
            self.conv.reset_parameters()

    def value_parameters(self) -> list[nn.Parameter]:
        """The hashed N-gram table, trained like the other layers' value tables."""
        return [self.table]

    def activated_parameters_per_token(self) -> int:
        """Every parameter except the table, plus the H rows of width d_h read."""
        own = sum(p.numel() for p in self.parameters() if p is not self.table)
        return own + self.config.num_hash_heads * self.config.head_dim

    # ------------------------------------------------------------------ addresses (prefetchable)
    def _check_ids(self, token_ids: object) -> torch.Tensor:
        return check_index_tensor("token_ids", token_ids, high=self.config.vocab_size, ndim=2)

    def addresses(self, token_ids: torch.Tensor) -> torch.Tensor:
        """The table rows a batch will read, from its token ids alone: (B, T) -> (B, T, H) int64.

        Head (n, k) is column (n-2)·K + k; the row includes that head's offset in the table. No
        parameter and no hidden state enters: this can run before the model does.
        """
        token_ids = self._check_ids(token_ids)
        compressed = self.compression[token_ids.long()]                   # (B, T)
        z = ngram_hashes(compressed, self.multipliers, self.moduli, self.pad_id)   # (B, T, N-1, K)
        return (z + self.offsets).flatten(2)                              # (B, T, H)

    # ------------------------------------------------------------------ forward
    def _check_forward(self, x: object, token_ids: object) -> torch.Tensor:
        c = self.config
        if token_ids is None:
            raise ValueError("token_ids must be given: an Engram layer is addressed by the input tokens (B, T)")
        check_float_tensor("x", x, ndim=3, shape=(c.d_model,))
        token_ids = self._check_ids(token_ids)
        if tuple(token_ids.shape) != tuple(x.shape[:2]):
            raise ValueError(f"token_ids must have shape (B, T) = {tuple(x.shape[:2])} of x, "
                             f"got {tuple(token_ids.shape)}")
        return token_ids

    def _gate_logit(self, g: torch.Tensor) -> torch.Tensor:
        if self.config.gate_sqrt:
            return g.abs().clamp_min(_GATE_CLAMP).sqrt() * g.sign()
        return g

    def forward(self, x: torch.Tensor, token_ids: torch.Tensor | None = None) -> MemoryOutput:
        """Efficient path: vectorised hashing, one gather, batched gate, F.conv1d.

        Args:
            x: (B, T, D) hidden states (the gate's query).
            token_ids: (B, T) int token ids in [0, V) of the same sequences.
        """
        c = self.config
        token_ids = self._check_forward(x, token_ids)
        b, t, d = x.shape
        rows = self.addresses(token_ids)                                  # (B, T, H)
        e = F.embedding(rows, self.table).flatten(2)                      # (B, T, (N-1)·d_ngram)
        key = self.key_norm(self.key_proj(e))                             # (B, T, D)
        query = self.query_norm(x)                                        # (B, T, D)
        g = (key * query).sum(-1, keepdim=True) / math.sqrt(d)            # (B, T, 1)
        alpha = torch.sigmoid(self._gate_logit(g))                        # (B, T, 1)
        value = alpha * self.value_proj(e)                                # (B, T, D)  ṽ
        conv = self.conv(self.conv_norm(value).transpose(1, 2))[..., :t]  # (B, D, T) causal: trim the tail
        out = value + F.silu(conv.transpose(1, 2))                        # (B, T, D)
        h = c.num_hash_heads
        return MemoryOutput(output=out, indices=rows.unsqueeze(-1),
                            scores=alpha.expand(b, t, h).unsqueeze(-1), aux_loss=x.new_zeros(()))

    def forward_reference(self, x: torch.Tensor, token_ids: torch.Tensor | None = None) -> MemoryOutput:
        """Plain path: Python-integer hashing per token, a dense one-hot × table product, the gate
        and the dilated causal convolution written out tap by tap. Same contract as :meth:`forward`."""
        c = self.config
        token_ids = self._check_forward(x, token_ids)
        b, t, d = x.shape
        comp = self.compression.tolist()
        mult = [int(m) for m in self.multipliers]
        moduli, offsets = self.moduli.tolist(), self.offsets.tolist()
        rows = torch.empty(b, t, c.num_hash_heads, dtype=torch.int64)
        for bi in range(b):
            seq = [comp[i] for i in token_ids[bi].tolist()]
            for ti in range(t):
                col = 0
                for n in range(2, c.max_ngram_size + 1):
                    mix = 0
                    for j in range(n):
                        mix ^= (seq[ti - j] if ti - j >= 0 else self.pad_id) * mult[j]
                    for k in range(c.n_head_per_ngram):
                        rows[bi, ti, col] = offsets[n - 2][k] + mix % moduli[n - 2][k]
                        col += 1
        rows = rows.to(x.device)
        # dense lookup: one-hot (B, T, H, R) @ table (R, d_h) — every row of the table is touched
        onehot = F.one_hot(rows, self.num_rows).to(self.table.dtype)
        e = (onehot @ self.table).flatten(2)                              # (B, T, E)

        def rms(v: torch.Tensor, norm: nn.RMSNorm) -> torch.Tensor:
            eps = norm.eps if norm.eps is not None else torch.finfo(v.dtype).eps
            return v / torch.sqrt(v.pow(2).mean(-1, keepdim=True) + eps) * norm.weight

        key = rms(e @ self.key_proj.weight.T + self.key_proj.bias, self.key_norm)
        g = (rms(x, self.query_norm) * key).sum(-1, keepdim=True) / math.sqrt(d)
        if c.gate_sqrt:
            g = torch.sign(g) * torch.sqrt(torch.clamp(g.abs(), min=_GATE_CLAMP))
        alpha = 1.0 / (1.0 + torch.exp(-g))
        value = alpha * (e @ self.value_proj.weight.T + self.value_proj.bias)
        u = rms(value, self.conv_norm)                                     # (B, T, D)
        w = self.conv.weight[:, 0, :]                                      # (D, w)
        steps = []
        for ti in range(t):
            z_t = torch.zeros_like(value[:, 0])                            # (B, D)
            for tap in range(c.kernel_size):
                src = ti - (c.kernel_size - 1 - tap) * c.max_ngram_size    # tap w-1 reads u_t
                if src >= 0:
                    z_t = z_t + w[:, tap] * u[:, src]
            steps.append(z_t)
        z = torch.stack(steps, dim=1)                                      # (B, T, D)
        out = value + z * torch.sigmoid(z)
        h = c.num_hash_heads
        return MemoryOutput(output=out, indices=rows.unsqueeze(-1),
                            scores=alpha.expand(b, t, h).unsqueeze(-1), aux_loss=x.new_zeros(()))


def prefetch_addresses(model: nn.Module, idx: torch.Tensor) -> dict[int, torch.Tensor]:
    """Every row each Engram layer of ``model`` will read for the batch ``idx`` (B, T), computed
    before the model runs: {wiring position k: (B, T, H) int64}. Memories that are not Engram
    layers (their addresses depend on the hidden state) are absent."""
    memories = getattr(model, "memories", None)
    if not isinstance(memories, Iterable):
        raise TypeError(f"model must have a .memories list (a TransformerLM), got {type(model).__name__}")
    return {k: m.addresses(idx) for k, m in enumerate(memories) if isinstance(m, EngramLayer)}
