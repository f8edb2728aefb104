"""Engram as a chapter-11 model family: registered in the ``lm`` harness, at the dense model's activated
parameters within the harness's 3 %, holding about UltraMem's value parameters, addressed by the tokens
alone, starting at the residual scale, and trained by the quick ``lm`` run."""
import pytest
import torch

from ultramem_edu.engram import EngramConfig, EngramLayer, prefetch_addresses
from ultramem_edu.experiments import run
from ultramem_edu.experiments.common import kjv_tokens, model_parameter_counts
from ultramem_edu.experiments.families import MODEL_FAMILIES, FamilyContext, make_family
from ultramem_edu.experiments.families_after import ENGRAM_RECIPE
from ultramem_edu.experiments.lm import FAMILIES as LM_FAMILIES
from ultramem_edu.experiments.lm import num_values_for
from ultramem_edu.experiments.specs import SPECS
from ultramem_edu.layer import memory_param_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def _ctx(scale: str, vocab_size: int | None = None) -> FamilyContext:
    return FamilyContext(vocab_size=vocab_size or kjv_tokens()[0].vocab_size, **SPECS["lm"][scale]["model"])


def test_engram_is_registered_in_the_lm_harness():
    assert "engram" in MODEL_FAMILIES and "engram" in LM_FAMILIES
    assert num_values_for(SPECS["lm"]["full"], "engram") == SPECS["lm"]["full"]["num_values"]


@pytest.mark.parametrize("scale", ["quick", "full", "gpu"])
def test_engram_matches_dense_activated_parameters_and_ultramem_values(scale):
    spec = SPECS["lm"][scale]
    ctx = _ctx(scale)
    fam = make_family("engram", ctx, spec["num_values"])
    torch.manual_seed(0)
    model = fam.build()
    dense = model_parameter_counts(make_family("dense", ctx).build())["activated"]
    activated = model_parameter_counts(model)["activated"]
    assert fam.compute_matched and abs(activated - dense) <= 0.03 * dense
    layer = model.memories[0]
    assert isinstance(layer, EngramLayer) and len(model.memories) == 1
    budget = spec["num_values"] * ctx.d_model // 2                 # UltraMem's N values of width D/2
    # 16 distinct primes at or above the same size: the gaps between them weigh more in small tables
    assert budget <= layer.table.numel() <= (1.2 if scale == "quick" else 1.05) * budget
    assert layer.config.n_head_per_ngram == ENGRAM_RECIPE["n_head_per_ngram"]
    assert layer.config.max_ngram_size == ENGRAM_RECIPE["max_ngram_size"]
    assert layer.config.n_embed_per_ngram == ctx.d_model // 2
    assert fam.recipe == {}
    groups = {g["name"]: g for g in memory_param_groups(model, lr=1e-3, weight_decay=0.1)}
    assert any(p is layer.table for p in groups["values"]["params"]) and groups["values"]["weight_decay"] == 0.0


def test_engram_family_compresses_the_kjv_characters_and_only_those():
    ctx = _ctx("full")
    n = SPECS["lm"]["full"]["num_values"]
    layer = make_family("engram", ctx, n).build().memories[0]
    tok = kjv_tokens()[0]
    assert layer.compressed_vocab_size < tok.vocab_size
    ids = tok.encode("The the\n")
    comp = layer.compression[ids]
    assert comp[0] == comp[4] and comp[3] == comp[7]             # T ~ t, space ~ newline
    other = make_family("engram", _ctx("full", vocab_size=tok.vocab_size + 3), n)
    assert "no tokenizer compression" in other.description
    assert other.build().memories[0].compressed_vocab_size == tok.vocab_size + 3


def test_engram_family_addresses_are_known_before_the_model_runs():
    ctx = _ctx("quick")
    torch.manual_seed(1)
    model = make_family("engram", ctx, SPECS["lm"]["quick"]["num_values"]).build()
    idx = torch.randint(0, ctx.vocab_size, (2, ctx.seq_len))
    planned = prefetch_addresses(model, idx)
    out = model(idx, targets=idx, return_memory=True)
    assert list(planned) == [0] and torch.equal(out.memory[0].indices[..., 0], planned[0])


def test_engram_family_starts_at_the_residual_scale_unlike_the_demo_default():
    ctx = _ctx("full")
    torch.manual_seed(2)
    layer = make_family("engram", ctx, SPECS["lm"]["full"]["num_values"]).build().memories[0]
    demo = EngramLayer(EngramConfig(ctx.d_model, ctx.vocab_size, engram_vocab_size=layer.config.engram_vocab_size,
                                    n_embed_per_ngram=layer.config.n_embed_per_ngram))
    idx = torch.randint(0, ctx.vocab_size, (4, ctx.seq_len))
    h = torch.randn(4, ctx.seq_len, ctx.d_model)
    with torch.no_grad():
        ours = layer(h, token_ids=idx).output.pow(2).mean().sqrt()
        theirs = demo(h, token_ids=idx).output.pow(2).mean().sqrt()
    assert ours < 0.1 < theirs


def test_quick_lm_trains_the_engram_family(tmp_path):
    payload = run("lm", quick=True, models=("engram",), out=str(tmp_path), progress=False,
                  checkpoints=str(tmp_path / "ck"))
    entry = payload["models"]["engram"]
    assert payload["complete"] and entry["compute_matched"]
    assert len(entry["test_loss_per_seed"]) == len(SPECS["lm"]["quick"]["seeds"])
    assert all(2.0 < loss < 4.5 for loss in entry["test_loss_per_seed"])
