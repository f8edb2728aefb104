"""Tests for the corpus and the synthetic facts task (ultramem_edu.data)."""
import pytest
import torch

from ultramem_edu.data import (
    CharTokenizer,
    FactsDataset,
    batches,
    corpus_stats,
    fact_recall_accuracy,
    load_corpus,
    make_facts,
    split_corpus,
)

# --- corpus ----------------------------------------------------------------------------------


def test_corpus_loads_offline_and_is_large_english():
    text = load_corpus("kjv")
    assert len(text) > 3_000_000
    assert text.startswith("Genesis\n\nIn the beginning God created the heaven and the earth.\n")
    assert text.rstrip().endswith("The grace of our Lord Jesus Christ be with you all. Amen.")
    words = text.split()
    assert len(words) > 700_000
    # English: "the" and "and" are the most common words.
    top = {w for w, _ in __import__("collections").Counter(w.lower() for w in words).most_common(3)}
    assert {"the", "and"} <= top
    assert "[]" not in text


def test_split_is_deterministic_disjoint_and_complete():
    text = load_corpus()
    train, val = split_corpus(text)
    assert (train, val) == split_corpus(load_corpus())
    assert train + val == text
    assert train.endswith("\n")  # cut on a line boundary, no verse split
    assert 0.049 < len(val) / len(text) < 0.051
    # Disjoint: the validation text's first lines do not occur in the training part.
    for line in val.splitlines()[:20]:
        if len(line) > 40:
            assert line not in train


def test_split_small_text_and_validation():
    assert split_corpus("aaaa\nbbbb\ncccc\ndddd\n", 0.5) == ("aaaa\nbbbb\ncccc\n", "dddd\n")
    with pytest.raises(ValueError, match="val_fraction"):
        split_corpus("abc", 1.0)
    with pytest.raises(TypeError, match="text"):
        split_corpus(b"abc")


def test_corpus_stats():
    s = corpus_stats()
    text = load_corpus()
    assert s["chars"] == len(text)
    assert s["train_chars"] + s["val_chars"] == s["chars"]
    assert 50 < s["vocab_size"] < 100
    assert s["val_unknown_chars"] <= 2


def test_unknown_corpus_name():
    with pytest.raises(ValueError, match="name"):
        load_corpus("shakespeare")


# --- tokenizer -------------------------------------------------------------------------------


def test_tokenizer_round_trip_on_validation_text():
    train, val = split_corpus(load_corpus())
    tok = CharTokenizer.from_text(train)
    ids = tok.encode(val)
    assert ids.dtype == torch.int64 and ids.shape == (len(val),)
    assert int(ids.max()) < tok.vocab_size
    # Characters never seen in training come back as the unknown marker; all others exactly.
    expected = "".join(c if c in train else CharTokenizer.UNK_CHAR for c in val)
    assert tok.decode(ids) == expected
    assert tok.decode(tok.encode(train[:5000])) == train[:5000]


def test_tokenizer_by_hand():
    tok = CharTokenizer.from_text("abca")
    assert tok.vocab_size == 4
    assert tok.encode("cab!").tolist() == [3, 1, 2, 0]
    assert tok.decode(torch.tensor([3, 0, 1])) == "c\ufffda"
    with pytest.raises(ValueError, match="ids"):
        tok.decode(torch.tensor([4]))
    with pytest.raises(TypeError, match="text"):
        tok.encode(None)
    with pytest.raises(ValueError, match="chars"):
        CharTokenizer("aa")


# --- batches ---------------------------------------------------------------------------------


def test_batches_shapes_and_shift():
    tokens = torch.arange(1000, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    got = list(batches(tokens, batch_size=8, seq_len=16, generator=g, num_batches=5))
    assert len(got) == 5
    for x, y in got:
        assert x.shape == y.shape == (8, 16)
        assert x.dtype == y.dtype == torch.int64
        assert torch.equal(y[:, :-1], x[:, 1:])  # targets are inputs shifted by one
        assert torch.equal(y[:, -1], x[:, -1] + 1)  # tokens are arange, so next id = +1
        assert int(y.max()) <= 999


def test_batches_on_real_text_are_deterministic():
    train, _ = split_corpus(load_corpus())
    tok = CharTokenizer.from_text(train)
    tokens = tok.encode(train[:20000])
    a = list(batches(tokens, 4, 32, torch.Generator().manual_seed(7), num_batches=3))
    b = list(batches(tokens, 4, 32, torch.Generator().manual_seed(7), num_batches=3))
    c = list(batches(tokens, 4, 32, torch.Generator().manual_seed(8), num_batches=3))
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, c))
    x, y = a[0]
    assert tok.decode(x[0])[1:] == tok.decode(y[0])[:-1]


