"""Singular spectra of the Tucker core during training, with and without the auxiliary loss.

Top panel: σ₁..σ_r of the summed core (solid: σ₁ thick) and of each core C_c (dashed) over steps, for a run
with the auxiliary loss and one without, and the margin τ below which the loss leaves σ₂.. alone.
Bottom panel: recall@m of the layer's two-stage search against brute force on a probe batch —
over the whole grid, and over the quadrant its rank-1 stage searches. The data are
:class:`ultramem_edu.diagnostics.SpectrumRun` records from :func:`~ultramem_edu.diagnostics.core_spectrum_run`.
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .._checks import check_int
from ..diagnostics import SpectrumRun, core_spectrum_run
from .palette import METHOD_COLORS, axis_style, base_layout, legend_below
from .topology import figure_explorer

__all__ = ["core_spectrum_figure", "core_spectrum_widget"]

_SUB = "₀₁₂₃₄₅₆₇₈₉"


def _sigma(k: int) -> str:
    return "σ" + "".join(_SUB[int(d)] for d in str(k))


def _run_label(run: SpectrumRun) -> str:
    return f"with aux (α = {run.aux_alpha:g})" if run.with_aux else "without aux"


def core_spectrum_figure(
    run_with: SpectrumRun, run_without: SpectrumRun, tau: float | None = None, head: int = 0
) -> go.Figure:
    """σ's of the Tucker core over training, ± auxiliary loss, and the search's recall@m.

    Args:
        run_with, run_without: two :class:`SpectrumRun` records (same steps and rank).
        tau: the margin drawn as a dashed line (default: ``run_with.tau``).
        head: which memory head to draw.

    Returns:
        A plotly Figure with two rows (spectrum on a log axis, recall) and a button that switches the
        spectrum's axis between log and linear.
    """
    for name, run in (("run_with", run_with), ("run_without", run_without)):
        if not isinstance(run, SpectrumRun):
            raise TypeError(f"{name} must be a SpectrumRun, got {type(run).__name__}")
    if run_with.summed_sv.shape[2:] != run_without.summed_sv.shape[2:]:
        raise ValueError("run_with and run_without must have the same Tucker rank")
    heads = run_with.summed_sv.shape[1]
    check_int("head", head, 0, min(heads, run_without.summed_sv.shape[1]) - 1)
    tau = run_with.tau if tau is None else float(tau)
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")

    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.64, 0.36], vertical_spacing=0.08,
        subplot_titles=("singular values of the Tucker core", "recall@m of the two-stage search"),
    )
    for run in (run_with, run_without):
        colour = METHOD_COLORS["with_aux" if run.with_aux else "without_aux"]
        label = _run_label(run)
        steps = run.steps.tolist()
        r = run.summed_sv.shape[-1]
        ratio = float(run.ratio()[-1, head])
        for k in range(r):
            fig.add_trace(go.Scatter(
                x=steps, y=[round(v, 5) for v in run.summed_sv[:, head, k].tolist()], mode="lines",
                line=dict(color=colour, width=3.0 if k == 0 else 1.8),
                name=_sigma(k + 1) + (f" (σ₁/σ₂ → {ratio:.1f})" if k == 0 else ""),
                legendgroup=label, legendgrouptitle_text=label,
            ), row=1, col=1)
        cores = run.core_sv.shape[2]
        for c in range(cores):
            for k in range(r):
                fig.add_trace(go.Scatter(
                    x=steps, y=[round(v, 5) for v in run.core_sv[:, head, c, k].tolist()], mode="lines",
                    line=dict(color=colour, width=1.0, dash="dash"), opacity=0.6,
                    name=f"σ's of the {cores} cores", legendgroup=label,
                    showlegend=(c == 0 and k == 0),
                    hovertemplate=f"core {c + 1}, {_sigma(k + 1)}: %{{y:.3f}}<extra>{label}</extra>",
                ), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=steps, y=[round(v, 4) for v in run.recall.tolist()], mode="lines",
            line=dict(color=colour, width=2.5), name="recall, whole grid",
            legendgroup=label,
        ), row=2, col=1)
        fig.add_trace(go.Scatter(
            x=steps, y=[round(v, 4) for v in run.recall_quadrant.tolist()], mode="lines",
            line=dict(color=colour, width=2.0, dash="dot"), name="recall, stage-1 quadrant",
            legendgroup=label,
        ), row=2, col=1)
    first, last = int(run_with.steps[0]), int(run_with.steps[-1])
    fig.add_trace(go.Scatter(
        x=[first, last], y=[tau, tau], mode="lines", line=dict(color=METHOD_COLORS["tau"], dash="dash", width=2),
        name=f"margin τ = {tau:g}", legendgroup="tau",
    ), row=1, col=1)

    # The legend goes below the plots (pinned to the figure's bottom edge, which it pushes the
    # plots away from) and the log/linear switch above them: at any width neither sits on a curve.
    fig.update_layout(**base_layout("Tucker core spectrum during training, ± auxiliary loss",
                                    height=760, top=75))
    fig.update_layout(
        margin=dict(l=60, r=20, b=20),
        legend=dict(legend_below(), groupclick="toggleitem"),
        updatemenus=[dict(
            type="buttons", direction="right", x=0, xanchor="left", y=1, yanchor="bottom",
            pad=dict(b=30, l=0, r=0, t=0), bgcolor="rgba(128,128,128,0.15)", showactive=True, active=0,
            buttons=[
                dict(label="log σ", method="relayout", args=[{"yaxis.type": "log"}]),
                dict(label="linear σ", method="relayout", args=[{"yaxis.type": "linear"}]),
            ],
        )],
    )
    fig.update_yaxes(title_text="σ (log)", type="log", row=1, col=1, **axis_style())
    fig.update_yaxes(title_text="recall@m", range=[0, 1.05], row=2, col=1, **axis_style())
    fig.update_xaxes(row=1, col=1, **axis_style())
    fig.update_xaxes(title_text="optimiser step", row=2, col=1, **axis_style())
    return fig


def core_spectrum_widget(steps: int = 150):
    """Live version: choose α, τ, the seed and the number of steps, then press Run (a few seconds).

    Returns an ipywidgets VBox; display it to use it.
    """
    import ipywidgets as widgets

    check_int("steps", steps, 1)
    controls = {
        "alpha": widgets.FloatLogSlider(value=0.1, base=10, min=-4, max=1, description="aux α"),
        "tau": widgets.FloatSlider(value=0.15, min=0.0, max=0.5, step=0.01, description="margin τ"),
        # seed 2: σ₂ starts above τ = 0.15, so the hinge acts; for seeds 0 and 1 it never does
        "seed": widgets.IntSlider(value=2, min=0, max=20, description="seed"),
        "steps": widgets.IntSlider(value=steps, min=10, max=600, step=10, description="steps"),
    }

    def build(alpha: float, tau: float, seed: int, steps: int) -> go.Figure:
        with_aux = core_spectrum_run(steps, with_aux=True, aux_alpha=alpha, tau=tau, seed=seed)
        without = core_spectrum_run(steps, with_aux=False, tau=tau, seed=seed)
        return core_spectrum_figure(with_aux, without, tau)

    return figure_explorer(build, controls, auto=False)
