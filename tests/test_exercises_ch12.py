import pytest

from ultramem_edu.exercises import ch12
from ultramem_edu.v2 import UltraMemV2Config


def test_window():
    ch12.check_window(2304, 96)
    with pytest.raises(AssertionError, match="contribution"):
        ch12.check_window(34 * 34, 96)
    with pytest.raises(AssertionError, match="expanded"):
        ch12.check_window(2304, 48)


def test_v2_activated():
    cfg = UltraMemV2Config(64, values_per_layer=34 * 34, value_dim=32, key_dim=16, topm=16, init_samples=2)
    counts = cfg.parameter_counts(4)
    ch12.check_v2_activated(counts["activated"], cfg, 4)
    with pytest.raises(AssertionError, match="pre-value"):
        ch12.check_v2_activated(counts["activated"] - 4 * 16 * 32, cfg, 4)
    with pytest.raises(AssertionError, match="every parameter"):
        ch12.check_v2_activated(counts["total"], cfg, 4)


def test_eq26_std():
    want = (0.2 * 6.5 * 768 / (32 * 1.1 * 192 * 192 * 20)) ** 0.25
    ch12.check_eq26_std(want)
    with pytest.raises(AssertionError, match="variance"):
        ch12.check_eq26_std(want ** 2)


def test_router_cost():
    ch12.check_router_cost(2 * 1024, 1024 ** 2, 128, "product_keys")
    ch12.check_router_cost(64, 64, 128, "moe")
    with pytest.raises(AssertionError, match="MoE router"):
        ch12.check_router_cost(1024 ** 2, 1024 ** 2, 128, "product_keys")
