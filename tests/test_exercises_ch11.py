import pytest

from ultramem_edu.exercises import ch11
from ultramem_edu.experiments.common import memory_activated_parameters
from ultramem_edu.layer import UltraMemConfig, UltraMemLayer


def test_memory_activated():
    cfg = UltraMemConfig(64, num_values=96 * 96, key_dim=16, num_heads=2, topm=8, num_layers=4, init_samples=64)
    right = memory_activated_parameters(UltraMemLayer(cfg))
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


def test_paper_total():
    ch11.check_paper_total(-0.092)
    with pytest.raises(AssertionError, match="sign"):
        ch11.check_paper_total(0.092)