def test_batches_validation():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="tokens"):
        next(batches(torch.arange(10, dtype=torch.int32), 2, 4, g))
    with pytest.raises(ValueError, match="seq_len"):
        next(batches(torch.arange(10), 2, 10, g))
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(torch.arange(10), 0, 4, g))
    with pytest.raises(TypeError, match="generator"):
        next(batches(torch.arange(10), 2, 4, 0))


# --- facts -----------------------------------------------------------------------------------


def test_facts_layout_and_determinism():
    f = make_facts(num_subjects=5, num_relations=3, num_objects=7, seed=1)
    assert f.triples.shape == (15, 3) and f.triples.dtype == torch.int64
    assert f.vocab_size == 15 and f.object_offset == 8
    assert f.inputs[:4].tolist() == [[0, 5], [0, 6], [0, 7], [1, 5]]
    s, r, o = f.triples.unbind(1)
    assert int(s.max()) < 5 and 5 <= int(r.min()) and int(r.max()) < 8
    assert 8 <= int(o.min()) and int(o.max()) < 15
    assert torch.equal(f.triples, make_facts(5, 3, 7, seed=1).triples)
    assert not torch.equal(f.triples, make_facts(5, 3, 7, seed=2).triples)


def test_facts_dataset_batches_cover_every_fact_once_per_epoch():
    f = make_facts(10, 4, 6, seed=0)
    ds = FactsDataset(f)
    assert len(ds) == 40
    x0, y0 = ds[3]
    assert x0.tolist() == f.inputs[3].tolist() and int(y0) == int(f.targets[3])
    got = list(ds.batches(batch_size=16, generator=torch.Generator().manual_seed(0), num_batches=3))
    assert [x.shape for x, _ in got] == [(16, 2), (16, 2), (8, 2)]
    seen = torch.cat([x[:, 0] * 100 + x[:, 1] for x, _ in got])
    assert seen.unique().numel() == 40
    lookup = {tuple(row[:2]): row[2] for row in f.triples.tolist()}
    for x, y in got:
        assert [lookup[tuple(p)] for p in x.tolist()] == y.tolist()


def test_recall_of_oracle_is_one_and_of_constant_is_chance():
    f = make_facts(num_subjects=400, num_relations=10, num_objects=20, seed=3)
    table = {tuple(row[:2]): row[2] for row in f.triples.tolist()}

    def oracle_ids(x):
        return torch.tensor([table[tuple(p)] for p in x.tolist()])

    def oracle_logits(x):  # (B, V) scores over the whole vocabulary
        return torch.nn.functional.one_hot(oracle_ids(x), f.vocab_size).float()

    def oracle_lm(x):  # (B, 2, V) per-position scores; only the last position counts
        out = torch.zeros(x.shape[0], 2, f.vocab_size)
        out[:, -1] = oracle_logits(x)
        return out

    def constant(x):  # always object 0, as (B, num_objects) scores
        out = torch.zeros(x.shape[0], f.num_objects)
        out[:, 0] = 1.0
        return out

    assert fact_recall_accuracy(oracle_ids, f, batch_size=333) == 1.0
    assert fact_recall_accuracy(oracle_logits, f) == 1.0
    assert fact_recall_accuracy(oracle_lm, f) == 1.0
    acc = fact_recall_accuracy(constant, f)
    # 4000 facts, p = 1/20: standard deviation 0.0034.
    assert abs(acc - 1 / 20) < 0.02


def test_recall_validation():
    f = make_facts(3, 2, 4, seed=0)
    with pytest.raises(ValueError, match="model_fn"):
        fact_recall_accuracy(lambda x: torch.zeros(x.shape[0], 5), f)
    with pytest.raises(TypeError, match="model_fn"):
        fact_recall_accuracy(lambda x: [0] * x.shape[0], f)
    with pytest.raises(TypeError, match="facts"):
        fact_recall_accuracy(lambda x: x[:, 0], "facts")
    with pytest.raises(ValueError, match="num_objects"):
        make_facts(3, 2, 1, seed=0)
    with pytest.raises(TypeError, match="seed"):
        make_facts(3, 2, 4, seed=None)
