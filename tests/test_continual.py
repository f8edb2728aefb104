"""Sparse memory finetuning: the TF-IDF ranking against its brute-force reference, slot counting
against the value gradient, masked optimiser steps that leave every other number bit-identical
(AdamW with weight decay included), LoRA, and the metrics."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.continual import (LoRALinear, apply_lora, background_document_frequency, changed_rows,
                                    counts_from_outputs, fact_recall, freeze_all_but, heldout_loss,
                                    masked_optimizer_step, memory_tables, row_mask, slot_access_counts, slot_rows,
                                    sparse_memory_finetune_step, tfidf_scores, tfidf_scores_reference,
                                    tfidf_top_slots, tfidf_top_slots_reference, value_table_parameters)
from ultramem_edu.data import fact_recall_accuracy, make_facts
from ultramem_edu.engram import EngramConfig
from ultramem_edu.layer import UltraMemConfig
from ultramem_edu.memory_plus import MemoryPlusConfig
from ultramem_edu.model import LMConfig, TransformerLM
from ultramem_edu.peer import PEERConfig
from ultramem_edu.product_keys import PKMConfig
from ultramem_edu.v2 import UltraMemV2Config

V, D = 20, 16
MEMORIES = {
    "ultramem": lambda: UltraMemConfig(D, num_values=64, key_dim=4, num_layers=2, topm=4),
    "pkm": lambda: PKMConfig(D, num_keys=8, key_dim=4, topm=4),
    "memory_plus": lambda: MemoryPlusConfig(D, num_values=64, key_dim=4, topm=4),
    "peer": lambda: PEERConfig(D, num_experts=64, key_dim=4, topk=4),
    "ultramem_v2": lambda: UltraMemV2Config(D, key_dim=4, topm=4, num_layers=2),
    "engram": lambda: EngramConfig(D, V, n_embed_per_ngram=8, n_head_per_ngram=2),
}


def model_with(kind: str, seed: int = 0) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(LMConfig(vocab_size=V, d_model=D, n_layers=2, n_heads=2, seq_len=8,
                                  memory=MEMORIES[kind](), memory_wiring=((0, 0), (1, 1))))


def lm_loss(idx):
    return lambda out: F.cross_entropy(out.logits.flatten(0, 1), idx.flatten())


# ---------------------------------------------------------------------- TF-IDF
def test_tfidf_by_hand():
    counts, df = torch.tensor([3, 1, 0, 4]), torch.tensor([0, 2, 1, 4])
    expected = [3 / 8 * math.log(5), 1 / 8 * math.log(5 / 3), 0.0, 0.0]
    torch.testing.assert_close(tfidf_scores(counts, df, 4), torch.tensor(expected, dtype=torch.float64))
    assert tfidf_top_slots(counts, df, 4, t=2).tolist() == [0, 1]
    assert tfidf_top_slots(counts, df, 4, t=10).tolist() == [0, 1, 3]     # slot 2 was not read


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 40), num_docs=st.integers(1, 6), t=st.integers(1, 45))
def test_ranking_equals_brute_force_reference(data, n, num_docs, t):
    counts = torch.tensor(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))   # small: many ties
    if int(counts.sum()) == 0:
        counts[0] = 1
    df = torch.tensor(data.draw(st.lists(st.integers(0, num_docs), min_size=n, max_size=n)))
    torch.testing.assert_close(tfidf_scores(counts, df, num_docs), tfidf_scores_reference(counts, df, num_docs))
    fast, slow = tfidf_top_slots(counts, df, num_docs, t), tfidf_top_slots_reference(counts, df, num_docs, t)
    assert fast.tolist() == slow.tolist()
    assert len(fast) == min(t, int((counts > 0).sum()))


@pytest.mark.parametrize("args, error, name", [
    ((torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), 2), ValueError, "counts"),
    ((torch.ones(3, dtype=torch.int64), torch.zeros(4, dtype=torch.int64), 2), ValueError, "doc_freq"),
    ((torch.ones(3, dtype=torch.int64), torch.full((3,), 3), 2), ValueError, "doc_freq"),
    ((torch.ones(3), torch.zeros(3, dtype=torch.int64), 2), TypeError, "counts"),
    ((torch.ones(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), 0), ValueError, "num_docs"),
])
def test_ranking_validation(args, error, name):
    for f in (tfidf_scores, tfidf_scores_reference):
        with pytest.raises(error, match=name):
            f(*args)
    with pytest.raises(ValueError, match="t must"):
        tfidf_top_slots(torch.ones(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), 2, t=0)


# ---------------------------------------------------------------------- slots and counts
@pytest.mark.parametrize("kind", sorted(MEMORIES))
def test_counted_slots_are_the_rows_that_receive_gradient(kind):
    model = model_with(kind).eval()
    idx = torch.randint(0, V, (3, 8), generator=torch.Generator().manual_seed(1))
    out = model(idx, return_memory=True)
    tables = memory_tables(model)
    counts = counts_from_outputs(model, out.memory, tables)
    lm_loss(idx)(out).backward()
    for table, c in zip(tables, counts):
        per_row = sum(table.params[0].new_zeros(table.num_slots).add(p.grad.abs().sum(1)) for p in table.params
                      if p.grad is not None)
        assert torch.equal(torch.nonzero(per_row).flatten(), torch.nonzero(c).flatten())
    reads = sum(o.indices.numel() for o in out.memory)
    assert sum(int(c.sum()) for c in counts) == reads
    assert [c.tolist() for c in slot_access_counts(model, idx, tables)] == [c.tolist() for c in counts]


def test_shared_tables_and_ultramem_shuffle():
    plus = memory_tables(model_with("memory_plus"))
    assert len(plus) == 1 and plus[0].layers == (0, 1)
    model = model_with("ultramem")
    layer = model.memories[0]
    grid = torch.tensor([[0, 5, 63]])
    assert slot_rows(layer, grid).tolist() == (layer.shuffle[grid] % 64).tolist()
    assert len(memory_tables(model_with("peer"))[0].params) == 2


def test_background_document_frequency_counts_batches():
    model = model_with("pkm").eval()
    g = torch.Generator().manual_seed(2)
    batches = [torch.randint(0, V, (2, 8), generator=g) for _ in range(4)]
    dfs, num = background_document_frequency(model, batches)
    assert num == 4
    manual = sum((c > 0).long() for c in (slot_access_counts(model, b)[0] for b in batches))
    assert torch.equal(dfs[0], manual) and int(dfs[0].max()) <= 4
    with pytest.raises(ValueError, match="batches"):
        background_document_frequency(model, [])


# ---------------------------------------------------------------------- masked steps
def _table_and_optimizer(kind: str):
    torch.manual_seed(3)
    w = torch.nn.Parameter(torch.randn(10, 4))
    opt = {"sgd": lambda: torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.1),
           "adam": lambda: torch.optim.Adam([w], lr=0.1),
           "adamw": lambda: torch.optim.AdamW([w], lr=0.1, weight_decay=0.1)}[kind]()
    return w, opt


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_masked_step_leaves_other_rows_and_their_state_bit_identical(kind):
    w, opt = _table_and_optimizer(kind)
    for step, rows in enumerate(([0, 1, 2], [2, 3], [7], [0, 9])):   # masks change: stale moments
        before = w.detach().clone()
        state_before = {k: v.clone() for k, v in opt.state[w].items() if isinstance(v, torch.Tensor) and v.dim() == 2}
        w.grad = torch.randn_like(w)
        mask = row_mask(10, torch.tensor(rows))
        masked_optimizer_step(opt, {w: mask})
        assert torch.equal(w.detach()[~mask], before[~mask])
        assert bool((w.detach()[mask] != before[mask]).all(dim=1).all())
        assert changed_rows(before, w.detach()).tolist() == sorted(rows)
        for k, v in state_before.items():
            assert torch.equal(opt.state[w][k][~mask], v[~mask])


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_zeroing_gradients_alone_is_not_enough(kind):
    w, opt = _table_and_optimizer(kind)
    w.grad = torch.randn_like(w)
    opt.step()                                                # every row trained once: moments nonzero
    before = w.detach().clone()
    w.grad = torch.randn_like(w)
    w.grad[1:] = 0                                            # "mask" by zeroing gradients only
    opt.step()
    assert not torch.equal(w.detach()[1:], before[1:])        # stale moments (and weight decay) move them


def test_masked_step_validation():
    w, opt = _table_and_optimizer("sgd")
    with pytest.raises(ValueError, match="masks"):
        masked_optimizer_step(opt, {w: torch.ones(9, dtype=torch.bool)})
    with pytest.raises(TypeError, match="optimizer"):
        masked_optimizer_step(object(), {})
    with pytest.raises(ValueError, match="rows"):
        row_mask(5, torch.tensor([5]))


@pytest.mark.parametrize("kind", sorted(MEMORIES))
def test_sparse_step_changes_only_the_chosen_rows_of_the_whole_model(kind):
    model = model_with(kind).eval()
    g = torch.Generator().manual_seed(4)
    dfs, num = background_document_frequency(model, [torch.randint(0, V, (2, 8), generator=g) for _ in range(3)])
    opt = torch.optim.AdamW(freeze_all_but(model, value_table_parameters(model)), lr=1e-2, weight_decay=0.1)
    tables = memory_tables(model)
    slot_of = {}                                              # state_dict key -> table (shared tables: several keys)
    for key, value in model.state_dict(keep_vars=True).items():
        for i, table in enumerate(tables):
            if any(value is p for p in table.params):
                slot_of[key] = i
    for _ in range(3):
        idx = torch.randint(0, V, (2, 8), generator=g)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        result = sparse_memory_finetune_step(model, opt, lm_loss(idx), idx, dfs, num, t=5)
        after = model.state_dict()
        chosen = {key: result["slots"][i] for key, i in slot_of.items()}
        for key in before:
            if key in chosen:
                assert changed_rows(before[key], after[key]).tolist() == sorted(chosen[key].tolist())
            else:
                assert torch.equal(before[key], after[key]), key
        assert all(0 < len(s) <= 5 for s in result["slots"])


def test_freeze_and_value_table_parameters():
    model = model_with("ultramem")
    params = freeze_all_but(model, value_table_parameters(model))
    assert [p.requires_grad for p in params] == [True, True]
    assert sum(p.requires_grad for p in model.parameters()) == 2


# ---------------------------------------------------------------------- LoRA
def test_lora_starts_unchanged_and_trains_only_its_factors():
    model = model_with("ultramem").eval()
    idx = torch.randint(0, V, (2, 8), generator=torch.Generator().manual_seed(5))
    before_logits = model(idx).logits.detach()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = apply_lora(model, rank=2, alpha=4.0)
    assert all(p.requires_grad for p in params)
    assert sum(p.requires_grad for p in model.parameters()) == len(params) == 2 * 4 * 2   # qkv, out, in, out × 2 blocks
    torch.testing.assert_close(model(idx).logits, before_logits)
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    lm_loss(idx)(model(idx)).backward()
    opt.step()
    for n, p in model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, frozen[n.replace(".base.", ".")]), n
    assert not torch.allclose(model(idx).logits, before_logits)


def test_lora_merged_weight_computes_the_same_function():
    torch.manual_seed(6)
    lin = LoRALinear(torch.nn.Linear(5, 3).double(), rank=2, alpha=3.0)
    with torch.no_grad():
        lin.lora_b.normal_()
    x = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(lin(x), F.linear(x, lin.merged_weight(), lin.base.bias))
    assert lin.scaling == 1.5


def test_lora_validation():
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(torch.nn.Linear(5, 3), rank=4, alpha=1.0)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(torch.nn.Linear(5, 3), rank=1, alpha=0.0)
    with pytest.raises(TypeError, match="base"):
        LoRALinear(torch.nn.Conv1d(2, 2, 1), rank=1, alpha=1.0)
    with pytest.raises(ValueError, match="targets"):
        apply_lora(model_with("pkm"), targets=("nothing",))
    with pytest.raises(ValueError, match="within"):
        apply_lora(model_with("pkm"), within="nowhere")


# ---------------------------------------------------------------------- metrics
class _Oracle(torch.nn.Module):
    """Answers every fact right (or, with ``wrong_from``, wrong from that fact index on)."""

    def __init__(self, facts, offset, vocab, wrong_from=None):
        super().__init__()
        self.config = type("C", (), {"vocab_size": vocab})()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.answer = {tuple(r[:2]): r[2] for r in facts.triples.tolist()}
        self.offset, self.vocab, self.facts, self.wrong_from = offset, vocab, facts, wrong_from

    def forward(self, x):
        logits = torch.zeros(x.shape[0], x.shape[1], self.vocab)
        for b, (s, r) in enumerate((x - self.offset).tolist()):
            o = self.answer[(s, r)]
            if self.wrong_from is not None and s * self.facts.num_relations + r - self.facts.num_subjects >= self.wrong_from:
                o = self.facts.object_offset + (o - self.facts.object_offset + 1) % self.facts.num_objects
            logits[b, -1, self.offset + o] = 1.0
        return type("Out", (), {"logits": logits})()


def test_fact_recall_with_a_token_offset():
    facts = make_facts(4, 2, 5, seed=0)
    assert fact_recall(_Oracle(facts, 30, 30 + facts.vocab_size), facts, token_offset=30) == 1.0
    assert fact_recall(_Oracle(facts, 30, 30 + facts.vocab_size, wrong_from=4), facts, token_offset=30) == 0.5
    with pytest.raises(ValueError, match="token_offset"):
        fact_recall(_Oracle(facts, 0, facts.vocab_size), facts, token_offset=1)


def test_fact_recall_matches_the_facts_harness_metric():
    facts = make_facts(3, 2, 4, seed=1)
    torch.manual_seed(7)
    model = TransformerLM(LMConfig(vocab_size=facts.vocab_size, d_model=D, n_layers=1, n_heads=2, seq_len=2))
    assert fact_recall(model, facts) == fact_recall_accuracy(lambda x: model(x).logits, facts)


def test_heldout_loss_is_the_mean_cross_entropy_of_the_windows():
    model = model_with("pkm").eval()
    tokens = torch.randint(0, V, (50,), generator=torch.Generator().manual_seed(8))
    windows = torch.stack([tokens[i * 8:i * 8 + 9] for i in range(6)])
    logits = model(windows[:, :-1]).logits
    expected = float(F.cross_entropy(logits.reshape(-1, V), windows[:, 1:].reshape(-1)).detach())
    assert heldout_loss(model, tokens, seq_len=8, batch_size=4) == pytest.approx(expected, rel=1e-6)
    assert heldout_loss(model, tokens, seq_len=8, max_windows=2) != pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="tokens"):
        heldout_loss(model, tokens[:5], seq_len=8)
