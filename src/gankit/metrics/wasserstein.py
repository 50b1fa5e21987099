"""Wasserstein-1 distances between sample sets, for low-dimensional data (toy 2D mixtures).

wasserstein1 is the exact earth mover's distance with uniform weights and Euclidean ground cost
(network simplex via POT, Flamary et al. 2021), cubic in the sample count, hence the size cap.
sliced_wasserstein (Rabin et al. 2011; Bonneel et al. 2015) averages exact 1D distances
between random projections: (E_theta W_p^p(theta.x, theta.y))^(1/p), linearithmic in the count.
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from scipy.spatial.distance import cdist

MAX_EXACT = 10_000


def _flat64(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0 or len(a) == 0:
        raise ValueError(f"{name} must hold at least one sample, got shape {a.shape}")
    a = a.reshape(len(a), -1)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _flat64(x, "x"), _flat64(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"sample sizes differ: x has {x.shape[1]} values, y has {y.shape[1]}")
    return x, y


def wasserstein1(x, y) -> float:
    """Exact W1 between the empirical measures of x (N, ...) and y (M, ...), uniform weights."""
    x, y = _pair(x, y)
    if len(x) > MAX_EXACT or len(y) > MAX_EXACT:
        raise ValueError(
            f"exact W1 is limited to {MAX_EXACT} points per side (got {len(x)} and {len(y)}); "
            "use sliced_wasserstein for larger sets"
        )
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    # scipy's cdist subtracts coordinates; ot.dist(metric="euclidean") takes the sqrt of
    # |x|^2 + |y|^2 - 2 x.y, which leaves ~1e-8 where points coincide
    cost = cdist(x, y, metric="euclidean")
    # POT's default of 1e5 simplex iterations stops short (with only a warning) near 10k points
    value, log = ot.emd2(a, b, cost, numItermax=1_000_000_000, log=True)
    if log.get("warning") is not None:
        raise RuntimeError(f"exact W1 did not reach optimality: {log['warning']}")
    return float(value)


def sliced_wasserstein(x, y, n_projections: int = 128, seed: int = 0, p: float = 1) -> float:
    """Sliced W_p over n_projections random unit directions (numpy Generator(seed)).

    Each 1D distance is exact: sorted projections are matched quantile by quantile, and for
    unequal sizes both quantile (step) functions are compared on the merged grid of their levels
    {i/N} and {j/M}, so no interpolation error enters."""
    x, y = _pair(x, y)
    if n_projections < 1:
        raise ValueError(f"n_projections must be at least 1, got {n_projections}")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((n_projections, x.shape[1]))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    px = np.sort(x @ theta.T, axis=0)  # (N, P)
    py = np.sort(y @ theta.T, axis=0)  # (M, P)
    n, m = len(px), len(py)
    if n == m:
        per_projection = np.mean(np.abs(px - py) ** p, axis=0)
    else:
        levels = np.unique(np.concatenate([np.arange(1, n + 1) / n, np.arange(1, m + 1) / m]))
        widths = np.diff(levels, prepend=0.0)
        mid = levels - widths / 2
        ix = np.minimum((mid * n).astype(np.int64), n - 1)
        iy = np.minimum((mid * m).astype(np.int64), m - 1)
        per_projection = widths @ (np.abs(px[ix] - py[iy]) ** p)
    return float(np.mean(per_projection) ** (1.0 / p))
