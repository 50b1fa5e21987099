"""Residual generator and discriminator in the SNGAN / BigGAN style, for 32, 64, 128 and 256 px.

Registered as generator and discriminator `sngan_resnet`, not plain `resnet`: the generator
registry already holds `resnet_translator` (CycleGAN's image-to-image ResNet, models/
resnet_generator.py), and a bare "resnet" would read as that one or as a classifier backbone;
the name says whose architecture this is (Miyato et al. 2018, "Spectral Normalization for
Generative Adversarial Networks", appendix B; the block layout of Mimicry's sngan_32/64/128,
which follows the authors' Chainer code).

Generator: z -> linear -> a 4x4 map, one up block per doubling, then BN-ReLU-conv3x3-tanh.

    up block   residual  BN-ReLU-upsample(nearest 2x)-conv3x3-BN-ReLU-conv3x3
               shortcut  upsample(nearest 2x)-conv1x1

Discriminator: an optimized first block, down blocks, ReLU, global SUM pooling over H, W:
`features(x)` (N, C), `feature_dim` C; `head(h)` is the linear layer `out` -> (N,).

    first block  residual  conv3x3-ReLU-conv3x3-avgpool2;  shortcut avgpool2-conv1x1
    down block   residual  ReLU-conv3x3-ReLU-conv3x3[-avgpool2] (hidden width = input width)
                 shortcut  conv1x1[-avgpool2] where the width changes or the block downsamples,
                           the identity otherwise

Widths, in units of `base_channels` (64 by default, which gives the papers' widths):

    size  generator maps, 4x4 -> image   discriminator blocks (d: downsamples)
    32    4 4 4 4                        2d 2d 2 2               (SNGAN CIFAR: G 256, D 128)
    64    16 8 4 2 1                     1d 2d 4d 8d 16d         (Mimicry sngan_64)
    128   16 16 8 4 2 1                  1d 2d 4d 8d 16d 16      (Mimicry sngan_128)
    256   16 16 8 8 4 2 1                1d 2d 4d 8d 8d 16d 16   (BigGAN's 256 px layout)

`channel_multipliers` replaces a column (same length; the downsampling pattern stays).

Spectral norm: the discriminator's `spectral_norm: true` (the default) normalizes every conv
and linear weight with `apply_spectral_norm` (models/layers.py), the helper the
`spectral_norm` trick uses, one power iteration per training forward pass; the trick listed
as well leaves these layers alone and normalizes only layers other tricks add.

Class conditioning needs nothing here: method `cgan` builds the projection discriminator of
Miyato & Koyama 2018 on any discriminator with `features`/`head`/`feature_dim`
(D(x, y) = out(phi(x)) + <embed(y), phi(x)>, phi the sum-pooled features, exactly the
paper's ResNet projection D), and method `acgan` replaces `out` by a layer with 1 + K
outputs. A replaced output layer is spectrally normalized like the one it replaces
(`output_layer_like`), so the class head of a spectrally normalized D keeps its norm.

init: "xavier" (SNGAN's code: Xavier-uniform with gain sqrt(2) on the residual convs, gain 1 on
the shortcuts, the linear layers and the last conv; biases 0) or "default" (PyTorch's).
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS, GENERATORS
from gankit.models.layers import BodyHead, apply_spectral_norm

# image size -> widths (units of base_channels) of the generator's maps, 4x4 up to the image
GENERATOR_WIDTHS = {
    32: (4, 4, 4, 4),
    64: (16, 8, 4, 2, 1),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}
# image size -> (width of each discriminator block's output, whether it halves the resolution)
DISCRIMINATOR_BLOCKS = {
    32: ((2, True), (2, True), (2, False), (2, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, True)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
    256: ((1, True), (2, True), (4, True), (8, True), (8, True), (16, True), (16, False)),
}
SIZES = tuple(GENERATOR_WIDTHS)
START = 4  # the generator's first map is 4x4


def _image_size(shape: tuple[int, ...], where: str) -> int:
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in GENERATOR_WIDTHS:
        raise ConfigError(
            f"{where}: sngan_resnet supports square images of "
            f"{', '.join(map(str, SIZES))} px, the data has shape {tuple(shape)}; resize the "
            "data (e.g. data.size for folders) or use dcgan"
        )
    return shape[1]


def _widths(
    where: str,
    base_channels: int,
    multipliers: list[int] | None,
    default: tuple[int, ...],
    size: int,
) -> list[int]:
    if base_channels < 1:
        raise ConfigError(f"{where}.base_channels: must be at least 1, got {base_channels}")
    if multipliers is None:
        multipliers = list(default)
    if len(multipliers) != len(default) or min(multipliers) < 1:
        raise ConfigError(
            f"{where}.channel_multipliers: {size} px needs {len(default)} positive integers "
            f"(the default: {list(default)}), got {multipliers}"
        )
    return [base_channels * m for m in multipliers]


class GeneratorBlock(nn.Module):
    """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus upsample-conv1x1 of the input."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        self.shortcut = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class DiscriminatorBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3[-avgpool2], plus conv1x1[-avgpool2] of the input where the
    width changes or the block downsamples (else the input itself)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool):
        super().__init__()
        pool = [nn.AvgPool2d(2)] if downsample else []
        self.residual = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_channels, in_channels, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            *pool,
        )
        if in_channels != out_channels or downsample:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), *pool)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class OptimizedDiscriminatorBlock(nn.Module):
    """The first block: conv3x3-ReLU-conv3x3-avgpool2, plus avgpool2-conv1x1 of the image (no
    ReLU on the image itself)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class SumPool(nn.Module):
    """Global sum pooling: (N, C, H, W) -> (N, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sum(dim=(2, 3))


class SNGANResNetGenerator(nn.Module):
    def __init__(self, out_shape, latent_dim: int, widths: list[int]):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.latent_dim = latent_dim
        self.project = nn.Linear(latent_dim, widths[0] * START * START)
        blocks = [GeneratorBlock(a, b) for a, b in zip(widths, widths[1:])]
        self.body = nn.Sequential(
            nn.Unflatten(1, (widths[0], START, START)),
            *blocks,
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(),
            nn.Conv2d(widths[-1], self.out_shape[0], 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z))


class SNGANResNetDiscriminator(BodyHead):
    def __init__(self, in_shape, widths: list[int], downsample: list[bool]):
        super().__init__()
        self.in_shape = tuple(in_shape)
        blocks: list[nn.Module] = [OptimizedDiscriminatorBlock(self.in_shape[0], widths[0])]
        for a, b, down in zip(widths, widths[1:], downsample[1:]):
            blocks.append(DiscriminatorBlock(a, b, down))
        self.body = nn.Sequential(*blocks, nn.ReLU(), SumPool())
        self.out = nn.Linear(widths[-1], 1)
        self.feature_dim = widths[-1]  # for layers on features(x) (minibatch disc.)


def xavier_init(module: nn.Module) -> None:
    """SNGAN's code: Xavier-uniform, gain sqrt(2) on the convs of residual branches, gain 1 on
    shortcuts, linear layers and the generator's last conv; biases 0."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            gain = math.sqrt(2.0) if ".residual." in f".{name}." else 1.0
            nn.init.xavier_uniform_(m.weight, gain)
            nn.init.zeros_(m.bias)


@GENERATORS.register("sngan_resnet")
def sngan_resnet_generator(
    out_shape: tuple[int, ...],
    latent_dim: int,
    base_channels: int = 64,
    channel_multipliers: list[int] | None = None,
    init: Literal["xavier", "default"] = "xavier",
) -> SNGANResNetGenerator:
    """Residual generator for 32, 64, 128, 256 px: base_channels times channel_multipliers
    (null: the papers' widths for the size, 4x4 map first) channels per map."""
    size = _image_size(tuple(out_shape), "generator")
    widths = _widths("generator", base_channels, channel_multipliers, GENERATOR_WIDTHS[size], size)
    g = SNGANResNetGenerator(out_shape, latent_dim, widths)
    if init == "xavier":
        xavier_init(g)
    return g


@DISCRIMINATORS.register("sngan_resnet")
def sngan_resnet_discriminator(
    in_shape: tuple[int, ...],
    base_channels: int = 64,
    channel_multipliers: list[int] | None = None,
    spectral_norm: bool = True,
    init: Literal["xavier", "default"] = "xavier",
) -> SNGANResNetDiscriminator:
    """Residual discriminator for 32, 64, 128, 256 px with global sum pooling:
    base_channels times channel_multipliers (null: the papers' widths, one per block)
    channels per block; spectral_norm on every conv and linear layer (the paper)."""
    size = _image_size(tuple(in_shape), "discriminator")
    plan = DISCRIMINATOR_BLOCKS[size]
    widths = _widths(
        "discriminator", base_channels, channel_multipliers, tuple(w for w, _ in plan), size
    )
    d = SNGANResNetDiscriminator(in_shape, widths, [down for _, down in plan])
    if init == "xavier":
        xavier_init(d)
    if spectral_norm:
        apply_spectral_norm(d)
    return d
