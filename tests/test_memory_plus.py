"""Memory+: efficient path vs the dense reference, the shared table, the gate, validation."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.layer import memory_param_groups
from ultramem_edu.memory_plus import MemoryPlusConfig, MemoryPlusLayer
from ultramem_edu.model import LMConfig, TransformerLM
from ultramem_edu.moe import activated_parameters_per_token, num_parameters


@settings(max_examples=20, deadline=None)
@given(heads=st.integers(1, 3), m=st.integers(1, 4), gate=st.sampled_from(["silu", "none"]),
       qk=st.booleans(), seed=st.integers(0, 10_000))
def test_efficient_path_equals_dense_reference(heads, m, gate, qk, seed):
    torch.manual_seed(seed)
    layer = MemoryPlusLayer(MemoryPlusConfig(10, num_values=25, key_dim=4, num_heads=heads, topm=m, gate=gate,
                                             qk_norm=qk)).double()
    x = torch.randn(2, 3, 10, dtype=torch.float64)
    a, b = layer(x), layer.forward_reference(x)
    torch.testing.assert_close(a.output, b.output)
    torch.testing.assert_close(a.scores, b.scores)


def test_gate_is_silu_of_a_projection():
    torch.manual_seed(0)
    layer = MemoryPlusLayer(MemoryPlusConfig(8, num_values=16, key_dim=4, topm=2)).double()
    x = torch.randn(5, 8, dtype=torch.float64)
    plain = MemoryPlusConfig(8, num_values=16, key_dim=4, topm=2, gate="none")
    ungated = MemoryPlusLayer(plain, layer.table).double()
    ungated.load_state_dict({k: v for k, v in layer.state_dict().items() if not k.startswith("gate_proj")})
    y = ungated.forward_reference(x).output @ torch.linalg.inv(layer.out_proj.weight.T)   # the pooled values
    expected = layer.out_proj((y * torch.nn.functional.silu(layer.gate_proj(x))))
    torch.testing.assert_close(layer(x).output, expected)


def test_gradcheck_float64():
    torch.manual_seed(0)
    layer = MemoryPlusLayer(MemoryPlusConfig(6, num_values=16, key_dim=3, num_heads=2, topm=2)).double()
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, v: layer(x).output, (x, layer.table.values), eps=1e-6, atol=1e-5)


def test_one_table_shared_by_every_layer():
    cfg = MemoryPlusConfig(16, num_values=36, key_dim=4, topm=3)
    model = TransformerLM(LMConfig(vocab_size=9, d_model=16, n_layers=3, n_heads=2, seq_len=8, memory=cfg,
                                   memory_wiring=((0, 0), (2, 2))))
    a, b = model.memories
    assert a.table is b.table and a.keys is not b.keys
    groups = {g["name"]: g["params"] for g in memory_param_groups(model, 1e-3)}
    assert groups["values"] == [a.table.values]
    assert num_parameters(model.memories) == num_parameters(a) + num_parameters(b) - 36 * 16
    assert activated_parameters_per_token(model) == num_parameters(model) - num_parameters(model.memories) \
        + a.activated_parameters_per_token() + b.activated_parameters_per_token()
    model(torch.randint(0, 9, (2, 8)), torch.randint(0, 9, (2, 8))).loss.backward()
    assert a.table.values.grad.abs().sum() > 0


def test_input_validation():
    with pytest.raises(ValueError, match="num_values"):
        MemoryPlusConfig(8, num_values=20)
    with pytest.raises(ValueError, match="gate"):
        MemoryPlusConfig(8, gate="sigmoid")
    with pytest.raises(TypeError, match="qk_norm"):
        MemoryPlusConfig(8, qk_norm=1)
    with pytest.raises(TypeError, match="table"):
        MemoryPlusLayer(MemoryPlusConfig(8, num_values=16, topm=2), table=object())
