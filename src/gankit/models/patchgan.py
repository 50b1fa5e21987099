"""PatchGAN discriminator (Isola et al. 2017, pix2pix: the "NLayerDiscriminator").

It scores overlapping patches instead of whole images: every logit of its output map sees only a
`receptive_field` x `receptive_field` window (70 px for n_layers 3), which penalizes local
texture and leaves global structure to other terms. Layers, all 4x4 convolutions with padding 1:
one stride-2 conv without normalization, n_layers - 1 stride-2 convs with normalization (channels
doubling, capped at 8 * base_channels), one stride-1 conv with normalization, each followed by
LeakyReLU(0.2), then a stride-1 conv to one channel.

`forward` returns the (N, H'', W'') map of patch logits; gankit's losses take `.mean()`, so a loss
is averaged over patches. A patch depends only on its window when the normalization uses no
spatial statistics: norm "none", or "batch" in eval mode; instance norm (and batch norm in
training) couple all patches through their statistics, as in pix2pix.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS
from gankit.models.layers import BodyHead, dcgan_init

KERNEL, PADDING = 4, 1


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)  # no affine parameters, as in pix2pix
    return nn.Identity()


def _out_size(size: int, strides: list[int]) -> int:
    for s in strides:
        size = (size + 2 * PADDING - KERNEL) // s + 1
    return size


def _map_size(in_shape: tuple[int, ...], n_layers: int) -> int:
    """The smaller side of the patch map for an image of shape (C, H, W)."""
    return min(_out_size(s, [2] * n_layers + [1, 1]) for s in in_shape[1:])


class PatchGANDiscriminator(BodyHead):
    def __init__(self, in_shape, base_channels, n_layers, norm):
        super().__init__()
        self.in_shape = tuple(in_shape)
        channels = self.in_shape[0]
        bias = norm != "batch"  # batch norm's shift makes a bias redundant
        layers: list[nn.Module] = [
            nn.Conv2d(channels, base_channels, KERNEL, 2, PADDING),
            nn.LeakyReLU(0.2),
        ]
        width = base_channels
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            new = base_channels * min(2**n, 8)
            layers += [
                nn.Conv2d(width, new, KERNEL, stride, PADDING, bias=bias),
                _norm(norm, new),
                nn.LeakyReLU(0.2),
            ]
            width = new
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(width, 1, KERNEL, 1, PADDING)
        self.strides = [2] * n_layers + [1, 1]
        # r = 1 + sum_l (k_l - 1) * prod(strides of the layers before l)
        self.receptive_field = 1 + sum(
            (KERNEL - 1) * math.prod(self.strides[:i]) for i in range(len(self.strides))
        )


@DISCRIMINATORS.register("patchgan")
def patchgan_discriminator(
    in_shape: tuple[int, ...],
    base_channels: int = 64,
    n_layers: int = 3,
    norm: Literal["batch", "instance", "none"] = "batch",
    init: Literal["dcgan", "default"] = "dcgan",
) -> PatchGANDiscriminator:
    """Default: the pix2pix 70x70 PatchGAN (n_layers 3, batch norm, N(0, 0.02) init)."""
    if len(in_shape) != 3:
        raise ConfigError(
            f"discriminator: PatchGAN needs images (C, H, W), data has shape {tuple(in_shape)}"
        )
    if base_channels < 1:
        raise ConfigError(f"discriminator.base_channels: must be at least 1, got {base_channels}")
    if n_layers < 1:
        raise ConfigError(f"discriminator.n_layers: must be at least 1, got {n_layers}")
    if _map_size(in_shape, n_layers) < 1:
        fits = [n for n in range(1, n_layers) if _map_size(in_shape, n) >= 1]
        hint = f"n_layers <= {fits[-1]}" if fits else "larger images"
        raise ConfigError(
            f"discriminator.n_layers: a {in_shape[1]}x{in_shape[2]} image is too small for a "
            f"PatchGAN with n_layers {n_layers} (its patch map would be empty); use {hint}"
        )
    d = PatchGANDiscriminator(in_shape, base_channels, n_layers, norm)
    if init == "dcgan":
        dcgan_init(d)
    return d
