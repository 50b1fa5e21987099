"""Mode coverage on 2D Gaussian mixtures (Lin et al. 2018, "PacGAN: The power of two samples in
generative adversarial networks"; Srivastava et al. 2017, "VEEGAN").

Mode collapse shows up as missing modes and as an uneven spread over the modes that remain.
Each sample goes to its nearest mode; it is high quality if it lies within `threshold` standard
deviations of it. PacGAN's rule is the Mahalanobis distance under the isotropic covariance
std^2 I (= Euclidean distance / std) strictly below threshold; VEEGAN's is the Euclidean
distance <= threshold * std. A mode is captured if it holds at least one high-quality sample,
and the reverse KL compares the histogram of high-quality samples over modes to uniform.
"""

from __future__ import annotations

import math

import numpy as np
import torch

RULES = ("mahalanobis", "euclidean")


def _to_numpy64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def reverse_kl_to_uniform(counts: np.ndarray) -> float:
    """KL(q || uniform) for q = counts / counts.sum(), with 0 log 0 = 0; inf for no counts."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return math.inf
    q = counts[counts > 0] / total
    return float(np.sum(q * np.log(q * len(counts))))


def mixture_modes(samples, means, std: float, rule: str = "mahalanobis", threshold: float = 3.0):
    """samples (N, D), means (M, D) -> modes_captured, n_modes, high_quality_fraction,
    reverse_kl and counts (high-quality samples per mode)."""
    x, mu = _to_numpy64(samples), _to_numpy64(means)
    if x.ndim != 2 or mu.ndim != 2 or x.shape[1] != mu.shape[1]:
        raise ValueError(f"samples (N, D) and means (M, D) must agree, got {x.shape}, {mu.shape}")
    if len(x) == 0 or len(mu) == 0:
        raise ValueError("need at least one sample and one mode")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not (np.isfinite(x).all() and np.isfinite(mu).all()):
        raise ValueError("samples or means contain NaN or inf")
    nearest = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x))
    for start in range(0, len(x), 65536):
        d = np.linalg.norm(x[start : start + 65536, None, :] - mu[None, :, :], axis=-1)
        nearest[start : start + 65536] = d.argmin(axis=1)
        dist[start : start + 65536] = d.min(axis=1)
    if rule == "mahalanobis":
        good = dist / std < threshold
    else:
        good = dist <= threshold * std
    counts = np.bincount(nearest[good], minlength=len(mu))
    return {
        "modes_captured": int((counts > 0).sum()),
        "n_modes": len(mu),
        "high_quality_fraction": float(good.mean()),
        "reverse_kl": reverse_kl_to_uniform(counts),
        "counts": [int(c) for c in counts],
    }
