"""Tables of chapter 11's results, for the chapters to display (nothing here computes a result).

* :func:`fmt_test` — one paired test as "Δ [95 % CI] · p · n".
* :func:`claim_table` — the pre-registered claims of the evidence suite with their verdicts.
* :func:`passes_over_text` — how many times a budget goes over the training split.
* :func:`evidence_progress` — how many of the suite's declared runs have finished, per family and phase.
* :func:`evidence_results_table`, :func:`evidence_comparisons_table` — the suite's per-family losses and its
  comparisons outside the claims (exploratory).
* :func:`exploratory_table` — the earlier suite's exploratory verdicts.

The tables are :class:`Table` objects: a notebook displays them as HTML (with a caption and header cells
a screen reader can follow), and ``to_markdown()`` gives the same table as Markdown.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

from . import preregistration as prereg

__all__ = ["Table", "fmt_test", "claim_table", "claim_table_markdown", "passes_over_text", "evidence_progress",
           "evidence_results_table", "evidence_comparisons_table", "exploratory_table", "exploratory_table_markdown"]


@dataclass
class Table:
    """A header, rows of cells (plain text) and a caption."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""

    def to_markdown(self) -> str:
        def cell(x):
            return str(x).replace("|", "\\|")
        lines = ["| " + " | ".join(map(cell, self.header)) + " |", "|" + "---|" * len(self.header)]
        return "\n".join(lines + ["| " + " | ".join(map(cell, r)) + " |" for r in self.rows])

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f'<th scope="col">{esc(h)}</th>' for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in self.rows)
        caption = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        return (f'<table class="table ultramem-results">{caption}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _num(x: float | None, digits: int = 3, sign: bool = True) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_test(d: dict, digits: int = 3) -> str:
    """"+0.040 [−0.036, +0.116], p = 0.151, n = 3" from a paired test (:func:`.common.paired_delta` or
    :func:`.stats.paired_t`); the interval is the 95 % t-interval."""
    ci = d.get("ci95") or d.get("ci")
    if ci is None:
        return f"{_num(d['mean'], digits)} (n = {d['n']}: no interval)"
    return f"{_num(d['mean'], digits)} [{_num(ci[0], digits)}, {_num(ci[1], digits)}], p = {_p(d.get('p'))}, n = {d['n']}"


def evidence_progress(payload: dict | None, spec: dict) -> dict:
    """{family: {"selection": (done, declared), "lm": (done, declared), "long": (done, declared)}} and
    {"total": (done, declared)} for the evidence suite as declared in ``spec`` (the selection counts the
    grid before any edge extension)."""
    out, done_all, declared_all = {}, 0, 0
    models = (payload or {}).get("models", {})
    for name in tuple(spec["headline"]) + tuple(spec["exploratory"]):
        options = len(spec["value_lr_options"].get(name, (None,)))
        sel_declared = options * len(spec["lrs"]) * len(spec["selection_seeds"])
        grid = ((models.get(name) or {}).get("selection") or {}).get("grid", {})
        sel_done = sum(v is not None for g in grid.values() for lr, v in g.items() if float(lr) in spec["lrs"])
        sel_done *= len(spec["selection_seeds"])        # a grid cell is filled when all its selection seeds are
        row = {"selection": (sel_done, sel_declared)}
        budgets = ("lm", "long") if name in spec["headline"] else ("lm",)
        for b in budgets:
            seeds = spec["seeds"] if name in spec["headline"] else spec["exploratory_seeds"]
            got = (models.get(name) or {}).get("budgets", {}).get(b, {})
            row[b] = (len(got.get("seeds", [])), len(seeds))
        out[name] = row
        for done, declared in row.values():
            done_all += done
            declared_all += declared
    out["total"] = (done_all, declared_all)
    return out


def passes_over_text(spec: dict, budget: str) -> float:
    """How many times a run at ``budget`` ("lm" or "long") goes over the training split: characters trained
    (steps × batch × window) over the split's length. ``spec`` is the suite's spec or its payload's config
    (it needs ``splits``, which the published config records)."""
    if budget not in ("lm", "long"):
        raise ValueError(f"budget must be 'lm' or 'long', got {budget!r}")
    if "splits" not in spec:
        raise ValueError("spec has no 'splits': pass the published payload's config")
    t = spec["train"]
    steps = spec["long_steps"] if budget == "long" else t["steps"]
    return steps * t["batch_size"] * t["seq_len"] / spec["splits"]["train"]


def _budget_label(spec: dict, budget: str) -> str:
    """"long, 1.3 passes over the text" where a budget repeats training text (when the spec says how much)."""
    if "splits" not in spec:
        return budget
    long = passes_over_text(spec, "long") if "long" in budget else 0.0
    return f"{budget}; {long:.1f} passes over the text" if long > 1 else budget


def claim_table(payload: dict | None, spec: dict) -> Table:
    """The pre-registered claims: the paper's claim · A − B at a budget · Δ [95 % CI] · p (Holm) · verdict.

    A budget that goes over the training text more than once says so in its row (the published config
    records the splits; ``spec`` alone does not)."""
    claims = (payload or {}).get("claims", {})
    config = (payload or {}).get("config") or spec
    rows = []
    for i, (cid, c) in enumerate(spec["claims"].items(), 1):
        r = claims.get(cid, {"status": "pending"})
        if "delta" in r:
            measured = f"{_num(r['delta'])} [{_num(r['ci95'][0])}, {_num(r['ci95'][1])}], n = {r['n']}"
            if r["kind"] == "noninferior":
                measured += f"; margin {r['margin']:g}"
        else:
            measured = "runs not finished"
        verdict = r["status"]
        if verdict == "unresolved" and r.get("seeds_for_80_power"):
            verdict += f" (≈ {r['seeds_for_80_power']} seeds for 80 % power)"
        rows.append([str(i), c["paper"], f"{c['a']} − {c['b']} ({_budget_label(config, c['budget'])})", measured, _p(r.get("p_holm")), verdict])
    return Table(["#", "the paper's claim", "compared (budget)", "Δ loss [95 % CI]", "p, Holm-adjusted", "verdict"], rows,
                 "The pre-registered claims and their verdicts (Δ is the first model's loss minus the second's)")


def claim_table_markdown(payload: dict | None, spec: dict) -> str:
    """:func:`claim_table` as Markdown."""
    return claim_table(payload, spec).to_markdown()


def evidence_results_table(payload: dict | None) -> Table:
    """The evidence suite per family and budget: role · rate (option) · seeds finished of declared · test loss
    mean [95 % t-interval] · the per-seed losses."""
    rows = []
    for name, m in ((payload or {}).get("models") or {}).items():
        for budget, b in m["budgets"].items():
            tl = b.get("test_loss") or {}
            if tl.get("ci95"):
                loss = f"{tl['mean']:.3f} [{tl['ci95'][0]:.3f}, {tl['ci95'][1]:.3f}]"
            else:
                loss = f"{tl['mean']:.3f}" if tl.get("mean") is not None else "not finished"
            rate = f"{b['lr']:g} ({b['option']})" if b.get("lr") is not None else "not chosen yet"
            per_seed = " ".join(f"{v:.3f}" for v in b.get("test_loss_per_seed") or [])
            rows.append([name, m["role"], budget, rate, f"{len(b.get('seeds', []))} of {len(b['declared_seeds'])}",
                         loss, per_seed])
    return Table(["family", "role", "budget", "lr (value-lr option)", "seeds", "test loss [95 % CI]", "per seed"],
                 rows, "The pre-registered suite's families: test loss over the reported seeds")


def evidence_comparisons_table(payload: dict | None) -> Table:
    """Every paired comparison of the evidence suite's families outside the claims: budget · A − B · Δ [95 % CI]
    · p · n, labelled exploratory (no multiplicity correction)."""
    rows = []
    for key, c in ((payload or {}).get("exploratory") or {}).items():
        budget, pair = key.split(": ", 1)
        rows.append([budget, pair, f"{_num(c['delta'])} [{_num(c['ci95'][0])}, {_num(c['ci95'][1])}]", _p(c["p"]),
                     str(c["n"])])
    return Table(["budget", "A − B", "Δ loss [95 % CI]", "p", "n"], rows,
                 "The pre-registered suite's other comparisons: exploratory, no multiplicity correction")


def exploratory_table(verdicts: dict) -> Table:
    """The earlier suite's verdicts (:func:`.verdicts.all_verdicts`): claim · measured · verdict."""
    rows = []
    for v in verdicts.values():
        text = v.get("claim") or f"ladder rung '{v['rung']}' changes the loss as in Table 2 ({v['paper_delta']:+.3f})"
        if "slope_per_doubling" in v:
            measured = f"slope {_num(v['slope_per_doubling'], 4)} per doubling [{_num(v['ci95'][0], 4)}, {_num(v['ci95'][1], 4)}]"
        elif "slope_difference" in v:
            measured = f"slope difference {_num(v['slope_difference'], 4)} [{_num(v['ci95'][0], 4)}, {_num(v['ci95'][1], 4)}]"
        elif "delta" in v and v.get("ci95"):
            measured = f"{_num(v['delta'])} [{_num(v['ci95'][0])}, {_num(v['ci95'][1])}], p = {_p(v.get('p'))}, n = {v['seeds']}"
        else:
            measured = "one seed, against a threshold" if v["status"] in ("observed", "not observed") else "—"
        status = v["status"]
        if status == "unresolved" and v.get("seeds_needed"):
            status += f" (≈ {v['seeds_needed']} seeds for 80 % power)"
        rows.append([text, measured, status])
    return Table(["claim", "measured: Δ [95 % CI], p, seeds", "verdict"], rows,
                 "Exploratory verdicts (no multiplicity correction)")


def exploratory_table_markdown(verdicts: dict) -> str:
    """:func:`exploratory_table` as Markdown."""
    return exploratory_table(verdicts).to_markdown()


def prereg_summary() -> dict:
    """The pre-registration's hash and its headline families, seeds and margin (for the chapter to print)."""
    return {"sha256": prereg.prereg_hash(), "headline": prereg.HEADLINE_FAMILIES, "reported_seeds": prereg.REPORTED_SEEDS,
            "selection_seeds": prereg.SELECTION_SEEDS, "margin": prereg.MARGIN, "budgets": prereg.BUDGETS}
