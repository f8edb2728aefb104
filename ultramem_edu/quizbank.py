"""The chapters' quizzes for graded use: shuffled options, fresh numeric variants, LMS export.

The questions live in ``book/quizzes/chNN.json`` (the format :mod:`ultramem_edu.viz.quiz` renders).
A question may carry

* ``"variant": {"name": ..., "params": {...}}`` — a numeric question that :data:`VARIANTS` rebuilds
  from its parameters, its key computed by the package's own functions (``ultramem_edu.cost``,
  ``ultramem_edu.init``, ...). The JSON holds the variant at its stored parameters; a seed draws
  fresh parameters and so a fresh question with its computed key (:func:`build_quiz`).
* ``"quoted"`` — for a key that quotes a number the package does not compute: where the number
  comes from (``"paper"``, ``"released code"``, ``"formula"``, ...).

:func:`shuffle_answers` permutes each question's options by a seed (the public pages use
:data:`PUBLIC_SEED`, an instructor's export another); :func:`to_gift` writes Moodle's GIFT format,
:func:`to_qti_zip` a QTI 1.2 package that Canvas imports.
"""
from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Callable

__all__ = [
    "PUBLIC_SEED",
    "VARIANTS",
    "QUIZ_DIR",
    "variant_question",
    "load_chapter",
    "shuffle_answers",
    "build_quiz",
    "to_gift",
    "qti_assessment",
    "to_qti_zip",
]

PUBLIC_SEED = 0
QUIZ_DIR = Path(__file__).resolve().parent.parent / "book" / "quizzes"


# --- numeric variants ---------------------------------------------------------------------------

