"""Figures of chapter 14, "Learning new facts without forgetting", drawn from the ``continual``
experiment's result file (:func:`ultramem_edu.experiments.continual.run_continual`); they compute
nothing the experiment did not store.

- :func:`tradeoff_figure` — old-fact recall against new-fact recall over the finetuning steps, one
  curve per method (seed mean), with the Pareto frontier of all the points; buttons pick the model.
- :func:`slots_figure` — which rows of the value table each method changed (first reported seed),
  and for one new fact the rows its two tokens read before and after finetuning; buttons pick the
  method.
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..experiments.continual import pareto_front
from .palette import OKABE_ITO, TEXT, axis_style, base_layout, legend_below

__all__ = ["METHOD_LABELS", "METHOD_COLOURS", "tradeoff_figure", "slots_figure"]

METHOD_LABELS = {"full": "full finetuning", "lora": "LoRA", "values": "whole value table",
                 "sparse": "sparse memory finetuning"}
METHOD_COLOURS = {"full": OKABE_ITO["vermillion"], "lora": OKABE_ITO["orange"], "values": OKABE_ITO["sky_blue"],
                  "sparse": OKABE_ITO["blue"]}
FAMILY_LABELS = {"dense": "dense", "memory_plus": "Memory+", "ultramem_released": "UltraMem"}


def _check_payload(payload: object) -> dict:
    if not isinstance(payload, dict) or not isinstance(payload.get("models"), dict):
        raise TypeError("payload must be the continual experiment's result (a dict with 'models'), got "
                        f"{type(payload).__name__}")
    return payload["models"]


def tradeoff_figure(payload: dict) -> go.Figure:
    """Old-fact recall (kept) against new-fact recall (learned), per method, over the finetuning steps.

    Each curve starts at the pretrained model (step 0, bottom right of nothing learned, all kept) and
    moves as finetuning goes on; hovering a point gives the step. The dashed line is the Pareto
    frontier of every point of the model's methods: the best old recall reached at each level of new
    recall. Buttons switch between the models (the memory models first)."""
    models = _check_payload(payload)
    fig = go.Figure()
    families = [f for f in models if any((m.get("curve_mean") or None) for m in models[f]["methods"].values())]
    families.sort(key=lambda f: f == "dense")                  # the memory models first, the dense one last
    if not families:
        raise ValueError("payload holds no finished curve to draw")
    spans = []
    for k, fam in enumerate(families):
        start = len(fig.data)
        points = []
        for method, e in models[fam]["methods"].items():
            c = e.get("curve_mean")
            if not c:
                continue
            points += list(zip(c["new_recall"], c["old_recall"]))
            fig.add_trace(go.Scatter(
                x=c["new_recall"], y=c["old_recall"], mode="lines+markers", visible=k == 0,
                name=f"{METHOD_LABELS[method]} (lr {e['lr']:g})", line=dict(color=METHOD_COLOURS[method], width=2),
                marker=dict(size=6), customdata=c["step"],
                hovertemplate="step %{customdata}<br>new facts %{x:.2f}<br>old facts %{y:.2f}<extra></extra>"))
        front = [points[i] for i in pareto_front(points)]
        fig.add_trace(go.Scatter(x=[p[0] for p in front], y=[p[1] for p in front], mode="lines", visible=k == 0,
                                 name="Pareto frontier", line=dict(color=TEXT, dash="dash", width=1.5),
                                 hoverinfo="skip"))
        spans.append((start, len(fig.data)))
    buttons = []
    for k, fam in enumerate(families):
        visible = [spans[k][0] <= i < spans[k][1] for i in range(len(fig.data))]
        buttons.append(dict(label=FAMILY_LABELS.get(fam, fam), method="update", args=[{"visible": visible}]))
    fig.update_layout(**base_layout("Learning new facts against keeping old ones, over the finetuning steps "
                                    "(mean of the reported seeds)", height=560, top=50),
                      legend=legend_below(),
                      updatemenus=[dict(type="buttons", direction="right", buttons=buttons, x=0, xanchor="left",
                                        y=1.02, yanchor="bottom", showactive=True, font=dict(size=11))])
    fig.update_xaxes(title="recall of the new facts", range=[-0.02, 1.02], **axis_style())
    fig.update_yaxes(title="recall of the old facts", range=[-0.02, 1.02], **axis_style())
    return fig


def slots_figure(payload: dict, family: str = "memory_plus") -> go.Figure:
    """Top: the rows of ``family``'s value table that each method changed (first reported seed; LoRA
    changes none). Bottom: for the first new fact, the rows its subject and relation tokens read
    (every layer and head) before finetuning and after, with the method picked by the buttons."""
    models = _check_payload(payload)
    if family not in models:
        raise ValueError(f"family must be one of {sorted(models)}, got {family!r}")
    methods = {m: e["seed0"] for m, e in models[family]["methods"].items() if e.get("seed0")}
    if not methods:
        raise ValueError(f"no run of {family!r} recorded its slots (seed0)")
    seen = [r for s in methods.values() for table in s["changed_rows"] for r in table]
    seen += [r for s in methods.values() if s.get("reads") for when in ("before", "after")
             for layer in s["reads"][when] for rows in layer for r in rows]
    num_slots = max(seen, default=0) + 1
    fig = make_subplots(rows=2, cols=1, row_heights=[0.45, 0.55], vertical_spacing=0.2,
                        subplot_titles=("rows changed by finetuning", "rows read: ○ before, ● after"))
    names = list(methods)
    for k, m in enumerate(names):
        rows = sorted({r for table in methods[m]["changed_rows"] for r in table})
        fig.add_trace(go.Scatter(x=rows, y=[METHOD_LABELS[m]] * len(rows), mode="markers", showlegend=False,
                                 name=f"rows changed by {METHOD_LABELS[m]} ({len(rows)})",
                                 marker=dict(symbol="line-ns-open", size=12, color=METHOD_COLOURS[m]),
                                 hovertemplate="row %{x}<extra>" + METHOD_LABELS[m] + "</extra>"), row=1, col=1)
    first_read = len(fig.data)
    for k, m in enumerate(names):
        reads = methods[m].get("reads")
        if not reads:
            continue
        changed = {r for table in methods[m]["changed_rows"] for r in table}
        for when, symbol in (("before", "circle-open"), ("after", "circle")):
            xs, ys = [], []
            for layer, per_token in enumerate(reads[when]):
                for tok, rows in zip(("subject", "relation"), per_token):
                    xs += rows
                    ys += [f"{tok}, layer {layer}"] * len(rows)
            colours = [METHOD_COLOURS[m] if x in changed else TEXT for x in xs]
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="markers", visible=k == 0, name=f"{when} ({METHOD_LABELS[m]})",
                marker=dict(symbol=symbol, size=11 if when == "before" else 7, color=colours,
                            line=dict(width=1.5, color=colours)),
                hovertemplate="row %{x}<extra>" + when + "</extra>", showlegend=False), row=2, col=1)
    read_traces = list(range(first_read, len(fig.data)))
    buttons = []
    for m in names:
        label = METHOD_LABELS[m]
        visible = [True if i < first_read else fig.data[i].name.endswith(f"({label})") for i in range(len(fig.data))]
        buttons.append(dict(label=label, method="update", args=[{"visible": visible}]))
    layout = base_layout(f"{FAMILY_LABELS.get(family, family)}: what each method changes, and where one new "
                         "fact reads (coloured: a row the method changed)", height=640, top=60)
    # a drop-down, not a row of buttons: four method names do not fit side by side on a phone
    fig.update_layout(**layout, updatemenus=[dict(type="dropdown", direction="down", buttons=buttons, x=0,
                                                  xanchor="left", y=-0.12, yanchor="top", font=dict(size=10))]
                      if read_traces else [])
    fig.update_xaxes(range=[-1, num_slots], **axis_style())
    fig.update_xaxes(title="row of the value table", row=2, col=1)
    fig.update_yaxes(**axis_style())
    fig.update_yaxes(categoryorder="array", categoryarray=[METHOD_LABELS[m] for m in names], row=1, col=1)
    return fig
