"""The small DCGAN pair of the stacked-MNIST mode-collapse protocol (Metz et al. 2016, "Unrolled
Generative Adversarial Networks", Sec. 3.3.1 and its appendix; Lin et al. 2018, PacGAN,
Table 3), as the PacGAN reference code builds it (fjxmlzn/PacGAN,
stacked_MNIST_experiments/unrolled_GAN_experiment/D=0.25G and D=0.5G, model.py).

Generator (`tiny_dcgan`), for 28 px:

    z (256) -> linear -> 4x4x64 -> BN, ReLU
            -> 3x3 transposed conv, stride 2 -> 7x7x32   -> BN, ReLU
            -> 3x3 transposed conv, stride 2 -> 14x14x16 -> BN, ReLU
            -> 3x3 transposed conv, stride 2 -> 28x28x8  -> BN, ReLU
            -> 3x3 conv, stride 1 -> 28x28xC -> tanh

The 4x4 map is `base_channels` (64) wide and every upsampling halves the width. Other sizes keep
that rule and start from the same 4x4x64 map, with as many upsamplings as doublings from 4 to
the image side: 8 px (the 8x8 scikit-learn digits) 4x4x64 -> 8x8x32 -> 8x8xC; 16 px
4x4x64 -> 8x8x32 -> 16x16x16 -> 16x16xC; 32 px 4x4x64 -> 8x8x32 -> 16x16x16 -> 32x32x8 ->
32x32xC. (28 px is the protocol's own: its first upsampling goes 4 -> 7.) The 8 px generator is
thus the 28 px one without its last two upsamplings, not a copy of every layer: an analogous
scaling, not the published network.

Discriminator (`tiny_dcgan`): three 3x3 stride-2 convolutions (padding 1: 28 -> 14 -> 7 -> 4;
8 -> 4 -> 2 -> 1), each + BatchNorm + LeakyReLU(0.3) (the reference code normalizes the first
layer too and uses slope 0.3), then a linear score on the flattened last map. `widths` sets the
three widths: (2, 4, 8) is the paper's "D is 1/4 the size of G", (4, 8, 16) its "1/2". Any
channel count is accepted (PacGAN packs multiply it), any image side.

Layers keep their biases as the reference code has them (TensorFlow's conv2d/deconv2d/linear
with biases, also before batch norm), so the parameter counts match it: with widths (2, 4, 8)
and 3 channels, 60 + 84 + 312 + 129 = 585 parameters. Init: DCGAN's N(0, 0.02) (`init: dcgan`).
The discriminator exposes `features` / `head` / `out` / `feature_dim` as the dcgan one does, so
the methods that replace or read its output layer (MAD-GAN's k + 1 outputs, minibatch
discrimination, feature matching, pull-away on features, the conditional heads) see the same
interface.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS, GENERATORS
from gankit.models.layers import BodyHead, dcgan_init, norm2d

START = 4  # side of the generator's first map
# image side -> sides after each stride-2 transposed convolution of the generator
UPSAMPLING = {8: (8,), 16: (8, 16), 28: (7, 14, 28), 32: (8, 16, 32)}
KERNEL = 3


def _transposed(c_in: int, c_out: int, side_in: int, side_out: int) -> nn.ConvTranspose2d:
    """3x3, stride 2, padding 1: side_in -> 2 side_in - 1, + output_padding to side_out."""
    extra = side_out - (2 * side_in - 1)
    if extra not in (0, 1):  # unreachable for the sizes in UPSAMPLING
        raise ValueError(f"no 3x3 stride-2 transposed conv maps {side_in} to {side_out}")
    return nn.ConvTranspose2d(c_in, c_out, KERNEL, 2, 1, output_padding=extra)


class TinyDCGANGenerator(nn.Module):
    def __init__(self, out_shape, latent_dim: int, base_channels: int, norm: str):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.latent_dim = latent_dim
        if len(self.out_shape) != 3 or self.out_shape[1] != self.out_shape[2]:
            raise ConfigError(
                f"generator: tiny_dcgan needs square images (C, H, H), data has shape "
                f"{self.out_shape}"
            )
        channels, side = self.out_shape[0], self.out_shape[1]
        if side not in UPSAMPLING:
            raise ConfigError(
                f"generator: tiny_dcgan supports image sizes {sorted(UPSAMPLING)}, data has "
                f"{side}x{side}"
            )
        sides = UPSAMPLING[side]
        if base_channels >> len(sides) < 1:
            raise ConfigError(
                f"generator.base_channels: {base_channels} halves {len(sides)} times for "
                f"{side} px; use at least {2 ** len(sides)}"
            )
        width = base_channels
        self.project = nn.Linear(latent_dim, width * START * START)
        blocks: list[nn.Module] = [
            nn.Unflatten(1, (width, START, START)),
            norm2d(norm, width),
            nn.ReLU(),
        ]
        previous = START
        for s in sides:
            blocks += [_transposed(width, width // 2, previous, s), norm2d(norm, width // 2)]
            blocks.append(nn.ReLU())
            width, previous = width // 2, s
        blocks += [nn.Conv2d(width, channels, KERNEL, 1, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z))


class TinyDCGANDiscriminator(BodyHead):
    def __init__(self, in_shape, widths: tuple[int, ...], norm: str, slope: float):
        super().__init__()
        self.in_shape = tuple(in_shape)
        if len(self.in_shape) != 3:
            raise ConfigError(
                f"discriminator: tiny_dcgan needs images (C, H, W), data has shape {self.in_shape}"
            )
        channels, h, w = self.in_shape
        layers: list[nn.Module] = []
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, KERNEL, 2, 1),
                norm2d(norm, width),
                nn.LeakyReLU(slope),
            ]
            channels, h, w = width, (h + 1) // 2, (w + 1) // 2
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(channels * h * w, 1)
        self.feature_dim = self.out.in_features  # for layers on features(x) (minibatch disc.)


@GENERATORS.register("tiny_dcgan")
def tiny_dcgan_generator(
    out_shape: tuple[int, ...],
    latent_dim: int,
    base_channels: int = 64,
    norm: Literal["batch", "none"] = "batch",
    init: Literal["dcgan", "default"] = "dcgan",
) -> TinyDCGANGenerator:
    """base_channels: the width of the 4x4 map (64 in the protocol); it halves at every
    upsampling (28 px: 64 -> 32 -> 16 -> 8). Sizes 8, 16, 28 and 32 px."""
    if base_channels < 1:
        raise ConfigError(f"generator.base_channels: must be at least 1, got {base_channels}")
    g = TinyDCGANGenerator(out_shape, latent_dim, base_channels, norm)
    if init == "dcgan":
        dcgan_init(g)
    return g


@DISCRIMINATORS.register("tiny_dcgan")
def tiny_dcgan_discriminator(
    in_shape: tuple[int, ...],
    widths: tuple[int, ...] = (2, 4, 8),
    norm: Literal["batch", "layer", "none"] = "batch",
    slope: float = 0.3,
    init: Literal["dcgan", "default"] = "dcgan",
) -> TinyDCGANDiscriminator:
    """widths: one 3x3 stride-2 convolution per entry ((2, 4, 8): "D is 1/4 the size of G";
    (4, 8, 16): "1/2"); norm: batch (the protocol), layer (for gradient penalties) or none;
    slope: the LeakyReLU slope (0.3 in the reference code)."""
    widths = tuple(widths)
    if not widths or any(w < 1 for w in widths):
        raise ConfigError(
            f"discriminator.widths: needs at least one width, each at least 1, got {list(widths)}"
        )
    if slope < 0:
        raise ConfigError(f"discriminator.slope: must be >= 0, got {slope}")
    d = TinyDCGANDiscriminator(in_shape, widths, norm, slope)
    if init == "dcgan":
        dcgan_init(d)
    return d
