import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from ultramem_edu.exercises import ch09

GB = 8192 * 128 * 512 * 2 / 1e9
MS = 8192 * 128 * 512 * 2 / 4.8e12 * 1e3


def test_checkers_accept_the_right_answers(capsys):
    ch09.check_bytes_moved(GB, MS)
    ch09.check_segments([1, 2, 3], [0, 3, 5, 6])
    ch09.check_forward_programs(16384 * 2 * 3)
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize(
    "gb,ms,hint",
    [(GB / 2, MS, "elements"), (GB * 2, MS, "fp32"), (8192 * 128 * 512 * 2 / 2**30, MS, "GiB"), (3.0, MS, "Not quite"),
     (GB, MS * 1e3, "units"), (GB, MS / 1e3, "units"), (GB, 2 * MS, "bytes / bandwidth"), (GB, float("nan"), "Not quite")],
)
def test_bytes_moved_rejects_wrong_answers(gb, ms, hint):
    with pytest.raises(AssertionError, match=hint):
        ch09.check_bytes_moved(gb, ms)


@pytest.mark.parametrize(
    "rows,starts,hint",
    [([1, 2, 5, 7, 9], [0, 1, 3, 4, 5, 6], "physical"), ([3, 2, 1], [0, 1, 3, 6], "increasing"),
     ([1, 2, 3], [0, 3, 5], "Add the end"), ([1, 2, 3], [0, 2, 4, 6], "running count")],
)
def test_segments_rejects_wrong_answers(rows, starts, hint):
    with pytest.raises(AssertionError, match=hint):
        ch09.check_segments(rows, starts)


@pytest.mark.parametrize(
    "programs,hint",
    [(16384 * 3, "own programs"), (16384 * 2 * 6, "slice"), (16384 * 2, "wider"), (16384 * 2 * 4, "Not quite")],
)
def test_forward_programs_rejects_wrong_answers(programs, hint):
    with pytest.raises(AssertionError, match=hint):
        ch09.check_forward_programs(programs)


def test_block_width_matches_the_kernel():
    pytest.importorskip("triton")
    from ultramem_edu.kernels import value_lookup_triton

    assert ch09.MAX_BLOCK_D == value_lookup_triton.MAX_BLOCK_D
