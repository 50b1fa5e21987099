"""k-NN manifold metrics: improved precision and recall (Kynkaanniemi et al. 2019, "Improved
Precision and Recall Metric for Assessing Generative Models") and density and coverage (Naeem
et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models").

FID mixes fidelity and diversity into one number; these separate them. Each sample's manifold
ball has the distance to its k-th nearest neighbour in its own set (itself excluded) as radius.
Balls are closed (distance <= radius), as in Kynkaanniemi et al.'s formula; the NAVER prdc code
uses < , which differs only on exact ties (duplicates, discrete data). Distances are float64
torch.cdist in blocks of rows so 10k x 10k sets never hold the full distance matrix.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

CHUNK = 1024


def _as_tensor(x, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    t = t.detach().cpu().double()
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2D (N, D), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    return t


def _check(real: Tensor, fake: Tensor, k: int, fake_radii: bool) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if len(fake) == 0:
        raise ValueError("fake has no samples")
    for name, t in (("real", real), ("fake", fake))[: 2 if fake_radii else 1]:
        if not 1 <= k < len(t):
            raise ValueError(f"k must be in [1, N-1]; got k={k} with {len(t)} {name} samples")


def knn_radii(x: Tensor, k: int) -> Tensor:
    """Distance from each row of x to its k-th nearest other row (float64, (N,))."""
    out = []
    for start in range(0, len(x), CHUNK):
        d = torch.cdist(x[start : start + CHUNK], x)
        # the point itself is the one extra zero, so the (k+1)-th smallest excludes it
        out.append(torch.topk(d, k + 1, dim=1, largest=False).values[:, -1])
    return torch.cat(out)


def _inside_any(points: Tensor, centres: Tensor, radii: Tensor) -> Tensor:
    """Bool (len(points),): whether each point lies in at least one closed ball."""
    out = []
    for start in range(0, len(points), CHUNK):
        d = torch.cdist(points[start : start + CHUNK], centres)
        out.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(out)


def precision_recall(real, fake, k: int = 3) -> dict:
    """Precision: share of fake samples inside the real manifold; recall: share of real samples
    inside the fake manifold (Kynkaanniemi et al. 2019, default k=3)."""
    real, fake = _as_tensor(real, "real"), _as_tensor(fake, "fake")
    _check(real, fake, k, fake_radii=True)
    precision = _inside_any(fake, real, knn_radii(real, k)).double().mean()
    recall = _inside_any(real, fake, knn_radii(fake, k)).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real, fake, k: int = 5) -> dict:
    """Density: (1/kM) sum_j sum_i 1[fake_j in B(real_i, r_i)], which counts how many real balls
    hold each fake sample (about 1 for matching distributions, can exceed 1); coverage: share of
    real balls holding at least one fake sample (Naeem et al. 2020, default k=5)."""
    real, fake = _as_tensor(real, "real"), _as_tensor(fake, "fake")
    _check(real, fake, k, fake_radii=False)
    radii = knn_radii(real, k)
    hits = 0.0
    covered = []
    for start in range(0, len(real), CHUNK):
        inside = (
            torch.cdist(real[start : start + CHUNK], fake) <= radii[start : start + CHUNK, None]
        )
        hits += float(inside.sum())
        covered.append(inside.any(dim=1))
    density = hits / (k * len(fake))
    coverage = float(torch.cat(covered).double().mean())
    return {"density": density, "coverage": coverage}
