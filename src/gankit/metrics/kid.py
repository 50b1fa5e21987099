"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs").

KID is the unbiased estimate of the squared MMD between real and fake features under the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3. Unlike FID it has an unbiased estimator, so values
from different sample sizes are comparable; it is averaged over random subsets to bound cost
and to give a spread.
"""

from __future__ import annotations

import numpy as np
import torch


def _to_numpy64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size sets under the cubic polynomial kernel."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kid(real_features, fake_features, subset_size: int = 1000, n_subsets: int = 100, seed: int = 0):
    """Mean and std of the unbiased MMD^2 over n_subsets random subsets of subset_size samples
    drawn without replacement from each set. When a set is smaller than subset_size, the subset
    size drops to min(len(real), len(fake)) and the result says so (subset_size_reduced)."""
    x, y = _to_numpy64(real_features), _to_numpy64(fake_features)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be (N, D) with equal D, got {x.shape} and {y.shape}")
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be at least 1, got {n_subsets}")
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError(
            f"KID needs at least 2 samples per set, got {len(x)} real and {len(y)} fake"
        )
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets)
    for s in range(n_subsets):
        xi = rng.choice(len(x), m, replace=False)
        yi = rng.choice(len(y), m, replace=False)
        values[s] = _unbiased_mmd2(x[xi], y[yi])
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "subset_size": int(m),
        "n_subsets": int(n_subsets),
        "subset_size_reduced": bool(m < subset_size),
    }
