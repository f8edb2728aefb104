"""The benchmark package: quick modes run and write complete results; byte counting on hand cases."""
import json

import pytest
import torch

from ultramem_edu.benchmarks import PeakTensorMemory, interleaved_medians, metadata, Timer
from ultramem_edu.benchmarks import decode, peer
from ultramem_edu.benchmarks.__main__ import main as cli
from ultramem_edu.layer import UltraMemConfig, UltraMemLayer
from ultramem_edu.moe import DenseFFN, DenseFFNConfig, MoEConfig, MoEFFN

METADATA_FIELDS = {"date_utc", "device", "device_name", "torch_threads", "torch", "python", "numpy", "commit",
                   "worktree_dirty", "benchmark", "quick", "dtype", "config"}


def test_decode_quick_writes_json_and_csv(tmp_path):
    assert cli(["decode", "--quick", "--out", str(tmp_path), "--device", "cpu"]) == 0
    data = json.loads((tmp_path / "bench_decode_quick.json").read_text())
    assert METADATA_FIELDS <= set(data["metadata"])
    assert data["metadata"]["torch_threads"] == 1 and data["metadata"]["quick"] is True
    assert "QUICK MODE" in data["notes"][0]
    rows = data["rows"]
    assert {r["model"] for r in rows} == set(decode.MODELS)
    assert {r["batch_size"] for r in rows} == set(decode.QUICK_BATCHES)
    for r in rows:
        assert r["median_ms"] > 0 and r["reps"] >= 3 and r["touched_bytes"] > 0
        # the counted bytes include biases and norm weights the cost model leaves out: a few % above,
        # never far below (selection is near uniform for a fresh module)
        assert 0.8 < r["touched_bytes"] / r["modelled_bytes_expected"] < 1.15
    m = data["models"]
    assert m["ultramem"]["activated_params_per_token"] == pytest.approx(m["moe"]["activated_params_per_token"], rel=0.01)
    assert m["ultramem"]["total_params"] == pytest.approx(m["moe"]["total_params"], rel=0.01)
    assert m["ultramem_layer"]["total_params"] == pytest.approx(m["moe"]["total_params"], rel=0.01)
    assert {r["ratio"] for r in data["ratios"]} == {"moe/ultramem", "moe/dense", "ultramem/dense", "moe/ultramem_layer"}
    assert (tmp_path / "bench_decode_quick.csv").read_text().startswith("model,batch_size,")


def test_peer_quick_runs_or_skips_cleanly(tmp_path):
    assert cli(["peer", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench_peer_quick.json").read_text())
    assert METADATA_FIELDS <= set(data["metadata"])
    impls = {r["impl"] for r in data["rows"]}
    assert "ours" in impls
    if "skipped" in data["peer"]:
        assert impls == {"ours"} and "pip install --no-deps" in data["peer"]["skipped"]
    else:
        assert impls == {"ours", "ultra_mem"}
        audit = data["audit"]
        assert audit["key_layernorm_unused"] is True
        assert audit["ive_pooling_overwrites"]["bug"] is True
        assert audit["memory_gradient_sign"]["train_over_eval_gradient"] == pytest.approx(-10.0)
    for r in data["rows"]:
        assert r["peak_activation_bytes"] > 0 and r["median_ms"] > 0


def test_moe_bytes_hand_case():
    torch.manual_seed(0)
    moe = MoEFFN(MoEConfig(d_model=4, n_experts=4, top_k=1, expert_hidden=3))
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[2, 0] = 10.0          # token with x[0] > 0 → expert 2
        moe.router.weight[1, 1] = 10.0          # token with x[1] > 0 → expert 1
    x = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [2.0, 0, 0, 0]])
    got = decode.touched_bytes(moe, x)
    expert_bytes = (4 * 3 + 3 + 3 * 4 + 4) * 4  # two weights and two biases, float32
    assert got["distinct_experts"] == 2
    assert got["bytes"] == 4 * 4 * 4 + 2 * expert_bytes


def test_dense_bytes_hand_case():
    ffn = DenseFFN(DenseFFNConfig(d_model=3, hidden=5))
    got = decode.touched_bytes(ffn, torch.randn(7, 3))
    assert got["bytes"] == (3 * 5 + 5 + 5 * 3 + 3) * 4 and got["distinct_experts"] is None


def test_distinct_physical_rows_hand_case():
    # N = 4 physical rows, E = 2 virtual blocks: virtual v → row v % 4
    shuffle = torch.tensor([5, 1, 0, 4, 7, 3, 2, 6])
    indices = torch.tensor([[0, 1, 3], [2, 3, 6]])   # → virtual 5,1,4 | 0,4,2 → rows 1,1,0 | 0,0,2
    assert decode.distinct_physical_rows(indices, shuffle, 4) == 3
    assert decode.distinct_physical_rows(indices, None, 4) == 4     # no shuffle: 0,1,3,2,3,6%4=2


def test_ultramem_bytes_counts_non_value_params_plus_rows():
    layer = UltraMemLayer(UltraMemConfig(d_model=8, num_values=16, key_dim=4, num_heads=1, topm=2,
                                         init_samples=64)).eval()
    x = torch.randn(3, 8)
    got = decode.touched_bytes(layer, x)
    with torch.no_grad():
        idx = layer(x).indices
    rows = len(set((layer.shuffle[idx] % 16).reshape(-1).tolist()))
    others = sum(p.numel() for p in layer.parameters() if p is not layer.values)
    assert got["distinct_rows"] == rows
    assert got["bytes"] == (others + rows * layer.config.value_dim) * 4


def test_sizing_matches_the_modules():
    cfg = decode.DecodeConfig.quick()
    models = decode.build_models(cfg, torch.device("cpu"))    # raises if the counts drift from the layer
    assert models["ultramem"].ffn.config.hidden == decode.size_ultramem(cfg)["ffn_hidden"]
    specs = decode.spec_for(models["ultramem"])
    assert [type(s).__name__ for s in specs] == ["DenseFFNSpec", "UltraMemSpec"]


def test_peak_tensor_memory_counts_live_storages():
    a = torch.randn(100)
    with PeakTensorMemory() as tracker:
        b = a * 2          # 400 bytes
        c = b + 1          # 400 bytes, both alive
        del b
        d = c * 3          # b freed: still 800 live at most
    assert tracker.peak_bytes == 800
    assert d.shape == (100,)


def test_interleaved_medians_and_metadata():
    calls = []
    stats = interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                Timer(torch.device("cpu")), min_reps=3, max_reps=3, budget_s=0.0, warmup=0)
    assert calls == ["a", "b", "b", "a", "a", "b"]        # rotating order
    assert stats["a"]["reps"] == 3 and stats["a"]["median_ms"] >= 0
    meta = metadata(torch.device("cpu"), 1)
    assert meta["device"] == "cpu" and meta["torch"] == torch.__version__


def test_cli_rejects_unknown_benchmark(capsys):
    assert cli(["nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_peer_audit_needs_no_network():
    cls, version = peer.load_peer()
    if cls is None:
        pytest.skip(version)
    audit = peer.audit_peer(cls)
    assert audit["lr_multiplier"]["package"][2] == pytest.approx(1.0)     # 1x already at T/2
    assert audit["ive_copies_adjacent"]["package_fraction_neighbours_same_row"] > 0.7
    assert audit["ive_copies_adjacent"]["ours_fraction_neighbours_same_row"] < 0.05
