import pytest

from ultramem_edu.exercises import ch11
from ultramem_edu.layer import UltraMemConfig, UltraMemLayer


def test_memory_activated():
    cfg = UltraMemConfig(64, num_values=96 * 96, key_dim=16, num_heads=2, topm=8, num_layers=4, init_samples=64)
    right = UltraMemLayer(cfg).activated_parameters_per_token()
    ch11.check_memory_activated(right)
    with pytest.raises(AssertionError):
        ch11.check_memory_activated(sum(p.numel() for p in UltraMemLayer(cfg).parameters()))
    with pytest.raises(AssertionError):
        ch11.check_memory_activated(right + 1)


def test_value_lr():
    ch11.check_value_lr(5.5)
    with pytest.raises(AssertionError, match="decays to 1"):
        ch11.check_value_lr(5.0)


def test_seeds_needed():
    ch11.check_seeds_needed(4, seed_std=0.02, target_sem=0.01)
    with pytest.raises(AssertionError, match="square"):
        ch11.check_seeds_needed(2, seed_std=0.02, target_sem=0.01)


def _dynamics(ln_score: float, paper_score: float) -> dict:
    run = lambda s: {"runs": [{"records": {"score_mean": [s, s]}}]}  # noqa: E731
    return {"runs": {"ultramem_ln_init": run(ln_score), "ultramem": run(paper_score)}}


def test_output_speed_ratio():
    dyn = _dynamics(170.0, 2.0)
    ch11.check_output_speed_ratio(85.0, dyn)
    with pytest.raises(AssertionError, match="Inverted"):
        ch11.check_output_speed_ratio(2.0 / 170.0, dyn)
    with pytest.raises(AssertionError, match="same output variance"):
        ch11.check_output_speed_ratio(1.0, dyn)
    with pytest.raises(AssertionError, match="Not quite"):
        ch11.check_output_speed_ratio(130.0, dyn)


def test_output_speed_ratio_on_the_results():
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "figures" / "exp_dynamics.json"
    dyn = json.loads(path.read_text())
    if "ultramem_ln_init" not in dyn["runs"]:
        pytest.skip("exp_dynamics.json predates the ultramem_ln_init run")
    rec = {n: dyn["runs"][n]["runs"][0]["records"]["score_mean"][0] for n in ("ultramem_ln_init", "ultramem")}
    ch11.check_output_speed_ratio(rec["ultramem_ln_init"] / rec["ultramem"], dyn)
    with pytest.raises(AssertionError):
        ch11.check_output_speed_ratio(rec["ultramem"] / rec["ultramem_ln_init"], dyn)
