"""Laplacian pyramids of image batches (LAPGAN, methods/lapgan.py).

downsample: 2x2 average pooling with stride 2 (each coarse pixel is the mean of its 2x2 block;
a box filter, not the Gaussian blur of Burt & Adelson / Denton et al.). upsample: fixed, no
parameters; "nearest" repeats each pixel into a 2x2 block (the default, the exact adjoint of the
pooling up to a factor 4), "bilinear" interpolates (align_corners=False).

For an image I_K at the finest level K, I_{k-1} = down(I_k) and the residual of level k is
h_k = I_k - up(I_{k-1}) = I_k - up(down(I_k)). `build_pyramid` returns the coarsest image I_0
and the residuals [h_1, ..., h_K] from coarse to fine; `reconstruct` runs
I_k = up(I_{k-1}) + h_k from I_0 up, which gives back I_K exactly (up to float rounding) when
the residuals are the true ones.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor
from torch.nn import functional as F

Upsample = Literal["nearest", "bilinear"]


def downsample(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, H/2, W/2): the mean of each 2x2 block (H and W even)."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"downsample: height and width must be even, got {tuple(x.shape)}")
    return F.avg_pool2d(x, 2)


def upsample(x: Tensor, mode: Upsample = "nearest") -> Tensor:
    """(N, C, H, W) -> (N, C, 2H, 2W): nearest (2x2 blocks) or bilinear interpolation."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    if mode == "bilinear":
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    raise ValueError(f"upsample: mode must be 'nearest' or 'bilinear', got {mode!r}")


def build_pyramid(
    x: Tensor, levels: int, mode: Upsample = "nearest"
) -> tuple[Tensor, list[Tensor]]:
    """(I_0, [h_1, ..., h_{levels-1}]): the coarsest image (x downsampled levels - 1 times) and
    the residuals h_k = I_k - up(down(I_k)) from coarse to fine; levels=1: (x, [])."""
    if levels < 1:
        raise ValueError(f"build_pyramid: levels must be at least 1, got {levels}")
    residuals = []
    image = x
    for _ in range(levels - 1):
        coarse = downsample(image)
        residuals.append(image - upsample(coarse, mode))
        image = coarse
    return image, residuals[::-1]


def reconstruct(coarsest: Tensor, residuals: list[Tensor], mode: Upsample = "nearest") -> Tensor:
    """I_K from I_0 and [h_1, ..., h_K]: I_k = up(I_{k-1}) + h_k."""
    image = coarsest
    for h in residuals:
        image = upsample(image, mode) + h
    return image


def pyramid_sizes(size: int, levels: int) -> list[int]:
    """The side of each level's images from coarse to fine, e.g. (28, 3) -> [7, 14, 28]."""
    if size % (2 ** (levels - 1)):
        raise ValueError(f"an image of side {size} cannot be halved {levels - 1} times")
    return [size // 2 ** (levels - 1 - k) for k in range(levels)]


def auto_levels(size: int, max_levels: int = 3, min_size: int = 4) -> int:
    """Halve the side while it stays even and the half is at least min_size, at most
    max_levels levels: 8 -> 2 (4, 8), 28 -> 3 (7, 14, 28), 32 -> 3 (8, 16, 32)."""
    levels = 1
    while levels < max_levels and size % 2 == 0 and size // 2 >= min_size:
        size //= 2
        levels += 1
    return levels
