"""DCGAN generator and discriminator (Radford et al. 2015) for 8, 16, 28, 32 and 64 px images.

The generator projects z to a 4x4 map (7x7 for 28 px), then doubles the resolution with
stride-2 transposed convolutions (kernel 4) down to the image; the discriminator mirrors it with
stride-2 convolutions and LeakyReLU(0.2), no normalization on its first layer.
`extra_layers` adds 3x3 stride-1 conv blocks at the finest hidden resolution (the
"n_extra_layers" of the WGAN reference DCGAN), which gives 8-16 px models enough depth.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS, GENERATORS
from gankit.models.layers import BodyHead, dcgan_init, norm2d

SIZES = {8: 4, 16: 4, 28: 7, 32: 4, 64: 4}  # image size -> resolution of the smallest map


def _levels(shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    """(channels, start resolution, number of stride-2 stages) for an image shape."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"{where}: DCGAN needs square images (C, H, H), data has shape {shape}")
    channels, size = shape[0], shape[1]
    if size not in SIZES:
        raise ConfigError(
            f"{where}: DCGAN supports image sizes {sorted(SIZES)}, data has {size}x{size}; "
            "resize the data (e.g. data.size for folders) or use the mlp models"
        )
    start = SIZES[size]
    stages = (size // start).bit_length() - 1
    return channels, start, stages


class DCGANGenerator(nn.Module):
    def __init__(self, out_shape, latent_dim, base_channels, norm, extra_layers=0):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.latent_dim = latent_dim
        channels, self.start, stages = _levels(self.out_shape, "generator")
        width = base_channels * 2 ** (stages - 1)
        self.width = width
        self.project = nn.Linear(latent_dim, width * self.start * self.start, bias=norm == "none")
        blocks: list[nn.Module] = [
            nn.Unflatten(1, (width, self.start, self.start)),
            norm2d(norm, width),
            nn.ReLU(),
        ]
        for _ in range(stages - 1):
            blocks += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=norm == "none"),
                norm2d(norm, width // 2),
                nn.ReLU(),
            ]
            width //= 2
        for _ in range(extra_layers):
            blocks += [
                nn.Conv2d(width, width, 3, 1, 1, bias=norm == "none"),
                norm2d(norm, width),
                nn.ReLU(),
            ]
        blocks += [nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z))


class DCGANDiscriminator(BodyHead):
    def __init__(self, in_shape, base_channels, norm, extra_layers=0):
        super().__init__()
        self.in_shape = tuple(in_shape)
        channels, start, stages = _levels(self.in_shape, "discriminator")
        layers: list[nn.Module] = [nn.Conv2d(channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = base_channels
        for _ in range(extra_layers):
            layers += [
                nn.Conv2d(width, width, 3, 1, 1, bias=norm == "none"),
                norm2d(norm, width),
                nn.LeakyReLU(0.2),
            ]
        for _ in range(stages - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=norm == "none"),
                norm2d(norm, width * 2),
                nn.LeakyReLU(0.2),
            ]
            width *= 2
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width * start * start, 1)
        self.feature_dim = self.out.in_features  # for layers on features(x) (minibatch disc.)


@GENERATORS.register("dcgan")
def dcgan_generator(
    out_shape: tuple[int, ...],
    latent_dim: int,
    base_channels: int = 64,
    norm: Literal["batch", "none"] = "batch",
    extra_layers: int = 0,
    init: Literal["dcgan", "default"] = "dcgan",
) -> DCGANGenerator:
    """base_channels is the width of the last hidden map; it doubles at each coarser level."""
    if base_channels < 1:
        raise ConfigError(f"generator.base_channels: must be at least 1, got {base_channels}")
    if extra_layers < 0:
        raise ConfigError(f"generator.extra_layers: must be >= 0, got {extra_layers}")
    g = DCGANGenerator(out_shape, latent_dim, base_channels, norm, extra_layers)
    if init == "dcgan":
        dcgan_init(g)
    return g


@DISCRIMINATORS.register("dcgan")
def dcgan_discriminator(
    in_shape: tuple[int, ...],
    base_channels: int = 64,
    norm: Literal["batch", "layer", "none"] = "batch",
    extra_layers: int = 0,
    init: Literal["dcgan", "default"] = "dcgan",
) -> DCGANDiscriminator:
    """norm: batch (DCGAN), layer (use with gradient penalties, as WGAN-GP advises) or none."""
    if base_channels < 1:
        raise ConfigError(f"discriminator.base_channels: must be at least 1, got {base_channels}")
    if extra_layers < 0:
        raise ConfigError(f"discriminator.extra_layers: must be >= 0, got {extra_layers}")
    d = DCGANDiscriminator(in_shape, base_channels, norm, extra_layers)
    if init == "dcgan":
        dcgan_init(d)
    return d
