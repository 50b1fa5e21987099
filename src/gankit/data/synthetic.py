"""Random images: uniform noise in [-1, 1] of any shape, for benchmarks and smoke tests.

A training step costs the same whatever the pixels show, so `gankit bench` times its image
cases on these (no download, any size). Nothing can be learned from them.
"""

from __future__ import annotations

import torch

from gankit.data import DATASETS
from gankit.data.base import InMemoryData
from gankit.errors import ConfigError


@DATASETS.register("random_images")
def random_images(
    seed: int, channels: int = 3, size: int = 32, width: int | None = None, n: int = 2048
) -> InMemoryData:
    """n images (channels, size, width or size) drawn i.i.d. from U(-1, 1) with the run's seed."""
    width = size if width is None else width
    for key, value in (("channels", channels), ("size", size), ("width", width), ("n", n)):
        if value < 1:
            raise ConfigError(f"data.{key}: must be at least 1, got {value}")
    if n * channels * size * width > 2**31:
        raise ConfigError(
            f"data: {n} random images of {channels}x{size}x{width} do not fit in memory; "
            "lower data.n"
        )
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size, width, generator=g) * 2 - 1
    return InMemoryData(x, seed=seed, name=f"random-images-{channels}x{size}x{width}")
