"""Chapter 14's pre-registration: the ``continual`` experiment's protocol and claims, fixed before its runs.

This file is committed before any run of the ``continual`` experiment starts. Each run file records
:func:`prereg_hash` (the SHA-256 of this file's bytes), and the chapter checks that every run it reads
was produced under the file as it stands. Nothing here may be changed once runs exist; a correction
goes into a new, dated file with a new experiment name.

The question (Lin et al., 2025, "Continual Learning via Sparse Memory Finetuning", arXiv 2510.15103):
a model with memory layers is taught new facts; does training only the memory slots that the new
facts use much more than the pretraining data does (sparse memory finetuning) learn them while
forgetting less than full finetuning and LoRA? The paper: NaturalQuestions F1 drops by 11 % after
sparse memory finetuning on new facts, by 89 % after full finetuning and by 71 % after LoRA, "with
the same level of new knowledge acquisition" (abstract).

The protocol
============
* **Data.** The KJV text, character level, split into train / select / test as
  :func:`.common.kjv_splits` does, and a fact set from :func:`~ultramem_edu.data.make_facts`
  ("subject relation → object", objects uniformly random) whose (subject, relation) pairs are cut at
  random into two halves: the *old* facts, mixed into pretraining, and the *new* facts, taught
  afterwards. Every subject and relation token occurs in both halves, so the new facts are new
  combinations of known tokens (like TriviaQA's questions about known entities). The facts' tokens
  follow the characters in one vocabulary; the pair split is drawn from the run's seed.
* **Pretraining.** Per seed and family, one model trains on the mixture: every step one batch of KJV
  windows (next-character loss) and one batch of old facts (cross-entropy of the object at the last
  position), summed with the family's auxiliary loss, AdamW with the family's recipe
  (:func:`.trainer.make_optimizer`, warm-up and cosine) at the fixed learning rate
  :data:`PRETRAIN_LR` (chapter 11's rate for its fixed-rate experiments; not tuned here).
* **Families** (:data:`FAMILIES`): ``dense`` (no memory; full finetuning and LoRA only),
  ``memory_plus`` — Berges et al.'s Memory+ layer, the layer the paper's models use — and
  ``ultramem_released`` — UltraMem with the released code's recipe; both at the dense model's
  activated parameters per token (chapter 11's families).
* **Methods** (:data:`METHODS`), each run from the same pretrained weights, on batches of new facts
  only (cross-entropy of the object at the last position, no auxiliary loss), in evaluation mode (no
  buffer moves), AdamW β = (0.9, 0.95), no weight decay, a constant learning rate:
  ``full`` — every parameter; ``lora`` — rank-:data:`LORA_RANK` adapters (α = :data:`LORA_ALPHA`)
  on every linear layer of the transformer blocks, everything else frozen; ``values`` — the whole
  value table of every memory layer; ``sparse`` — per batch, only the top :data:`TOP_T` slots of
  each value table by TF-IDF of the batch's slot reads against the background
  (:func:`~ultramem_edu.continual.tfidf_top_slots`): df counts, for each slot, the background
  "documents" that read it, a document being one pretraining step's pair of batches (KJV windows and
  old facts), :data:`BACKGROUND_DOCS` of them drawn from the pretraining data with a fixed seed.
* **Measured** every ``eval_every`` finetuning steps and at step 0: recall of the new facts, recall
  of the old facts (exact match, :func:`~ultramem_edu.continual.fact_recall`) and the loss on
  held-out KJV text (windows of the test split, :func:`~ultramem_edu.continual.heldout_loss`).
  *Forgetting* = old-fact recall at step 0 − old-fact recall at the last step; *learning* = new-fact
  recall at the last step.
* **Selection.** Each (family, method)'s learning rate is chosen from :data:`LRS` [method] on the
  *selection seeds* :data:`SELECTION_SEEDS`, which are never reported: the rate with the largest mean
  over those seeds of (new-fact recall + old-fact recall) at the last step — learning and keeping
  weighed equally; a tie goes to the lower rate.
* **Reported seeds.** :data:`REPORTED_SEEDS`, each with its own pretraining, fact split and
  finetuning, at the chosen rates.

The tests
=========
Every comparison is paired by seed (:mod:`.stats`). The headline claims (:data:`CLAIMS`) form one
family, corrected with Holm–Bonferroni at α = :data:`ALPHA`:

* ``kind="less"``: Δ = metric(A) − metric(B) < 0, the two-sided paired t-test against 0, where the
  metric is the forgetting;
* ``kind="noninferior"``: A learns as well as B within :data:`LEARNING_MARGIN`: Δ = learning(B) −
  learning(A) tested against the margin (:func:`.stats.noninferiority`), passed when the 95 %
  interval lies below it.

A claim is *reproduced* when its corrected test rejects in the paper's direction, *not reproduced*
when it rejects in the other direction, *unresolved* otherwise (with the seeds 80 % power would need).
Everything else (the held-out KJV loss, the dense model, ``values`` against ``sparse``) is
exploratory: intervals and p-values, never called reproduced.

Sizes (``specs.SPECS["continual"]["full"]``): D = 32, 2 blocks, 32-character windows; Memory+ with one
table of 256 values × 32 read by both blocks, UltraMem with 512 values × 16; 32 subjects × 8 relations
→ 16 objects (256 facts, 128 old and 128 new); pretraining 600 steps × (8 windows + 32 old facts);
finetuning 150 steps × 32 new facts, measured every 15 steps; held-out loss on 16 windows.

A pilot on seed 999 (neither a selection nor a reported seed; not reported) measured the cost (about
13 s of one core per pretraining, 1.5 s per finetuning) and set the grids above so that each method's
grid spans rates that learn little to rates that learn nearly all new facts. Its numbers were seen
before this file was committed; nothing of the protocol was chosen after any selection or reported
run.

The margin: 0.10 of the new facts' recall (ten percentage points) — a gap the chapter would call a
difference in learning at this scale; the paper reports its methods at "the same level" of learning
without a number.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["FAMILIES", "MEMORY_FAMILIES", "METHODS", "LRS", "SELECTION_SEEDS", "REPORTED_SEEDS", "PRETRAIN_LR",
           "TOP_T", "BACKGROUND_DOCS", "LORA_RANK", "LORA_ALPHA", "LEARNING_MARGIN", "ALPHA", "CLAIMS",
           "PREREG_PATH", "prereg_hash"]

PREREG_PATH = Path(__file__).resolve()

FAMILIES = ("dense", "memory_plus", "ultramem_released")
MEMORY_FAMILIES = ("memory_plus", "ultramem_released")
METHODS = ("full", "lora", "values", "sparse")       # dense: full and lora only

LRS = {"full": (1e-4, 3e-4, 1e-3), "lora": (1e-3, 3e-3, 1e-2), "values": (3e-3, 1e-2, 3e-2),
       "sparse": (1e-2, 3e-2, 1e-1)}
SELECTION_SEEDS = (100, 101)
REPORTED_SEEDS = tuple(range(6))

PRETRAIN_LR = 3e-3
TOP_T = 32                  # slots per value table and batch: 1/8 of Memory+'s 256, 1/16 of UltraMem's 512
BACKGROUND_DOCS = 64
LORA_RANK = 4
LORA_ALPHA = 8.0

LEARNING_MARGIN = 0.10
ALPHA = 0.05

CLAIMS = {
    f"{fam}_{cid}": dict(paper=text, family=fam, a=a, b=b, kind=kind)
    for fam in MEMORY_FAMILIES
    for cid, text, a, b, kind in (
        ("sparse_forgets_less_than_full",
         "sparse memory finetuning forgets less than full finetuning (NQ F1 −11 % against −89 %)",
         "sparse", "full", "less"),
        ("sparse_forgets_less_than_lora",
         "sparse memory finetuning forgets less than LoRA (NQ F1 −11 % against −71 %)",
         "sparse", "lora", "less"),
        ("sparse_learns_as_full",
         "sparse memory finetuning learns the new facts as well as full finetuning (the same level of "
         "new knowledge acquisition)", "sparse", "full", "noninferior"),
    )
}


def prereg_hash() -> str:
    """SHA-256 of this file's bytes: stored with every run of the continual experiment."""
    return hashlib.sha256(PREREG_PATH.read_bytes()).hexdigest()
