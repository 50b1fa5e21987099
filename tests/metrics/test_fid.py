"""FID against scipy's sqrtm, closed forms for known Gaussians, and stats round trips."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from gankit.metrics.fid import FeatureStats, fid, frechet_distance


def scipy_reference(f1: np.ndarray, f2: np.ndarray) -> float:
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm of a singular product warns
        root = scipy.linalg.sqrtm(s1 @ s2)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(root.real))


def features(rng, n, d, shift=0.0, scale=1.0):
    mix = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    return scale * rng.standard_normal((n, d)) @ mix + shift


@pytest.mark.parametrize("d", [16, 64])
def test_matches_scipy_reference(d):
    rng = np.random.default_rng(d)
    f1 = features(rng, 500, d)
    f2 = features(rng, 500, d, shift=0.2, scale=1.3)
    got = fid(FeatureStats.from_features(f1), FeatureStats.from_features(torch.from_numpy(f2)))
    assert got == pytest.approx(scipy_reference(f1, f2), rel=1e-6)


def test_stats_match_numpy():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((50, 4)).astype(np.float32)
    stats = FeatureStats.from_features(torch.from_numpy(f))
    assert stats.mean.dtype == np.float64 and stats.cov.dtype == np.float64 and stats.n == 50
    np.testing.assert_allclose(stats.mean, f.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(f.astype(np.float64), rowvar=False), rtol=1e-12)


def test_diagonal_gaussians_closed_form():
    a = np.array([1.0, 4.0, 9.0, 0.25])
    b = np.array([4.0, 1.0, 9.0, 2.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    # (1-2)^2 + (2-1)^2 + 0 + (0.5-1.5)^2 = 3 ; ||mu diff||^2 = 1 + 4 = 5
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(8.0, abs=1e-12)


def test_commuting_covariances_closed_form():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = rng.uniform(0.5, 3.0, 6)
    b = rng.uniform(0.5, 3.0, 6)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)


def test_identical_stats_give_zero():
    stats = FeatureStats.from_features(features(np.random.default_rng(2), 300, 32))
    assert abs(fid(stats, stats)) < 1e-8


def test_rank_deficient_covariance():
    rng = np.random.default_rng(3)
    f1 = features(rng, 10, 16)  # n < D: rank-9 covariance
    f2 = features(rng, 500, 16, shift=0.5)
    got = fid(FeatureStats.from_features(f1), FeatureStats.from_features(f2))
    assert np.isfinite(got)
    assert got == pytest.approx(scipy_reference(f1, f2), rel=1e-5)
    both_singular = fid(FeatureStats.from_features(f1), FeatureStats.from_features(f2[:8]))
    assert np.isfinite(both_singular)


def test_symmetric_in_arguments():
    rng = np.random.default_rng(4)
    s1 = FeatureStats.from_features(features(rng, 200, 8))
    s2 = FeatureStats.from_features(features(rng, 200, 8, shift=1.0, scale=0.5))
    assert fid(s1, s2) == pytest.approx(fid(s2, s1), rel=1e-10)


def test_save_load_round_trip(tmp_path):
    stats = FeatureStats.from_features(features(np.random.default_rng(5), 40, 5))
    stats.save(tmp_path / "stats.npz")
    back = FeatureStats.load(tmp_path / "stats.npz")
    np.testing.assert_array_equal(back.mean, stats.mean)
    np.testing.assert_array_equal(back.cov, stats.cov)
    assert back.n == 40 and isinstance(back.n, int)


def test_bad_inputs_raise():
    mu, s = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(mu, s, mu, np.eye(4))
    with pytest.raises(ValueError, match="equal length"):
        frechet_distance(mu, s, np.zeros(4), s)
    bad = s.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu, bad, mu, s)
