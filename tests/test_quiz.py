"""ultramem_edu.viz.quiz: the chapters' quizzes as static HTML (no script, no external resource)."""
import json
import re
from pathlib import Path

import pytest

from ultramem_edu.viz.quiz import load_quiz, quiz_html, show_quiz

ROOT = Path(__file__).resolve().parent.parent
QUIZZES = sorted((ROOT / "book" / "quizzes").glob("ch*.json"))


def test_there_is_a_quiz_for_chapters_1_to_14():
    assert [p.stem for p in QUIZZES] == [f"ch{n:02d}" for n in range(1, 15)]


@pytest.mark.parametrize("path", QUIZZES, ids=lambda p: p.stem)
def test_every_quiz_renders_one_right_answer_per_question(path):
    questions = load_quiz(path)
    page = quiz_html(questions, f"quiz-{path.stem}")
    assert page.count("<fieldset") == len(questions)
    assert page.count('class="ue-right"') == len(questions)
    assert page.count('class="ue-wrong"') == sum(len(q["answers"]) for q in questions) - len(questions)
    assert "<script" not in page.lower() and not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids are unique"
    for name in set(re.findall(r'name="([^"]+)"', page)):
        assert page.count(f'name="{name}"') >= 2, "each question's answers share one radio group"
    # every $...$ became \(...\): the book's MathJax typesets \( \), not single dollars
    assert "$" not in re.sub(r"<[^>]+>", "", page.replace("\\$", ""))


def test_math_delimiters_and_feedback():
    questions = [{"type": "multiple_choice", "question": "Is $a + b$ at most $$m + 1$$?",
                  "answers": [{"answer": "yes, $a + b \\le m + 1$", "correct": True, "feedback": "Correct. The staircase."},
                              {"answer": "no", "correct": False, "feedback": "Try $m = 1$."}]}]
    page = quiz_html(questions, "q")
    assert r"\(a + b\)" in page and r"\[m + 1\]" in page and r"\(a + b \le m + 1\)" in page
    assert "Correct. The staircase." in page and r"Try \(m = 1\)." in page
    assert 'for="q-q1-a1"' in page and 'id="q-q1-a2"' in page


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="path must be an existing quiz file"):
        load_quiz(tmp_path / "missing.json")
    bad = tmp_path / "ch99.json"
    two_right = [{"type": "multiple_choice", "question": "q",
                  "answers": [{"answer": "a", "correct": True}, {"answer": "b", "correct": True}]}]
    bad.write_text(json.dumps(two_right))
    with pytest.raises(ValueError, match="exactly one answer must be correct, got 2"):
        load_quiz(bad)
    bad.write_text(json.dumps([{"type": "numeric", "question": "q", "answers": []}]))
    with pytest.raises(ValueError, match="multiple_choice"):
        load_quiz(bad)
    with pytest.raises(ValueError, match="quiz_id"):
        quiz_html(two_right, "1 bad id")


def test_show_quiz_returns_displayable_html():
    shown = show_quiz(QUIZZES[0])
    assert 'id="quiz-ch01"' in shown.data


@pytest.mark.parametrize("number", range(1, 15))
def test_every_chapter_ends_with_its_quiz(number):
    path = next((ROOT / "book").glob(f"{number:02d}_*.ipynb"))
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    quiz = [c for c in cells if "show_quiz(" in "".join(c["source"])]
    assert len(quiz) == 1 and quiz[0] is cells[-1], path.name
    assert f'"quizzes/ch{number:02d}.json"' in "".join(quiz[0]["source"])
    assert "remove-input" in quiz[0]["metadata"].get("tags", [])


# ---------------------------------------------------------------------------------------------
# Graded use: shuffled options, keys that are not the longest option, labelled inputs, numeric
# variants whose keys the package computes, the GIFT export.
# ---------------------------------------------------------------------------------------------

import html as _html  # noqa: E402
import random  # noqa: E402

from ultramem_edu import quizbank  # noqa: E402

ALL = {int(p.stem[2:]): load_quiz(p) for p in QUIZZES}


def _key_index(q):
    return next(i for i, a in enumerate(q["answers"]) if a["correct"])


def _key_is_longest(q):
    """The key is at least as long as every other option (a tie counts against the quiz)."""
    lengths = [len(a["answer"]) for a in q["answers"]]
    return lengths[_key_index(q)] == max(lengths)


