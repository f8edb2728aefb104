import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ultramem_edu.memory import TopMMemory, dense_topm, memory_read, mlp_as_memory


def test_mlp_is_a_key_value_memory():
    torch.manual_seed(0)
    fc_in, fc_out = nn.Linear(12, 48), nn.Linear(48, 12)
    mlp = nn.Sequential(fc_in, nn.GELU(), fc_out)
    x = torch.randn(5, 7, 12)
    keys, bias, values = mlp_as_memory(fc_in, fc_out)
    as_memory = memory_read(x, keys, values, F.gelu, key_bias=bias) + fc_out.bias
    torch.testing.assert_close(as_memory, mlp(x))


def test_softmax_memory_is_attention_read():
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 8), torch.randn(10, 8), torch.randn(10, 4)
    out = memory_read(q, k, v, lambda s: s.softmax(-1))
    ref = F.scaled_dot_product_attention(q[None], k[None], v[None], scale=1.0)[0]
    torch.testing.assert_close(out, ref)


def test_dense_topm_matches_sorting_all_scores():
    torch.manual_seed(2)
    q, k = torch.randn(6, 5), torch.randn(40, 5)
    scores, idx = dense_topm(q, k, 7)
    full = q @ k.T
    torch.testing.assert_close(scores, full.sort(-1, descending=True).values[:, :7])
    torch.testing.assert_close(full.gather(-1, idx), scores)


def test_topm_memory_reads_only_selected_rows():
    torch.manual_seed(3)
    mem = TopMMemory(num_values=50, key_dim=6, value_dim=4, m=5)
    q = torch.randn(3, 6)
    out, scores, idx = mem(q)
    # zeroing every value row that was not selected must not change the output
    mask = torch.zeros(50, dtype=torch.bool)
    mask[idx.flatten()] = True
    with torch.no_grad():
        mem.values[~mask] = 0.0
    torch.testing.assert_close(mem(q)[0], out)
    assert out.shape == (3, 4)


def test_memory_bad_inputs():
    with pytest.raises(ValueError, match="keys"):
        memory_read(torch.randn(3, 4), torch.randn(5, 3), torch.randn(5, 2))
    with pytest.raises(ValueError, match="m must be in"):
        dense_topm(torch.randn(3, 4), torch.randn(5, 4), 6)
    with pytest.raises(TypeError, match="query"):
        dense_topm(torch.ones(3, 4, dtype=torch.long), torch.randn(5, 4), 2)
    with pytest.raises(ValueError, match="finite"):
        dense_topm(torch.full((3, 4), float("nan")), torch.randn(5, 4), 2)
