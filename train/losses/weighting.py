"""Dynamic weighting of named loss terms by homoscedastic uncertainty (Kendall, Gal & Cipolla, 2018).

Hand-tuning the balance between SSI, gradient, NLL, perceptual and edge terms is brittle because their
scales drift during training; learning one log-variance per term rebalances them automatically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = ["WEIGHTING_MODES", "DynamicTaskWeighting"]

WEIGHTING_MODES = ("uncertainty", "none")


class DynamicTaskWeighting(nn.Module):
    """Combine named scalar losses into one total, optionally with learned uncertainty weights.

    ``mode="uncertainty"``: one learnable log-variance ``s_i`` per name (the nn.Parameter ``log_vars``,
    initialised to ``init_log_var``) and ``total = sum_i (w_i * exp(-s_i) * L_i + s_i)`` with ``w_i`` the
    static weight. The 0.5 factors of the paper's regression form are dropped: that only rescales the
    total by 0.5 (same optimum ``s_i = log(w_i L_i)``), and with ``s_i = 0`` at init the total starts equal
    to the static weighted sum. ``mode="none"``: ``total = sum_i w_i * L_i`` and no parameters.
    Static weights default to 1.0 for names not in ``static_weights``; a name with static weight 0 is
    skipped entirely. ``forward(losses)`` takes ``{name: scalar}`` (names may be missing for a step,
    unknown names raise KeyError) and returns ``(total, {name: effective weight as float})``.
    Names in ``fixed`` keep their static weight in either mode: a likelihood term that can go negative
    (the mixture NLL) would otherwise drive its learned weight to infinity.
    """

    def __init__(
        self,
        names: Sequence[str],
        static_weights: Mapping[str, float] | None = None,
        mode: str = "uncertainty",
        init_log_var: float = 0.0,
        fixed: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if mode not in WEIGHTING_MODES:
            raise ValueError(f"unknown mode {mode!r}; valid choices: {', '.join(WEIGHTING_MODES)}")
        names = list(names)
        self.fixed = frozenset(fixed)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate loss names in {names}")
        static_weights = dict(static_weights or {})
        unknown = set(static_weights) - set(names)
        if unknown:
            raise KeyError(f"static weights for unknown loss names: {sorted(unknown)}")
        self.names = names
        self.mode = mode
        self.static_weights = {n: float(static_weights.get(n, 1.0)) for n in names}
        self._index = {n: i for i, n in enumerate(names)}
        if mode == "uncertainty":
            self.log_vars = nn.Parameter(torch.full((len(names),), float(init_log_var)))
        else:
            self.register_parameter("log_vars", None)

    def forward(self, losses: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted total of ``losses`` and the effective weight applied to each term (for logging)."""
        unknown = set(losses) - set(self.names)
        if unknown:
            raise KeyError(f"losses for unknown names: {sorted(unknown)}; known: {self.names}")
        total: torch.Tensor | None = None
        weights: dict[str, float] = {}
        for name in self.names:
            if name not in losses or self.static_weights[name] == 0.0:
                continue
            loss = losses[name]
            w = self.static_weights[name]
            if self.log_vars is not None and name not in self.fixed:
                s = self.log_vars[self._index[name]]
                eff = w * torch.exp(-s)
                term = eff * loss + s
                weights[name] = float(eff.detach())
            else:
                term = w * loss
                weights[name] = w
            total = term if total is None else total + term
        if total is None:
            ref = self.log_vars if self.log_vars is not None else next(iter(losses.values()), None)
            total = torch.zeros(()) if ref is None else ref.sum() * 0.0
        return total, weights
