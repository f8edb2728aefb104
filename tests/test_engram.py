"""Engram: hashing against plain Python integers, the efficient path against the dense reference,
gradients, the prefetch property, the model hook, validation, and the host-offload cost model."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.cost import UltraMemSpec, expected_distinct
from ultramem_edu.engram import (EngramConfig, EngramLayer, compress_vocabulary, hash_moduli, hash_multipliers,
                                 is_prime, ngram_hashes, normalise_token_text, prefetch_addresses)
from ultramem_edu.layer import memory_param_groups
from ultramem_edu.model import LMConfig, TransformerLM
from ultramem_edu.moe import activated_parameters_per_token
from ultramem_edu.offload import (EngramSpec, HostLink, exposed_seconds, fetch_seconds, host_offload_comparison,
                                  ultramem_fetch_bytes)

CHARS = ("\ufffd", "\n", " ", "A", "B", "a", "b", "c", "é", ".")


def small_config(**overrides) -> EngramConfig:
    base = dict(d_model=8, vocab_size=len(CHARS), n_embed_per_ngram=6, n_head_per_ngram=2, kernel_size=3,
                token_strings=CHARS)
    base.update(overrides)
    return EngramConfig(**base)


# ---------------------------------------------------------------------- tokenizer compression
def test_compression_merges_case_whitespace_and_accents_at_character_level():
    table, size = compress_vocabulary(list(CHARS))
    ids = dict(zip(CHARS, table.tolist()))
    assert ids["A"] == ids["a"] and ids["B"] == ids["b"]
    assert ids["\n"] == ids[" "]
    assert ids["é"] != ids["c"] and normalise_token_text("é") == "e"
    assert ids["\ufffd"] == 0 and size == len(CHARS) - 3
    firsts = list(dict.fromkeys(table.tolist()))
    assert firsts == list(range(size))                        # new ids in order of first appearance


def test_normal_form_of_multi_character_tokens():
    assert normalise_token_text(" Apple") == "apple" == normalise_token_text("APPLE ")
    assert normalise_token_text("\t\n") == " "
    assert normalise_token_text("") == ""


def test_compression_validation():
    with pytest.raises(TypeError, match="token_strings"):
        compress_vocabulary("abc")
    with pytest.raises(ValueError, match="token_strings"):
        compress_vocabulary([])
    with pytest.raises(TypeError, match=r"token_strings\[1\]"):
        compress_vocabulary(["a", 3])


# ---------------------------------------------------------------------- primes and hash parameters
def test_is_prime_matches_trial_division():
    def slow(n):
        return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))
    assert [n for n in range(3000) if is_prime(n)] == [n for n in range(3000) if slow(n)]
    assert is_prime(2**61 - 1) and not is_prime(2**61 + 1) and is_prime(646_403)


def test_hash_moduli_are_distinct_primes_at_or_above_each_size():
    moduli = hash_moduli((50, 80), 3, [1, 4])
    flat = [p for layer in moduli.values() for order in layer for p in order]
    assert len(flat) == len(set(flat)) == 12 and all(is_prime(p) for p in flat)
    for layer in moduli.values():
        assert all(p >= 50 for p in layer[0]) and all(p >= 80 for p in layer[1])
        assert all(a < b for order in layer for a, b in zip(order, order[1:]))
    assert moduli[1][0] == [53, 59, 61]                      # the first primes >= 50, in order
    with pytest.raises(ValueError, match="layer_ids"):
        hash_moduli((50,), 2, [1, 1])


def test_hash_multipliers_are_odd_bounded_and_seeded_per_layer():
    a = hash_multipliers(10, 3, layer_id=2, seed=0)
    assert a.dtype == torch.int64 and bool((a % 2 == 1).all())
    assert int(a.max()) * 9 < 2**63                           # no id·m overflows
    assert torch.equal(a, hash_multipliers(10, 3, layer_id=2, seed=0))
    assert not torch.equal(a, hash_multipliers(10, 3, layer_id=3, seed=0))
    with pytest.raises(ValueError, match="max_ngram_size"):
        hash_multipliers(10, 1, layer_id=0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 4), k=st.integers(1, 3), t=st.integers(1, 7), seed=st.integers(0, 1000))
def test_ngram_hashes_equal_python_integer_hashing(n, k, t, seed):
    g = torch.Generator().manual_seed(seed)
    vocab = 7
    ids = torch.randint(0, vocab, (2, t), generator=g)
    mult = hash_multipliers(vocab + 1, n, layer_id=seed % 5, seed=seed)
    moduli = torch.tensor(hash_moduli((23,) * (n - 1), k, [0])[0])
    z = ngram_hashes(ids, mult, moduli, pad_id=vocab)
    m = [int(v) for v in mult]
    for b in range(2):
        seq = ids[b].tolist()
        for pos in range(t):
            for order in range(2, n + 1):
                mix = 0
                for j in range(order):
                    mix ^= (seq[pos - j] if pos >= j else vocab) * m[j]
                for head in range(k):
                    assert int(z[b, pos, order - 2, head]) == mix % int(moduli[order - 2, head])


# ---------------------------------------------------------------------- the layer
@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 4), k=st.integers(1, 3), w=st.integers(1, 4), gate_sqrt=st.booleans(),
       compress=st.booleans(), zero_conv=st.booleans(), t=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_efficient_path_equals_dense_reference(n, k, w, gate_sqrt, compress, zero_conv, t, seed):
    torch.manual_seed(seed)
    cfg = small_config(max_ngram_size=n, n_embed_per_ngram=2 * k, n_head_per_ngram=k, kernel_size=w,
                       gate_sqrt=gate_sqrt, token_strings=CHARS if compress else None,
                       conv_init="zero" if zero_conv else "default", engram_vocab_size=(13,) * (n - 1))
    layer = EngramLayer(cfg, layer_id=seed % 3).double()
    x = torch.randn(2, t, 8, dtype=torch.float64)
    ids = torch.randint(0, len(CHARS), (2, t))
    a, b = layer(x, ids), layer.forward_reference(x, ids)
    torch.testing.assert_close(a.output, b.output)
    torch.testing.assert_close(a.scores, b.scores)
    assert torch.equal(a.indices, b.indices)
    assert a.indices.shape == (2, t, (n - 1) * k, 1) and a.scores.shape == a.indices.shape


def test_gradients_of_both_paths_agree():
    torch.manual_seed(0)
    layer = EngramLayer(small_config()).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, len(CHARS), (2, 6))
    weights = torch.randn(2, 6, 8, dtype=torch.float64)
    grads = []
    for path in (layer.forward, layer.forward_reference):
        layer.zero_grad()
        x.grad = None
        (path(x, ids).output * weights).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in layer.parameters()])
    for ga, gb in zip(*grads):
        torch.testing.assert_close(ga, gb)
    assert grads[0][1].count_nonzero() > 0                    # the table receives gradient


def test_gradcheck_float64():
    torch.manual_seed(1)
    layer = EngramLayer(small_config(n_embed_per_ngram=4, engram_vocab_size=(11, 11))).double()
    ids = torch.randint(0, len(CHARS), (1, 5))
    x = torch.randn(1, 5, 8, dtype=torch.float64, requires_grad=True)
    table = layer.table.detach().clone().requires_grad_(True)

    def f(x, table):
        return torch.func.functional_call(layer, {"table": table}, (x, ids)).output

    assert torch.autograd.gradcheck(f, (x, table), eps=1e-6, atol=1e-5)


def test_zero_convolution_gives_the_gated_value():
    torch.manual_seed(2)
    layer = EngramLayer(small_config(conv_init="zero")).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    ids = torch.randint(0, len(CHARS), (2, 5))
    out = layer(x, ids)
    e = torch.nn.functional.embedding(out.indices[..., 0], layer.table).flatten(2)
    torch.testing.assert_close(out.output, out.scores[..., :1, 0] * layer.value_proj(e))
    assert bool(((out.scores > 0) & (out.scores < 1)).all())


def test_value_init_std_sets_the_value_projection():
    layer = EngramLayer(small_config(value_init_std=1e-3))
    assert float(layer.value_proj.weight.detach().std()) < 5e-3 and not layer.value_proj.bias.any()


# ---------------------------------------------------------------------- prefetch property
def test_addresses_are_known_before_the_layer_runs():
    torch.manual_seed(3)
    layer = EngramLayer(small_config()).double()
    ids = torch.randint(0, len(CHARS), (3, 7))
    rows = layer.addresses(ids)                               # no hidden state, no parameter
    out1 = layer(torch.randn(3, 7, 8, dtype=torch.float64), ids)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p))
    out2 = layer(torch.randn(3, 7, 8, dtype=torch.float64), ids)
    assert torch.equal(out1.indices[..., 0], rows) and torch.equal(out2.indices[..., 0], rows)
    assert int(rows.min()) >= 0 and int(rows.max()) < layer.num_rows


def test_addresses_depend_on_the_last_n_tokens_only_and_respect_compression():
    layer = EngramLayer(small_config(max_ngram_size=3, engram_vocab_size=(1009, 1009)))
    idx = {c: i for i, c in enumerate(CHARS)}
    a = torch.tensor([[idx[c] for c in "abcab"]])
    b = torch.tensor([[idx[c] for c in "Bbcab"]])             # differs only at t = 0
    ra, rb = layer.addresses(a), layer.addresses(b)
    assert torch.equal(ra[:, 3:], rb[:, 3:])                  # t >= 3 sees tokens t-2..t only
    assert not torch.equal(ra[:, :3], rb[:, :3])
    upper = torch.tensor([[idx[c] for c in "ABcAB"]])
    assert torch.equal(layer.addresses(upper), ra)            # "A" and "a" share every row
    spaced = torch.tensor([[idx[c] for c in "a\nb a"]])
    assert torch.equal(layer.addresses(spaced)[:, 2], layer.addresses(torch.tensor([[idx[c] for c in "a b a"]]))[:, 2])


def test_model_hook_passes_token_ids_and_prefetch_matches():
    torch.manual_seed(4)
    cfg = LMConfig(vocab_size=len(CHARS), d_model=8, n_layers=4, n_heads=2, seq_len=8,
                   memory=small_config(), memory_wiring=((1, 1), (2, 3)))
    model = TransformerLM(cfg)
    idx = torch.randint(0, len(CHARS), (2, 8))
    planned = prefetch_addresses(model, idx)
    out = model(idx, targets=idx, return_memory=True)
    assert sorted(planned) == [0, 1]
    for k, rows in planned.items():
        assert torch.equal(out.memory[k].indices[..., 0], rows)
    assert not torch.equal(planned[0], planned[1])            # each layer hashes with its own seed
    out.loss.backward()
    assert model.memories[0].table.grad.count_nonzero() > 0
    groups = {g["name"]: g["params"] for g in memory_param_groups(model, lr=1e-3)}
    assert any(p is model.memories[1].table for p in groups["values"])


def test_activated_parameters_count_the_rows_read():
    layer = EngramLayer(small_config())
    own = sum(p.numel() for p in layer.parameters()) - layer.table.numel()
    assert activated_parameters_per_token(layer) == own + 4 * 3    # H = 2·2 heads, d_h = 3
    assert layer.table.shape == (layer.num_rows, 3) and layer.num_rows == int(layer.moduli.sum())


def test_layers_must_read_distinct_blocks():
    with pytest.raises(ValueError, match="layer_ids"):
        small_config().build_layers(((1, 1), (1, 2)))


# ---------------------------------------------------------------------- validation
def test_layer_validation_names_the_argument():
    layer = EngramLayer(small_config())
    x, ids = torch.randn(2, 5, 8), torch.zeros(2, 5, dtype=torch.int64)
    with pytest.raises(ValueError, match="token_ids"):
        layer(x)
    with pytest.raises(ValueError, match="token_ids"):
        layer(x, ids[:, :4])
    with pytest.raises(ValueError, match="token_ids"):
        layer(x, ids + len(CHARS))
    with pytest.raises(TypeError, match="token_ids"):
        layer(x, ids.float())
    with pytest.raises(ValueError, match="x"):
        layer(x[0], ids)
    with pytest.raises(TypeError, match="config"):
        EngramLayer(object())


@pytest.mark.parametrize("overrides, error, name", [
    (dict(n_head_per_ngram=4), ValueError, "n_head_per_ngram"),
    (dict(engram_vocab_size=(13,)), ValueError, "engram_vocab_size"),
    (dict(engram_vocab_size=(13, 1)), ValueError, r"engram_vocab_size\[1\]"),
    (dict(token_strings=CHARS[:3]), ValueError, "token_strings"),
    (dict(conv_init="ones"), ValueError, "conv_init"),
    (dict(gate_sqrt=1), TypeError, "gate_sqrt"),
    (dict(max_ngram_size=1), ValueError, "max_ngram_size"),
    (dict(value_init_std=0.0), ValueError, "value_init_std"),
])
def test_config_validation(overrides, error, name):
    with pytest.raises(error, match=name):
        small_config(**overrides)


def test_default_table_sizes_follow_the_demo_ratio():
    cfg = EngramConfig(d_model=1024, vocab_size=129280)
    assert cfg.engram_vocab_size == (646_400, 646_400) and cfg.num_hash_heads == 16 and cfg.head_dim == 64


# ---------------------------------------------------------------------- host-offload cost model
def test_engram_fetch_bytes():
    spec = EngramSpec(d_model=1024, table_rows_per_head=646_403)
    assert spec.fetch_bytes(1) == pytest.approx(16 * 64 * 2)
    assert spec.fetch_bytes(1, mode="worst") == 16 * 64 * 2
    b = np.array([1, 64, 10**7])
    expected, worst = spec.fetch_bytes(b), spec.fetch_bytes(b, mode="worst")
    assert np.all(expected <= worst + 1e-6) and worst[-1] == spec.table_params * 2
    assert spec.rows_touched(10**9) == pytest.approx(16 * 646_403)
    assert spec.rows_touched(300) == pytest.approx(16 * expected_distinct(646_403, 1, 300))   # cost.py's convention


def test_ultramem_fetch_bytes_and_the_critical_path():
    um = UltraMemSpec(d_model=64, num_values=4096, value_dim=32, key_dim=8, num_heads=2, top_m=8)
    assert ultramem_fetch_bytes(um, 1, mode="worst") == 2 * 8 * 32 * 2
    eg = EngramSpec(d_model=64, table_rows_per_head=1009, n_embed_per_ngram=32, n_head_per_ngram=4)
    link = HostLink(bandwidth_bytes_per_s=1e9, latency_s=1e-5)
    r = host_offload_comparison(eg, um, 4, link, block_seconds=1e-3, engram_blocks_before=2)
    assert r["engram_overlap_s"] == pytest.approx(2e-3) and r["engram_exposed_s"] == 0.0
    assert r["ultramem_overlap_s"] == 0.0 and r["ultramem_exposed_s"] == pytest.approx(r["ultramem_fetch_s"])
    assert r["ultramem_fetch_s"] == pytest.approx(1e-5 + r["ultramem_bytes"] / 1e9)
    slow = host_offload_comparison(eg, um, 4, link, block_seconds=0.0, engram_blocks_before=2)
    assert slow["engram_exposed_s"] == pytest.approx(slow["engram_fetch_s"])
    arr = host_offload_comparison(eg, um, np.array([1, 2]), link, 1e-6, 1, 1)
    assert arr["engram_bytes"].shape == (2,)


def test_offload_validation():
    link = HostLink()
    with pytest.raises(ValueError, match="num_bytes"):
        fetch_seconds(-1.0, link)
    with pytest.raises(ValueError, match="overlap_s"):
        exposed_seconds(1.0, link, -1.0)
    with pytest.raises(ValueError, match="bandwidth_bytes_per_s"):
        HostLink(bandwidth_bytes_per_s=0.0)
    with pytest.raises(ValueError, match="n_head_per_ngram"):
        EngramSpec(d_model=8, table_rows_per_head=7, n_embed_per_ngram=6, n_head_per_ngram=4)
    with pytest.raises(ValueError, match="mode"):
        EngramSpec(d_model=8, table_rows_per_head=7).fetch_bytes(2, mode="best")
    with pytest.raises(ValueError, match="batch_size"):
        EngramSpec(d_model=8, table_rows_per_head=7).fetch_bytes(0)
    with pytest.raises(TypeError, match="spec"):
        ultramem_fetch_bytes(object(), 1)