def test_the_key_is_the_longest_option_in_at_most_40_percent_of_questions():
    questions = [q for qs in ALL.values() for q in qs]
    share = sum(map(_key_is_longest, questions)) / len(questions)
    assert share <= 0.40, f"the key is the longest option in {share:.0%} of {len(questions)} questions"
    # and so for the instructor's seeded quizzes (fresh variants)
    for seed in (1, 2, 3):
        drawn = [q for ch in ALL for q in quizbank.build_quiz(ch, seed)]
        assert sum(map(_key_is_longest, drawn)) / len(drawn) <= 0.40, seed


def test_the_longest_rule_can_fail():
    q = {"answers": [{"answer": "a long and careful correct answer", "correct": True}, {"answer": "no", "correct": False}]}
    assert _key_is_longest(q)


def test_pages_shuffle_the_options_with_a_fixed_seed():
    positions = []
    for ch, questions in ALL.items():
        page = quiz_html(questions, f"quiz-ch{ch:02d}")
        assert page == quiz_html(questions, f"quiz-ch{ch:02d}"), "the public order is fixed"
        for block in page.split("<fieldset")[1:]:
            kinds = re.findall(r'class="ue-(right|wrong)"', block)
            positions.append(kinds.index("right"))
    counts = [positions.count(i) for i in range(4)]
    assert min(counts) >= len(positions) // 8, f"the key sits at positions {counts} (of 0..3)"
    stored = [_key_index(q) for qs in ALL.values() for q in qs]
    assert positions != stored, "the page order differs from the stored order"
    # another seed, another order; no seed, the stored order
    one = quizbank.shuffle_answers(ALL[1], 1, "x")
    assert [a["answer"] for q in one for a in q["answers"]] != \
        [a["answer"] for q in quizbank.shuffle_answers(ALL[1], 2, "x") for a in q["answers"]]
    plain = quiz_html(ALL[1], "q", seed=None)
    first = re.findall(r'class="ue-(right|wrong)"', plain.split("<fieldset")[1])
    assert first.index("right") == _key_index(ALL[1][0])
    with pytest.raises(TypeError, match="seed"):
        quizbank.shuffle_answers(ALL[1], "1")


@pytest.mark.parametrize("chapter", sorted(ALL))
def test_every_radio_button_has_its_own_label(chapter):
    page = quiz_html(ALL[chapter], f"quiz-ch{chapter:02d}")
    inputs = re.findall(r'<input type="radio"[^>]*\bid="([^"]+)"', page)
    labels = re.findall(r'<label for="([^"]+)"', page)
    assert inputs and sorted(inputs) == sorted(labels)
    assert len(set(inputs)) == len(inputs)
    assert all(i.startswith(f"quiz-ch{chapter:02d}-") for i in inputs), "ids carry the quiz id: unique on a page"


def test_variants_in_the_files_are_what_the_package_computes():
    found = 0
    for ch, questions in ALL.items():
        for q in questions:
            if "variant" not in q:
                continue
            found += 1
            rebuilt = quizbank.variant_question(q["variant"]["name"], q["variant"]["params"])
            assert rebuilt["question"] == q["question"], (ch, q["question"])
            key = next(a["answer"] for a in q["answers"] if a["correct"])
            assert key == next(a["answer"] for a in rebuilt["answers"] if a["correct"]), (ch, key)
            assert sorted(a["answer"] for a in q["answers"]) == sorted(a["answer"] for a in rebuilt["answers"])
    assert found >= 5


def _number(text):
    """The first number of an option: '98 304' -> 98304, '$1.225 \\times 10^{-4}$' -> 1.225e-4."""
    text = text.replace("\u2009", " ")
    m = re.search(r"(\d[\d ]*(?:\.\d+)?)(?:\s*\\times 10\^\{(-?\d+)\})?", text)
    value = float(m.group(1).replace(" ", ""))
    return value * 10 ** int(m.group(2)) if m.group(2) else value


def _shows(text, value):
    """``text`` shows ``value`` rounded to the digits it prints."""
    m = re.search(r"\d[\d ]*(?:\.(\d+))?(?:\s*\\times 10\^\{(-?\d+)\})?", text.replace("\u2009", " "))
    decimals = len(m.group(1) or "")
    scale = 10 ** int(m.group(2)) if m.group(2) else 1
    return abs(_number(text) - value) <= 0.5001 * 10 ** -decimals * scale + 1e-12 * abs(value)


