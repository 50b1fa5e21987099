"""Exponential moving average of the generator's weights (Yazici et al. 2019; Karras et al.).

Parameters are averaged; buffers (BatchNorm statistics) are copied, since averaging running
statistics of different networks has no meaning. Copied statistics belong to the raw G, not to
the averaged weights, so a BatchNorm generator's EMA can sample worse than G itself;
`recalibrate` recomputes them for the averaged weights from fresh noise ("standing
statistics", Brock et al. 2019).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class EMA:
    def __init__(self, model: nn.Module, decay: float, start: int = 0):
        self.decay = decay
        self.start = start
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._params = list(self.model.parameters())
        self._buffers = list(self.model.buffers())

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        params = list(model.parameters())
        if step < self.start:
            torch._foreach_copy_(self._params, params)
        else:
            torch._foreach_lerp_(self._params, params, 1.0 - self.decay)
        for mine, theirs in zip(self._buffers, model.buffers()):
            mine.copy_(theirs)

    @torch.no_grad()
    def recalibrate(self, noise: Callable[[], Tensor], batches: int) -> None:
        """Replace the BatchNorm running statistics by their exact average over `batches`
        forward passes of the averaged weights on noise() (in training mode, as G is trained).
        The weights are untouched; the next update() copies the raw G's statistics again."""
        norms = [m for m in self.model.modules() if isinstance(m, _BatchNorm)]
        if not norms or batches < 1:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: every batch counts the same
        self.model.train()
        try:
            for _ in range(batches):
                self.model(noise())
        finally:
            self.model.eval()
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
