"""Penalties added to a player's loss, each with a weight and an interval.

A regularizer with interval k runs only every k-th step and its loss is multiplied by k, so its
average strength is unchanged ("lazy regularization", Karras et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.registry import Registry

REGULARIZERS = Registry("regularizer")


@dataclass
class RegularizerContext:
    """What a penalty may look at during one discriminator step."""

    discriminator: nn.Module
    real: Tensor
    fake: Tensor  # detached from the generator's graph
    step: int


def input_gradient(scores: Tensor, x: Tensor) -> Tensor:
    """grad_x of sum(scores), kept differentiable (create_graph) for penalties on it."""
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad


class Regularizer:
    player: str = "d"  # whose loss it is added to
    # differentiates an input gradient: run in fp32 under fast mode, not with torch.compile
    double_backward: bool = False

    def __init__(self, weight: float, interval: int):
        self.weight = weight
        self.interval = interval

    def active(self, step: int) -> bool:
        return step % self.interval == 0

    def penalty(self, ctx: RegularizerContext) -> Tensor:
        raise NotImplementedError

    def __call__(self, ctx: RegularizerContext) -> Tensor:
        return self.weight * self.interval * self.penalty(ctx)


def build_regularizer(options: dict, where: str) -> Regularizer:
    options = dict(options)
    name = options.pop("name", None)
    weight = options.pop("weight", None)
    interval = options.pop("interval", 1)
    builder = REGULARIZERS.get(name, where=f"{where}.name")
    resolved = REGULARIZERS.check_options(
        name, options, where, framework_args=("weight", "interval")
    )
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise ConfigError(f"{where}.interval: must be an integer >= 1, got {interval!r}")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))):
        raise ConfigError(f"{where}.weight: expected a number, got {weight!r}")
    kwargs = {} if weight is None else {"weight": float(weight)}
    return builder(interval=interval, **kwargs, **resolved)


from gankit.regularizers import dragan, gradient_penalty, pull_away, r1  # noqa: E402,F401

__all__ = [
    "REGULARIZERS",
    "Regularizer",
    "RegularizerContext",
    "build_regularizer",
    "input_gradient",
]