def _expected_key(name, p):
    """The key of each variant, from the package's functions called here directly."""
    import math

    import torch

    from ultramem_edu.cost import expected_distinct
    from ultramem_edu.init import ln_scale_for_unit_mean
    from ultramem_edu.ive import keys_per_side
    from ultramem_edu.layer import value_lr_multiplier
    from ultramem_edu.tdqkr import tucker_aux_loss

    if name == "value_lr_multiplier":
        return value_lr_multiplier(p["step"], p["total_steps"], p["k"])
    if name == "tucker_aux_loss":
        core = torch.diag(torch.tensor([p["sigma1"], p["sigma2"]], dtype=torch.float64))
        return float(tucker_aux_loss(core, tau=p["tau"], alpha=p["alpha"]))
    if name == "keys_per_side":
        return keys_per_side(p["n"] ** 2, p["expansion"])
    if name == "ln_scale":
        return ln_scale_for_unit_mean(float(p["mean"]), p["degree"])
    if name == "expected_distinct":
        return float(expected_distinct(p["experts"], p["top_k"], p["tokens"]))
    if name == "lookup_grid":
        from ultramem_edu.kernels.value_lookup_triton import _block_d

        s = p["d_v"] // p["cores"]
        return p["tokens"] * p["cores"] * math.ceil(s / _block_d(s))
    raise AssertionError(f"no expected key for variant {name}")


@pytest.mark.parametrize("name", sorted(quizbank.VARIANTS))
def test_every_seed_gives_a_variant_whose_key_matches_the_package(name):
    build, sample = quizbank.VARIANTS[name]
    seen = set()
    for seed in range(40):
        params = sample(random.Random(seed))
        q = quizbank.variant_question(name, params)
        answers = [a["answer"] for a in q["answers"]]
        assert len(answers) == 4 and len(set(answers)) == 4, answers
        key = next(a["answer"] for a in q["answers"] if a["correct"])
        expected = _expected_key(name, params)
        assert _shows(key, expected), (params, key, expected)
        for a in q["answers"]:
            if not a["correct"]:
                assert not _shows(a["answer"], expected), (params, a["answer"])
        seen.add(q["question"])
    assert len(seen) >= 5, "seeds draw different questions"


def test_a_seed_redraws_the_numeric_questions_and_keeps_the_rest():
    base, drawn = quizbank.build_quiz(10), quizbank.build_quiz(10, seed=5)
    assert [q["source"] for q in base] == [q["source"] for q in drawn]
    changed = [b["question"] != d["question"] for b, d in zip(base, drawn)]
    assert any(changed) and all(not c for b, c in zip(base, changed) if "variant" not in b)
    assert quizbank.build_quiz(10, seed=5) == drawn, "the same seed gives the same quiz"
    with pytest.raises(ValueError, match="name must be one of"):
        quizbank.variant_question("nope", {})


def _quotes_a_number(text):
    """A digit outside formulas: math holding a symbol (``$2 N D_k$``, ``$m + 1$``) and code do not count."""
    text = re.sub(r"<code>.*?</code>", "", text)
    text = re.sub(r"\$[^$]*\$", lambda m: "" if re.search(r"[A-Za-z]", m.group(0).replace("\\times", "")) else m.group(0), text)
    return bool(re.search(r"\d", text))


def test_every_key_that_quotes_a_number_is_computed_or_says_where_it_comes_from():
    assert _quotes_a_number("about 0.22 ms") and _quotes_a_number("$1.225 \\times 10^{-4}$")
    assert not _quotes_a_number("at most $m + 1$ rows")
    missing = []
    for ch, questions in ALL.items():
        for k, q in enumerate(questions, 1):
            key = next(a["answer"] for a in q["answers"] if a["correct"])
            if _quotes_a_number(key) and "variant" not in q and not str(q.get("quoted", "")).strip():
                missing.append(f"ch{ch:02d} q{k}: {key}")
    assert not missing, missing


