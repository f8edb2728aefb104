"""Memory layers: score a query against keys, mix values (method.md §1).

    s = σ(K q),   o = Vᵀ s,   K ∈ R^{N×D_k},  V ∈ R^{N×D_v}

Attention is this with σ = softmax over the context's keys; an MLP is this with σ = GeLU, the keys
being the rows of its first weight and the values the rows of its second (Geva et al., 2021).
A *large* memory keeps only the top-m scores, so only m value rows are read — but finding them by
scoring every key is still O(N·D_k). Product keys (next module) remove that cost.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_float_tensor, check_int

__all__ = ["memory_read", "mlp_as_memory", "dense_topm", "TopMMemory"]


def memory_read(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    activation: Callable[[torch.Tensor], torch.Tensor] = F.gelu,
    key_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """The generic memory read o = Vᵀ σ(K q + b).

    Args:
        query: (..., D_k)
        keys: (N, D_k)
        values: (N, D_v)
        activation: σ, applied elementwise (or over the last dim, like softmax).
        key_bias: optional (N,) bias added to the scores (an MLP's first bias).

    Returns:
        (..., D_v)
    """
    check_float_tensor("query", query, min_ndim=1)
    check_float_tensor("keys", keys, ndim=2, shape=(None, query.shape[-1]))
    check_float_tensor("values", values, ndim=2, shape=(keys.shape[0], None))
    scores = query @ keys.T                                  # (..., N)  one score per key
    if key_bias is not None:
        scores = scores + key_bias
    return activation(scores) @ values                       # (..., D_v)  weighted sum of values


def mlp_as_memory(fc_in: nn.Linear, fc_out: nn.Linear) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read an MLP ``fc_out(gelu(fc_in(x)))`` as a key-value memory.

    Returns ``(keys, key_bias, values)``: keys (N, D) are the rows of ``fc_in.weight``, values (N, D)
    the rows of ``fc_out.weight.T``; N is the hidden width. ``fc_out``'s bias is a constant offset
    outside the memory and is not returned.
    """
    if not isinstance(fc_in, nn.Linear) or not isinstance(fc_out, nn.Linear):
        raise TypeError(f"fc_in and fc_out must be nn.Linear, got {type(fc_in).__name__}, {type(fc_out).__name__}")
    if fc_out.in_features != fc_in.out_features:
        raise ValueError(
            f"fc_out.in_features must equal fc_in.out_features ({fc_in.out_features}), got {fc_out.in_features}"
        )
    bias = fc_in.bias if fc_in.bias is not None else torch.zeros(fc_in.out_features)
    return fc_in.weight, bias, fc_out.weight.T


def dense_topm(query: torch.Tensor, keys: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Score every key, keep the m largest: the O(N·D_k) reference for every top-m memory.

    Args:
        query: (..., D_k); keys: (N, D_k); 1 ≤ m ≤ N.
    Returns:
        scores (..., m) sorted descending, indices (..., m) int64.
    """
    check_float_tensor("query", query, min_ndim=1)
    check_float_tensor("keys", keys, ndim=2, shape=(None, query.shape[-1]))
    check_int("m", m, 1, keys.shape[0])
    return (query @ keys.T).topk(m, dim=-1)


class TopMMemory(nn.Module):
    """A large memory with top-m sparsity, found by brute force (every key scored).

    o = Σ_{i ∈ top-m} softmax(s)_i · V[i]. Parameters: keys (N, D_k), values (N, D_v).
    """

    def __init__(self, num_values: int, key_dim: int, value_dim: int, m: int, softmax: bool = True):
        super().__init__()
        check_int("num_values", num_values, 1)
        check_int("key_dim", key_dim, 1)
        check_int("value_dim", value_dim, 1)
        self.m = check_int("m", m, 1, num_values)
        self.softmax = softmax
        self.keys = nn.Parameter(torch.randn(num_values, key_dim) / key_dim**0.5)
        self.values = nn.Parameter(torch.randn(num_values, value_dim) / value_dim**0.5)

    def forward(self, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """query (..., D_k) -> (output (..., D_v), scores (..., m), indices (..., m))."""
        scores, indices = dense_topm(query, self.keys, self.m)
        weights = scores.softmax(-1) if self.softmax else scores
        output = (weights.unsqueeze(-1) * self.values[indices]).sum(-2)  # read only m rows
        return output, scores, indices
