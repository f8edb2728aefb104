"""The sharded value table on real gloo process groups (2 and 4 processes on 127.0.0.1).

Every distributed test starts its own group through ``run_group``, which kills the processes and
fails after its timeout, so nothing here can hang; each takes a few seconds to start.
"""
import math
import time

import numpy as np
import pytest

from ultramem_edu.cost import paper_1p6b_configs
from ultramem_edu.distributed import shard_layer
from ultramem_edu.distributed.checks import TEST_CONFIG, bad_wrap, dead_peer, sleeper, layer_equivalence, lookup_equivalence
from ultramem_edu.distributed.comm_model import (
    column_bytes, column_total, crossover_tokens, request_matrix, row_bytes, row_bytes_expected,
)
from ultramem_edu.distributed.ddp import ddp_step_check
from ultramem_edu.distributed.launch import GroupError, run_group
from ultramem_edu.distributed.memory import min_ranks, paper_rank_memory, rank_memory, table_and_rest
from ultramem_edu.distributed.shard import column_core_map
from ultramem_edu.layer import UltraMemConfig, UltraMemLayer

TOL = 1e-10   # float64
group_test = pytest.mark.slow    # starts a real process group: a few seconds to start, under a minute in all


def _assert_equivalent(results, world):
    assert len(results) == world
    for r in results:
        assert r["indices_equal"]
        for key in ("output", "input_grad", "value_grad", "replicated_grad"):
            assert r[key] < TOL, (key, r[key])
        assert r["measured"] == r["model"]
        assert sum(r["measured"].values()) > 0