def test_arithmetic_keys_agree_with_the_package():
    """Keys quoted as arithmetic on the question's numbers, recomputed."""
    import math

    from ultramem_edu.init import value_std

    by_text = {q["question"]: q for qs in ALL.values() for q in qs}

    def key(fragment):
        q = next(q for text, q in by_text.items() if fragment in text)
        return next(a["answer"] for a in q["answers"] if a["correct"])

    assert _number(key("time floor at 4.8 TB/s")) == pytest.approx(8192 * 128 * 512 * 2 / 4.8e12 * 1e3, rel=0.03)
    assert _number(key("times fewer scoring FLOPs")) == pytest.approx(math.sqrt(1e6) / 2, rel=0.01)
    ratio = 2 * 512 ** 2 * 128 / (2 * 2 * 512 * 128 + 32 ** 2)
    assert _number(key("how many times cheaper")) == pytest.approx(ratio, rel=0.01)
    assert "16 in total, 8 added" == key("Tucker-core parameters")  # H·h·r² = 2·2·2², h = 1 adds H·r²
    # the feedback of ch08's value-variance question quotes the package's std
    q = next(q for q in ALL[8] if "variance does the paper give the values" in q["question"])
    assert f"{value_std(4, 16, 2, 24):.3f}" in next(a["feedback"] for a in q["answers"] if a["correct"])


def test_the_wording_fixes_hold():
    texts = {ch: json.dumps(qs, ensure_ascii=False) for ch, qs in ALL.items()}
    assert "must be perfect squares" not in texts[6]
    assert "only $EN$ to be a perfect square" in texts[6] or "needs only $EN$" in texts[6]
    assert "for values and projections" not in texts[8]
    q5 = next(q for q in ALL[8] if "released code" in q["question"])
    key = next(a["answer"] for a in q5["answers"] if a["correct"])
    assert "0.02 for the values" in key and "D_k" in key and "E D_v" in key
    assert "does no matrix products" not in texts[9] and "pays for a sort." not in texts[9]
    assert "<code>_block_d</code>" in texts[9]
    assert "columns of <code>fc_out.weight</code>" in texts[1] and "(columns of" not in texts[1]
    q5 = next(q for q in ALL[4] if "before it stalls" in q["question"])
    assert "$" not in next(a["answer"] for a in q5["answers"] if a["correct"]), "the key holds no formula"


# --- Moodle GIFT: a strict parser of the subset the export writes ---------------------------------

_ESC = r"(?:[^~=#{}:\\]|\\[~=#{}:\\n])"


def _unescape(text):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse_gift(text):
    """[(category, title, question, [(correct, answer, feedback)])]; raises on anything else."""
    out, category, current = [], None, None
    for n, line in enumerate(text.split("\n"), 1):
        if current is not None:
            if line == "}":
                if sum(c for c, _, _ in current[3]) != 1:
                    raise ValueError(f"line {n}: {sum(c for c, _, _ in current[3])} correct options")
                out.append(current)
                current = None
                continue
            m = re.fullmatch(rf"\t([=~])({_ESC}+)(?:#({_ESC}+))?", line)
            if not m:
                raise ValueError(f"line {n}: not an option: {line!r}")
            current[3].append((m.group(1) == "=", _unescape(m.group(2)), _unescape(m.group(3) or "")))
            continue
        if not line.strip() or line.startswith("//"):
            continue
        if line.startswith("$CATEGORY: "):
            category = line[len("$CATEGORY: "):]
            continue
        m = re.fullmatch(rf"::({_ESC}+)::\[html\]({_ESC}+) \{{", line)
        if not m:
            raise ValueError(f"line {n}: not a question: {line!r}")
        current = (category, _unescape(m.group(1)), _unescape(m.group(2)), [])
    if current is not None:
        raise ValueError("unterminated question")
    return out


def test_gift_parser_is_strict():
    with pytest.raises(ValueError, match="not an option"):
        parse_gift("::a::[html]q {\n\t=a = b\n}")
    with pytest.raises(ValueError, match="2 correct"):
        parse_gift("::a::[html]q {\n\t=a\n\t=b\n}")
    with pytest.raises(ValueError, match="not a question"):
        parse_gift("::a::q with a { brace {\n\t=a\n}")
    with pytest.raises(ValueError, match="unterminated"):
        parse_gift("::a::[html]q {\n\t=a")


