"""2D mixtures: ring of Gaussians, grid of Gaussians (PacGAN/VEEGAN protocol) and a spiral.

Defaults follow Lin et al. 2018 (PacGAN), Sec. 4: ring of 8 modes at radius 1 with std 0.01;
5x5 grid with means on {-4,-2,0,2,4}^2 and std 0.05. Points keep their coordinates (not
rescaled to [-1, 1]) so the published mode-coverage thresholds apply unchanged.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from gankit.data import DATASETS
from gankit.data.base import SampledData
from gankit.errors import ConfigError


def ring_means(n_modes: int, radius: float) -> Tensor:
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_means(n_modes: int, spacing: float) -> Tensor:
    side = math.isqrt(n_modes)
    if side * side != n_modes:
        raise ConfigError(f"data.n_modes: a grid needs a square number of modes, got {n_modes}")
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).float()


def mixture_means(mode: str, n_modes: int, radius: float, spacing: float) -> Tensor:
    """The mode centres of a ring or grid mixture (used by the mode-coverage metrics too)."""
    if mode == "ring":
        return ring_means(n_modes, radius)
    if mode == "grid":
        return grid_means(n_modes, spacing)
    raise ConfigError(f"data.mode: {mode!r} has no discrete modes; use 'ring' or 'grid'")


def sample_mixture(means: Tensor, std: float, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    labels = torch.randint(len(means), (n,), generator=g)
    return means[labels] + std * torch.randn(n, 2, generator=g), labels


def sample_spiral(n: int, g: torch.Generator, turns: float, std: float) -> tuple[Tensor, None]:
    t = torch.rand(n, generator=g).sqrt()  # uniform density along the arc's area
    angle = t * turns * 2 * math.pi
    points = torch.stack([t * angle.cos(), t * angle.sin()], dim=1)
    return points + std * torch.randn(n, 2, generator=g), None


@DATASETS.register("toy2d")
def toy2d(
    seed: int,
    mode: Literal["ring", "grid", "spiral"] = "ring",
    n_modes: int | None = None,
    radius: float = 1.0,
    spacing: float = 2.0,
    std: float | None = None,
    turns: float = 2.0,
) -> SampledData:
    """ring (8 modes, radius 1, std 0.01), grid (25 modes, spacing 2, std 0.05) or spiral."""
    if mode == "spiral":
        spiral_std = 0.02 if std is None else std
        return SampledData(
            lambda n, g: sample_spiral(n, g, turns, spiral_std),
            (2,),
            seed=seed,
            name="toy2d-spiral",
        )
    n_modes = n_modes if n_modes is not None else (8 if mode == "ring" else 25)
    std = std if std is not None else (0.01 if mode == "ring" else 0.05)
    if n_modes < 1:
        raise ConfigError(f"data.n_modes: must be at least 1, got {n_modes}")
    if std <= 0:
        raise ConfigError(f"data.std: must be positive, got {std}")
    means = mixture_means(mode, n_modes, radius, spacing)
    source = SampledData(
        lambda n, g: sample_mixture(means, std, n, g),
        (2,),
        seed=seed,
        name=f"toy2d-{mode}{n_modes}",
        num_classes=n_modes,
    )
    source.means = means
    source.std = std
    return source
