"""DRAGAN gradient penalty (Kodali et al. 2017, "On Convergence and Stability of GANs").

As in the authors' reference code (kodalinaveen3/DRAGAN, DRAGAN.ipynb): the real batch is
perturbed by x_p = x + c * std(x) * U[0, 1) noise, c = 0.5, where std(x) is ONE scalar, the
population standard deviation (numpy's default ddof=0) over every element of the whole real batch;
then x_hat = x + alpha * (x_p - x) with one alpha ~ U[0, 1) per sample, and
penalty = E[(||grad_x D(x_hat)||_2 - center)^2], the norm taken over all non-batch dimensions.
(The paper's text describes N(0, cI) perturbations; the reference code's non-negative uniform noise
scaled by the batch std is what is implemented.) Fake samples are not used.
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


def dragan_penalty(
    discriminator: nn.Module,
    real: Tensor,
    perturb_scale: float = 0.5,
    center: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random draws, in this order from `generator`: the noise (shape of `real`), then alpha
    (shape (N, 1, ..., 1))."""
    x = real.detach()
    std = x.std(correction=0)  # one scalar over the whole batch, ddof=0 as numpy's ndarray.std()
    noise = torch.rand(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    x_p = x + perturb_scale * std * noise
    alpha_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    alpha = torch.rand(alpha_shape, device=x.device, dtype=x.dtype, generator=generator)
    x_hat = (x + alpha * (x_p - x)).requires_grad_(True)
    scores = discriminator(x_hat)
    grad = input_gradient(scores, x_hat)
    norms = grad.flatten(1).norm(2, dim=1)
    return ((norms - center) ** 2).mean()


class DRAGAN(Regularizer):
    double_backward = True

    def __init__(self, weight: float, interval: int, center: float, perturb_scale: float):
        super().__init__(weight, interval)
        self.center = center
        self.perturb_scale = perturb_scale

    def penalty(self, ctx: RegularizerContext) -> Tensor:
        return dragan_penalty(ctx.discriminator, ctx.real, self.perturb_scale, self.center)


@REGULARIZERS.register("dragan")
def build_dragan(
    weight: float = 10.0, interval: int = 1, center: float = 1.0, perturb_scale: float = 0.5
):
    """weight lambda (10 in the paper); perturb_scale c (0.5 in the reference code)."""
    return DRAGAN(weight, interval, center, perturb_scale)
