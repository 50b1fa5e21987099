"""WGAN-GP gradient penalty (Gulrajani et al. 2017, Algorithm 1).

One interpolation coefficient eps ~ U[0, 1] per sample: x_hat = eps * x + (1 - eps) * G(z);
penalty = E[(||grad_x D(x_hat)||_2 - center)^2], the norm taken over all non-batch dimensions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.regularizers import (
    REGULARIZERS,
    Regularizer,
    RegularizerContext,
    input_gradient,
)


def gradient_penalty(
    discriminator: nn.Module,
    real: Tensor,
    fake: Tensor,
    center: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = torch.rand(eps_shape, device=real.device, dtype=real.dtype, generator=generator)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = discriminator(x_hat)
    grad = input_gradient(scores, x_hat)
    norms = grad.flatten(1).norm(2, dim=1)
    return ((norms - center) ** 2).mean()


class GradientPenalty(Regularizer):
    double_backward = True

    def __init__(self, weight: float, interval: int, center: float):
        super().__init__(weight, interval)
        self.center = center

    def penalty(self, ctx: RegularizerContext) -> Tensor:
        return gradient_penalty(ctx.discriminator, ctx.real, ctx.fake, self.center)


@REGULARIZERS.register("gradient_penalty")
def build_gradient_penalty(weight: float = 10.0, interval: int = 1, center: float = 1.0):
    """weight lambda (10 in the paper); center 1 is the two-sided penalty (0: zero-centred)."""
    return GradientPenalty(weight, interval, center)
