"""Exponential moving average of the generator's weights (Yazici et al. 2019; Karras et al.).

Parameters are averaged; buffers (BatchNorm statistics) are copied, since averaging running
statistics of different networks has no meaning.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


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
