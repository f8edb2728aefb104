"""Chapter 12's designs (UltraMemV2, PEER, Memory+) as chapter-11 model families: registered, at the
dense model's activated compute within the harness's tolerance, holding about the UltraMem families'
value parameters (a shared pool counted once), trained by the quick ``lm`` and ``facts`` runs."""
import json
import math

import pytest
import torch

from ultramem_edu.after_ultramem import parameter_counts
from ultramem_edu.experiments import run
from ultramem_edu.experiments.common import kjv_splits, model_parameter_counts
from ultramem_edu.experiments.families import MODEL_FAMILIES, FamilyContext, make_family
from ultramem_edu.experiments.lm import FAMILIES as LM_FAMILIES
from ultramem_edu.experiments.specs import SPECS
from ultramem_edu.experiments.trainer import make_optimizer
from ultramem_edu.layer import memory_param_groups
from ultramem_edu.moe import num_parameters

NEW = ("ultramem_v2", "peer", "memory_plus")
SIZES = [("lm", "quick"), ("lm", "full"), ("facts", "quick"), ("facts", "full")]


pytestmark = pytest.mark.usefixtures("one_thread")   # experiments may change the thread count


def test_new_families_are_registered_in_lm_and_facts():
    for name in NEW:
        assert name in MODEL_FAMILIES and name in LM_FAMILIES
        for scale in ("quick", "full", "gpu"):
            assert name in SPECS["facts"][scale]["families"]


@pytest.mark.parametrize("experiment,scale", SIZES)
def test_new_families_match_dense_activated_compute_and_value_parameters(experiment, scale):
    spec = SPECS[experiment][scale]
    ctx = FamilyContext(vocab_size=kjv_splits()[0].vocab_size, **spec["model"])
    torch.manual_seed(0)
    dense = parameter_counts(make_family("dense", ctx).build())["activated"]
    n = spec["num_values"]
    for name in NEW:
        fam = make_family(name, ctx, n)
        model = fam.build()
        counts = parameter_counts(model)
        assert fam.compute_matched, (name, fam.description)
        assert abs(counts["activated"] - dense) <= 0.03 * dense, (name, counts["activated"], dense)
        # the harness's counts agree with chapter 12's: a shared pool is stored once
        assert model_parameter_counts(model)["memory_total"] == counts["memory_total"] == num_parameters(model.memories)
        groups = {g["name"]: g for g in memory_param_groups(model, lr=1e-3)}   # what the trainer uses
        value_params = sum(p.numel() for p in groups["values"]["params"])
        target = n * ctx.d_model // 2                       # the UltraMem families' N values of width D/2
        assert 0.75 * target <= value_params <= 1.05 * target, (name, value_params, target)
    shared = make_family("ultramem_v2", ctx, n).build()
    per_layer = sum(num_parameters(layer) for layer in shared.memories)
    assert num_parameters(shared.memories) < per_layer      # one pool read by every layer


def test_new_family_recipes_set_the_value_learning_rate():
    ctx = FamilyContext(vocab_size=kjv_splits()[0].vocab_size, **SPECS["lm"]["quick"]["model"])
    v2, peer, mplus = (make_family(n, ctx, 512) for n in NEW)
    assert v2.recipe == {"value_lr_k": 4.0} and peer.recipe == {} and mplus.recipe == {"value_lr": 1e-3}
    opt, sched = make_optimizer(mplus.build(), dict(lr=3e-3, **mplus.recipe), steps=20, warmup_frac=0.1)
    groups = {g["name"]: g for g in opt.param_groups}
    for _ in range(5):
        opt.step()
        sched.step()
    assert groups["values"]["lr"] == pytest.approx(1e-3)                 # constant, no warm-up or cosine
    assert groups["values"]["lr"] != pytest.approx(groups[[k for k in groups if k != "values"][0]]["lr"])


def test_quick_lm_and_facts_train_the_new_families(tmp_path):
    kw = dict(quick=True, out=tmp_path, checkpoints=tmp_path / "ck", progress=False, seeds=(0,))
    run("lm", steps=3, models=("dense",) + NEW, **kw)
    data = json.loads((tmp_path / "exp_lm_quick_custom.json").read_text())
    for name in NEW:
        r = data["models"][name]
        assert r["complete"] and len(r["test_loss_per_seed"]) == 1
        assert all(math.isfinite(v) for v in r["sweep"].values())
        loss = r["test_loss"]["mean"]
        assert math.isfinite(loss) and loss < 2 * math.log(data["config"]["vocab_size"])
    assert {row["model"] for row in data["table"]} == {"dense", *NEW}
    run("facts", steps=5, models=NEW, **kw)
    data = json.loads((tmp_path / "exp_facts_quick_custom.json").read_text())
    for entry in data["results"]:
        assert set(entry["models"]) == set(NEW)
        for name, m in entry["models"].items():
            assert 0 <= m["recall"]["mean"] <= 1 and math.isfinite(m["final_train_loss"]), name
    assert set(NEW) <= {row["model"] for row in data["table"]}


def test_the_families_module_imports_in_either_order():
    import subprocess
    import sys

    for first in ("families_after", "families"):
        code = (f"import ultramem_edu.experiments.{first}; from ultramem_edu.experiments.families import "
                "MODEL_FAMILIES; assert {'ultramem_v2', 'peer', 'memory_plus'} <= set(MODEL_FAMILIES)")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