def _fixed(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, trailing zeros kept (equal-length options)."""
    if x == 0:
        return "0"
    exponent = math.floor(math.log10(abs(x)))
    decimals = max(digits - 1 - exponent, 0)
    return f"{x:.{decimals}f}"


def _sci(x: float) -> str:
    """``$a.bcd \\times 10^{e}$`` with three decimals in the mantissa."""
    exponent = math.floor(math.log10(abs(x)))
    return f"${x / 10 ** exponent:.3f} \\times 10^{{{exponent}}}$"


def _int(x: int) -> str:
    """An integer with a space between groups of three digits, as the book writes them."""
    return f"{x:,}".replace(",", " ")


def _question(text: str, source: str, key: tuple[str, str], wrong: list[tuple[str, str]]) -> dict:
    """A question with the key first and the first three distractors whose text differs from it."""
    answers = [{"answer": key[0], "correct": True, "feedback": "Correct. " + key[1]}]
    seen = {key[0]}
    for text_, feedback in wrong:
        if text_ not in seen and len(answers) < 4:
            seen.add(text_)
            answers.append({"answer": text_, "correct": False, "feedback": feedback})
    if len(answers) < 4:
        raise ValueError(f"variant has only {len(answers)} distinct options: {sorted(seen)}")
    return {"type": "multiple_choice", "question": text, "answers": answers, "source": source}


def _value_lr(p: dict) -> dict:
    from ultramem_edu.layer import value_lr_multiplier

    step, total, k = p["step"], p["total_steps"], p["k"]
    key = value_lr_multiplier(step, total, k)
    f = step / total
    return _question(
        f"The value learning rate is multiplied by $1 + (k-1)\\max(0, 1 - \\text{{step}}/T)$ with "
        f"$k = {k}$ and $T = {_int(total)}$. What is the multiplier at step {_int(step)}?",
        "Chapter 3, exercise 3; ultramem_edu.layer.value_lr_multiplier",
        (_fixed(key), f"$1 + {k - 1} \\cdot (1 - {_fixed(f)}) = {_fixed(key)}$."),
        [(_fixed(k * (1 - f)), "That is $k(1 - \\text{step}/T)$: the schedule starts at $k$ but ends at 1, "
                                "not at 0; the 1 stays outside the decaying term."),
         (_fixed(float(k)), "That is the multiplier at step 0, or with integer division "
                            "($\\text{step} \\mathbin{//} T = 0$ until the end)."),
         (_fixed(1 + (k - 1) * f), "That decays the wrong way: the multiplier starts at $k$ and falls to 1."),
         (_fixed(1 + k * (1 - f)), "The factor in front of the decaying term is $k - 1$, not $k$.")],
    )


def _aux_loss(p: dict) -> dict:
    import torch

    from ultramem_edu.tdqkr import tucker_aux_loss

    a, b, tau, alpha = p["sigma1"], p["sigma2"], p["tau"], p["alpha"]
    key = float(tucker_aux_loss(torch.diag(torch.tensor([a, b], dtype=torch.float64)), tau=tau, alpha=alpha))
    return _question(
        f"For $C = \\mathrm{{diag}}({a:g}, {b:g})$, $\\alpha = {alpha:g}$, $\\tau = {tau:g}$, what is "
        "$\\mathcal{L}_\\text{aux} = \\frac{\\alpha}{r-1}\\sum_{i\\ge 2} \\max(0, \\sigma_i - \\tau)^2$?",
        "Chapter 5, exercise 1; ultramem_edu.tdqkr.tucker_aux_loss",
        (_sci(key), f"Only $\\sigma_2 = {b:g}$ counts: ${alpha:g} \\cdot ({b:g} - {tau:g})^2$."),
        [(_sci(alpha * (b - tau)), "The hinge is squared: $\\max(0, \\sigma_2 - \\tau)^2$."),
         (_sci(alpha * b * b), f"The threshold $\\tau = {tau:g}$ is subtracted before squaring."),
         (_sci(alpha * ((a - tau) ** 2 + (b - tau) ** 2)),
          "The sum starts at $i = 2$: the leading singular value is free."),
         (_sci(alpha * (a - tau) ** 2), "The penalty is on the second singular value, not the first.")],
    )


def _keys_per_side(p: dict) -> dict:
    from ultramem_edu.ive import keys_per_side

    n, e = p["n"], p["expansion"]
    num = n * n
    key = keys_per_side(num, e)
    return _question(
        f"IVE expands $N = {_int(num)}$ physical values (a grid of side ${n}$) $E = {e}$ times, to "
        "$EN$ virtual values on a square grid. How many keys per side does that grid need?",
        "Chapter 6; ultramem_edu.ive.keys_per_side; paper §3.2 (IVE)",
        (_int(key), f"$n' = \\sqrt{{EN}} = \\sqrt{{{e}}} \\cdot {n}$. A square grid needs only $EN$ to be a "
                    "perfect square; the package asks $N$ and $E$ to be squares each, so that $n'$ is "
                    "$\\sqrt{E}$ times the physical grid's side."),
        [(_int(e * n), "Each side grows by $\\sqrt{E}$, not by $E$: the cells grow as the square of the side."),
         (_int(n), "That is the physical grid; $E$ times more addresses need more keys per side."),
         (_int(e * num), "That is the number of virtual values, the cells of the grid, not its side."),
         (_int(2 * n), "That holds only for $E = 4$; the side grows by $\\sqrt{E}$.")],
    )


def _ln_scale(p: dict) -> dict:
    from ultramem_edu.init import ln_scale_for_unit_mean

    mean, degree = p["mean"], p["degree"]
    key = ln_scale_for_unit_mean(float(mean), degree)
    kind = "TDQKR (Tucker scores)" if degree == 4 else "product-key (additive scores)"
    other = 2 if degree == 4 else 4
    return _question(
        f"A {kind} layer measures a mean selected score of {mean}. By what factor $g$ must both LN "
        "weights (query and key) be multiplied to bring it to 1?",
        "Chapter 8, exercise 2; ultramem_edu.init.ln_scale_for_unit_mean",
        (_fixed(key), f"The scores scale as $g^{degree}$, so $g = {mean}^{{-1/{degree}}}$."),
        [(_fixed(1 / mean), f"Scaling both LN weights by $g$ scales the scores by $g^{degree}$, not by $g$."),
         (_fixed(mean ** (-1 / other)),
          f"These scores scale as $g^{degree}$, not $g^{other}$: count the key scores in each product."),
         (_fixed(mean ** (1 / degree)), "That makes the scores larger; the factor must shrink them."),
         (_fixed(mean ** (-1 / (2 * degree))), f"The scores scale as $g^{degree}$, so take the {degree}th root.")],
    )


def _distinct_experts(p: dict) -> dict:
    from ultramem_edu.cost import expected_distinct

    n, k, b = p["experts"], p["top_k"], p["tokens"]
    key = float(expected_distinct(n, k, b))
    return _question(
        f"$B = {b}$ tokens are routed uniformly at random through a top-{k} MoE with {n} experts. How "
        "many distinct experts are read, in expectation?",
        "Chapter 10, exercise 1; ultramem_edu.cost.expected_distinct",
        (f"about {key:.1f}", f"$n\\,(1 - (1 - k/n)^B) = {n}\\,(1 - (1 - {k}/{n})^{{{b}}}) \\approx {key:.1f}$: "
                             "tokens share some experts."),
        [(f"about {min(k * b, n):.1f}", "That assumes no two tokens pick the same expert."),
         (f"about {k:.1f}", "That assumes every token picks the same experts."),
         (f"about {n:.1f}", "Not every expert is hit at this batch size."),
         (f"about {k * b / 2:.1f}", "That halves the picks; the collisions follow $n(1 - (1 - k/n)^B)$."),
         (f"about {n / 2:.1f}", "The expected count is $n(1 - (1 - k/n)^B)$, not a fixed fraction of $n$.")],
    )


def _lookup_grid(p: dict) -> dict:
    from ultramem_edu.kernels.value_lookup_triton import MAX_BLOCK_D, _block_d

    b, h, d_v = p["tokens"], p["cores"], p["d_v"]
    s = d_v // h
    block = _block_d(s)
    key = b * h * math.ceil(s / block)
    return _question(
        f"The forward kernel's grid is $(B, h, \\lceil s / \\text{{BLOCK\\_D}} \\rceil)$ with $s = D_v/h$ and "
        f"BLOCK_D $= \\min({MAX_BLOCK_D}$, the next power of two $\\ge s)$ (the package's <code>_block_d</code>). "
        f"How many programs for $B = {_int(b)}$, $h = {h}$, $D_v = {d_v}$?",
        "Chapter 9, exercise 4; ultramem_edu.kernels.value_lookup_triton._block_d",
        (_int(key), f"$s = {s}$, BLOCK_D $= {block}$, so ${b} \\cdot {h} \\cdot {math.ceil(s / block)}$."),
        [(_int(b * h * math.ceil(d_v / block)), "Each core owns a slice of width $s = D_v/h$, not all of $D_v$."),
         (_int(b * h), f"One program covers at most BLOCK_D $= {block}$ columns of a slice."),
         (_int(b * math.ceil(s / block)), "Each core is a separate axis of the grid: multiply by $h$."),
         (_int(2 * b * h * math.ceil(s / block)), "The grid has one program per token, core and tile, no more."),
         (_int(b * h * math.ceil(s / 32)), f"BLOCK_D is {block} here, not 32: the next power of two $\\ge s$, at most {MAX_BLOCK_D}."),
         (_int(b * h * math.ceil(s / 16)), f"BLOCK_D is {block} here, not 16: the next power of two $\\ge s$, at most {MAX_BLOCK_D}.")],
    )


def _pick(rng: random.Random, **choices: list) -> dict:
    return {name: rng.choice(values) for name, values in choices.items()}


def _sample_lr(rng: random.Random) -> dict:
    total = rng.choice([1000, 2000, 10_000])
    return {"step": int(total * rng.choice([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8])), "total_steps": total,
            "k": rng.choice([4, 10])}


def _sample_distinct(rng: random.Random) -> dict:
    n = rng.choice([16, 32, 64])
    k = rng.choice([1, 2])
    return {"experts": n, "top_k": k, "tokens": rng.choice([t for t in (4, 8, 16, 32) if k * t <= n])}


def _sample_grid(rng: random.Random) -> dict:
    return _pick(rng, tokens=[4096, 8192, 16384], cores=[2, 4], d_v=[512, 768, 1024, 1536])


def _sample_ln(rng: random.Random) -> dict:
    degree = rng.choice([2, 4])
    return {"degree": degree, "mean": rng.choice([16, 81, 256, 625] if degree == 4 else [4, 9, 25, 64])}


VARIANTS: dict[str, tuple[Callable[[dict], dict], Callable[[random.Random], dict]]] = {
    # name: (build the question from params, draw params from a seeded random.Random)
    "value_lr_multiplier": (_value_lr, _sample_lr),
    "tucker_aux_loss": (_aux_loss, lambda rng: {**_pick(rng, sigma1=[1.5, 2.0, 3.0], sigma2=[0.4, 0.5, 0.6, 0.8]),
                                                 "tau": 0.15, "alpha": 0.001}),
    "keys_per_side": (_keys_per_side, lambda rng: _pick(rng, n=[64, 128, 256, 512], expansion=[4, 9, 16])),
    "ln_scale": (_ln_scale, _sample_ln),
    "expected_distinct": (_distinct_experts, _sample_distinct),
    "lookup_grid": (_lookup_grid, _sample_grid),
}


def variant_question(name: str, params: dict) -> dict:
    """The question of variant ``name`` at ``params`` (key computed by the package), tagged with both."""
    if name not in VARIANTS:
        raise ValueError(f"name must be one of {sorted(VARIANTS)}, got {name!r}")
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    question = VARIANTS[name][0](params)
    question["variant"] = {"name": name, "params": dict(params)}
    return question


# --- quizzes -------------------------------------------------------------------------------------

def load_chapter(chapter: int, quiz_dir: str | Path | None = None) -> list[dict]:
    """The questions of ``chNN.json`` (validated by :func:`ultramem_edu.viz.quiz.load_quiz`)."""
    from ultramem_edu.viz.quiz import load_quiz

    if not isinstance(chapter, int) or isinstance(chapter, bool) or chapter < 0:
        raise ValueError(f"chapter must be a non-negative int, got {chapter!r}")
    return load_quiz(Path(quiz_dir or QUIZ_DIR) / f"ch{chapter:02d}.json")


def shuffle_answers(questions: list[dict], seed: int, salt: str = "") -> list[dict]:
    """A copy of ``questions`` with each question's options permuted, reproducibly for (seed, salt, index).

    ``salt`` (e.g. the quiz's id) makes two quizzes shuffled with the same seed differ.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    out = []
    for i, q in enumerate(questions):
        answers = list(q["answers"])
        random.Random(f"{seed}:{salt}:{i}").shuffle(answers)
        out.append({**q, "answers": answers})
    return out


def build_quiz(chapter: int, seed: int | None = None, quiz_dir: str | Path | None = None) -> list[dict]:
    """Chapter ``chapter``'s quiz for one seed: numeric variants redrawn and every option list shuffled.

    ``seed=None`` keeps the stored variants and shuffles with :data:`PUBLIC_SEED` (the public page).
    """
    questions = load_chapter(chapter, quiz_dir)
    if seed is not None:
        rng = random.Random(f"variants:{seed}:{chapter}")
        fresh = []
        for q in questions:
            if "variant" in q:
                name = q["variant"]["name"]
                q = {**variant_question(name, VARIANTS[name][1](rng)), "source": q["source"]}
            fresh.append(q)
        questions = fresh
    return shuffle_answers(questions, PUBLIC_SEED if seed is None else seed, f"ch{chapter:02d}")


# --- Moodle GIFT ---------------------------------------------------------------------------------

_GIFT_SPECIAL = "~=#{}:"
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$(?!\$)", re.S)


def _tex(text: str) -> str:
    """``$$x$$`` -> ``\\[x\\]``, ``$x$`` -> ``\\(x\\)``: the delimiters Moodle's MathJax filter reads."""
    text = _DISPLAY_MATH.sub(lambda m: r"\[" + m.group(1) + r"\]", text)
    return _INLINE_MATH.sub(lambda m: r"\(" + m.group(1) + r"\)", text)


def gift_escape(text: str) -> str:
    """Escape GIFT's special characters (``~ = # { } :`` and the backslash) and newlines."""
    out = text.replace("\\", "\\\\")
    for ch in _GIFT_SPECIAL:
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", "\\n")


def to_gift(quizzes: dict[int, list[dict]], category: str = "UltraMem from the ground up") -> str:
    """Moodle GIFT text of ``{chapter: questions}``: one category per chapter, HTML questions with
    TeX in ``\\( \\)``, one ``=`` key and ``~`` distractors, each with its ``#`` feedback."""
    if not isinstance(quizzes, dict) or not quizzes:
        raise ValueError(f"quizzes must be a non-empty dict {{chapter: questions}}, got {quizzes!r:.60}")
    lines = [f"// {category}: quiz questions, one category per chapter", ""]
    for chapter, questions in sorted(quizzes.items()):
        lines += [f"$CATEGORY: $course$/{category}/Chapter {chapter:02d}", ""]
        for i, q in enumerate(questions, 1):
            lines.append(f"// source: {q.get('source', '')}".replace("\n", " "))
            lines.append(f"::ch{chapter:02d} q{i}::[html]{gift_escape(_tex(q['question']))} {{")
            for a in q["answers"]:
                mark = "=" if a["correct"] else "~"
                feedback = a.get("feedback", "")
                tail = f"#{gift_escape(_tex(feedback))}" if feedback else ""
                lines.append(f"\t{mark}{gift_escape(_tex(a['answer']))}{tail}")
            lines += ["}", ""]
    return "\n".join(lines)


def load_all(quiz_dir: str | Path | None = None) -> dict[int, list[dict]]:
    """{chapter: questions} of every ``chNN.json``."""
    paths = sorted(Path(quiz_dir or QUIZ_DIR).glob("ch[0-9][0-9].json"))
    if not paths:
        raise ValueError(f"quiz_dir must hold chNN.json quizzes, found none in {quiz_dir or QUIZ_DIR}")
    return {int(p.stem[2:]): load_chapter(int(p.stem[2:]), quiz_dir) for p in paths}


def export_gift(seed: int | None = None, quiz_dir: str | Path | None = None) -> str:
    """GIFT of every chapter's quiz as :func:`build_quiz` gives it for ``seed``."""
    chapters = sorted(load_all(quiz_dir))
    return to_gift({ch: build_quiz(ch, seed, quiz_dir) for ch in chapters})


# --- Canvas: QTI 1.2 ------------------------------------------------------------------------------

QTI_NS = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
_MANIFEST_NS = "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"


def _qti_text(parent, text: str):
    import xml.etree.ElementTree as ET

    material = ET.SubElement(parent, "material")
    mattext = ET.SubElement(material, "mattext", texttype="text/html")
    mattext.text = _tex(text)
    return material


def qti_assessment(chapter: int, questions: list[dict], points: float = 1.0) -> str:
    """One chapter's quiz as a QTI 1.2 assessment (the dialect Canvas imports): an item per question,
    a ``response_lid`` with one ``response_label`` per option, 100 % for the key, each option's feedback."""
    import xml.etree.ElementTree as ET

    ET.register_namespace("", QTI_NS)
    root = ET.Element(f"{{{QTI_NS}}}questestinterop")
    assessment = ET.SubElement(root, "assessment", ident=f"ch{chapter:02d}", title=f"Chapter {chapter} quiz")
    section = ET.SubElement(assessment, "section", ident="root_section")
    for i, q in enumerate(questions, 1):
        ident = f"ch{chapter:02d}_q{i}"
        item = ET.SubElement(section, "item", ident=ident, title=f"Question {i}")
        fields = ET.SubElement(ET.SubElement(item, "itemmetadata"), "qtimetadata")
        for label, entry in (("question_type", "multiple_choice_question"), ("points_possible", f"{points:g}")):
            field = ET.SubElement(fields, "qtimetadatafield")
            ET.SubElement(field, "fieldlabel").text = label
            ET.SubElement(field, "fieldentry").text = entry
        presentation = ET.SubElement(item, "presentation")
        _qti_text(presentation, q["question"])
        response = ET.SubElement(presentation, "response_lid", ident="response1", rcardinality="Single")
        choices = ET.SubElement(response, "render_choice")
        for j, a in enumerate(q["answers"], 1):
            _qti_text(ET.SubElement(choices, "response_label", ident=f"{ident}_a{j}"), a["answer"])
        processing = ET.SubElement(item, "resprocessing")
        ET.SubElement(ET.SubElement(processing, "outcomes"), "decvar", maxvalue="100", minvalue="0",
                      varname="SCORE", vartype="Decimal")
        for j, a in enumerate(q["answers"], 1):
            condition = ET.SubElement(processing, "respcondition", attrib={"continue": "Yes"})
            ET.SubElement(ET.SubElement(condition, "conditionvar"), "varequal", respident="response1").text = \
                f"{ident}_a{j}"
            ET.SubElement(condition, "displayfeedback", feedbacktype="Response", linkrefid=f"{ident}_a{j}_fb")
        key = next(j for j, a in enumerate(q["answers"], 1) if a["correct"])
        condition = ET.SubElement(processing, "respcondition", attrib={"continue": "No"})
        ET.SubElement(ET.SubElement(condition, "conditionvar"), "varequal", respident="response1").text = \
            f"{ident}_a{key}"
        ET.SubElement(condition, "setvar", action="Set", varname="SCORE").text = "100"
        for j, a in enumerate(q["answers"], 1):
            feedback = ET.SubElement(item, "itemfeedback", ident=f"{ident}_a{j}_fb")
            _qti_text(ET.SubElement(feedback, "flow_mat"), a.get("feedback", ""))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_qti_zip(quizzes: dict[int, list[dict]]) -> bytes:
    """A QTI 1.2 package (zip: ``imsmanifest.xml`` and one assessment per chapter) for Canvas's
    *Import course content → QTI .zip file*."""
    import io
    import xml.etree.ElementTree as ET
    import zipfile

    if not isinstance(quizzes, dict) or not quizzes:
        raise ValueError(f"quizzes must be a non-empty dict {{chapter: questions}}, got {quizzes!r:.60}")
    ET.register_namespace("", _MANIFEST_NS)
    manifest = ET.Element(f"{{{_MANIFEST_NS}}}manifest", identifier="ultramem_edu_quizzes")
    ET.SubElement(manifest, f"{{{_MANIFEST_NS}}}organizations")
    resources = ET.SubElement(manifest, f"{{{_MANIFEST_NS}}}resources")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for chapter, questions in sorted(quizzes.items()):
            name = f"ch{chapter:02d}/ch{chapter:02d}.xml"
            archive.writestr(name, qti_assessment(chapter, questions))
            resource = ET.SubElement(resources, f"{{{_MANIFEST_NS}}}resource", identifier=f"ch{chapter:02d}",
                                     type="imsqti_xmlv1p2", href=name)
            ET.SubElement(resource, f"{{{_MANIFEST_NS}}}file", href=name)
        ET.indent(manifest)
        archive.writestr("imsmanifest.xml", '<?xml version="1.0" encoding="UTF-8"?>\n'
                         + ET.tostring(manifest, encoding="unicode") + "\n")
    return buffer.getvalue()


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(build_quiz(10, seed=1), indent=1)[:2000])
