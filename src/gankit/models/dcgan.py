"""DCGAN generator and discriminator (Radford et al. 2015) for square images of 28 px or any
power of two from 8 to 256 px.

The generator projects z to a 4x4 map (7x7 for 28 px), then doubles the resolution with
stride-2 transposed convolutions (kernel 4) up to the image, one per doubling; the
discriminator mirrors it with stride-2 convolutions and LeakyReLU(0.2), no normalization on its
first layer. `extra_layers` adds 3x3 stride-1 conv blocks at the finest hidden resolution (the
"n_extra_layers" of the WGAN reference DCGAN), which gives 8-16 px models enough depth.

Widths: `base_channels` at the finest hidden map, doubling at each coarser one, so the coarsest
map has base_channels * 2^(stages - 1) channels: 512 at 64 px, 1024 at 128 px, 2048 at 256 px
with the default 64. `max_channels` caps every width (null, the default: no cap), as many
DCGAN-128 implementations stop at 512: uncapped, the 256 px G and D have ~48M and ~45M
parameters, capped at 512 ~12M and ~11M.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS, GENERATORS
from gankit.models.layers import BodyHead, dcgan_init, norm2d

# image size -> resolution of the smallest map: 7 for 28 px, 4 for 8, 16, ..., 256 px
SIZES = {28: 7, **{2**k: 4 for k in range(3, 9)}}


def _levels(shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    """(channels, start resolution, number of stride-2 stages) for an image shape."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"{where}: DCGAN needs square images (C, H, H), data has shape {shape}")
    channels, size = shape[0], shape[1]
    if size not in SIZES:
        raise ConfigError(
            f"{where}: DCGAN supports image sizes {', '.join(map(str, sorted(SIZES)))} px, "
            f"data has {size}x{size}; resize the data (e.g. data.size for folders) or use the "
            "mlp models"
        )
    start = SIZES[size]
    stages = (size // start).bit_length() - 1
    return channels, start, stages


def _width(base_channels: int, level: int, max_channels: int | None) -> int:
    """Channels of the map `level` stride-2 stages coarser than the finest hidden map."""
    width = base_channels * 2**level
    return width if max_channels is None else min(width, max_channels)


class DCGANGenerator(nn.Module):
    def __init__(
        self, out_shape, latent_dim, base_channels, norm, extra_layers=0, max_channels=None
    ):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.latent_dim = latent_dim
        channels, self.start, stages = _levels(self.out_shape, "generator")
        width = _width(base_channels, stages - 1, max_channels)
        self.width = width
        self.project = nn.Linear(latent_dim, width * self.start * self.start, bias=norm == "none")
        blocks: list[nn.Module] = [
            nn.Unflatten(1, (width, self.start, self.start)),
            norm2d(norm, width),
            nn.ReLU(),
        ]
        for level in range(stages - 2, -1, -1):
            finer = _width(base_channels, level, max_channels)
            blocks += [
                nn.ConvTranspose2d(width, finer, 4, 2, 1, bias=norm == "none"),
                norm2d(norm, finer),
                nn.ReLU(),
            ]
            width = finer
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
    def __init__(self, in_shape, base_channels, norm, extra_layers=0, max_channels=None):
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
        for level in range(1, stages):
            coarser = _width(base_channels, level, max_channels)
            layers += [
                nn.Conv2d(width, coarser, 4, 2, 1, bias=norm == "none"),
                norm2d(norm, coarser),
                nn.LeakyReLU(0.2),
            ]
            width = coarser
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width * start * start, 1)
        self.feature_dim = self.out.in_features  # for layers on features(x) (minibatch disc.)


def _check_widths(
    where: str, base_channels: int, extra_layers: int, max_channels: int | None
) -> None:
    if base_channels < 1:
        raise ConfigError(f"{where}.base_channels: must be at least 1, got {base_channels}")
    if extra_layers < 0:
        raise ConfigError(f"{where}.extra_layers: must be >= 0, got {extra_layers}")
    if max_channels is not None and max_channels < base_channels:
        raise ConfigError(
            f"{where}.max_channels: must be at least base_channels ({base_channels}), got "
            f"{max_channels}"
        )


@GENERATORS.register("dcgan")
def dcgan_generator(
    out_shape: tuple[int, ...],
    latent_dim: int,
    base_channels: int = 64,
    norm: Literal["batch", "none"] = "batch",
    extra_layers: int = 0,
    init: Literal["dcgan", "default"] = "dcgan",
    max_channels: int | None = None,
) -> DCGANGenerator:
    """base_channels is the width of the last hidden map; it doubles at each coarser level, up
    to max_channels (null: no cap)."""
    _check_widths("generator", base_channels, extra_layers, max_channels)
    g = DCGANGenerator(out_shape, latent_dim, base_channels, norm, extra_layers, max_channels)
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
    max_channels: int | None = None,
) -> DCGANDiscriminator:
    """norm: batch (DCGAN), layer (use with gradient penalties, as WGAN-GP advises) or none;
    base_channels: the first layer's width, doubling at each stride-2 layer up to max_channels
    (null: no cap)."""
    _check_widths("discriminator", base_channels, extra_layers, max_channels)
    d = DCGANDiscriminator(in_shape, base_channels, norm, extra_layers, max_channels)
    if init == "dcgan":
        dcgan_init(d)
    return d
