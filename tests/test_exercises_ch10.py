import pytest

from ultramem_edu.cost import expected_distinct, paper_1p6b_configs
from ultramem_edu.exercises import ch10


def _ceiling():
    cfg = paper_1p6b_configs()
    um = cfg["ultramem"]
    return cfg["moe"].params / (um.params - um.num_memory_layers * um.memory.value_params)


def test_checkers_accept_the_right_answers(capsys):
    ch10.check_expected_experts(16 * (1 - (14 / 16) ** 8))
    ch10.check_expected_rows(float(paper_1p6b_configs()["ultramem"].memory.rows_touched(64)))
    ch10.check_ratio_ceiling(_ceiling())
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize("answer,hint", [(16, "worst case"), (16 * (1 - (15 / 16) ** 8), "not 1 - 1/N"),
                                         (10.0, "Not quite"), ("11", "finite")])
def test_expected_experts_rejects_wrong_answers(answer, hint):
    with pytest.raises(AssertionError, match=hint):
        ch10.check_expected_experts(answer)


@pytest.mark.parametrize("answer,hint", [(8192, "counts a row twice"), (8000.0, "Not quite"), (float("nan"), "finite")])
def test_expected_rows_rejects_wrong_answers(answer, hint):
    with pytest.raises(AssertionError, match=hint):
        ch10.check_expected_rows(answer)


def test_ratio_ceiling_rejects_wrong_answers():
    cfg = paper_1p6b_configs()
    with pytest.raises(AssertionError, match="total parameters"):
        ch10.check_ratio_ceiling(cfg["moe"].params / cfg["ultramem"].params)
    with pytest.raises(AssertionError, match="Not quite"):
        ch10.check_ratio_ceiling(18.8)


def test_expected_experts_matches_cost_model():
    assert expected_distinct(16, 2, 8) == pytest.approx(16 * (1 - (14 / 16) ** 8))
