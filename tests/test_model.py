import importlib.util
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.model import LMConfig, TransformerLM, build_memory_layer, default_wiring
from ultramem_edu.moe import MoEConfig, activated_parameters_per_token, num_parameters
from ultramem_edu.types import MemoryOutput

# ---------------------------------------------------------------------------------------------
# A memory layer stand-in that follows the contract: Layer(cfg), cfg.d_model, forward(x) with
# x (B, T, D) -> MemoryOutput with .output (B, T, D) and a scalar .aux_loss.
# ---------------------------------------------------------------------------------------------


@dataclass
class StandInConfig:
    d_model: int
    init_value: float = 0.05
    zero_output: bool = False


class StandInMemory(nn.Module):
    def __init__(self, cfg: StandInConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        # A recognisable init, to check the model does not re-initialise memory layers.
        nn.init.constant_(self.proj.weight, cfg.init_value)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        out = torch.tanh(self.proj(x))                                     # (B, T, D)
        if self.cfg.zero_output:
            out = out * 0.0
        b, t, _ = x.shape
        return MemoryOutput(
            output=out,
            indices=torch.zeros(b, t, 1, 1, dtype=torch.long),
            scores=out[..., :1].unsqueeze(-1),
            aux_loss=1e-3 * self.proj.weight.square().mean(),
        )


def tiny_config(**kw):
    base = dict(vocab_size=17, d_model=16, n_layers=2, n_heads=2, seq_len=12)
    base.update(kw)
    return LMConfig(**base)


def build(seed=0, factory=StandInMemory, **kw):
    torch.manual_seed(seed)
    return TransformerLM(tiny_config(**kw), memory_factory=factory)


def random_tokens(b, t, vocab=17, seed=0):
    return torch.randint(0, vocab, (b, t), generator=torch.Generator().manual_seed(seed))


MEMORY = dict(n_layers=4, memory=StandInConfig(16), memory_wiring=((0, 2), (1, 1), (3, 3)))


# ---------------------------------------------------------------------------------------------
# Shapes and outputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{}, {"ffn": "moe"}, MEMORY, {"tie_embeddings": False}])
def test_shapes_and_loss_parts(kw):
    model = build(**kw)
    idx, tgt = random_tokens(3, 10), random_tokens(3, 10, seed=1)
    out = model(idx, tgt, return_memory=True)
    assert out.logits.shape == (3, 10, 17)
    assert out.loss.shape == out.lm_loss.shape == out.aux_loss.shape == ()
    torch.testing.assert_close(out.loss, out.lm_loss + out.aux_loss)
    torch.testing.assert_close(out.aux_loss, out.moe_aux_loss + out.memory_aux_loss)
    n_mem = len(model.memory_wiring)
    assert len(out.memory) == len(model.memories) == n_mem
    for m in out.memory:
        assert isinstance(m, MemoryOutput) and m.output.shape == (3, 10, 16)
    if n_mem:
        torch.testing.assert_close(out.memory_aux_loss, sum(m.aux_loss for m in out.memory))
        assert out.memory_aux_loss > 0
    else:
        assert out.memory_aux_loss == 0
    if kw.get("ffn") == "moe":
        # Two blocks, each a near-uniform router at init: about 2 · coef.
        assert out.moe_aux_loss.item() == pytest.approx(2 * 0.01, rel=0.1)
    else:
        assert out.moe_aux_loss == 0
    plain = model(idx)
    assert plain.loss is None and plain.lm_loss is None and plain.memory is None
    torch.testing.assert_close(plain.logits, out.logits)


def test_lm_loss_is_next_token_cross_entropy_and_about_log_v_at_init():
    model = build()
    idx, tgt = random_tokens(2, 12), random_tokens(2, 12, seed=1)
    out = model(idx, tgt)
    manual = -out.logits.log_softmax(-1).gather(-1, tgt.unsqueeze(-1)).mean()
    torch.testing.assert_close(out.lm_loss, manual)
    assert out.lm_loss.item() == pytest.approx(math.log(17), rel=0.05)


# ---------------------------------------------------------------------------------------------
# Causality
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{}, {"ffn": "moe"}, MEMORY])
@pytest.mark.parametrize("t", [0, 4, 10])
def test_future_tokens_do_not_change_past_logits(kw, t):
    model = build(**kw).eval()
    idx = random_tokens(2, 12)
    changed = idx.clone()
    changed[:, t + 1:] = (changed[:, t + 1:] + 5) % 17
    a, b = model(idx).logits, model(changed).logits
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