@group_test
@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("scheme", ["column", "row"])
def test_sharded_layer_matches_single_process(scheme, world):
    results = run_group(layer_equivalence, world, scheme, timeout=150)
    _assert_equivalent(results, world)
    d_v, n = TEST_CONFIG["value_dim"], TEST_CONFIG["num_values"]
    expected = (n, d_v // world) if scheme == "column" else (n // world, d_v)
    assert all(r["shard_shape"] == expected for r in results)


@group_test
def test_row_scheme_without_dedup_matches_and_sends_more():
    plain = run_group(layer_equivalence, 2, "row", 6, 0, False, timeout=150)
    _assert_equivalent(plain, 2)
    dedup = run_group(layer_equivalence, 2, "row", 6, 0, True, timeout=150)
    # the table has 64 rows and each rank selects 6·2·4 = 48: repeats are certain
    assert sum(sum(r["measured"].values()) for r in plain) > sum(sum(r["measured"].values()) for r in dedup)


@group_test
@pytest.mark.parametrize("pattern", ["hot", "same", "uneven"])
@pytest.mark.parametrize("scheme", ["column", "row"])
def test_lookups_with_hot_rows_and_shared_indices(scheme, pattern):
    """4 ranks all selecting rank 0's rows (uneven load), all selecting the same addresses, or
    holding different numbers of tokens."""
    results = run_group(lookup_equivalence, 4, scheme, pattern, timeout=150)
    for r in results:
        assert r["output"] < TOL and r["table_grad"] < TOL and r["scores_grad"] < TOL, r
        if "model" in r:
            assert r["measured"] == r["model"]
    assert ("model" in results[0]) == (scheme == "row" or pattern != "uneven")
    if scheme == "row" and pattern == "hot":
        served = [r["measured"]["rows"] for r in results]
        assert served[0] > 0 and served[1:] == [0, 0, 0]         # one rank serves every other rank
        assert np.array(results[0]["requests"])[:, 1:].sum() == 0


@group_test
@pytest.mark.parametrize("scheme", ["column", "row"])
def test_ddp_step_equals_single_process_step(scheme):
    results = run_group(ddp_step_check, 2, scheme, 1, timeout=180)
    for r in results:
        assert r["losses"][0] == pytest.approx(r["reference_losses"][0], abs=1e-6)
        # the global gradient norm (replicated once + shards summed over ranks) is the one-process norm,
        # and above the clipping threshold, so the clipping's scale is tested too
        assert r["grad_norms"][0] == pytest.approx(r["reference_grad_norms"][0], rel=1e-5)
        assert r["grad_norms"][0] > r["grad_clip"]
        assert r["max_param_change"] > 1e-3                      # the step did move the parameters
        assert r["max_param_diff"] < 1e-5                        # ... the same way in both runs


@group_test
@pytest.mark.parametrize("case, world, words", [
    ("divide", 3, "needs the group size to divide num_values"),
    ("config", 2, "disagrees with rank 0 on config fields ['topm']"),
    ("scheme", 2, "rank 1: scheme must be one of"),
])
def test_bad_wrap_fails_on_every_rank(case, world, words):
    t0 = time.perf_counter()
    errors = run_group(bad_wrap, world, case, timeout=120, collective_timeout=10)
    assert all(words in e for e in errors), errors
    assert time.perf_counter() - t0 < 120


@group_test
def test_dead_rank_gives_an_error_not_a_hang():
    t0 = time.perf_counter()
    errors = run_group(dead_peer, 2, timeout=120, collective_timeout=5, return_errors=True)
    assert isinstance(errors[0], str) and "RuntimeError" in errors[0]
    assert "without a result" in errors[1]
    assert time.perf_counter() - t0 < 120


@group_test
def test_run_group_times_out():
    t0 = time.perf_counter()
    with pytest.raises(GroupError, match="did not finish within 5"):
        run_group(sleeper, 1, 60.0, timeout=5)
    assert time.perf_counter() - t0 < 30


# ------------------------------------------------------------------------------- no processes
def test_shard_layer_needs_a_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        shard_layer(UltraMemLayer(UltraMemConfig(**TEST_CONFIG)))


@pytest.mark.parametrize("d_v, h, lo, hi", [(8, 2, 0, 4), (8, 2, 4, 8), (8, 2, 2, 4), (8, 4, 0, 4), (12, 2, 4, 8),
                                             (24, 4, 9, 18)])
def test_column_core_map_groups_stay_inside_a_core(d_v, h, lo, hi):
    g, cores = column_core_map(d_v, h, lo, hi)
    s = d_v // h
    assert len(cores) * g == hi - lo
    for i, c in enumerate(cores):
        first, last = lo + i * g, lo + (i + 1) * g - 1
        assert first // s == last // s == c


def test_column_model_total_is_the_sum_of_its_parts():
    for tokens, ranks in [(1, 2), (7, 4), (100, 8)]:
        parts = column_bytes(tokens, 2, 64, 1024, ranks)
        assert sum(parts.values()) == column_total(tokens, 2, 64, 1024, ranks)
    with pytest.raises(ValueError, match="ranks must divide value_dim"):
        column_bytes(4, 2, 8, 10, 4)


def test_row_model_expectation_matches_sampling():
    rng = np.random.default_rng(0)
    tokens, heads, topm, d_v, ranks, n = 50, 2, 8, 16, 4, 4096
    sent = []
    for _ in range(200):
        idx = [rng.integers(0, n, size=(tokens, heads * topm)) for _ in range(ranks)]
        req = request_matrix(idx, n, ranks)
        sent.append(np.mean([sum(row_bytes(req, p, d_v).values()) for p in range(ranks)]))
    expected = row_bytes_expected(tokens, heads, topm, d_v, ranks, n)
    assert float(np.mean(sent)) == pytest.approx(float(expected), rel=0.01)


def test_crossover_is_where_the_row_scheme_starts_to_win():
    kw = dict(heads=2, topm=64, value_dim=1024, ranks=8, num_values=3_189_796)
    b = crossover_tokens(**kw)
    assert b is not None and b > 1

    def gap(t):
        return float(row_bytes_expected(t, kw["heads"], kw["topm"], kw["value_dim"], kw["ranks"], kw["num_values"])
                     - column_total(t, kw["heads"], kw["topm"], kw["value_dim"], kw["ranks"]))
    assert gap(b) < 0 <= gap(b - 1)
    assert crossover_tokens(**{**kw, "ranks": 1}) is None
    assert crossover_tokens(**kw, dedup=False) is None      # without dedup rows never get cheaper


def test_memory_accounting_of_the_paper_model():
    spec = paper_1p6b_configs()["ultramem"]
    table, rest = table_and_rest(spec)
    assert table + rest == spec.params
    assert table == spec.num_memory_layers * spec.memory.num_values * spec.memory.value_dim
    per_rank = paper_rank_memory((1, 2, 64))
    assert per_rank[0].total == pytest.approx(16 * spec.params)
    assert per_rank[2].table == pytest.approx(per_rank[0].table / 64)
    assert per_rank[1].replicated == per_rank[0].replicated
    p = min_ranks(table, rest, 80e9)
    assert rank_memory(table, rest, p).total <= 80e9 < rank_memory(table, rest, p // 2).total
    assert min_ranks(table, rest, 16 * rest * 0.5) is None
    with pytest.raises(ValueError, match="precision"):
        rank_memory(1, 1, 1, precision="fp8")
    assert math.isclose(rank_memory(10, 0, 1, "fp32").total, 160)


@pytest.mark.parametrize("scheme", ["column", "row"])
def test_scheme_diagrams_keep_their_texts_apart(scheme):
    from ultramem_edu.distributed.pictures import WIDTH, scheme_diagram
    from ultramem_edu.viz.diagrams import DiagramArgumentError, text_boxes

    svg = scheme_diagram(scheme).svg
    boxes = text_boxes(svg)
    assert len(boxes) > 10
    for x0, _, x1, _, text in boxes:
        assert 0 <= x0 and x1 <= WIDTH, text
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a[4], b[4])
    assert svg.count('class="message"') == 4                   # two exchanges, both directions
    with pytest.raises(DiagramArgumentError, match="scheme"):
        scheme_diagram("diagonal")


def test_torchrun_entry_point_explains_how_to_start_it(monkeypatch, capsys):
    from ultramem_edu.distributed.__main__ import main

    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit):
        main(["--steps", "1"])
    assert "torchrun --nproc_per_node 2" in capsys.readouterr().err


