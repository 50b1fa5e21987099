"""Latent noise: the distributions a generator's z is drawn from."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_latent(n, dim, dist, device, generator=None) -> Tensor:
    """n latent vectors of size dim: U(-1, 1) for dist "uniform", N(0, I) otherwise."""
    if dist == "uniform":  # U(-1, 1)
        return torch.rand(n, dim, device=device, generator=generator) * 2 - 1
    return torch.randn(n, dim, device=device, generator=generator)
