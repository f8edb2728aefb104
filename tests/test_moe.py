import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.moe import (
    DenseFFN,
    DenseFFNConfig,
    MoEConfig,
    MoEFFN,
    activated_parameters_per_token,
    num_parameters,
)


def make_moe(seed=0, dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    kw.setdefault("d_model", 8)
    moe = MoEFFN(MoEConfig(**kw)).to(dtype)
    # Default nn.Linear init gives a near-uniform router; spread it so the top-k is decisive.
    with torch.no_grad():
        moe.router.weight.normal_(0.0, 1.0)
    return moe


# ---------------------------------------------------------------------------------------------
# Dense FFN
# ---------------------------------------------------------------------------------------------


def test_dense_ffn_is_linear_gelu_linear_with_4d_hidden():
    torch.manual_seed(0)
    ffn = DenseFFN(DenseFFNConfig(d_model=6)).double()
    assert ffn.in_proj.weight.shape == (24, 6) and ffn.out_proj.weight.shape == (6, 24)
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    h = F.gelu(x @ ffn.in_proj.weight.T + ffn.in_proj.bias)
    expected = h @ ffn.out_proj.weight.T + ffn.out_proj.bias
    torch.testing.assert_close(ffn(x), expected, rtol=0, atol=1e-12)


def test_dense_ffn_rejects_bad_input():
    ffn = DenseFFN(DenseFFNConfig(d_model=6, hidden=10))
    with pytest.raises(ValueError, match="x must have trailing shape"):
        ffn(torch.randn(2, 5))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        ffn(torch.ones(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="hidden"):
        DenseFFNConfig(d_model=6, hidden=0)
    with pytest.raises(TypeError, match="config must be a DenseFFNConfig"):
        DenseFFN(MoEConfig(d_model=6))


# ---------------------------------------------------------------------------------------------
# MoE: efficient == reference
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_experts=st.integers(1, 6),
    k_frac=st.floats(0.0, 1.0),
    batch=st.integers(1, 3),
    tokens=st.integers(1, 9),
)
def test_grouped_forward_matches_reference_float64(seed, n_experts, k_frac, batch, tokens):
    top_k = 1 + int(k_frac * (n_experts - 1))
    moe = make_moe(seed, n_experts=n_experts, top_k=top_k, expert_hidden=5)
    x = torch.randn(batch, tokens, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    out, aux = moe(x)
    ref_out, ref_aux = moe.forward_reference(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(aux, ref_aux, rtol=0, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_gradients_match_reference(seed):
    moe = make_moe(seed, n_experts=5, top_k=2, expert_hidden=6)
    x = torch.randn(4, 7, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 7, 8, dtype=torch.float64)

    def grads(fn):
        moe.zero_grad(set_to_none=False)
        x.grad = None
        out, aux = fn(x)
        ((out * w).sum() + aux).backward()
        return [x.grad.clone()] + [p.grad.clone() for p in moe.parameters()]

    for g, g_ref in zip(grads(moe.forward), grads(moe.forward_reference)):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-12)


def test_gradients_reach_router_and_exactly_the_experts_that_received_tokens():
    moe = make_moe(3, n_experts=6, top_k=2)
    x = torch.randn(5, 8, dtype=torch.float64)
    used = set(moe.route(x).experts.unique().tolist())
    assert 0 < len(used) < 6, "pick a seed where some expert gets no token"
    out, aux = moe(x)
    (out.square().sum() + aux).backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    for e, expert in enumerate(moe.experts):
        for p in expert.parameters():
            if e in used:
                assert p.grad is not None and p.grad.abs().sum() > 0, f"expert {e}"
            else:
                assert p.grad is None, f"expert {e} got no tokens but has a gradient"


# ---------------------------------------------------------------------------------------------
# MoE: routing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_experts,top_k", [(4, 1), (4, 2), (8, 2), (5, 5)])
def test_gates_sum_to_one_and_experts_are_distinct_top_k(n_experts, top_k):
    moe = make_moe(0, n_experts=n_experts, top_k=top_k)
    x = torch.randn(30, 8, dtype=torch.float64)
    r = moe.route(x)
    assert r.gates.shape == r.experts.shape == (30, top_k)
    torch.testing.assert_close(r.gates.sum(-1), torch.ones(30, dtype=torch.float64))
    torch.testing.assert_close(r.probs.sum(-1), torch.ones(30, dtype=torch.float64))
    for row in r.experts.tolist():
        assert len(set(row)) == top_k
    # The chosen experts are the k most probable ones.
    kth = r.probs.gather(1, r.experts).min(-1).values
    unchosen = r.probs.scatter(1, r.experts, float("-inf")).max(-1).values
    assert bool((unchosen <= kth).all())


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_grouped_path_sends_each_token_to_exactly_k_experts(top_k):
    moe = make_moe(1, n_experts=6, top_k=top_k)
    x = torch.randn(3, 10, 8, dtype=torch.float64)
    seen = []
    hooks = [
        ex.register_forward_hook(lambda mod, inp, out, e=e: seen.append((e, inp[0].detach())))
        for e, ex in enumerate(moe.experts)
    ]
    moe(x)
    for h in hooks:
        h.remove()
    flat = x.reshape(-1, 8)
    per_token = torch.zeros(flat.shape[0], dtype=torch.long)
    routed = moe.route(flat).experts
    for e, rows in seen:
        match = (rows[:, None, :] == flat[None, :, :]).all(-1)    # (m_e, M)
        assert bool((match.sum(-1) == 1).all())                  # every row is one token, unchanged
        tokens = match.float().argmax(-1)
        assert bool((routed[tokens] == e).any(-1).all())        # ... that the router sent to e
        per_token += torch.bincount(tokens, minlength=flat.shape[0])
    assert per_token.tolist() == [top_k] * flat.shape[0]


# ---------------------------------------------------------------------------------------------
# MoE: load-balancing loss
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_experts,top_k,coef", [(4, 2, 0.01), (8, 1, 0.1), (3, 3, 1.0)])
def test_uniform_router_gives_aux_equal_to_coefficient(n_experts, top_k, coef):
    moe = make_moe(0, n_experts=n_experts, top_k=top_k, aux_loss_coef=coef)
    with torch.no_grad():
        moe.router.weight.zero_()
    _, aux = moe(torch.randn(2, 5, 8, dtype=torch.float64))
    torch.testing.assert_close(aux, torch.tensor(coef, dtype=torch.float64), rtol=0, atol=1e-15)


def test_aux_loss_on_a_collapsed_router():
    # Every token sees logits (a, 0): all go to expert 0 (f = [1, 0]), P = [σ(a), 1 − σ(a)],
    # so aux = coef · N · σ(a) = coef · 2 · σ(a).
    a, coef = 1.5, 0.05
    moe = make_moe(0, d_model=1, n_experts=2, top_k=1, aux_loss_coef=coef)
    with torch.no_grad():
        moe.router.weight.copy_(torch.tensor([[a], [0.0]]))
    _, aux = moe(torch.ones(7, 1, dtype=torch.float64))
    expected = coef * 2 * (1 / (1 + math.exp(-a)))
    assert aux.item() == pytest.approx(expected, rel=1e-12)


def test_aux_loss_is_larger_for_an_imbalanced_router_and_pushes_it_back():
    moe = make_moe(0, d_model=1, n_experts=2, top_k=1, aux_loss_coef=1.0)
    with torch.no_grad():
        moe.router.weight.copy_(torch.tensor([[2.0], [0.0]]))
    _, aux = moe(torch.ones(4, 1, dtype=torch.float64))
    assert aux.item() > 1.0
    aux.backward()
    # Gradient descent lowers expert 0's logit relative to expert 1's.
    g = moe.router.weight.grad[:, 0]
    assert g[0] > 0 > g[1]


# ---------------------------------------------------------------------------------------------
# MoE: validation
# ---------------------------------------------------------------------------------------------


def test_moe_config_validation():
    with pytest.raises(ValueError, match="top_k must be in \\[1, 4\\]"):
        MoEConfig(d_model=8, n_experts=4, top_k=5)
    with pytest.raises(ValueError, match="n_experts"):
        MoEConfig(d_model=8, n_experts=0)
    with pytest.raises(ValueError, match="aux_loss_coef"):
        MoEConfig(d_model=8, aux_loss_coef=-0.1)
    with pytest.raises(TypeError, match="aux_loss_coef"):
        MoEConfig(d_model=8, aux_loss_coef="0.01")
    with pytest.raises(TypeError, match="top_k must be an int"):
        MoEConfig(d_model=8, top_k=2.0)
    assert MoEConfig(d_model=8).expert_hidden == 16
    with pytest.raises(TypeError, match="config must be a MoEConfig"):
        MoEFFN(DenseFFNConfig(8))


def test_moe_rejects_bad_input():
    moe = make_moe(0)
    with pytest.raises(ValueError, match="x must have trailing shape"):
        moe(torch.randn(3, 7, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        moe(torch.ones(3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="x must be finite"):
        moe(torch.full((3, 8), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one token"):
        moe.forward_reference(torch.randn(0, 8, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# Parameter counting
# ---------------------------------------------------------------------------------------------


def test_default_moe_activates_the_compute_of_one_dense_ffn():
    d, n = 16, 8
    dense = DenseFFN(DenseFFNConfig(d))
    moe = MoEFFN(MoEConfig(d, n_experts=n, top_k=2))
    n_dense = num_parameters(dense)
    assert n_dense == d * 4 * d + 4 * d + 4 * d * d + d
    # Two half-width experts hold the dense weights and hidden biases; extra: one more output
    # bias (D) and the router (N·D).
    assert activated_parameters_per_token(moe) == n_dense + d + n * d
    assert num_parameters(moe) == n * num_parameters(moe.experts[0]) + n * d
    assert activated_parameters_per_token(dense) == n_dense


def test_counting_dedups_shared_tensors_and_can_exclude_embeddings():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.moe = MoEFFN(MoEConfig(4, n_experts=4, top_k=1, expert_hidden=3))
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    m = Tiny()
    moe_total = num_parameters(m.moe)
    moe_active = m.moe.router.weight.numel() + num_parameters(m.moe.experts[0])
    assert num_parameters(m) == 40 + moe_total
    assert num_parameters(m, exclude_embeddings=True) == moe_total
    assert activated_parameters_per_token(m) == 40 + moe_active
    assert activated_parameters_per_token(m, exclude_embeddings=True) == moe_active
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        num_parameters(torch.zeros(3))
