"""Self-checks for chapter 14, "Learning new facts without forgetting"."""
from __future__ import annotations

import math
import random

import torch

from ..continual import tfidf_scores, tfidf_top_slots
from ._grading import call, current_seed, exercise, expect_tensor, fail, seed_for

__all__ = ["TFIDF_SLOT_RANKING_STUB", "check_tfidf_slot_ranking"]

TFIDF_SLOT_RANKING_STUB = '''
def tfidf_slot_ranking(batch_rows, background_rows, num_slots, t):
    """The slots sparse memory finetuning trains on one batch, ranked by TF-IDF.

    c(i)  = how many times the batch reads slot i (every read counts);
    df(i) = how many background batches read slot i at least once;
    score(i) = c(i) / sum_j c(j) * ln((|B| + 1) / (df(i) + 1)),  |B| = len(background_rows).

    Args:
        batch_rows: (K,) int64, the value-table rows the batch read (repeats allowed).
        background_rows: list of |B| >= 1 tensors (K_b,) int64, the rows each background batch read.
        num_slots: N, the number of rows of the table.
        t: int >= 1, how many slots to train.

    Returns:
        scores: (N,) float64, score(i) of every slot.
        top: (min(t, number of slots the batch read),) int64 — only slots the batch read (c > 0),
            in decreasing score, equal scores by lower slot index.
    """
    raise NotImplementedError("Exercise: write tfidf_slot_ranking")
'''


def _reference(batch_rows: torch.Tensor, background: list[torch.Tensor], n: int, t: int):
    counts = torch.bincount(batch_rows, minlength=n)
    df = torch.stack([torch.bincount(b, minlength=n) > 0 for b in background]).sum(0)
    return counts, df, tfidf_scores(counts, df, len(background)), tfidf_top_slots(counts, df, len(background), t)


def _cases() -> list[tuple[str, torch.Tensor, list[torch.Tensor], int, int]]:
    """(name, batch rows, background rows, N, t): hand-made edge cases, then random ones."""
    cases = [
        # slot 1 is read twice by one background batch: its df is 1, not 2
        ("repeats in a background batch", torch.tensor([0, 0, 1, 2, 2, 2]),
         [torch.tensor([1, 1, 3]), torch.tensor([2, 3]), torch.tensor([3, 4])], 6, 2),
        # fewer slots read than t: the top holds only those read
        ("t above the slots read", torch.tensor([5, 5, 1]), [torch.tensor([0, 1]), torch.tensor([2])], 8, 6),
        # slots 2 and 4 tie: the lower index first
        ("a tie", torch.tensor([4, 2, 7, 7]), [torch.tensor([7]), torch.tensor([0, 7])], 8, 2),
        # every read slot is in every background batch: all scores 0, the top still holds read slots only
        ("idf zero everywhere", torch.tensor([1, 3, 3]), [torch.tensor([1, 3, 3]), torch.tensor([3, 1])], 5, 4),
    ]
    seeds = [seed_for(1401), seed_for(1402)] + ([seed_for(1403)] if current_seed() is not None else [])
    for s in seeds:
        rng = random.Random(s)
        n = rng.randint(16, 64)
        hot = rng.sample(range(n), k=max(2, n // 8))
        batch = torch.tensor([rng.choice(hot) if rng.random() < 0.6 else rng.randrange(n) for _ in range(3 * n)])
        background = [torch.tensor([rng.randrange(n) for _ in range(rng.randint(n // 2, 2 * n))])
                      for _ in range(rng.randint(3, 9))]
        cases.append((f"random, N={n}", batch, background, n, rng.randint(2, n // 2)))
    return cases


@exercise(14, TFIDF_SLOT_RANKING_STUB, guarded=(
    "ultramem_edu.continual:tfidf_scores", "ultramem_edu.continual:tfidf_top_slots",
    "ultramem_edu.continual:tfidf_scores_reference", "ultramem_edu.continual:tfidf_top_slots_reference"))
def check_tfidf_slot_ranking(tfidf_slot_ranking_fn) -> None:
    """Compare the reader's ranking with :func:`ultramem_edu.continual.tfidf_scores` and
    :func:`~ultramem_edu.continual.tfidf_top_slots` on edge cases and random batches."""
    cases = _cases()
    for name, batch, background, n, t in cases:
        case = f"{name}, t={t}"
        out = call(tfidf_slot_ranking_fn, case, batch.clone(), [b.clone() for b in background], n, t)
        if not (isinstance(out, tuple) and len(out) == 2):
            fail(case, f"return a tuple (scores, top), got {type(out).__name__}.")
        counts, df, exp_scores, exp_top = _reference(batch, background, n, t)
        scores = expect_tensor(out[0], (n,), case, "scores", "(N,)").double()
        num_docs = len(background)
        if not torch.allclose(scores, exp_scores, rtol=1e-6, atol=1e-12):
            tf = counts.double() / counts.sum()
            idf = torch.log((num_docs + 1.0) / (df.double() + 1.0))
            df_reads = torch.stack([torch.bincount(b, minlength=n) for b in background]).sum(0)
            wrong = {
                "no IDF: the score is the batch's share c(i)/Σc alone. Multiply by ln((|B| + 1)/(df(i) + 1)), "
                "which is small for slots the pretraining data reads anyway": tf,
                "the raw count c(i) times the IDF: divide the count by Σ_j c(j), the batch's reads": counts.double() * idf,
                "the wrong log base (log2): the IDF is the natural logarithm ln((|B| + 1)/(df(i) + 1))":
                    tf * idf / math.log(2),
                "the wrong log base (log10): the IDF is the natural logarithm ln((|B| + 1)/(df(i) + 1))":
                    tf * idf / math.log(10),
                "df counted every read: a background batch that reads a slot twice counts once — df(i) is the "
                "number of batches that read slot i at least once":
                    tf * torch.log((num_docs + 1.0) / (df_reads.double() + 1.0)),
                "no smoothing: the IDF is ln((|B| + 1)/(df(i) + 1)), with + 1 above and below":
                    tf * torch.log(num_docs / df.double().clamp(min=1)),
            }
            for message, candidate in wrong.items():
                if torch.allclose(scores, candidate, rtol=1e-6, atol=1e-12):
                    fail(case, message + ".")
            fail(case, f"wrong scores: expected {[round(x, 4) for x in exp_scores.tolist()[:8]]}…, "
                       f"got {[round(x, 4) for x in scores.tolist()[:8]]}….")
        top = out[1]
        if not isinstance(top, torch.Tensor):
            fail(case, f"top must be a torch.Tensor, got {type(top).__name__}.")
        top = top.long().flatten()
        if top.tolist() == exp_top.tolist():
            continue
        if any(int(counts[i]) == 0 for i in top.tolist()):
            fail(case, "the top holds a slot the batch did not read: rank only the batch's slots (c > 0), "
                       "not all N — an unread slot must never be trained on this batch.")
        if len(top) != len(exp_top):
            fail(case, f"the top should hold min(t, slots read) = {len(exp_top)} slots, got {len(top)}.")
        if sorted(top.tolist()) == sorted(exp_top.tolist()):
            fail(case, "the right slots in the wrong order: decreasing score, equal scores by lower index.")
        fail(case, f"wrong slots: expected {exp_top.tolist()}, got {top.tolist()}.")
    print(f"Correct: tfidf_slot_ranking agrees with the package's ranking on {len(cases)} cases "
          "(repeats in a background batch, fewer slots than t, ties, IDF zero, random batches).")