# ------------------------------------------------------------------- FSDP2, ZeRO and expert parallel
@group_test
@pytest.mark.parametrize("scheme", ["column", "row"])
def test_fsdp_steps_equal_single_process_steps(scheme):
    """FSDP2 (fully_shard) over everything but the table shards, on gloo: two clipped steps."""
    from ultramem_edu.distributed.fsdp import fsdp_step_check

    results = run_group(fsdp_step_check, 2, scheme, 2, timeout=180)
    for r in results:
        assert r["dtensor_params"] > 10                          # the replicated part really is sharded
        assert r["replicated_local"] == r["replicated_total"] // 2
        assert r["table_local"] == r["table_total"] // 2
        assert r["losses"] == pytest.approx(r["reference_losses"], abs=1e-5)
        assert r["grad_norms"] == pytest.approx(r["reference_grad_norms"], rel=1e-5)
        assert min(r["grad_norms"]) > r["grad_clip"]             # the distributed norm is the clipped one
        assert r["max_param_change"] > 1e-3
        assert r["max_param_diff"] < 1e-5


def test_fully_shard_model_checks_its_arguments():
    from ultramem_edu.distributed.fsdp import fully_shard_model

    with pytest.raises(TypeError, match="model must be a TransformerLM"):
        fully_shard_model(UltraMemLayer(UltraMemConfig(**TEST_CONFIG)))
    from ultramem_edu.distributed.ddp import tiny_lm
    with pytest.raises(RuntimeError, match="process group"):
        fully_shard_model(tiny_lm(vocab_size=16, d_model=32, n_layers=2, seq_len=8, num_values=16 * 16, init_samples=32))


def test_zero_stages_shard_what_they_say():
    from ultramem_edu.distributed.memory import zero_comm_bytes, zero_rank_memory

    table, rest, p = 1000.0, 64.0, 8
    stages = [zero_rank_memory(table, rest, p, s) for s in range(4)]
    assert stages[0].total == pytest.approx(rank_memory(table, rest, p).total)      # stage 0 = DDP
    assert stages[0].rest == 16 * rest
    assert stages[1].rest == pytest.approx((2 + 2) * rest + 12 * rest / p)          # optimizer state / P
    assert stages[2].rest == pytest.approx(2 * rest + 14 * rest / p)                # + gradients
    assert stages[3].rest == pytest.approx(16 * rest / p)                           # + weights
    assert all(s.table == stages[0].table for s in stages)
    assert zero_comm_bytes(rest, p, 3) == pytest.approx(1.5 * zero_comm_bytes(rest, p, 1))
    assert zero_comm_bytes(rest, 1, 3) == 0
    assert zero_comm_bytes(rest, 2, 0) == pytest.approx(2 * 0.5 * rest * 2)
    with pytest.raises(ValueError, match="stage"):
        zero_rank_memory(table, rest, p, 4)
    with pytest.raises(TypeError, match="stage"):
        zero_comm_bytes(rest, p, 1.0)


def _moe_brute_force(routes, owner, d_model, ranks, dedup, ib=8, fb=4):
    """Walk every token and every chosen expert, rank by rank."""
    out = [dict.fromkeys(("counts", "expert ids", "tokens", "outputs", "outputs (backward)", "tokens (backward)"), 0)
           for _ in range(ranks)]
    for p, ids in enumerate(routes):
        for token in ids:
            seen = set()
            for e in token:
                q = int(owner[e])
                if q == p:
                    continue
                out[p]["expert ids"] += ib
                if dedup and q in seen:
                    continue
                seen.add(q)
                for key, who in (("tokens", p), ("outputs (backward)", p), ("outputs", q), ("tokens (backward)", q)):
                    out[who][key] += d_model * fb
    for d in out:
        d["counts"] = (ranks - 1) * ib
    return out


