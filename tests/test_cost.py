"""Tests for the analytic decode-cost model (ultramem_edu.cost)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.cost import (
    PAPER_FIG1C_RATIOS,
    PAPER_TABLE1,
    DenseFFNSpec,
    ModelSpec,
    MoESpec,
    UltraMemSpec,
    crossover_batch,
    expected_distinct,
    memory_access_curve,
    moe_over_ultramem_ratio,
    paper_1p6b_configs,
)

# --- hand-computed small cases ---------------------------------------------------------------


def test_dense_by_hand():
    ffn = DenseFFNSpec(d_model=4, d_ff=8, bytes_per_param=2)
    assert ffn.params == 64  # 4*8 + 8*4
    assert ffn.bytes_read(1) == 128
    assert ffn.bytes_read(1000) == 128
    assert ffn.flops(3) == 384  # 2 FLOPs * 3 tokens * 64 weights


def test_moe_by_hand():
    moe = MoESpec(d_model=2, d_expert=3, num_experts=4, top_k=2, bytes_per_param=2)
    assert moe.expert_params == 12 and moe.router_params == 8 and moe.params == 56
    # B=1: exactly 2 experts either way -> (8 + 2*12) * 2 bytes.
    assert moe.bytes_read(1) == pytest.approx(64)
    assert moe.bytes_read(1, "worst") == 64
    # B=2: expected 4 * (1 - (1/2)^2) = 3 experts; worst min(4, 4) = 4.
    assert moe.experts_touched(2) == pytest.approx(3.0)
    assert moe.bytes_read(2) == pytest.approx((8 + 3 * 12) * 2)
    assert moe.bytes_read(2, "worst") == (8 + 4 * 12) * 2
    assert moe.flops(2) == 2 * 2 * (8 + 2 * 12)


def _small_memory(bytes_per_param=1):
    # E*N = 16 -> n' = 4 keys per side.
    return UltraMemSpec(
        d_model=4, num_values=4, value_dim=2, key_dim=3, num_heads=1, top_m=2,
        expansion=4, tucker_rank=2, num_cores=2, bytes_per_param=bytes_per_param,
    )


def test_ultramem_by_hand():
    mem = _small_memory()
    assert mem.keys_per_side == 4
    assert mem.query_params == 24  # 4 * 2 * 3
    assert mem.key_params == 48  # 1 head * 2 sides * 4 keys * 3 * rank 2
    assert mem.core_params == 8  # 1 head * 2 cores * 2 * 2
    assert mem.value_params == 8  # 4 rows * 2
    assert mem.output_params == 32  # E=4 * 2 * 4
    assert mem.params == 120
    # B=1, m*H = 2 selections: worst 2 rows; expected 4 * (1 - (3/4)^2) = 1.75 rows.
    assert mem.bytes_read(1, "worst") == 112 + 2 * 2
    assert mem.bytes_read(1) == pytest.approx(112 + 1.75 * 2)
    # B=3: 6 selections > 4 rows -> the whole table.
    assert mem.bytes_read(3, "worst") == 120
    # query 48 + keys 96 + rank-1 scores 2*1*2*2*4=32 + rescoring 1*2*(2*2*4 + 2*4*2)=64
    # + pooling 2*2*1*2=8 + output 64.
    assert mem.flops(1) == 312


def test_model_by_hand():
    model = ModelSpec("toy", num_layers=2, d_model=4, ffn=DenseFFNSpec(4, 8))
    assert model.params == 2 * (64 + 64)
    assert model.bytes_read(5) == 2 * (64 * 2 + 128)
    with_kv = ModelSpec("toy", num_layers=2, d_model=4, ffn=DenseFFNSpec(4, 8), kv_cache_len=3)
    # + B * 3 positions * (K and V) * 4 * 2 layers * 2 bytes = 96 * B
    assert with_kv.bytes_read(2) == 512 + 192
    mem_model = ModelSpec("toy+mem", 2, 4, DenseFFNSpec(4, 8), memory=_small_memory(), num_memory_layers=3)
    assert mem_model.params == 256 + 3 * 120
    assert mem_model.bytes_read(3, "worst") == 512 + 3 * 120
    assert mem_model.flops(1) == 2 * (2 * 64 + 128) + 3 * 312


def test_crossover_by_hand():
    # MoE worst bytes: B=1 (16 + 2*64)*2 = 288, B>=2 (16 + 4*64)*2 = 544.
    moe = MoESpec(d_model=4, d_expert=8, num_experts=4, top_k=2)
    # UltraMem: fixed 8 + 64 + 1 + 32 = 105 params -> 210 bytes, + 4 bytes per row, N = 256.
    mem = UltraMemSpec(d_model=4, num_values=256, value_dim=2, key_dim=1, num_heads=1, top_m=1,
                       expansion=4, tucker_rank=1, num_cores=1)
    assert mem.bytes_read(1, "worst") == 214
    # 210 + 4*83 = 542 < 544 <= 546 = 210 + 4*84.
    assert crossover_batch(moe, mem, max_batch=1000, mode="worst") == 84
    assert crossover_batch(moe, mem, max_batch=83, mode="worst") is None


def test_crossover_matches_brute_force_expected():
    moe = MoESpec(d_model=8, d_expert=16, num_experts=8, top_k=2)
    mem = UltraMemSpec(d_model=8, num_values=400, value_dim=4, key_dim=2, num_heads=2, top_m=3)
    brute = next((b for b in range(1, 3001) if mem.bytes_read(b) >= moe.bytes_read(b)), None)
    assert brute is not None
    assert crossover_batch(moe, mem, max_batch=3000) == brute


# --- structural properties -------------------------------------------------------------------

spec_strategy = st.one_of(
    st.builds(DenseFFNSpec, d_model=st.integers(1, 64), d_ff=st.integers(1, 256)),
    st.builds(
        lambda d, de, n, k: MoESpec(d, de, n, top_k=min(k, n)),
        st.integers(1, 64), st.integers(1, 128), st.integers(1, 64), st.integers(1, 8),
    ),
    st.builds(
        lambda d, side, e, dv, dk, h, m: UltraMemSpec(
            d, num_values=(side * e) ** 2 // e, value_dim=dv, key_dim=dk, num_heads=h,
            top_m=min(m, (side * e) ** 2), expansion=e,
        ),
        st.integers(1, 32), st.integers(1, 40), st.sampled_from([1, 4, 9]), st.integers(1, 16),
        st.integers(1, 16), st.integers(1, 4), st.integers(1, 32),
    ),
)


@settings(max_examples=60, deadline=None)
@given(spec=spec_strategy, mode=st.sampled_from(["expected", "worst"]))
def test_reads_non_decreasing_in_batch(spec, mode):
    b = np.arange(1, 3000, dtype=np.int64)
    reads = spec.bytes_read(b, mode)
    assert np.all(np.diff(reads) >= 0)
    assert np.all(reads <= spec.params * spec.bytes_per_param * (1 + 1e-12))
    # The array path and the scalar path agree.
    assert reads[36] == pytest.approx(spec.bytes_read(37, mode), rel=1e-12)


def test_dense_constant_in_batch():
    reads = DenseFFNSpec(2048, 8192).bytes_read(np.array([1, 7, 64, 4096]))
    assert np.all(reads == reads[0])


def test_saturation():
    moe = MoESpec(d_model=16, d_expert=32, num_experts=10, top_k=2)
    everything = moe.params * moe.bytes_per_param
    assert moe.bytes_read(5, "worst") == everything  # 2*5 = 10 experts
    assert moe.bytes_read(4, "worst") < everything
    assert moe.bytes_read(10**6) == pytest.approx(everything)
    mem = UltraMemSpec(d_model=16, num_values=64, value_dim=8, key_dim=4, num_heads=2, top_m=4)
    assert mem.bytes_read(8, "worst") == mem.params * mem.bytes_per_param  # 8*4*2 = 64 rows
    assert mem.bytes_read(7, "worst") < mem.params * mem.bytes_per_param
    assert mem.bytes_read(10**6) == pytest.approx(mem.params * mem.bytes_per_param)
    assert mem.rows_touched(10**6) <= mem.num_values


def test_expected_never_exceeds_worst():
    moe = MoESpec(d_model=16, d_expert=32, num_experts=34, top_k=2)
    b = np.arange(1, 200, dtype=np.int64)
    assert np.all(moe.experts_touched(b) <= moe.experts_touched(b, "worst") + 1e-9)


@pytest.mark.parametrize("n, k, draws", [(16, 2, 5), (34, 2, 20), (50, 1, 30), (7, 7, 3)])
def test_expected_distinct_matches_monte_carlo(n, k, draws):
    g = torch.Generator().manual_seed(1234)
    trials = 4000
    # Each draw picks k distinct items: the k smallest of n uniform keys.
    picks = torch.rand(trials, draws, n, generator=g).argsort(dim=-1)[..., :k]
    hit = torch.zeros(trials, n, dtype=torch.bool)
    hit.scatter_(1, picks.reshape(trials, -1), True)
    distinct = hit.sum(dim=1).double()
    mean, se = distinct.mean().item(), distinct.std().item() / trials**0.5
    expected = expected_distinct(n, k, draws)
    assert abs(mean - expected) <= 4 * se + 1e-9, (mean, expected, se)


def test_expected_distinct_accurate_for_huge_tables():
    # n = 1e7, 1000 draws: almost no collisions; 1 - (1 - 1/n)^d computed naively loses digits.
    e = expected_distinct(10**7, 1, 1000)
    assert 1000 - 0.06 < e < 1000  # collisions ~ d^2 / (2n) = 0.05


# --- the paper's 1.6B configurations ----------------------------------------------------------


def test_dense_config_matches_table1():
    dense = paper_1p6b_configs()["dense"]
    params, flops = PAPER_TABLE1["dense"]
    assert dense.params == pytest.approx(params, rel=0.01)
    assert dense.flops(1) == pytest.approx(flops, rel=0.01)


def test_table1_expert_width_reproduces_both_table1_numbers():
    moe = paper_1p6b_configs("table1")["moe"]
    params, flops = PAPER_TABLE1["moe"]
    assert moe.params == pytest.approx(params, rel=0.01)
    # The width was solved from the parameter count; the FLOPs are an independent check.
    assert moe.flops(1) == pytest.approx(flops, rel=0.01)


def test_half_mlp_experts_have_dense_compute():
    cfg = paper_1p6b_configs("half_mlp")
    assert cfg["moe"].ffn.d_expert == 2 * 2048
    assert cfg["moe"].flops(1) == pytest.approx(cfg["dense"].flops(1), rel=0.01)


@pytest.mark.parametrize("width", ["table1", "half_mlp"])
def test_ultramem_matches_moe_params_and_compute(width):
    cfg = paper_1p6b_configs(width)
    moe, um = cfg["moe"], cfg["ultramem"]
    assert um.params == pytest.approx(moe.params, rel=0.005)
    assert um.flops(1) == pytest.approx(moe.flops(1), rel=0.01)
    # x12: sparse (value) parameters are about twelve times the dense model.
    sparse = um.num_memory_layers * um.memory.value_params
    assert 10 < sparse / cfg["dense"].params < 13
    assert um.memory.expansion == 4 and um.memory.tucker_rank == 2 and um.memory.num_cores == 2


def test_paper_ratio_shape_and_order():
    cfg = paper_1p6b_configs()
    moe, um = cfg["moe"], cfg["ultramem"]
    ratios = {b: moe_over_ultramem_ratio(moe, um, b) for b in (1, 64, 256, 1024)}
    # B = 1: two experts per layer read about as much as the dense FFN.
    assert ratios[1] == pytest.approx(1.0, abs=0.1)
    # Mid batch sizes: an order of magnitude, as in Fig. 1c (13.0-18.8x) ...
    for b in (64, 256, 1024):
        assert 5 < ratios[b] < 20, (b, ratios[b])
    # ... falling at large batch as UltraMem's value reads grow (Fig. 1c ends on its smallest ratio).
    assert ratios[64] > ratios[256] > ratios[1024]


def test_ratio_ceiling_explains_gap_to_fig1c():
    cfg = paper_1p6b_configs()
    moe, um = cfg["moe"], cfg["ultramem"]
    fixed = um.num_layers * (um.attention_params + um.ffn.params) + um.num_memory_layers * um.memory.dense_params
    ceiling = moe.params / fixed
    b = np.unique(np.logspace(0, 4, 200).astype(np.int64))
    assert np.all(moe_over_ultramem_ratio(moe, um, b) <= ceiling)
    # Under these assumptions no batch size reaches the paper's larger ratios; see the
    # docstring of paper_1p6b_configs. If this fails, the assumptions changed: update the docs.
    assert ceiling < max(PAPER_FIG1C_RATIOS)


def test_kv_cache_pulls_ratio_towards_one():
    plain = paper_1p6b_configs()
    kv = paper_1p6b_configs(kv_cache_len=2048)
    r_plain = moe_over_ultramem_ratio(plain["moe"], plain["ultramem"], 256)
    r_kv = moe_over_ultramem_ratio(kv["moe"], kv["ultramem"], 256)
    assert 1 < r_kv < r_plain


def test_memory_access_curve_rows():
    cfg = paper_1p6b_configs()
    rows = memory_access_curve(list(cfg.values()), [1, 16, 256])
    assert len(rows) == 9
    assert [r["name"] for r in rows[:3]] == ["Dense-1.6B"] * 3
    assert [r["batch_size"] for r in rows[:3]] == [1, 16, 256]
    for r in rows:
        assert r["bytes_per_token"] == pytest.approx(r["bytes_read"] / r["batch_size"])
    moe_rows = [r for r in rows if r["name"].startswith("MoE")]
    assert moe_rows[0]["bytes_read"] < moe_rows[1]["bytes_read"] < moe_rows[2]["bytes_read"]


# --- validation ------------------------------------------------------------------------------


def test_validation_errors():
    with pytest.raises(ValueError, match="d_model"):
        DenseFFNSpec(d_model=0, d_ff=4)
    with pytest.raises(TypeError, match="d_ff"):
        DenseFFNSpec(d_model=4, d_ff=4.0)
    with pytest.raises(ValueError, match="top_k"):
        MoESpec(d_model=4, d_expert=4, num_experts=2, top_k=3)
    with pytest.raises(ValueError, match="perfect square"):
        UltraMemSpec(d_model=4, num_values=5, value_dim=2, key_dim=2, num_heads=1, top_m=1)
    ffn = DenseFFNSpec(4, 4)
    with pytest.raises(ValueError, match="batch_size"):
        ffn.bytes_read(0)
    with pytest.raises(TypeError, match="batch_size"):
        ffn.bytes_read(2.0)
    with pytest.raises(TypeError, match="batch_size"):
        ffn.bytes_read(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="mode"):
        ffn.bytes_read(1, mode="average")
    with pytest.raises(ValueError, match="d_model"):
        ModelSpec("bad", 2, 8, ffn)
    with pytest.raises(ValueError, match="num_memory_layers"):
        ModelSpec("bad", 2, 4, ffn, memory=None, num_memory_layers=2)
    with pytest.raises(TypeError, match="specs"):
        memory_access_curve(ffn, [1])
    with pytest.raises(TypeError, match=r"specs\[1\]"):
        memory_access_curve([ffn, "moe"], [1])
    with pytest.raises(ValueError, match=r"batch_sizes\[1\]"):
        memory_access_curve([ffn], [1, 0])
    with pytest.raises(TypeError, match="moe"):
        moe_over_ultramem_ratio(None, ffn, 1)
    with pytest.raises(ValueError, match="max_batch"):
        crossover_batch(ffn, ffn, max_batch=0)
    with pytest.raises(ValueError, match="moe_expert_width"):
        paper_1p6b_configs("quarter")
    with pytest.raises(ValueError, match="picks_per_draw"):
        expected_distinct(4, 5, 1)
