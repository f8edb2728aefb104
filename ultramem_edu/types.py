"""Small shared types."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MemoryOutput:
    """What a memory layer returns: the output and what the book visualises.

    Attributes:
        output: (..., D) the layer's output, same leading shape as the input.
        indices: (..., H, m) int64 selected addresses on the (virtual) n' x n' grid, i * n' + j,
            *before* the IVE shuffle (so the grid topology can be drawn).
        scores: (..., H, m) the selected scores (summed over cores), before any softmax.
        aux_loss: scalar tensor, the Tucker-core auxiliary loss (0 when it does not apply).
        singular_values: (H, r) singular values of each head's summed Tucker core, descending;
            None without TDQKR.
    """

    output: torch.Tensor
    indices: torch.Tensor
    scores: torch.Tensor
    aux_loss: torch.Tensor
    singular_values: torch.Tensor | None = None
