"""Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update
Rule Converge to a Local Nash Equilibrium").

FID fits a Gaussian to each feature set and reports the Frechet (2-Wasserstein) distance between
them: ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)). The trace of the matrix square
root is taken from symmetric eigendecompositions in float64 rather than scipy.linalg.sqrtm:
S1 S2 is not symmetric, and sqrtm on it can return complex parts or lose accuracy when a
covariance is singular (fewer samples than features), while sqrt(S1) S2 sqrt(S1) is symmetric
PSD with the same eigenvalues as S1 S2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


def _to_numpy64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


@dataclass
class FeatureStats:
    """Mean (D,), covariance (D, D) and sample count of a feature set, all float64."""

    mean: np.ndarray
    cov: np.ndarray
    n: int

    @classmethod
    def from_features(cls, features) -> FeatureStats:
        """features (N, D), torch or numpy; covariance with ddof=1 (np.cov(rowvar=False))."""
        f = _to_numpy64(features)
        if f.ndim != 2:
            raise ValueError(f"features must be 2D (N, D), got shape {f.shape}")
        if len(f) < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {len(f)}")
        if not np.isfinite(f).all():
            raise ValueError("features contain NaN or inf")
        mean = f.mean(axis=0)
        centred = f - mean
        cov = centred.T @ centred / (len(f) - 1)
        return cls(mean=mean, cov=cov, n=len(f))

    def save(self, path: str | Path) -> None:
        """Write mean, cov and n to an .npz file (np.savez appends .npz if missing)."""
        np.savez(path, mean=self.mean, cov=self.cov, n=np.int64(self.n))

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                mean=np.asarray(data["mean"], dtype=np.float64),
                cov=np.asarray(data["cov"], dtype=np.float64),
                n=int(data["n"]),
            )


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = _to_numpy64(mu1), _to_numpy64(mu2)
    s1, s2 = _to_numpy64(sigma1), _to_numpy64(sigma2)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"means must be 1D of equal length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape {(d, d)} to match the means, got {s.shape}")
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf")
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    root1 = _sqrt_psd(s1)
    m = root1 @ s2 @ root1
    m = (m + m.T) / 2
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(m), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid(real: FeatureStats, fake: FeatureStats) -> float:
    """FID between the Gaussians fitted to real and fake features."""
    return frechet_distance(real.mean, real.cov, fake.mean, fake.cov)
