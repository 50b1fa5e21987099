"""U-Net image-to-image generator (Ronneberger et al. 2015; the pix2pix generator of Isola et al.
2017), for image-to-image translation (pix2pix, CycleGAN).

Encoder: `depth` 4x4 stride-2 convolutions, each halving the resolution, channels
base_channels * 2**i capped at `max_channels`, each followed by normalization (not on the first
and the innermost block, as in pix2pix) and LeakyReLU(0.2). Decoder: 4x4 stride-2 transposed
convolutions, each doubling the resolution, followed by normalization, optional dropout and
ReLU; the output of each is concatenated with the encoder map of the same resolution (the skip
connection) before the next one. The last transposed convolution maps to `out_channels` at the
input resolution, then tanh (images live in [-1, 1]).

For an input (N, C, H, W) with H and W divisible by 2**depth, encoder block i outputs
(N, c_i, H / 2**(i+1), W / 2**(i+1)) with c_i = min(base_channels * 2**i, max_channels); the
decoder block that reaches that resolution outputs c_i channels, so the concatenation has 2 c_i.
pix2pix at 256 px is depth 8, base_channels 64, max_channels 512, batch norm, dropout 0.5 in the
three innermost decoder blocks.

Not a registered (latent) generator: it maps an image to an image, not noise to an image; a
pix2pix/CycleGAN method builds it with `unet(...)`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models.layers import dcgan_init

Norm = Literal["batch", "instance", "none"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)  # no affine parameters, as in pix2pix
    return nn.Identity()


class UNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_channels: int,
        depth: int,
        norm: str,
        max_channels: int,
        dropout: float,
        dropout_blocks: int,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        self.channels = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        bias = norm != "batch"  # batch norm's shift makes a bias redundant
        self.down = nn.ModuleList()
        previous = in_channels
        for i, width in enumerate(self.channels):
            plain = i == 0 or i == depth - 1  # outermost and innermost: no normalization
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(previous, width, 4, 2, 1, bias=bias or plain),
                    nn.Identity() if plain else _norm(norm, width),
                    nn.LeakyReLU(0.2),
                )
            )
            previous = width
        # up[j] brings the innermost map back one level: to level depth - 2 - j (its skip's)
        self.up = nn.ModuleList()
        for j, level in enumerate(range(depth - 2, -1, -1)):
            width = self.channels[level]
            layers: list[nn.Module] = [
                nn.ConvTranspose2d(previous, width, 4, 2, 1, bias=bias),
                _norm(norm, width),
            ]
            if dropout > 0 and j < dropout_blocks:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.ReLU())
            self.up.append(nn.Sequential(*layers))
            previous = 2 * width  # concatenated with the skip of that level
        self.out = nn.Sequential(nn.ConvTranspose2d(previous, out_channels, 4, 2, 1), nn.Tanh())

    def encode(self, x: Tensor) -> list[Tensor]:
        """The encoder's maps, finest first: the skips (the last one is the bottleneck)."""
        factor = 2**self.depth
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects images (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(
                f"UNet of depth {self.depth} needs H and W divisible by {factor}, "
                f"got {x.shape[2]}x{x.shape[3]}"
            )
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        return skips

    def decode(self, skips: list[Tensor]) -> Tensor:
        x = skips[-1]
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = torch.cat([block(x), skip], dim=1)
        return self.out(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def max_depth(size: int) -> int:
    """How many times a side can be halved exactly (the deepest U-Net for it)."""
    depth = 0
    while size % 2 == 0 and size > 1:
        size //= 2
        depth += 1
    return depth


def unet(
    in_shape: tuple[int, ...],
    out_channels: int | None = None,
    base_channels: int = 64,
    depth: int | None = None,
    norm: Norm = "batch",
    max_channels: int = 512,
    dropout: float = 0.0,
    dropout_blocks: int = 3,
    init: Literal["dcgan", "default"] = "dcgan",
) -> UNet:
    """A U-Net for images of shape in_shape = (C, H, W).

    out_channels: default C. depth: number of stride-2 levels; default as deep as H and W allow
    (down to 1x1 for powers of two, as in pix2pix). dropout: in the `dropout_blocks` innermost
    decoder blocks (pix2pix: 0.5 in 3).
    """
    if len(in_shape) != 3:
        raise ConfigError(f"generator: a U-Net needs images (C, H, W), got shape {tuple(in_shape)}")
    channels, height, width = in_shape
    out_channels = channels if out_channels is None else out_channels
    deepest = min(max_depth(height), max_depth(width))
    if depth is None:
        depth = deepest
    if depth < 1:
        raise ConfigError(
            f"generator.depth: a U-Net needs at least one level; {height}x{width} images "
            f"{'allow none (an odd side)' if deepest == 0 else f'allow up to {deepest}'}"
        )
    if depth > deepest:
        raise ConfigError(
            f"generator.depth: {depth} levels need H and W divisible by {2**depth}; "
            f"{height}x{width} images allow depth <= {deepest}"
        )
    for key, value in (
        ("out_channels", out_channels),
        ("base_channels", base_channels),
        ("max_channels", max_channels),
    ):
        if value < 1:
            raise ConfigError(f"generator.{key}: must be at least 1, got {value}")
    if not 0 <= dropout < 1:
        raise ConfigError(f"generator.dropout: must be in [0, 1), got {dropout}")
    net = UNet(
        channels, out_channels, base_channels, depth, norm, max_channels, dropout, dropout_blocks
    )
    if init == "dcgan":
        dcgan_init(net)
    return net