# ---------------------------------------------------------------------------------------------
# Skip-layer wiring, checked with hooks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wiring",
    [((0, 2), (1, 1), (3, 3)), ((1, 2),), ((0, 3), (0, 1), (2, 2)), ((0, 0),)],
)
def test_memory_reads_ln2_of_block_i_and_writes_after_block_j(wiring):
    model = build(n_layers=4, memory=StandInConfig(16), memory_wiring=wiring)
    ln2_out, mem_in, mem_out, block_out, next_in = {}, {}, {}, {}, {}
    hooks = []
    for b, block in enumerate(model.blocks):
        hooks.append(block.ln2.register_forward_hook(
            lambda m, i, o, b=b: ln2_out.__setitem__(b, o)))
        hooks.append(block.register_forward_hook(
            lambda m, i, o, b=b: block_out.__setitem__(b, o[0])))
        hooks.append(block.register_forward_pre_hook(
            lambda m, i, b=b: next_in.__setitem__(b - 1, i[0])))
    hooks.append(model.ln_f.register_forward_pre_hook(
        lambda m, i: next_in.__setitem__(len(model.blocks) - 1, i[0])))
    def record_memory(k):
        def hook(module, inputs, output):
            mem_in[k], mem_out[k] = inputs[0], output.output
        return hook

    for k, memory in enumerate(model.memories):
        hooks.append(memory.register_forward_hook(record_memory(k)))
    model(random_tokens(2, 9))
    for h in hooks:
        h.remove()

    # Reads: the very tensor LN2 of block i produced.
    for k, (i, _) in enumerate(wiring):
        assert mem_in[k] is ln2_out[i], f"memory {k} should read LN2 of block {i}"
    # Writes: the residual leaving block b is the block's output plus exactly the outputs of the
    # memories with j == b, added in wiring order; nothing is added anywhere else.
    for b in range(len(model.blocks)):
        expected = block_out[b]
        for k, (_, j) in enumerate(wiring):
            if j == b:
                expected = expected + mem_out[k]
        assert torch.equal(next_in[b], expected), f"residual after block {b}"
        writers = [k for k, (_, j) in enumerate(wiring) if j == b]
        assert torch.equal(next_in[b], block_out[b]) == (not writers)


def test_zero_memory_output_leaves_the_model_unchanged():
    kw = dict(n_layers=4, memory_wiring=((0, 2), (3, 3)))
    with_memory = build(memory=StandInConfig(16, zero_output=True), **kw)
    plain = build(**{**kw, "memory_wiring": ()})
    missing, unexpected = plain.load_state_dict(with_memory.state_dict(), strict=False)
    assert not missing and all(name.startswith("memories.") for name in unexpected)
    idx = random_tokens(2, 9)
    torch.testing.assert_close(with_memory(idx).logits, plain(idx).logits, rtol=0, atol=0)


def test_each_pair_gets_its_own_memory_layer_and_keeps_its_init():
    calls = []

    def factory(cfg):
        calls.append(cfg)
        return StandInMemory(cfg)

    cfg = StandInConfig(16, init_value=0.123)
    model = build(factory=factory, n_layers=4, memory=cfg, memory_wiring=((0, 1), (2, 3)))
    assert calls == [cfg, cfg]
    assert isinstance(model.memories, nn.ModuleList) and len(model.memories) == 2
    assert model.memories[0] is not model.memories[1]
    assert model.memories[0].proj.weight.data_ptr() != model.memories[1].proj.weight.data_ptr()
    for memory in model.memories:
        assert bool((memory.proj.weight == 0.123).all()), "GPT-2 init must not touch memory layers"
    assert model.memory_wiring == ((0, 1), (2, 3))


