"""Chapter 14's coding exercise: the TF-IDF slot ranking. The solution passes; the typical mistakes
fail with a message that names them; the package's own ranking is refused."""
import math

import pytest
import torch

import exercise_solutions as solutions
from ultramem_edu import continual
from ultramem_edu.exercises import ch14
from ultramem_edu.exercises._grading import PackageImplementationCalled, coding_exercises, load_stub


def _parts(batch_rows, background_rows, n):
    counts = torch.bincount(batch_rows, minlength=n)
    df = torch.zeros(n, dtype=torch.int64)
    for rows in background_rows:
        df += torch.bincount(rows, minlength=n) > 0
    return counts, df


def _top(counts, scores, t):
    read = torch.nonzero(counts > 0).flatten()
    return read[torch.sort(-scores[read], stable=True).indices[:t]]


def no_idf(batch_rows, background_rows, num_slots, t):
    counts, _ = _parts(batch_rows, background_rows, num_slots)
    scores = counts.double() / counts.sum()
    return scores, _top(counts, scores, t)


def log2_idf(batch_rows, background_rows, num_slots, t):
    counts, df = _parts(batch_rows, background_rows, num_slots)
    scores = counts.double() / counts.sum() * torch.log2((len(background_rows) + 1.0) / (df.double() + 1.0))
    return scores, _top(counts, scores, t)


def df_counts_every_read(batch_rows, background_rows, num_slots, t):
    counts = torch.bincount(batch_rows, minlength=num_slots)
    df = sum(torch.bincount(rows, minlength=num_slots) for rows in background_rows)
    scores = counts.double() / counts.sum() * torch.log((len(background_rows) + 1.0) / (df.double() + 1.0))
    return scores, _top(counts, scores, t)


def all_slots_ranked(batch_rows, background_rows, num_slots, t):
    scores, _ = solutions.tfidf_slot_ranking(batch_rows, background_rows, num_slots, t)
    return scores, torch.sort(-scores, stable=True).indices[:t]


def unstable_ties(batch_rows, background_rows, num_slots, t):
    scores, top = solutions.tfidf_slot_ranking(batch_rows, background_rows, num_slots, t)
    counts = torch.bincount(batch_rows, minlength=num_slots)
    read = torch.nonzero(counts > 0).flatten().flip(0)                 # ties broken by the higher index
    return scores, read[torch.sort(-scores[read], stable=True).indices[:t]]


def test_registered_for_chapter_14():
    assert [e.name for e in coding_exercises(14)] == ["tfidf_slot_ranking"]


def test_the_solution_passes(capsys):
    ch14.check_tfidf_slot_ranking(solutions.tfidf_slot_ranking)
    assert "Correct" in capsys.readouterr().out


def test_the_stub_reports_not_implemented():
    with pytest.raises(NotImplementedError):
        ch14.check_tfidf_slot_ranking(load_stub("tfidf_slot_ranking"))


@pytest.mark.parametrize("wrong,hint", [
    (no_idf, "no IDF"),
    (log2_idf, "log base"),
    (df_counts_every_read, "counts once"),
    (all_slots_ranked, "did not read"),
    (unstable_ties, "wrong order"),
])
def test_typical_mistakes_are_named(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch14.check_tfidf_slot_ranking(wrong)


def test_the_package_ranking_is_refused():
    def uses_package(batch_rows, background_rows, num_slots, t):
        counts, df = _parts(batch_rows, background_rows, num_slots)
        return (continual.tfidf_scores(counts, df, len(background_rows)),
                continual.tfidf_top_slots(counts, df, len(background_rows), t))

    with pytest.raises(PackageImplementationCalled):
        ch14.check_tfidf_slot_ranking(uses_package)


def test_solution_agrees_with_the_package_by_hand():
    scores, top = solutions.tfidf_slot_ranking(torch.tensor([0, 0, 1]), [torch.tensor([1, 1]), torch.tensor([2])], 3, 5)
    assert scores.tolist() == pytest.approx([2 / 3 * math.log(3), 1 / 3 * math.log(3 / 2), 0.0])
    assert top.tolist() == [0, 1]