@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize("experts, ranks, k", [(8, 4, 2), (34, 8, 2), (6, 4, 3)])
def test_moe_all_to_all_counted_and_expected(experts, ranks, k, dedup):
    import itertools

    from ultramem_edu.distributed.comm_model import expert_owner, moe_all_to_all_bytes, moe_all_to_all_counted

    owner = expert_owner(experts, ranks)
    assert np.bincount(owner).max() - np.bincount(owner).min() <= 1 and len(owner) == experts
    rng = np.random.default_rng(experts + k)
    routes = [np.stack([rng.choice(experts, k, replace=False) for _ in range(5 + p)]) for p in range(ranks)]
    assert moe_all_to_all_counted(routes, 16, experts, ranks, dedup) == _moe_brute_force(routes, owner, 16, ranks, dedup)
    if experts <= 8:
        # exact expectation: every token on every rank, every set of k experts, equally likely
        subsets = [np.array(c) for c in itertools.combinations(range(experts), k)]
        every = [np.stack(subsets) for _ in range(ranks)]
        counted = moe_all_to_all_counted(every, 16, experts, ranks, dedup)
        mean = {key: np.mean([c[key] for c in counted]) / len(subsets) for key in counted[0] if key != "counts"}
        expected = moe_all_to_all_bytes(1, 16, k, experts, ranks, dedup)
        for key, v in mean.items():
            assert expected[key] == pytest.approx(v), key
    if not dedup:
        assert sum(moe_all_to_all_bytes(10, 16, k, experts, ranks).values()) == pytest.approx(
            (ranks - 1) * 8 + 10 * k * (ranks - 1) / ranks * (8 + 4 * 16 * 4))


def test_moe_all_to_all_checks_its_arguments():
    from ultramem_edu.distributed.comm_model import expert_owner, moe_all_to_all_bytes, moe_all_to_all_counted

    with pytest.raises(ValueError, match="ranks must be <= num_experts"):
        expert_owner(4, 8)
    with pytest.raises(ValueError, match="top_k"):
        moe_all_to_all_bytes(4, 16, 5, 4, 2)
    with pytest.raises(TypeError, match="dedup_ranks"):
        moe_all_to_all_bytes(4, 16, 2, 4, 2, dedup_ranks=1)
    with pytest.raises(ValueError, match="must lie in"):
        moe_all_to_all_counted([np.array([[0, 4]]), np.array([[1, 2]])], 16, 4, 2)
    with pytest.raises(ValueError, match="one array per rank"):
        moe_all_to_all_counted([np.array([[0, 1]])], 16, 4, 2)


def test_row_pooled_bytes_counted_and_expected():
    """Pooling at the owner (TorchRec's row-wise embedding bag): a brute-force walk over the
    selections, and the expectation against many uniform draws."""
    from ultramem_edu.distributed.comm_model import row_pooled_bytes, row_pooled_bytes_expected

    n, p, d_v, h, e, k = 64, 4, 8, 2, 4, 6
    rng = np.random.default_rng(3)
    idx = [rng.integers(0, n, size=(7 + r, k)) for r in range(p)]
    want = [dict.fromkeys(("counts", "addresses", "scores", "partial outputs", "partial outputs (backward)",
                           "scores (backward)"), 0) for _ in range(p)]
    for r, rows in enumerate(idx):
        for token in rows:
            owners = set()
            for row in token:
                q = int(row) // (n // p)
                if q == r:
                    continue
                want[r]["addresses"] += 8
                want[r]["scores"] += 4 * h
                want[q]["scores (backward)"] += 4 * h
                owners.add(q)
            for q in owners:
                want[q]["partial outputs"] += e * d_v * 4
                want[r]["partial outputs (backward)"] += e * d_v * 4
    for w in want:
        w["counts"] = (p - 1) * 8
    assert row_pooled_bytes(idx, n, p, d_v, h, e) == want
    # expectation: 4 ranks x 2000 tokens of uniform draws, averaged over ranks
    big = [rng.integers(0, 4096, size=(2000, 20)) for _ in range(p)]
    counted = row_pooled_bytes(big, 4096, p, 16, h, e)
    expected = row_pooled_bytes_expected(2000, 2, 10, 16, p, h, e)
    for key in expected:
        assert np.mean([c[key] for c in counted]) == pytest.approx(expected[key], rel=0.01), key
    with pytest.raises(ValueError, match="ranks must divide num_values"):
        row_pooled_bytes(idx, 63, p, d_v)


def test_the_assumption_label_states_the_assumed_sizes():
    from ultramem_edu.cost import PAPER_1P6B_ASSUMED

    spec = paper_1p6b_configs()["ultramem"]
    mem = spec.memory
    for text in (f"D = {spec.d_model}", f"{spec.num_layers} blocks", f"H = {mem.num_heads}", f"m = {mem.top_m}",
                 f"D_k = {mem.key_dim}", f"D_v = D/2 = {mem.value_dim}", "six memory layers", "Table 6"):
        assert text in PAPER_1P6B_ASSUMED, text
    assert spec.num_memory_layers == 6
