"""The measurements behind the book's three named figures (book.md, "The three named visualisations").

- :func:`topm_diversity` — how a batch of top-m selections spreads over the n×n address grid:
  distinct rows/columns per query, distinct values, value usage and its entropy, overlap between
  queries. :func:`layer_diversity` and :func:`diversity_sweep` apply it to PKM and UltraMem layers.
- :func:`retrieval_example` — one query's top-m under additive product keys (PKM), TDQKR's two-stage
  search and brute force over the Tucker grid, for the *retrieval topology* figure.
- :func:`core_spectrum_run` — a short training run of a small :class:`UltraMemLayer` that records the
  singular values of its Tucker cores and the recall of its two-stage search, with or without the
  auxiliary loss, for the *singular spectrum* figure.

Everything here calls the package's own retrieval functions; nothing re-implements top-m. The
figures in :mod:`ultramem_edu.viz` only draw what these functions return.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch

from ._checks import check_float_tensor, check_index_tensor, check_int
from .layer import UltraMemConfig, UltraMemLayer
from .product_keys import grid_scores_additive, product_key_topm, product_key_topm_reference
from .tdqkr import recall_at_m, tdqkr_topm, tdqkr_topm_reference, tucker_aux_loss, tucker_scores

__all__ = [
    "TopmDiversity",
    "topm_diversity",
    "layer_diversity",
    "diversity_sweep",
    "RetrievalExample",
    "retrieval_example",
    "SpectrumRun",
    "core_spectrum_run",
    "summarize_spectrum",
]


# ---------------------------------------------------------------------------------------- diversity
@dataclass
class TopmDiversity:
    """How a batch of top-m selections covers an n×n grid of N = n² values.

    Attributes:
        grid_side: n.
        distinct_rows: (Q,) or (Q, H) int64 — distinct grid rows among one query's (one head's) m picks.
        distinct_cols: same shape — distinct grid columns.
        distinct_values: distinct addresses selected anywhere in the batch.
        usage: (N,) int64 — how often each address was selected (all queries, heads and picks).
        entropy: usage entropy in nats, −Σ p log p with p = usage / usage.sum().
        entropy_normalised: entropy / log N (1 = perfectly even use of the whole table).
        fraction_used: distinct_values / N.
        mean_jaccard: mean over pairs of queries of |A ∩ B| / |A ∪ B|, A = the set of addresses one
            query selects (the union over its heads); nan for a single query.
        topm: m, picks per query and head.
    """

    grid_side: int
    distinct_rows: torch.Tensor
    distinct_cols: torch.Tensor
    distinct_values: int
    usage: torch.Tensor
    entropy: float
    entropy_normalised: float
    fraction_used: float
    mean_jaccard: float
    topm: int

    @property
    def num_values(self) -> int:
        return self.grid_side**2

    def usage_curve(self, points: int = 101) -> tuple[torch.Tensor, torch.Tensor]:
        """Cumulative share of all selections held by the most-used values (a Lorenz-type curve).

        Returns (fraction of values, sorted by use, most used first) and (share of selections they
        receive), each (points,) in [0, 1]; even use of the whole table is the diagonal, a table
        where few values take every selection rises steeply and flattens early.
        """
        check_int("points", points, 2)
        cum = self.usage.sort(descending=True).values.cumsum(0).double()
        cum = torch.cat([cum.new_zeros(1), cum]) / cum[-1]              # (N+1,)
        x = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
        idx = (x * self.num_values).round().long()
        return x, cum[idx]


def _distinct_per_row(x: torch.Tensor) -> torch.Tensor:
    """Number of distinct entries along the last dim: (..., k) int → (...,) int64."""
    s = x.sort(dim=-1).values
    return 1 + (s[..., 1:] != s[..., :-1]).sum(-1)


def topm_diversity(indices: torch.Tensor, grid_side: int) -> TopmDiversity:
    """Diversity statistics of the selections ``indices`` on an n×n grid (address = i·n + j).

    Args:
        indices: (Q, m) or (Q, H, m) int64 grid addresses in [0, n²) — one row per query (token),
            optionally one set of m per head. A query's selected *set* is the union over its heads.
        grid_side: n.

    Returns:
        :class:`TopmDiversity`. The pairwise overlap is computed from a dense (Q, n²) membership
        matrix: fine for the book's sizes (a few thousand queries, n² up to ~10⁵).
    """
    n = check_int("grid_side", grid_side, 1)
    if not isinstance(indices, torch.Tensor) or indices.dim() not in (2, 3):
        got = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__
        raise ValueError(f"indices must be a (Q, m) or (Q, H, m) integer tensor, got {got}")
    check_index_tensor("indices", indices, high=n * n)
    if indices.shape[0] < 1 or indices.shape[-1] < 1:
        raise ValueError(f"indices must hold at least one query and one pick, got shape {tuple(indices.shape)}")
    indices = indices.long()
    num_values = n * n
    q = indices.shape[0]

    distinct_rows = _distinct_per_row(indices // n)                    # (Q[, H])
    distinct_cols = _distinct_per_row(indices % n)                     # (Q[, H])

    usage = torch.bincount(indices.flatten(), minlength=num_values)    # (N,)
    p = usage[usage > 0].double() / usage.sum()
    entropy = float(-(p * p.log()).sum())
    distinct_values = int((usage > 0).sum())

    if q > 1:
        member = torch.zeros(q, num_values)                            # float32 counts are exact here
        member.scatter_(1, indices.reshape(q, -1), 1.0)                # (Q, N) set of each query
        inter = member @ member.T                                      # (Q, Q) |A ∩ B|
        size = member.sum(1)
        jaccard = inter / (size[:, None] + size[None, :] - inter)      # symmetric, ones on the diagonal
        off_diagonal = jaccard.sum(dtype=torch.float64) - jaccard.diagonal().sum(dtype=torch.float64)
        mean_jaccard = float(off_diagonal / (q * (q - 1)))             # mean over pairs A ≠ B
    else:
        mean_jaccard = math.nan

    return TopmDiversity(
        grid_side=n,
        distinct_rows=distinct_rows,
        distinct_cols=distinct_cols,
        distinct_values=distinct_values,
        usage=usage,
        entropy=entropy,
        entropy_normalised=entropy / math.log(num_values) if num_values > 1 else 0.0,
        fraction_used=distinct_values / num_values,
        mean_jaccard=mean_jaccard,
        topm=indices.shape[-1],
    )


@torch.no_grad()
def layer_diversity(layer: UltraMemLayer, x: torch.Tensor) -> TopmDiversity:
    """:func:`topm_diversity` of what ``layer`` selects for the inputs ``x`` (..., D).

    Uses ``layer(x).indices`` — grid addresses before the IVE shuffle — on the layer's n'×n' grid.
    The layer's train/eval mode is left as it is.
    """
    if not isinstance(layer, UltraMemLayer):
        raise TypeError(f"layer must be an UltraMemLayer, got {type(layer).__name__}")
    c = layer.config
    check_float_tensor("x", x, min_ndim=2, shape=(c.d_model,))
    indices = layer(x).indices.reshape(-1, c.num_heads, c.topm)       # (Q, H, m)
    if c.num_heads == 1:
        indices = indices[:, 0]
    return topm_diversity(indices, c.keys_per_side)


def _diversity_configs(n: int, m: int, d_model: int, key_dim: int, num_heads: int, tucker_rank: int
                       ) -> dict[str, UltraMemConfig]:
    sizes = dict(num_values=n * n, key_dim=key_dim, num_heads=num_heads, topm=m, num_layers=2)
    return {
        "PKM": UltraMemConfig.pkm(d_model, **sizes),
        # expansion=1 so both layers search the same n×n grid; only the scoring differs.
        "UltraMem": UltraMemConfig(d_model, expansion=1, tucker_rank=tucker_rank, num_cores=2,
                                   init_samples=256, **sizes),
    }


def diversity_sweep(
    ns: Iterable[int] = (16, 32),
    ms: Iterable[int] = (4, 8, 16),
    queries: int = 512,
    seed: int = 0,
    d_model: int = 32,
    key_dim: int = 16,
    num_heads: int = 1,
    tucker_rank: int = 2,
) -> dict[tuple[int, int], dict[str, TopmDiversity]]:
    """PKM vs UltraMem selections of freshly initialised layers on random tokens, for each (n, m).

    Both layers search an n×n grid (UltraMem with expansion E = 1, so n means the same for both);
    PKM is ``UltraMemConfig.pkm`` (additive scores, BatchNorm on the query — in training mode, so the
    batch statistics normalise it), UltraMem has LayerNorms, TDQKR (rank ``tucker_rank``) and MCS.
    Inputs: ``queries`` standard-normal tokens (queries, d_model), the same for every layer.

    Returns:
        {(n, m): {"PKM": TopmDiversity, "UltraMem": TopmDiversity}}.
    This measures the *architectures' topology at initialisation*; a trained model's usage is the
    subject of chapter 11 (pass its layers to :func:`layer_diversity`).
    """
    ns, ms = list(ns), list(ms)
    for n in ns:
        check_int("n in ns", n, 2)
    check_int("queries", queries, 2)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(queries, d_model, generator=generator)
    out: dict[tuple[int, int], dict[str, TopmDiversity]] = {}
    for n in ns:
        for m in ms:
            check_int("m in ms", m, 1, n)
            results = {}
            for name, cfg in _diversity_configs(n, m, d_model, key_dim, num_heads, tucker_rank).items():
                torch.manual_seed(seed)
                results[name] = layer_diversity(UltraMemLayer(cfg), x)
            out[(n, m)] = results
    return out


# ---------------------------------------------------------------------------------------- topology
@dataclass
class RetrievalExample:
    """One query's top-m under three retrievals on the same n×n grid.

    Attributes:
        n, m, r, seed: grid side, picks, Tucker rank, the seed that drew everything.
        row_scores, col_scores: (r, n) — S_row, S_col: the query's scores against r key sets per side.
        core: (r, r) Tucker core, drawn from U(0, 1) (the released code's initialisation).
        additive_grid: (n, n) S_row[0, i] + S_col[0, j] — PKM's grid (the first key set only).
        tucker_grid: (n, n) S_rowᵀ C S_col — the grid TDQKR and brute force rank.
        pkm: (m,) :func:`product_key_topm` on the additive grid.
        pkm_brute: (m,) :func:`product_key_topm_reference` — brute force on the additive grid
            (the same set as ``pkm``: the two-stage search is exact for sums).
        tdqkr: (m,) :func:`tdqkr_topm` — rank-1 stage, then exact rescoring of the m×m candidates.
        brute: (m,) :func:`tdqkr_topm_reference` — the true top-m of the Tucker grid.
        recall: |tdqkr ∩ brute| / m.
        distinct_rows, distinct_cols: {"pkm" | "tdqkr" | "brute": count} among the m picks.
    All index tensors hold addresses i·n + j (int64), best first.
    """

    n: int
    m: int
    r: int
    seed: int
    row_scores: torch.Tensor
    col_scores: torch.Tensor
    core: torch.Tensor
    additive_grid: torch.Tensor
    tucker_grid: torch.Tensor
    pkm: torch.Tensor
    pkm_brute: torch.Tensor
    tdqkr: torch.Tensor
    brute: torch.Tensor
    recall: float
    distinct_rows: dict[str, int] = field(default_factory=dict)
    distinct_cols: dict[str, int] = field(default_factory=dict)

    def selections(self) -> dict[str, torch.Tensor]:
        """{"pkm", "tdqkr", "brute"} → (m,) addresses, in the order the figure draws them."""
        return {"pkm": self.pkm, "tdqkr": self.tdqkr, "brute": self.brute}


def retrieval_example(n: int = 16, m: int = 8, r: int = 2, seed: int = 0, key_dim: int = 16) -> RetrievalExample:
    """Draw one query and compare PKM, TDQKR and brute-force top-m on its n×n grid.

    Keys K_row, K_col (r, n, key_dim) and the query halves q_row, q_col (key_dim,) are standard normal;
    scores are scaled dot products S[a, i] = K[a, i]·q / √key_dim (≈ N(0, 1), signed, like the
    LayerNorm'd scores of a real layer). The core C ~ U(0, 1)^{r×r}.

    Args:
        n: keys per side (2 ≤ n ≤ 64 keeps the figure small). m: 1 ≤ m ≤ n. r: Tucker rank ≥ 1.
        seed: draws keys, query and core. key_dim: sub-key width.
    """
    check_int("n", n, 2, 64)
    check_int("m", m, 1, n)
    check_int("r", r, 1)
    check_int("seed", seed, 0)
    check_int("key_dim", key_dim, 1)
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(2, r, n, key_dim, generator=g, dtype=torch.float64)   # (side, r, n, D_k)
    query = torch.randn(2, key_dim, generator=g, dtype=torch.float64)        # (side, D_k)
    core = torch.rand(r, r, generator=g, dtype=torch.float64)                # (r, r) ~ U(0, 1)
    scores = torch.einsum("sakd,sd->sak", keys, query) / math.sqrt(key_dim)  # (2, r, n)
    row, col = scores[0], scores[1]                                          # (r, n) each

    _, pkm = product_key_topm(row[0], col[0], m)
    _, pkm_brute = product_key_topm_reference(row[0], col[0], m)
    _, tdqkr = tdqkr_topm(row, col, core, m)
    _, brute = tdqkr_topm_reference(row, col, core, m)
    chosen = {"pkm": pkm, "tdqkr": tdqkr, "brute": brute}
    return RetrievalExample(
        n=n, m=m, r=r, seed=seed,
        row_scores=row, col_scores=col, core=core,
        additive_grid=grid_scores_additive(row[0], col[0]),
        tucker_grid=tucker_scores(row, col, core),
        pkm=pkm, pkm_brute=pkm_brute, tdqkr=tdqkr, brute=brute,
        recall=float(recall_at_m(tdqkr, brute)),
        distinct_rows={k: int((v // n).unique().numel()) for k, v in chosen.items()},
        distinct_cols={k: int((v % n).unique().numel()) for k, v in chosen.items()},
    )


# ---------------------------------------------------------------------------------------- spectrum
@dataclass
class SpectrumRun:
    """What :func:`core_spectrum_run` records, one entry per step (step 0 = initialisation).

    Attributes:
        steps: (T+1,) step numbers 0..T.
        summed_sv: (T+1, H, r) singular values of each head's summed core Σ_c C_c, descending.
        core_sv: (T+1, H, h, r) singular values of every individual core C_c.
        aux_loss: (T+1,) the auxiliary loss *as defined* (α = 0.001 unless ``aux_alpha`` says
            otherwise, τ) of the summed cores — recorded whether or not it is trained on.
        task_loss: (T+1,) the regression loss (MSE) on the training batch.
        recall: (T+1,) mean recall@m of the layer's two-stage selection vs brute force over the full
            Tucker grid (summed core), on a fixed probe batch, averaged over probe tokens and heads.
        recall_quadrant: (T+1,) the same vs brute force restricted to the quadrant stage 1 searches
            (uᵀS_row > 0, tᵀS_col > 0): the rank-1 approximation's own error.
        with_aux: whether the aux loss was added to the training loss.
        aux_alpha, tau: the coefficient trained with (0 when with_aux is False) and the margin.
        config: the layer configuration.
    """

    steps: torch.Tensor
    summed_sv: torch.Tensor
    core_sv: torch.Tensor
    aux_loss: torch.Tensor
    task_loss: torch.Tensor
    recall: torch.Tensor
    recall_quadrant: torch.Tensor
    with_aux: bool
    aux_alpha: float
    tau: float
    config: UltraMemConfig

    def ratio(self) -> torch.Tensor:
        """(T+1, H) σ₁/σ₂ of the summed core (the rank-1-ness UltraMemV2 reports as > 4)."""
        return self.summed_sv[..., 0] / self.summed_sv[..., 1].clamp_min(1e-12)


@torch.no_grad()
def _probe_recall(layer: UltraMemLayer, probe: torch.Tensor) -> tuple[float, float]:
    """Recall@m of the layer's own selection on ``probe`` (P, D), averaged over tokens and heads.

    Returns (recall vs the top-m of the whole Tucker grid,
             recall vs the top-m of the quadrant that stage 1 searches: rows with uᵀS_row > 0 and
             columns with tᵀS_col > 0, u, t the layer's sign-aligned rank-1 factors).
    The first is what the brute force would return; the second isolates the error of the rank-1
    approximation from the cells of the opposite corner (uᵀS_row < 0, tᵀS_col < 0), whose product is
    also large and positive but which stage 1 never looks at.
    """
    was_training = layer.training
    layer.eval()                                  # eval: the sign-aligned factors are read, not stored
    m = layer.config.topm
    sub = layer._sub_scores(probe)                                     # (P, H, 2, r, n')
    _, _, chosen = layer._select(sub)                                  # (P, H, m)
    summed = layer.tucker_cores.sum(1)                                 # (H, r, r)
    row, col = sub[:, :, 0], sub[:, :, 1]                              # (P, H, r, n')
    _, best = tdqkr_topm_reference(row, col, summed, m)                # (P, H, m)
    row_proj = (layer.factor_u[None, :, :, None] * row).sum(-2)       # (P, H, n')  uᵀ S_row
    col_proj = (layer.factor_t[None, :, :, None] * col).sum(-2)       # (P, H, n')  tᵀ S_col
    quadrant = (row_proj > 0).unsqueeze(-1) & (col_proj > 0).unsqueeze(-2)     # (P, H, n', n')
    grid = tucker_scores(row, col, summed).masked_fill(~quadrant, -math.inf)
    q_scores, q_best = grid.flatten(-2).topk(m, dim=-1)                # (P, H, m)
    inside = torch.isfinite(q_scores)           # a quadrant with fewer than m cells: count those only
    hit = (q_best.unsqueeze(-1) == chosen.unsqueeze(-2)).any(-1) & inside
    recall_quadrant = float((hit.sum(-1) / inside.sum(-1).clamp_min(1)).mean())
    layer.train(was_training)
    return float(recall_at_m(chosen, best).mean()), recall_quadrant


def core_spectrum_run(
    steps: int = 150,
    with_aux: bool = False,
    seed: int = 0,
    aux_alpha: float = 0.1,
    tau: float = 0.15,
    num_heads: int = 1,
    batch: int = 128,
    probe: int = 128,
    lr: float = 1e-2,
    config: UltraMemConfig | None = None,
) -> SpectrumRun:
    """Train a small UltraMem layer on a memorisation task and record its Tucker cores' spectra.

    Task: ``batch`` fixed random tokens x ~ N(0, I) (batch, 32) → fixed random targets y ~ N(0, I),
    loss = MSE(layer(x).output, y) [+ the aux loss], Adam(lr), full batch, ``steps`` steps.
    Layer: UltraMemConfig(d_model=32, num_values=256, key_dim=16, num_heads, topm=8, num_layers=2,
    tucker_rank=2, num_cores=2) — E = 4, so a 32×32 virtual grid — unless ``config`` is given.

    Args:
        steps: optimiser steps (≥ 1). with_aux: add the auxiliary loss with coefficient ``aux_alpha``.
        seed: fixes the layer's initialisation and the data; the run is deterministic.
        aux_alpha: α when ``with_aux`` (paper 0.001). The loss acts only while σ₂ > τ: with the
            U(0, 1) initialisation σ₂ of the summed 2×2 core is often below τ = 0.15 from the start,
            and then the runs with and without the loss are identical. Where it acts, 0.001 already
            moves this small layer visibly; 0.1 makes the difference obvious.
        tau: the margin τ of the aux loss (paper 0.15).
        probe: tokens in the fixed probe batch on which recall@m is measured.

    Returns:
        :class:`SpectrumRun`. Runs in a few seconds on a CPU.
    """
    check_int("steps", steps, 1)
    check_int("seed", seed, 0)
    check_int("num_heads", num_heads, 1)
    check_int("batch", batch, 1)
    check_int("probe", probe, 1)
    if not aux_alpha >= 0 or not tau >= 0:
        raise ValueError(f"aux_alpha and tau must be >= 0, got {aux_alpha} and {tau}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    alpha = aux_alpha if with_aux else 0.0
    if config is None:
        config = UltraMemConfig(
            d_model=32, num_values=256, key_dim=16, num_heads=num_heads, topm=8, num_layers=2,
            tucker_rank=2, num_cores=2, aux_alpha=alpha, aux_tau=tau, init_samples=512,
        )
    else:
        if not isinstance(config, UltraMemConfig) or config.tucker_rank is None or config.tucker_rank < 2:
            raise ValueError("config must be an UltraMemConfig with tucker_rank >= 2 (a spectrum to watch)")
        config = dataclasses.replace(config, aux_alpha=alpha, aux_tau=tau)

    torch.manual_seed(seed)
    layer = UltraMemLayer(config)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, config.d_model, generator=g)                # (B, D)
    y = torch.randn(batch, config.d_model, generator=g)                # (B, D)
    x_probe = torch.randn(probe, config.d_model, generator=g)          # (P, D)
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)

    summed_sv, core_sv, aux_rec, task_rec, recall, recall_q = [], [], [], [], [], []
    def record(task: float) -> None:
        cores = layer.tucker_cores.detach()                            # (H, h, r, r)
        summed = cores.sum(1)
        summed_sv.append(torch.linalg.svdvals(summed))
        core_sv.append(torch.linalg.svdvals(cores))
        aux_rec.append(float(tucker_aux_loss(summed, tau=tau, alpha=aux_alpha)))
        task_rec.append(task)
        full, quadrant = _probe_recall(layer, x_probe)
        recall.append(full)
        recall_q.append(quadrant)

    layer.train()
    for _ in range(steps):
        out = layer(x)
        task = torch.nn.functional.mse_loss(out.output, y)
        record(float(task.detach()))               # the state *before* this step's update
        optimizer.zero_grad(set_to_none=True)
        (task + out.aux_loss).backward()
        optimizer.step()
    with torch.no_grad():
        record(float(torch.nn.functional.mse_loss(layer(x).output, y)))

    return SpectrumRun(
        steps=torch.arange(steps + 1),
        summed_sv=torch.stack(summed_sv),
        core_sv=torch.stack(core_sv),
        aux_loss=torch.tensor(aux_rec),
        task_loss=torch.tensor(task_rec),
        recall=torch.tensor(recall),
        recall_quadrant=torch.tensor(recall_q),
        with_aux=with_aux,
        aux_alpha=alpha,
        tau=tau,
        config=config,
    )


def summarize_spectrum(run: SpectrumRun) -> Mapping[str, float]:
    """Head-0 numbers of a run's last step: σ₁, σ₂, σ₁/σ₂, recall@m, task loss (for prose and tests)."""
    s = run.summed_sv[-1, 0]
    return {
        "sigma1": float(s[0]), "sigma2": float(s[1]), "ratio": float(s[0] / s[1].clamp_min(1e-12)),
        "recall": float(run.recall[-1]), "recall_quadrant": float(run.recall_quadrant[-1]),
        "task_loss": float(run.task_loss[-1]),
    }
