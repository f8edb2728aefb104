"""The two feed-forward baselines UltraMem is compared against: a dense MLP and a top-k MoE.

Dense FFN: y = W_2 GeLU(W_1 x + b_1) + b_2, hidden width 4·D.

Fine-grained MoE (the paper's MoE baseline activates 2 experts per token): N experts, each an MLP
half the dense width (2·D by default), so top-2 of them costs what one dense FFN costs.

    p = softmax(W_r x)                    router probabilities over all N experts
    (g, e) = top-k(p)                     k experts per token
    g = g / Σ g                           gates renormalised to sum to 1 (a choice: Mixtral does
                                          top-k then softmax, which gives the same gates; Switch
                                          with k = 1 keeps the raw probability instead)
    y = Σ_k g_k · expert_{e_k}(x)

Load balancing (Switch Transformer, Fedus et al. 2021, generalised to top-k):

    aux = coef · N · Σ_i f_i · P_i

f_i = fraction of the T·k (token, slot) assignments that went to expert i, P_i = mean router
probability of expert i. Both sum to 1 over i, so a uniform router gives aux = coef exactly, and
aux is smallest when the assignments are spread evenly. f is not differentiable; the gradient
reaches the router through P.

Two forward paths: :meth:`MoEFFN.forward` groups tokens by expert (sort, index_select, one matmul
per expert that received tokens, index_add back) and :meth:`MoEFFN.forward_reference` runs every
expert on every token and masks. The tests check that they agree.

Parameter counting (:func:`num_parameters`, :func:`activated_parameters_per_token`) is what the
book uses to put dense, MoE and memory models on equal compute.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_float_tensor, check_int

__all__ = [
    "DenseFFNConfig",
    "DenseFFN",
    "MoEConfig",
    "MoEFFN",
    "Routing",
    "num_parameters",
    "activated_parameters_per_token",
]


def _check_positive_float(name: str, v: object, allow_zero: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(v).__name__} ({v!r})")
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {v}")
    return float(v)


# ----------------------------------------------------------------------------------------------
# Dense FFN
# ----------------------------------------------------------------------------------------------


@dataclass
class DenseFFNConfig:
    """Linear–GeLU–Linear.

    Attributes:
        d_model: D, input and output width.
        hidden: hidden width; None means 4·D (GPT-2).
    """

    d_model: int
    hidden: int | None = None

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model, low=1)
        if self.hidden is None:
            self.hidden = 4 * self.d_model
        check_int("hidden", self.hidden, low=1)


class DenseFFN(nn.Module):
    """The transformer MLP, y = out_proj(GeLU(in_proj(x)))."""

    def __init__(self, config: DenseFFNConfig):
        super().__init__()
        if not isinstance(config, DenseFFNConfig):
            raise TypeError(f"config must be a DenseFFNConfig, got {type(config).__name__}")
        self.config = config
        self.in_proj = nn.Linear(config.d_model, config.hidden)
        self.out_proj = nn.Linear(config.hidden, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., D) -> (..., D)."""
        check_float_tensor("x", x, min_ndim=1, shape=(self.config.d_model,), finite=False)
        return self.out_proj(F.gelu(self.in_proj(x)))


# ----------------------------------------------------------------------------------------------
# Mixture of experts
# ----------------------------------------------------------------------------------------------


@dataclass
class MoEConfig:
    """Fine-grained top-k mixture of experts.

    Attributes:
        d_model: D.
        n_experts: N experts.
        top_k: k experts per token (paper's MoE baseline: 2).
        expert_hidden: hidden width of each expert; None means 2·D, i.e. half the dense MLP, so
            that with k = 2 the activated FFN compute equals one dense 4·D MLP.
        aux_loss_coef: coefficient of the load-balancing loss (Switch: 0.01).
    """

    d_model: int
    n_experts: int = 8
    top_k: int = 2
    expert_hidden: int | None = None
    aux_loss_coef: float = 0.01

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model, low=1)
        check_int("n_experts", self.n_experts, low=1)
        check_int("top_k", self.top_k, low=1, high=self.n_experts)
        if self.expert_hidden is None:
            self.expert_hidden = 2 * self.d_model
        check_int("expert_hidden", self.expert_hidden, low=1)
        self.aux_loss_coef = _check_positive_float("aux_loss_coef", self.aux_loss_coef)


@dataclass
class Routing:
    """The router's decision for a flat batch of M tokens.

    Attributes:
        probs: (M, N) softmax router probabilities over all experts.
        gates: (M, k) renormalised top-k probabilities (each row sums to 1).
        experts: (M, k) int64 expert indices, distinct within a row.
    """

    probs: torch.Tensor
    gates: torch.Tensor
    experts: torch.Tensor


