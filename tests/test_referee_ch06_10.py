"""Checks behind chapters 6-10's corrected statements: the reference layer, the MoE/UltraMem crossover,
the top-m order statistics, and the one-pass forward variant of the lookup kernel.

The kernel test runs the Triton kernel through the interpreter on a CPU (TRITON_INTERPRET=1, set
before the kernels are first imported) and compiled on a CUDA machine.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import dataclasses
import math

import numpy as np
import pytest

from ultramem_edu import cost
from ultramem_edu.init import topm_mean_of_normals
from ultramem_edu.kernels.reference import value_lookup_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


# --- the reference layer ("UltraMem's layer", run_ultramem_v1.sh) ----------------------------


def test_reference_layer_has_the_released_scripts_sizes():
    layer = cost.ULTRAMEM_LAYER
    script = cost.RELEASED_V1_SCRIPT
    assert (script["d_model"], script["n_layers"], script["mem_head"], script["mem_knn"]) == (768, 20, 2, 80)
    assert (script["mem_kdim"], script["mem_vdim"], script["mem_knum"]) == (192, 384, 808)
    assert layer.num_values == 808**2 == 652_864
    assert layer.keys_per_side == 1616                       # n' = sqrt(E) * knum, the released key_num
    assert layer.top_m * layer.num_heads == 160
    assert layer.value_dim * 2 == layer.d_model              # half D_v
    # parameters by hand: query D*2*D_k, keys H*2*n'*D_k*r, cores H*h*r^2, values N*D_v, output E*D_v*D
    assert layer.params == (768 * 384 + 2 * 2 * 1616 * 192 * 2 + 2 * 2 * 4 + 652_864 * 384 + 4 * 384 * 768)
    assert len(script["mem_insert_way"].split("/")) == 4     # four memory layers in the 20-block model


def test_reference_layer_labels_its_deviations():
    assert cost.reference_layer() == cost.ULTRAMEM_LAYER
    assert cost.deviations_from_reference(cost.ULTRAMEM_LAYER) == {}
    spec = cost.reference_layer(num_cores=8, top_m=16)
    assert cost.deviations_from_reference(spec) == {"num_cores": (2, 8), "top_m": (80, 16)}
    assert "num_cores 2 -> 8" in spec.name and "top_m 80 -> 16" in spec.name
    with pytest.raises(TypeError, match="changes must be UltraMemSpec fields"):
        cost.reference_layer(cores=8)
    with pytest.raises(TypeError, match="spec must be an UltraMemSpec"):
        cost.deviations_from_reference("layer")


def test_more_cores_cost_a_few_percent_at_the_released_top_m():
    """With m = 80 the exact m x m rescoring per core is no longer negligible: h = 8 adds 4.5 %."""
    flops = {h: cost.reference_layer(num_cores=h).flops(1) for h in (1, 2, 8)}
    assert 0.005 < flops[2] / flops[1] - 1 < 0.01
    assert 0.04 < flops[8] / flops[1] - 1 < 0.05


# --- the MoE / UltraMem crossover ------------------------------------------------------------


def test_batch_reading_fraction_is_the_smallest_such_batch():
    layer = cost.ULTRAMEM_LAYER
    for fraction in (0.5, 0.9, 0.99):
        b = cost.batch_reading_fraction(layer, fraction)
        assert layer.rows_touched(b) >= fraction * layer.num_values > layer.rows_touched(b - 1)
        assert b == pytest.approx(layer.full_read_batch * math.log(1 / (1 - fraction)), rel=1e-3)
    with pytest.raises(ValueError, match="fraction must be a number in"):
        cost.batch_reading_fraction(layer, 1.0)
    with pytest.raises(TypeError, match="memory must be an UltraMemSpec"):
        cost.batch_reading_fraction(cost.DenseFFNSpec(4, 8), 0.5)


def test_the_expected_crossover_is_set_by_the_parameter_difference():
    models = cost.paper_1p6b_configs()
    moe, um = models["moe"], models["ultramem"]
    surplus = um.params - moe.params
    assert 0 < surplus < 1e-6 * moe.params               # the rebuilt models differ by 16,480 parameters
    value_params = um.num_memory_layers * um.memory.value_params
    cross = cost.crossover_batch(moe, um)
    unread = 1 - um.memory.rows_touched(cross) / um.memory.num_values
    assert unread == pytest.approx(surplus / value_params, rel=1e-3)
    # closed form: exp(-B m H / N) = surplus / value params
    predicted = um.memory.full_read_batch * math.log(value_params / surplus)
    assert abs(cross - predicted) <= 1
    # the MoE never reads more than all of its weights, UltraMem never more than all of its own
    big = np.array([cross, 10 * cross])
    assert np.all(moe.bytes_read(big) <= 2 * moe.params) and np.all(um.bytes_read(big) <= 2 * um.params)
    # so an MoE a little larger than UltraMem (one more unit of expert width) is never caught up
    wider = dataclasses.replace(moe, ffn=dataclasses.replace(moe.ffn, d_expert=moe.ffn.d_expert + 1))
    assert wider.params > um.params and cost.crossover_batch(wider, um) is None
    # the worst case crosses once every selection is a distinct row and the table is read: B = N / (m H)
    worst = cost.crossover_batch(moe, um, mode="worst")
    assert worst == math.ceil(um.memory.full_read_batch)


# --- top-m of n normals: threshold, mean, guide ----------------------------------------------


def test_top_m_threshold_mean_and_guide_for_n256_m8():
    from scipy.stats import norm

    n, m = 256, 8
    threshold = norm.ppf(1 - m / n)
    guide = math.sqrt(2 * math.log(n / m))
    est, se = topm_mean_of_normals(n, m, samples=20_000, generator=torch.Generator().manual_seed(0))
    assert round(threshold, 2) == 1.86 and round(guide, 2) == 2.63
    assert abs(est - 2.23) < 0.01 and se < 0.003
    assert threshold < est < guide


def test_expected_maximum_of_three_normals_has_a_closed_form():
    from scipy import integrate
    from scipy.stats import norm

    e_max3, _ = integrate.quad(lambda x: 3 * x * norm.pdf(x) * norm.cdf(x) ** 2, -np.inf, np.inf)
    assert e_max3 == pytest.approx(3 / (2 * math.sqrt(math.pi)), abs=1e-10)


# --- the one-pass forward kernel -------------------------------------------------------------


@pytest.mark.parametrize("n, d_v, b, k, e, h", [
    (16, 8, 3, 24, 1, 1),      # one block: the same as the default kernel
    (16, 8, 3, 24, 3, 2),      # E not a power of two: padded block slots are never stored
    (8, 12, 2, 17, 4, 3),      # slice width 4, k with a partial tile
    (10, 16, 2, 40, 5, 2),     # E = 5 pads to 8
    (6, 8, 2, 1, 4, 1),        # k = 1: three blocks nobody selects come out zero
])
def test_onepass_forward_matches_the_reference(n, d_v, b, k, e, h):
    from ultramem_edu.kernels import value_lookup_triton as kernels

    g = torch.Generator().manual_seed(n * 100 + k)
    values = torch.randn(n, d_v, generator=g).to(DEVICE)
    indices = torch.randint(0, e * n, (b, k), generator=g).to(DEVICE)
    indices[0, 0] = e * n - 1                               # the last row of the last block
    scores = torch.randn(b, k, h, generator=g).to(DEVICE)
    got = kernels.lookup_forward_onepass(values, indices, scores, e)
    want = value_lookup_reference(values.double(), indices, scores.double(), e)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, kernels.lookup_forward(values, indices, scores, e), rtol=1e-5, atol=1e-5)


def test_onepass_forward_handles_empty_inputs():
    from ultramem_edu.kernels import value_lookup_triton as kernels

    values = torch.randn(4, 8).to(DEVICE)
    out = kernels.lookup_forward_onepass(values, torch.zeros(2, 0, dtype=torch.long).to(DEVICE),
                                         torch.zeros(2, 0, 1).to(DEVICE), 2)
    assert out.shape == (2, 2, 8) and not out.any()
    assert kernels.lookup_forward_onepass(values, torch.zeros(0, 3, dtype=torch.long).to(DEVICE),
                                          torch.zeros(0, 3, 1).to(DEVICE), 2).shape == (0, 2, 8)


def test_exact_top_m_mean_matches_closed_forms_and_monte_carlo():
    from ultramem_edu.init import normal_order_statistic_means, topm_mean_exact, topm_threshold

    assert topm_mean_exact(2, 1) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-10)
    assert topm_mean_exact(3, 1) == pytest.approx(3 / (2 * math.sqrt(math.pi)), abs=1e-10)
    e_max5 = 5 / (4 * math.sqrt(math.pi)) * (1 + 6 / math.pi * math.asin(1 / 3))
    assert topm_mean_exact(5, 1) == pytest.approx(e_max5, abs=1e-10)
    # the order statistics of a symmetric law: the n means sum to zero and mirror each other
    means = normal_order_statistic_means(7, 7)
    assert abs(float(means.sum())) < 1e-10 and torch.allclose(means, -means.flip(0), atol=1e-10)
    est, se = topm_mean_of_normals(256, 8, samples=20_000, generator=torch.Generator().manual_seed(1))
    assert abs(topm_mean_exact(256, 8) - est) < 4 * se
    assert round(topm_threshold(256, 8), 2) == 1.86 and round(topm_mean_exact(256, 8), 2) == 2.23
    with pytest.raises(ValueError, match="m"):
        topm_threshold(8, 8)


def test_onepass_kernel_builds_for_a100_and_hopper_with_wide_loads():
    """Ahead of time, without a GPU (a child process compiles; see test_kernel_inspect.py)."""
    from ultramem_edu.kernels import inspect as ki

    variants = [ki.Variant("fwd_onepass", arch, "bfloat16", "int64") for arch in ki.ARCHS]
    reports = ki.inspect_variants(variants + [ki.Variant("fwd", 90, "bfloat16", "int64")])
    onepass, default = reports[:-1], reports[-1]
    assert all(r["ok"] for r in reports), [r["error"] for r in reports if not r["ok"]]
    assert all(r["spill_stores"] == r["spill_loads"] == 0 for r in onepass)
    assert all(r["min_row_load_bits"] == 128 for r in onepass)
    # the wider accumulator costs registers, hence resident programs
    assert onepass[1]["registers"] > default["registers"]
    assert onepass[1]["occupancy"]["blocks_per_sm"] < default["occupancy"]["blocks_per_sm"]
