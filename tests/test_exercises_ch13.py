import pytest

from ultramem_edu.cost import paper_1p6b_configs
from ultramem_edu.distributed.comm_model import column_bytes
from ultramem_edu.distributed.memory import min_ranks, table_and_rest
from ultramem_edu.exercises import ch13


def test_column_slice():
    ch13.check_column_slice((384, 512, [0]))
    with pytest.raises(AssertionError, match="consecutive"):
        ch13.check_column_slice((3, 4, [0]))
    with pytest.raises(AssertionError, match="Core c owns"):
        ch13.check_column_slice((384, 512, [1]))


def test_column_bytes():
    parts = column_bytes(4096, 2, 64, 1024, 8)
    ch13.check_column_bytes(sum(parts.values()))
    with pytest.raises(AssertionError, match="forward pass only"):
        ch13.check_column_bytes(sum(v for k, v in parts.items() if "backward" not in k))
    with pytest.raises(AssertionError, match="P − 1"):
        ch13.check_column_bytes(sum(parts.values()) * 8 / 7)


def test_hot_rank_bytes():
    ch13.check_hot_rank_bytes(3 * 1000 * 1024 * 4)
    with pytest.raises(AssertionError, match="own copy"):
        ch13.check_hot_rank_bytes(1000 * 1024 * 4)


def test_min_ranks():
    table, rest = table_and_rest(paper_1p6b_configs()["ultramem"])
    ch13.check_min_ranks(min_ranks(table, rest, 80e9))
    with pytest.raises(AssertionError):
        ch13.check_min_ranks(min_ranks(table, rest, 80e9) * 2)