@pytest.mark.parametrize("seed", [None, 3])
def test_gift_export_parses_back_to_the_quizzes(seed):
    quizzes = {ch: quizbank.build_quiz(ch, seed) for ch in ALL}
    parsed = parse_gift(quizbank.to_gift(quizzes))
    flat = [(ch, q) for ch, qs in sorted(quizzes.items()) for q in qs]
    assert len(parsed) == len(flat) == sum(len(qs) for qs in ALL.values())
    for (category, title, question, options), (ch, q) in zip(parsed, flat):
        assert category.endswith(f"Chapter {ch:02d}")
        assert question == quizbank._tex(q["question"])
        assert [(c, a) for c, a, _ in options] == [(a["correct"], quizbank._tex(a["answer"])) for a in q["answers"]]
        assert [f for _, _, f in options] == [quizbank._tex(a["feedback"]) for a in q["answers"]]
        assert "$" not in question, "TeX is in \\( \\) for Moodle's MathJax filter"
        assert _html.unescape(question) == question or "<code>" in question


# --- Canvas: QTI 1.2, parsed as XML ------------------------------------------------------------------

def test_qti_package_has_one_assessment_per_chapter_with_the_keys_scored():
    import io
    import xml.etree.ElementTree as ET
    import zipfile

    quizzes = {ch: quizbank.build_quiz(ch, 4) for ch in ALL}
    archive = zipfile.ZipFile(io.BytesIO(quizbank.to_qti_zip(quizzes)))
    ns = {"q": quizbank.QTI_NS, "m": "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"}
    manifest = ET.fromstring(archive.read("imsmanifest.xml"))
    hrefs = [r.get("href") for r in manifest.iterfind("m:resources/m:resource", ns)]
    assert hrefs == [f"ch{ch:02d}/ch{ch:02d}.xml" for ch in sorted(ALL)]
    assert all(r.get("type") == "imsqti_xmlv1p2" for r in manifest.iterfind("m:resources/m:resource", ns))
    for ch, href in zip(sorted(ALL), hrefs):
        root = ET.fromstring(archive.read(href))
        assert root.tag == f"{{{quizbank.QTI_NS}}}questestinterop"
        items = root.findall("q:assessment/q:section/q:item", ns)
        assert len(items) == len(quizzes[ch])
        for item, q in zip(items, quizzes[ch]):
            meta = {f.findtext("q:fieldlabel", namespaces=ns): f.findtext("q:fieldentry", namespaces=ns)
                    for f in item.iterfind("q:itemmetadata/q:qtimetadata/q:qtimetadatafield", ns)}
            assert meta["question_type"] == "multiple_choice_question"
            assert item.findtext("q:presentation/q:material/q:mattext", namespaces=ns) == quizbank._tex(q["question"])
            labels = item.findall("q:presentation/q:response_lid/q:render_choice/q:response_label", ns)
            assert [lab.findtext("q:material/q:mattext", namespaces=ns) for lab in labels] == \
                [quizbank._tex(a["answer"]) for a in q["answers"]]
            scored = [c for c in item.iterfind("q:resprocessing/q:respcondition", ns)
                      if c.findtext("q:setvar", namespaces=ns) == "100"]
            assert len(scored) == 1
            key = scored[0].findtext("q:conditionvar/q:varequal", namespaces=ns)
            right = next(j for j, a in enumerate(q["answers"]) if a["correct"])
            assert key == labels[right].get("ident")
            feedback = {f.get("ident"): f.findtext("q:flow_mat/q:material/q:mattext", namespaces=ns)
                        for f in item.iterfind("q:itemfeedback", ns)}
            assert [feedback[f"{lab.get('ident')}_fb"] for lab in labels] == \
                [quizbank._tex(a["feedback"]) for a in q["answers"]]
    with pytest.raises(ValueError, match="quizzes"):
        quizbank.to_qti_zip({})


def test_radio_buttons_whose_answer_is_math_have_a_spoken_name():
    """A label that is nothing but math renders to MathJax markup a screen reader may not name; such radio
    buttons carry an aria-label with the answer as plain text (and only those)."""
    import html as _html
    import re as _re

    from ultramem_edu.viz.quiz import quiz_html

    for path in QUIZZES:
        questions = json.loads(path.read_text())
        page = quiz_html(questions, quiz_id=f"quiz-{path.stem}")
        radios = _re.findall(r'<input type="radio"[^>]*>', page)
        answers = [a["answer"] for q in questions for a in q["answers"]]
        assert len(radios) == len(answers)
        labelled = [_html.unescape(m) for r in radios for m in _re.findall(r'aria-label="([^"]*)"', r)]
        math = [a for a in answers if "$" in a or "\\(" in a]
        assert len(labelled) == len(math) and all(name.strip() and "$" not in name for name in labelled), path.name
