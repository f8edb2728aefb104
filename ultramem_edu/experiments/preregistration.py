"""Chapter 11's pre-registration: the evidence suite's protocol and its headline claims, fixed before its runs.

This file is committed before any run of the ``evidence`` experiment starts. Each run file records
:func:`prereg_hash` (the SHA-256 of this file's bytes), and the chapter checks that every run it reads was
produced under the file as it stands: an edit after the runs shows as a mismatch. Nothing here may be
changed once runs exist; a correction goes into a new, dated file with a new experiment name.

The protocol
============
* **Data and budgets.** The KJV text, character level, split into train / select / test as
  :func:`.common.kjv_splits` does. Two budgets, each a fresh run with its own warm-up and cosine decay:
  ``lm`` = 2500 steps × 16 × 64 = 2.56 M characters (0.65 passes over the training split) and ``long`` =
  5000 steps × 16 × 64 = 5.12 M characters (1.3 passes: the long budget repeats training text, which can
  favour models that memorise; the claim table says so).
* **Models.** D = 64, 4 blocks, 4 attention heads, one skip-layer memory where the family has one
  (UltraMemV2 and Memory+ have their own wiring), every family narrowed to the dense model's activated
  parameters per token (±3 %, asserted).
* **Headline families** (:data:`HEADLINE_FAMILIES`): ``dense``; ``moe_matched`` — top-2 MoE with experts
  of hidden 2·D, as many experts as bring its total parameters closest to UltraMem's (the paper compares
  MoE and UltraMem at equal activated *and* total parameters); ``pkm`` — Lample et al.'s PKM with its
  value learning rate swept (:data:`VALUE_LR_OPTIONS`, Lample et al.'s constant 10⁻³ among the options);
  ``ultramem_released`` — UltraMem with the released code's initialisation and value-lr multiplier k = 4;
  ``ultramem_v2_released`` — UltraMemV2 with the recipe of the released ``run_ultramem_v2.sh``: value lr
  ×1.0 (``mem_value_lr_times=1.0``), window share 1/16 (``mem_share_ratio=0.0625``), keys expanded ×2
  (``mem_key_expand_time=2``), one head, balance loss off (``mem_key_balance_reg_coef`` defaults to 0.0
  in ``olmo/config.py``).
* **Exploratory families** (:data:`EXPLORATORY_FAMILIES`): today's 8-expert MoE, the paper's
  initialisation at k = 10 and k = 4, the LayerNorm variant, UltraMemV2 with the README's 227M example
  (value lr ×4, share 1/2, balance loss 0.01), PEER with one set of product keys shared by its heads,
  and Memory+ with its value learning rate swept. Reported with their p-values, never called reproduced.
* **Selection.** Each family's learning rate (and, for PKM and Memory+, its value-lr option) is chosen
  on the *selection seeds* 100 and 101, which are never reported: the rate with the lowest mean loss
  on the select split over both seeds. Rates 3·10⁻³, 6·10⁻³, 1.2·10⁻²; if the best is at an edge, the
  sweep extends by one doubling (or halving) at a time, at most twice, while the new rate is better.
  The long budget trains at the rate chosen at the ``lm`` budget.
* **Reported seeds.** Seeds 0–7 (8) for the headline families at both budgets; seeds 0–2 (3) for the
  exploratory families at the ``lm`` budget. The number reported is the loss on the held-out test split.

The tests
=========
Every comparison is paired by seed (:mod:`.stats`); each headline claim gives one two-sided paired
t-test (df = n − 1):

* a *difference* claim (``kind="less"``: A has the lower loss) tests Δ = A − B against 0;
* a *matches or beats* claim (``kind="noninferior"``) tests Δ against the margin :data:`MARGIN`
  (:func:`.stats.noninferiority`): rejected below the margin, A is non-inferior (the upper end of the
  95 % interval is below the margin); rejected above it, A is worse than B by more than the margin;
* the *gap change* (``kind="gap_change"``) tests the paired change of A − B from the ``lm`` to the
  ``long`` budget against 0.

The headline claims (:data:`CLAIMS`) form one family, corrected with Holm–Bonferroni at α = 0.05. A
claim is *reproduced* when its corrected test rejects in the paper's direction, *not reproduced* when it
rejects in the other direction, and *unresolved* otherwise, with the seeds that 80 % power would need
at the observed effect and paired spread. A claim of equality outside this table (two recipes that
"train alike") is tested by two one-sided tests (TOST) against the same margin. Everything not in
:data:`CLAIMS` is exploratory: reported with its interval and p-value, never called reproduced.

The margin: 0.02 nats per character, about 1.4 % of the dense model's loss at the ``lm`` budget and
twice the seed-to-seed spread of the earlier runs; a gap below it is not one this book would call a
difference in quality at this scale.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["HEADLINE_FAMILIES", "EXPLORATORY_FAMILIES", "VALUE_LR_OPTIONS", "SELECTION_SEEDS", "REPORTED_SEEDS",
           "EXPLORATORY_SEEDS", "LRS", "MAX_EDGE_STEPS", "BUDGETS", "MARGIN", "ALPHA", "CLAIMS", "prereg_hash",
           "PREREG_PATH"]

PREREG_PATH = Path(__file__).resolve()

HEADLINE_FAMILIES = ("dense", "moe_matched", "pkm", "ultramem_released", "ultramem_v2_released")
EXPLORATORY_FAMILIES = ("moe", "ultramem_paper_k10", "ultramem_paper_k4", "ultramem_ln", "ultramem_v2_readme",
                        "peer_shared", "memory_plus")

# value-lr options swept with the learning rate (families not listed train their recipe as it is)
VALUE_LR_OPTIONS = {
    "pkm": ({"value_lr": 1e-3}, {"value_lr_k": 1.0}, {"value_lr_k": 4.0}),
    "memory_plus": ({"value_lr": 1e-3}, {"value_lr_k": 1.0}, {"value_lr_k": 4.0}),
}

SELECTION_SEEDS = (100, 101)
REPORTED_SEEDS = tuple(range(8))
EXPLORATORY_SEEDS = (0, 1, 2)
LRS = (3e-3, 6e-3, 1.2e-2)
MAX_EDGE_STEPS = 2

# steps × batch × window at the CPU scale; the GPU scale keeps the seeds and scales the budgets
BUDGETS = {"lm": 2500, "long": 5000}

MARGIN = 0.02           # nats per character
ALPHA = 0.05

# The headline claims: one Holm family. kind: "less" (A − B < 0), "noninferior" (A − B < MARGIN, tested
# two-sided against the margin), "gap_change" (the paired change of A − B from the lm to the long budget < 0).
CLAIMS = {
    "moe_beats_dense": dict(
        paper="MoE beats the dense model at equal activated compute (Huang et al., 2025, Table 1)",
        a="moe_matched", b="dense", budget="lm", kind="less"),
    "ultramem_beats_dense": dict(
        paper="UltraMem beats the dense model at equal activated compute (Table 1)",
        a="ultramem_released", b="dense", budget="lm", kind="less"),
    "ultramem_beats_pkm": dict(
        paper="UltraMem beats PKM at equal activated compute and memory parameters (Table 1)",
        a="ultramem_released", b="pkm", budget="lm", kind="less"),
    "ultramem_matches_moe": dict(
        paper="UltraMem matches or beats MoE at equal total and activated parameters (abstract, Table 1)",
        a="ultramem_released", b="moe_matched", budget="lm", kind="noninferior"),
    "v2_matches_moe": dict(
        paper="UltraMemV2 matches an MoE at equal compute and parameters (Huang et al., 2025b, abstract)",
        a="ultramem_v2_released", b="moe_matched", budget="lm", kind="noninferior"),
    "ultramem_beats_dense_long": dict(
        paper="UltraMem beats the dense model at equal activated compute, at twice the characters",
        a="ultramem_released", b="dense", budget="long", kind="less"),
    "ultramem_matches_moe_long": dict(
        paper="UltraMem matches or beats MoE at equal parameters, at twice the characters",
        a="ultramem_released", b="moe_matched", budget="long", kind="noninferior"),
    "ultramem_gap_narrows": dict(
        paper="this book's hypothesis, not the paper's: a value learns only when a token selects it, so "
              "twice the characters narrow UltraMem's gap to the dense model",
        a="ultramem_released", b="dense", budget="lm→long", kind="gap_change"),
}


def prereg_hash() -> str:
    """SHA-256 of this file's bytes: stored with every run of the evidence suite."""
    return hashlib.sha256(PREREG_PATH.read_bytes()).hexdigest()
