"""Chapter 12's comparison plumbing: matched activated compute, the resolution rule, a result file."""
import json

import pytest

from ultramem_edu import after_ultramem as au
from ultramem_edu.moe import num_parameters


def test_memory_models_match_the_dense_activated_count():
    builders = au.model_builders(40, au.QUICK_SPEC)
    counts = {name: au.parameter_counts(build()) for name, (build, _) in builders.items()}
    target = counts["dense"]["activated"]
    for name in ("ultramem", "ultramem_v2", "peer", "memory_plus"):
        assert 0.9 * target <= counts[name]["activated"] <= target, name
        assert counts[name]["memory_total"] > counts[name]["memory_activated"]
    v2 = builders["ultramem_v2"][0]()
    assert counts["ultramem_v2"]["memory_total"] == num_parameters(v2.memories)       # the pool counted once
    assert counts["ultramem_v2"]["memory_total"] < sum(num_parameters(layer) for layer in v2.memories)


def test_resolved_difference():
    assert au.resolved_difference([1.0, 1.01], [1.5, 1.51])
    assert not au.resolved_difference([1.0, 1.2, 1.1], [1.1, 1.15, 1.2])   # paired differences disagree in sign
    assert not au.resolved_difference([1.01, 1.128, 1.245], [1.0, 1.1, 1.2])  # 2.7 SE apart at n = 3: p ≈ 0.11
    assert not au.resolved_difference([1.0], [2.0])                    # no spread with one seed


def test_quick_run_writes_a_result_file(tmp_path):
    payload = au.run_comparison(quick=True, out=tmp_path, models=("dense", "ultramem_v2"), progress=False)
    stored = json.loads((tmp_path / "exp_after_ultramem.json").read_text())
    assert stored["complete"] and stored["git_commit"] and stored["tokens_per_run"] == 30 * 8 * 32
    assert set(stored["models"]) == {"dense", "ultramem_v2"} == set(payload["models"])
    with pytest.raises(ValueError, match="models"):
        au.run_comparison(quick=True, out=tmp_path, models=("gpt5",), progress=False)
