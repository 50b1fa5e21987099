"""Pull-away term (Zhao et al. 2017, "Energy-based Generative Adversarial Network", eq. 7).

f_PT(S) = 1 / (N (N - 1)) * sum_i sum_{j != i} (S_i . S_j / (||S_i|| ||S_j||))^2 over a batch of
N vectors S (each row flattened): the mean squared cosine similarity between distinct pairs. It is
added to the generator's loss, pushing generated samples apart in feature space (EBGAN applies it
to the auto-encoder discriminator's code of the generated batch).

features "discriminator": S = discriminator.features(G(z)) (the last hidden layer), flattened;
features "samples": S = G(z) flattened.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from gankit.regularizers import REGULARIZERS, Regularizer, RegularizerContext

EPS = 1e-12


def pull_away(s: Tensor, eps: float = EPS) -> Tensor:
    """Mean squared cosine similarity over ordered pairs i != j of the rows of s (N, ...).

    A row with norm below eps counts as the zero vector (cosine 0 with everything), so the value
    and its gradient stay finite.
    """
    n = s.shape[0]
    if n < 2:
        raise ValueError(f"pull-away term needs a batch of at least 2 samples, got {n}")
    unit = F.normalize(s.flatten(1), p=2, dim=1, eps=eps)
    cos = unit @ unit.T
    off = cos.masked_fill(torch.eye(n, dtype=torch.bool, device=s.device), 0.0)
    return off.pow(2).sum() / (n * (n - 1))


class PullAway(Regularizer):
    player = "g"

    def __init__(self, weight: float, interval: int, features: str):
        super().__init__(weight, interval)
        self.features = features

    def penalty(self, ctx: RegularizerContext) -> Tensor:
        if self.features == "discriminator":
            s = ctx.discriminator.features(ctx.fake)
        else:
            s = ctx.fake
        return pull_away(s)


@REGULARIZERS.register("pull_away")
def build_pull_away(
    weight: float = 0.1,
    interval: int = 1,
    features: Literal["discriminator", "samples"] = "discriminator",
):
    """weight 0.1 as in EBGAN's MNIST experiments; added to the generator's loss."""
    return PullAway(weight, interval, features)
