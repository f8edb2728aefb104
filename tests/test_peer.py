"""PEER: efficient path vs every expert on every token, gradients, counting and validation."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.layer import memory_param_groups
from ultramem_edu.model import LMConfig, TransformerLM
from ultramem_edu.moe import activated_parameters_per_token, num_parameters
from ultramem_edu.peer import PEERConfig, PEERLayer


@settings(max_examples=20, deadline=None)
@given(heads=st.integers(1, 3), k=st.integers(1, 4), act=st.sampled_from(["gelu", "relu", "silu"]),
       norm=st.sampled_from(["batchnorm", "layernorm", "none"]), seed=st.integers(0, 10_000))
def test_efficient_path_equals_all_experts_reference(heads, k, act, norm, seed):
    torch.manual_seed(seed)
    layer = PEERLayer(PEERConfig(10, num_experts=25, key_dim=4, num_heads=heads, topk=k, activation=act,
                                 query_norm=norm)).double().eval()
    x = torch.randn(2, 3, 10, dtype=torch.float64)
    a, b = layer(x), layer.forward_reference(x)
    torch.testing.assert_close(a.output, b.output)
    torch.testing.assert_close(a.scores, b.scores)
    assert a.output.shape == (2, 3, 10) and a.indices.shape == (2, 3, heads, k)


def test_gradcheck_float64():
    torch.manual_seed(0)
    layer = PEERLayer(PEERConfig(6, num_experts=16, key_dim=3, num_heads=2, topk=2, query_norm="none")).double()
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, u, v: layer(x).output, (x, layer.down, layer.up), eps=1e-6, atol=1e-5)


def test_model_counts_and_value_groups():
    cfg = PEERConfig(16, num_experts=64, key_dim=4, num_heads=2, topk=3)
    model = TransformerLM(LMConfig(vocab_size=9, d_model=16, n_layers=2, n_heads=2, seq_len=8, memory=cfg,
                                   memory_wiring=((0, 1),)))
    layer = model.memories[0]
    groups = {g["name"]: g["params"] for g in memory_param_groups(model, 1e-3)}
    assert groups["values"][0] is layer.down and groups["values"][1] is layer.up
    own = num_parameters(layer) - 2 * 64 * 16
    assert layer.activated_parameters_per_token() == own + 2 * 3 * 2 * 16
    assert activated_parameters_per_token(model) == num_parameters(model) - num_parameters(layer) \
        + layer.activated_parameters_per_token()
    model(torch.randint(0, 9, (2, 8)), torch.randint(0, 9, (2, 8))).loss.backward()
    assert layer.down.grad.abs().sum() > 0 and layer.up.grad.abs().sum() > 0


def test_input_validation():
    with pytest.raises(ValueError, match="num_experts"):
        PEERConfig(8, num_experts=20)
    with pytest.raises(ValueError, match="topk"):
        PEERConfig(8, num_experts=16, topk=5)
    with pytest.raises(ValueError, match="activation"):
        PEERConfig(8, activation="tanh")
    with pytest.raises(TypeError, match="config"):
        PEERLayer(object())
    with pytest.raises(ValueError, match="x"):
        PEERLayer(PEERConfig(8, num_experts=16, topk=2))(torch.randn(2, 7))


@settings(max_examples=8, deadline=None)
@given(heads=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_shared_keys_one_set_for_all_heads(heads, seed):
    """shared_keys: one key set (2, 1, n, D_k) read by every head; the efficient path still equals the
    all-experts reference, and two heads with the same query pick the same experts."""
    torch.manual_seed(seed)
    cfg = PEERConfig(16, num_experts=36, key_dim=4, num_heads=heads, topk=3, shared_keys=True)
    layer = PEERLayer(cfg).eval()
    assert layer.keys.shape == (2, 1, 6, 4)
    x = torch.randn(5, 16)
    fast, ref = layer(x), layer.forward_reference(x)
    torch.testing.assert_close(fast.output, ref.output, atol=1e-5, rtol=1e-5)
    if heads > 1:
        with torch.no_grad():
            w = layer.query.weight.view(heads, 2 * cfg.key_dim, 16)
            w[1:] = w[0]
            b = layer.query.bias.view(heads, 2 * cfg.key_dim)
            b[1:] = b[0]
        q = layer(x).indices
        assert torch.equal(q[:, 0], q[:, 1])
    unshared = PEERLayer(PEERConfig(16, num_experts=36, key_dim=4, num_heads=heads, topk=3))
    assert unshared.keys.shape == (2, heads, 6, 4)


def test_shared_keys_must_be_bool():
    with pytest.raises(TypeError, match="shared_keys"):
        PEERConfig(16, num_experts=36, key_dim=4, shared_keys=1)