class MoEFFN(nn.Module):
    """Top-k mixture of DenseFFN experts with a softmax router. Returns ``(out, aux_loss)``."""

    def __init__(self, config: MoEConfig):
        super().__init__()
        if not isinstance(config, MoEConfig):
            raise TypeError(f"config must be a MoEConfig, got {type(config).__name__}")
        self.config = config
        self.router = nn.Linear(config.d_model, config.n_experts, bias=False)
        expert_config = DenseFFNConfig(config.d_model, config.expert_hidden)
        self.experts = nn.ModuleList(DenseFFN(expert_config) for _ in range(config.n_experts))

    def route(self, x: torch.Tensor) -> Routing:
        """x: (M, D) flat tokens -> :class:`Routing`."""
        probs = F.softmax(self.router(x), dim=-1)                      # (M, N)
        top_p, experts = probs.topk(self.config.top_k, dim=-1)         # (M, k), (M, k)
        gates = top_p / top_p.sum(dim=-1, keepdim=True)                # (M, k) rows sum to 1
        return Routing(probs=probs, gates=gates, experts=experts)

    def load_balancing_loss(self, routing: Routing) -> torch.Tensor:
        """coef · N · Σ_i f_i · P_i over the tokens in ``routing`` (a scalar)."""
        n, k = self.config.n_experts, self.config.top_k
        m = routing.probs.shape[0]
        counts = torch.bincount(routing.experts.reshape(-1), minlength=n)     # (N,)
        f = counts.to(routing.probs.dtype) / (m * k)                          # (N,) sums to 1
        p = routing.probs.mean(dim=0)                                         # (N,) sums to 1
        return self.config.aux_loss_coef * n * (f * p).sum()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grouped-by-expert forward.

        Args:
            x: (..., D) float.

        Returns:
            out (..., D) and the scalar load-balancing loss.
        """
        self._check_input(x)
        d, k = self.config.d_model, self.config.top_k
        flat = x.reshape(-1, d)                                        # (M, D)
        routing = self.route(flat)

        # Each (token, slot) pair is one assignment; sort assignments by expert so that each
        # expert sees one contiguous group of its tokens.
        expert_of = routing.experts.reshape(-1)                        # (M·k,)
        gate_of = routing.gates.reshape(-1)                            # (M·k,)
        token_of = torch.arange(flat.shape[0], device=x.device).repeat_interleave(k)  # (M·k,)
        order = torch.argsort(expert_of, stable=True)                  # (M·k,)
        counts = torch.bincount(expert_of, minlength=self.config.n_experts).tolist()

        out = torch.zeros_like(flat)                                   # (M, D)
        for expert, group in zip(self.experts, order.split(counts)):
            if group.numel() == 0:
                continue
            tokens = token_of[group]                                   # (m_e,)
            y = expert(flat.index_select(0, tokens))                   # (m_e, D)
            out.index_add_(0, tokens, y * gate_of[group].unsqueeze(-1))
        return out.reshape(x.shape), self.load_balancing_loss(routing)

    def forward_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every expert on every token, then a dense (M, N) gate matrix zero outside the top-k.

        Obviously correct and N/k times the compute of :meth:`forward`; same signature.
        """
        self._check_input(x)
        flat = x.reshape(-1, self.config.d_model)                      # (M, D)
        routing = self.route(flat)
        all_outputs = torch.stack([expert(flat) for expert in self.experts], dim=1)  # (M, N, D)
        gate_matrix = torch.zeros_like(routing.probs).scatter(
            1, routing.experts, routing.gates
        )                                                              # (M, N)
        out = torch.einsum("mn,mnd->md", gate_matrix, all_outputs)     # (M, D)
        return out.reshape(x.shape), self.load_balancing_loss(routing)

    def activated_parameters_per_token(self) -> int:
        """Router plus k experts: the parameters one token's forward pass multiplies with."""
        per_expert = num_parameters(self.experts[0])
        return num_parameters(self.router) + self.config.top_k * per_expert

    def _check_input(self, x: torch.Tensor) -> None:
        check_float_tensor("x", x, min_ndim=1, shape=(self.config.d_model,))
        if x.numel() == 0:
            raise ValueError(f"x must contain at least one token, got shape {tuple(x.shape)}")


# ----------------------------------------------------------------------------------------------
# Parameter counting
# ----------------------------------------------------------------------------------------------


def _embedding_parameter_ids(module: nn.Module) -> set[int]:
    return {id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}


def num_parameters(module: nn.Module, exclude_embeddings: bool = False) -> int:
    """Total number of parameters, each shared tensor counted once.

    ``exclude_embeddings`` drops every ``nn.Embedding`` table (token and position embeddings, and
    an output head tied to the token embedding) — the usual convention when comparing models.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    skip = _embedding_parameter_ids(module) if exclude_embeddings else set()
    unique = {id(p): p for p in module.parameters() if id(p) not in skip}
    return sum(p.numel() for p in unique.values())


def activated_parameters_per_token(module: nn.Module, exclude_embeddings: bool = False) -> int:
    """Parameters one token's forward pass multiplies with — the compute-matching count.

    Walks the module tree; a submodule that defines a method ``activated_parameters_per_token()``
    (MoE: router + k experts; a memory layer: the value rows it reads plus its projections)
    answers for its whole subtree, every other parameter counts in full. Shared tensors count once.
    ``exclude_embeddings`` as in :func:`num_parameters`.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    seen = _embedding_parameter_ids(module) if exclude_embeddings else set()
    total = 0

    def visit(m: nn.Module) -> None:
        nonlocal total
        own = getattr(m, "activated_parameters_per_token", None)
        if callable(own):
            total += int(own())
            seen.update(id(p) for p in m.parameters())
            return
        for p in m.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        for child in m.children():
            visit(child)

    visit(module)
    return total
