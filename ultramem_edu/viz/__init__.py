"""Figures for the book: each returns a plotly Figure (static page) or an ipywidgets box (live kernel).

The figures draw what :mod:`ultramem_edu.diagnostics` computes; they never call ``show``.
Notebooks display them with :func:`show` and quote the package's code with :func:`show_source`;
:mod:`ultramem_edu.viz.diagrams` holds the architecture drawings (SVG).

- :func:`retrieval_topology_figure` / :func:`retrieval_topology_widget` — one query's top-m cells on
  the n×n grid: PKM vs TDQKR vs brute force (chapters 2 and 5).
- :func:`core_spectrum_figure` / :func:`core_spectrum_widget` — the Tucker core's singular values
  during training, with and without the auxiliary loss, and the search's recall@m (chapter 5).
- :func:`diversity_figure` / :func:`diversity_widget` — distinct rows/columns, value usage and
  overlap over a batch, PKM vs UltraMem (chapter 11).
"""
from ._plotly import show
from .code import show_source
from .diversity import diversity_figure, diversity_widget
from .palette import METHOD_COLORS, OKABE_ITO
from .spectra import core_spectrum_figure, core_spectrum_widget
from .topology import figure_explorer, retrieval_topology_figure, retrieval_topology_widget

__all__ = [
    "show",
    "show_source",
    "retrieval_topology_figure",
    "retrieval_topology_widget",
    "core_spectrum_figure",
    "core_spectrum_widget",
    "diversity_figure",
    "diversity_widget",
    "figure_explorer",
    "METHOD_COLORS",
    "OKABE_ITO",
]
