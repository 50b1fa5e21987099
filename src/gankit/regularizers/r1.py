"""R1 and R2 zero-centred gradient penalties (Mescheder et al. 2018, "Which Training Methods for
GANs do actually Converge?", eq. 9 and 10).

penalty = 0.5 * E[||grad_x D(x)||_2^2], the squared norm over all non-batch dimensions, on real
data (R1) or on generated samples (R2). The 1/2 is inside the penalty, so the regularizer's weight
is the paper's gamma: R1 = gamma / 2 * E||grad_x D(x)||^2.
"""

from __future__ import annotations

from torch import Tensor, nn

from gankit.regularizers import (
    REGULARIZERS,
    Regularizer,
    RegularizerContext,
    input_gradient,
)


def r1_penalty(discriminator: nn.Module, x: Tensor) -> Tensor:
    """0.5 * batch mean of ||grad_x D(x_i)||^2; x is detached first (R1: real, R2: fake)."""
    x = x.detach().requires_grad_(True)
    scores = discriminator(x)
    grad = input_gradient(scores, x)
    return 0.5 * grad.flatten(1).pow(2).sum(dim=1).mean()


class R1(Regularizer):
    double_backward = True

    def penalty(self, ctx: RegularizerContext) -> Tensor:
        return r1_penalty(ctx.discriminator, ctx.real)


class R2(Regularizer):
    double_backward = True

    def penalty(self, ctx: RegularizerContext) -> Tensor:
        return r1_penalty(ctx.discriminator, ctx.fake)


@REGULARIZERS.register("r1")
def build_r1(weight: float = 10.0, interval: int = 1):
    """weight gamma (R1 = gamma / 2 * E||grad||^2), 10 by default."""
    return R1(weight, interval)


@REGULARIZERS.register("r2")
def build_r2(weight: float = 10.0, interval: int = 1):
    """R1 on generated samples instead of real data; weight gamma."""
    return R2(weight, interval)
