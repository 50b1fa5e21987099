"""Kernel maximum mean discrepancy with a mixture of Gaussian kernels (pure functions).

k(a, b) = sum over bandwidths s of exp(-||a - b||^2 / (2 s^2)), on flattened samples.

For samples X (m rows) and Y (n rows):
  biased   MMD^2_b = mean_{i,j} k(x_i, x_j) + mean_{i,j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)
  unbiased MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
                     - 2 mean_{i,j} k(x_i, y_j)
(Gretton et al. 2012, eqs. 3 and 5). The biased estimate is >= 0 and is 0 for identical samples;
the unbiased one has expectation MMD^2 (0 when both come from one distribution) and can be
negative. Used by GMMN (Li et al. 2015; Dziugaite et al. 2015) on data and by MMD-GAN
(Li et al. 2017) on discriminator features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# MMD-GAN's bandwidths (its sigma_list); GMMN used wider ones on raw pixels
DEFAULT_SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """||a_i - b_j||^2 for flattened rows, clamped at 0 (the expansion can round below it)."""
    a, b = a.flatten(1), b.flatten(1)
    d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return d.clamp_min(0)


def mixture_kernel(a: Tensor, b: Tensor, sigmas: Sequence[float] = DEFAULT_SIGMAS) -> Tensor:
    d = squared_distances(a, b)
    return sum(torch.exp(-d / (2 * s * s)) for s in sigmas)


def mmd2(
    x: Tensor, y: Tensor, sigmas: Sequence[float] = DEFAULT_SIGMAS, unbiased: bool = True
) -> Tensor:
    """MMD^2 between samples x (m, ...) and y (n, ...) with the Gaussian mixture kernel."""
    m, n = x.shape[0], y.shape[0]
    if unbiased and (m < 2 or n < 2):
        raise ValueError(f"the unbiased MMD needs at least 2 samples each, got {m} and {n}")
    kxx, kyy, kxy = (mixture_kernel(a, b, sigmas) for a, b in ((x, x), (y, y), (x, y)))
    if unbiased:
        xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
        yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    else:
        xx, yy = kxx.mean(), kyy.mean()
    return xx + yy - 2 * kxy.mean()
