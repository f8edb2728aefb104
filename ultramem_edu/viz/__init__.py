"""Figures and widgets for the book. They return objects; :func:`show` displays them."""
from ._plotly import show
from .code import show_source

__all__ = ["show", "show_source"]