# ---------------------------------------------------------------------------------------------
# Gradients, init, overfitting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [{}, {"tie_embeddings": False}, {**MEMORY, "ffn": "moe", "moe": MoEConfig(16, n_experts=4)}]
)
def test_every_parameter_gets_a_gradient(kw):
    model = build(**kw)
    out = model(random_tokens(4, 12), random_tokens(4, 12, seed=1))
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        if not name.startswith("pos_emb"):
            assert p.grad.abs().sum() > 0, name


def test_gpt2_initialisation():
    torch.manual_seed(0)
    model = TransformerLM(tiny_config(d_model=128, n_layers=8, n_heads=4, vocab_size=300))
    residual = 0.02 / math.sqrt(2 * 8)
    for name, p in model.named_parameters():
        if name.endswith("out_proj.weight"):
            assert p.std().item() == pytest.approx(residual, rel=0.05), name
        elif name.endswith("weight") and p.dim() == 2:
            assert p.std().item() == pytest.approx(0.02, rel=0.05), name
        elif name.endswith("bias") and "ln" not in name:
            assert bool((p == 0).all()), name
    assert model.lm_head.weight is model.tok_emb.weight
    untied = TransformerLM(tiny_config(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.tok_emb.weight


def _overfit(model, steps, lr=3e-3):
    idx = random_tokens(4, 12, seed=5)
    tgt = random_tokens(4, 12, seed=6)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    first = None
    for _ in range(steps):
        out = model(idx, tgt)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        first = out.lm_loss.item() if first is None else first
    return first, model(idx, tgt).lm_loss.item()


@pytest.mark.parametrize("kw", [{}, {"ffn": "moe", "moe": MoEConfig(16, n_experts=4)}, MEMORY])
def test_overfits_one_small_batch(kw):
    first, last = _overfit(build(**kw), steps=100, lr=1e-2)
    assert last < 0.3 * first, (first, last)


# ---------------------------------------------------------------------------------------------
# Wiring helper, parameter counts
# ---------------------------------------------------------------------------------------------


def test_default_wiring_examples():
    assert default_wiring(20, 4) == ((2, 5), (6, 9), (10, 13), (14, 17))   # the released config
    assert default_wiring(4, 1) == ((1, 2),)
    assert default_wiring(2, 2) == ((0, 0), (1, 1))
    assert default_wiring(6, 0) == ()


@settings(max_examples=60, deadline=None)
@given(n_layers=st.integers(1, 40), data=st.data())
def test_default_wiring_is_valid_and_non_overlapping(n_layers, data):
    m = data.draw(st.integers(0, n_layers))
    wiring = default_wiring(n_layers, m)
    assert len(wiring) == m
    tiny_config(n_layers=n_layers, memory=StandInConfig(16) if m else None, memory_wiring=wiring)
    for (i, j), (i2, _) in zip(wiring, wiring[1:]):
        assert i <= j < i2


def test_parameter_counts_of_dense_and_moe_models_match_in_activated_compute():
    dense = build(d_model=32, n_heads=4)
    moe = build(d_model=32, n_heads=4, ffn="moe", moe=MoEConfig(32, n_experts=8, top_k=2))
    d, n, layers = 32, 8, 2
    # Per block the MoE activates one extra output bias (D) and the router (N·D).
    extra = layers * (d + n * d)
    assert activated_parameters_per_token(moe, exclude_embeddings=True) == (
        num_parameters(dense, exclude_embeddings=True) + extra
    )
    assert num_parameters(moe) > 3 * num_parameters(dense, exclude_embeddings=True)
    # Tied head counted once.
    assert num_parameters(dense) - num_parameters(dense, exclude_embeddings=True) == (17 + 12) * 32


def test_activated_count_asks_memory_layers_that_know_their_sparsity():
    class SparseStandIn(StandInMemory):
        def activated_parameters_per_token(self):
            return 7

    plain = build(n_layers=4)
    with_memory = build(factory=SparseStandIn, n_layers=4, memory=StandInConfig(16),
                        memory_wiring=((0, 1), (2, 3)))
    per_memory = num_parameters(with_memory.memories[0])
    assert num_parameters(with_memory) == num_parameters(plain) + 2 * per_memory
    assert activated_parameters_per_token(with_memory) == activated_parameters_per_token(plain) + 2 * 7


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,error,match",
    [
        (dict(memory_wiring=((1, 0),), memory=StandInConfig(16)), ValueError, "i <= j"),
        (dict(memory_wiring=((0, 2),), memory=StandInConfig(16)), ValueError, r"memory_wiring\[0\]\[1\]"),
        (dict(memory_wiring=((-1, 0),), memory=StandInConfig(16)), ValueError, r"memory_wiring\[0\]\[0\]"),
        (dict(memory_wiring=((0,),), memory=StandInConfig(16)), ValueError, "pair"),
        (dict(memory_wiring=((0, 1.0),), memory=StandInConfig(16)), TypeError, "must be an int"),
        (dict(memory_wiring="0:1", memory=StandInConfig(16)), TypeError, "memory_wiring"),
        (dict(memory_wiring=((0, 1),)), ValueError, "memory is None"),
        (dict(memory=StandInConfig(16)), ValueError, "memory_wiring is empty"),
        (dict(memory=StandInConfig(8), memory_wiring=((0, 1),)), ValueError, "memory.d_model"),
        (dict(n_heads=3), ValueError, "n_heads must divide d_model"),
        (dict(ffn="mlp"), ValueError, "ffn must be one of"),
        (dict(ffn="moe", moe=MoEConfig(8)), ValueError, "moe.d_model"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(vocab_size=0), ValueError, "vocab_size"),
        (dict(tie_embeddings=1), TypeError, "tie_embeddings"),
    ],
)
def test_config_validation(kw, error, match):
    with pytest.raises(error, match=match):
        tiny_config(**kw)


def test_forward_validation():
    model = build()
    with pytest.raises(TypeError, match="idx must be an int32 or int64"):
        model(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="idx must have 2 dimensions"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"idx must lie in \[0, 17\)"):
        model(torch.full((2, 4), 17))
    with pytest.raises(ValueError, match="seq_len=12"):
        model(torch.zeros(2, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must have the shape"):
        model(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="config must be an LMConfig"):
        TransformerLM(MoEConfig(16))


def test_bad_memory_layers_are_reported():
    class ReturnsTensor(nn.Module):
        def __init__(self, cfg):
            super().__init__()

        def forward(self, x):
            return x

    class WrongShape(StandInMemory):
        def forward(self, x):
            out = super().forward(x)
            out.output = out.output[..., :4]
            return out

    kw = dict(memory=StandInConfig(16), memory_wiring=((0, 1),))
    with pytest.raises(TypeError, match="must return a MemoryOutput"):
        build(factory=ReturnsTensor, **kw)(random_tokens(1, 4))
    with pytest.raises(ValueError, match=r"output must have shape \(1, 4, 16\)"):
        build(factory=WrongShape, **kw)(random_tokens(1, 4))
    with pytest.raises(TypeError, match="must return an nn.Module"):
        build(factory=lambda cfg: object(), **kw)
    with pytest.raises(TypeError, match="PKMConfig or ultramem_edu.layer.UltraMemConfig"):
        build_memory_layer(StandInConfig(16))
    with pytest.raises(TypeError, match="PKMConfig or ultramem_edu.layer.UltraMemConfig"):
        TransformerLM(tiny_config(**kw))


# ---------------------------------------------------------------------------------------------
# The real memory layers, built from LMConfig.memory by the default factory
# ---------------------------------------------------------------------------------------------

HAVE_PKM = importlib.util.find_spec("ultramem_edu.product_keys") is not None
HAVE_ULTRAMEM = importlib.util.find_spec("ultramem_edu.layer") is not None
needs_pkm = pytest.mark.skipif(
    not HAVE_PKM, reason="ultramem_edu/product_keys.py (PKMLayer) is not in this checkout"
)
needs_ultramem = pytest.mark.skipif(
    not HAVE_ULTRAMEM, reason="ultramem_edu/layer.py (UltraMemLayer) is not in this checkout"
)


def pkm_config():
    from ultramem_edu.product_keys import PKMConfig

    return PKMConfig(d_model=16, num_keys=8, key_dim=8, num_heads=2, topm=4)


def ultramem_config(**kw):
    from ultramem_edu.layer import UltraMemConfig

    base = dict(d_model=16, num_values=64, key_dim=8, num_heads=2, topm=4, num_layers=4)
    base.update(kw)
    return UltraMemConfig(**base)


def real_memory_model(memory, seed=0, wiring=((1, 2), (0, 0))):
    torch.manual_seed(seed)
    return TransformerLM(tiny_config(n_layers=4, memory=memory, memory_wiring=wiring))


@needs_pkm
def test_model_with_pkm_layers():
    from ultramem_edu.product_keys import PKMLayer

    model = real_memory_model(pkm_config())
    assert [type(m) for m in model.memories] == [PKMLayer, PKMLayer]
    assert model.memories[0].values.weight is not model.memories[1].values.weight
    out = model(random_tokens(2, 9), random_tokens(2, 9, seed=1), return_memory=True)
    assert out.memory[0].indices.shape == (2, 9, 2, 4)
    assert out.memory_aux_loss == 0
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    # PKM's query BatchNorm mixes statistics across the batch *and time* while training, so
    # causality holds only in eval mode (running statistics).
    model.eval()
    idx = random_tokens(2, 9)
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 3) % 17
    torch.testing.assert_close(model(idx).logits[:, :5], model(changed).logits[:, :5], rtol=0, atol=1e-6)


@needs_ultramem
@pytest.mark.parametrize("conv", [0, 3])
def test_model_with_ultramem_layers(conv):
    from ultramem_edu.layer import UltraMemLayer

    model = real_memory_model(ultramem_config(query_conv_kernel=conv))
    assert [type(m) for m in model.memories] == [UltraMemLayer, UltraMemLayer]
    assert model.memories[0].values is not model.memories[1].values
    idx, tgt = random_tokens(2, 9), random_tokens(2, 9, seed=1)
    out = model(idx, tgt, return_memory=True)
    for m in out.memory:
        assert m.output.shape == (2, 9, 16) and m.indices.shape == (2, 9, 2, 4)
        assert m.singular_values.shape == (2, 2)
    torch.testing.assert_close(out.memory_aux_loss, out.memory[0].aux_loss + out.memory[1].aux_loss)
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    # LayerNorm (not BatchNorm) on the query and a causal conv: causal even while training.
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 3) % 17
    with torch.no_grad():
        a, b = model(idx).logits, model(changed).logits
    torch.testing.assert_close(a[:, :5], b[:, :5], rtol=0, atol=1e-6)


@needs_ultramem
def test_ultramem_depth_must_match_the_model():
    with pytest.raises(ValueError, match="memory.num_layers must equal n_layers=4"):
        tiny_config(n_layers=4, memory=ultramem_config(num_layers=20), memory_wiring=((1, 2),))


@needs_ultramem
def test_ultramem_model_memorises_a_small_batch():
    model = real_memory_model(ultramem_config())
    first, last = _overfit(model, steps=60, lr=1e-2)
    assert last < 0.3 * first, (first, last)


def _train_only(model, prefixes, steps=60, lr=1e-1):
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefixes))
    idx, tgt = random_tokens(4, 12, seed=5), random_tokens(4, 12, seed=6)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        loss = model(idx, tgt).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model(idx, tgt).lm_loss.item()


@needs_ultramem
def test_ultramem_memory_layers_do_the_memorising(seed=0):
    # The transformer frozen at init; only the memory layers and the final LN gain (which sets
    # the logit range of the frozen tied head) train. The control trains the final LN alone.
    # Random targets: only a lookup keyed on the token and its context can fit them.
    memory = ultramem_config(num_values=256)
    control = _train_only(real_memory_model(memory, seed), ("ln_f",))
    trained = _train_only(real_memory_model(memory, seed), ("ln_f", "memories."))
    assert trained < 0.6 * control, (trained, control)
