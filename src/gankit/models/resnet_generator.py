"""ResNet-block image-to-image generator (Johnson et al. 2016, as used by CycleGAN, Zhu et al.
2017, appendix 7.2), and the image-to-image generators as recipe components.

Layers, in the paper's notation (k = base_channels): c7s1-k (reflection pad 3, 7x7 conv,
norm, ReLU), `n_down` downsampling blocks dk (3x3 conv, stride 2, norm, ReLU; channels
doubling), `n_blocks` residual blocks Rk' (reflection pad 1, 3x3 conv, norm, ReLU, reflection
pad 1, 3x3 conv, norm, plus the input), `n_down` upsampling blocks uk (3x3 fractionally-strided
conv, stride 1/2, norm, ReLU; channels halving), then c7s1-C (reflection pad 3, 7x7 conv) and
tanh. The paper: k = 64, n_down = 2, 6 blocks for 128 px and 9 for 256 px, instance norm.

`unet` and `resnet_translator` are registered as generators so a recipe's `generator:` section
names them (checked like every component); they map images to images, not noise to images,
so only the image-to-image methods (pix2pix, cyclegan) build them (`build_translator`); the
generic `build_generator` refuses them with a ConfigError.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import GENERATORS
from gankit.models.layers import dcgan_init
from gankit.models.unet import unet

TRANSLATORS = ("unet", "resnet_translator")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)  # no affine parameters, as in CycleGAN's code
    return nn.Identity()


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str, bias: bool):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            _norm(norm, channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            _norm(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_channels: int,
        n_blocks: int,
        n_down: int,
        norm: str,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        bias = norm != "batch"  # batch norm's shift makes a bias redundant
        k = base_channels
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, k, 7, bias=bias),
            _norm(norm, k),
            nn.ReLU(),
        ]
        for i in range(n_down):  # dk
            c = k * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), _norm(norm, 2 * c), nn.ReLU()]
        width = k * 2**n_down
        layers += [ResidualBlock(width, norm, bias) for _ in range(n_blocks)]
        for i in range(n_down, 0, -1):  # uk
            c = k * 2**i
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                _norm(norm, c // 2),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(k, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.factor = 2**n_down

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ResNetGenerator expects images (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        return self.net(x)


def resnet_generator(
    in_shape: tuple[int, ...],
    out_channels: int | None = None,
    base_channels: int = 64,
    n_blocks: int = 9,
    n_down: int = 2,
    norm: Literal["instance", "batch", "none"] = "instance",
    init: Literal["dcgan", "default"] = "dcgan",
) -> ResNetGenerator:
    """A ResNet generator for images of shape in_shape = (C, H, W); out_channels default C."""
    if len(in_shape) != 3:
        raise ConfigError(
            f"generator: a ResNet generator needs images (C, H, W), got shape {tuple(in_shape)}"
        )
    channels, height, width = in_shape
    out_channels = channels if out_channels is None else out_channels
    for key, value, low in (
        ("base_channels", base_channels, 1),
        ("n_blocks", n_blocks, 0),
        ("n_down", n_down, 0),
    ):
        if value < low:
            raise ConfigError(f"generator.{key}: must be at least {low}, got {value}")
    factor = 2**n_down
    for side in (height, width):
        # reflection padding needs the padded map larger than the pad (7x7: 3, blocks: 1)
        if side % factor or side // factor < 2 or side < 4:
            raise ConfigError(
                f"generator.n_down: {height}x{width} images need sides divisible by "
                f"{factor} and at least 2 px after {n_down} downsamplings; lower n_down"
            )
    net = ResNetGenerator(channels, out_channels, base_channels, n_blocks, n_down, norm)
    if init == "dcgan":
        dcgan_init(net)  # N(0, 0.02), as CycleGAN's code initializes
    return net


# -- as recipe components -----------------------------------------------------------------------
# The registered functions carry the options (checked by config.resolve); latent_dim is unused.
@GENERATORS.register("resnet_translator")
def resnet_translator(
    out_shape: tuple[int, ...],
    latent_dim: int,
    base_channels: int = 64,
    n_blocks: int = 9,
    n_down: int = 2,
    norm: Literal["instance", "batch", "none"] = "instance",
    init: Literal["dcgan", "default"] = "dcgan",
) -> ResNetGenerator:
    """CycleGAN's ResNet-block generator, image -> image of shape out_shape."""
    return resnet_generator(out_shape, None, base_channels, n_blocks, n_down, norm, init)


@GENERATORS.register("unet")
def unet_translator(
    out_shape: tuple[int, ...],
    latent_dim: int,
    base_channels: int = 64,
    depth: int | None = None,
    norm: Literal["batch", "instance", "none"] = "batch",
    max_channels: int = 512,
    dropout: float = 0.0,
    dropout_blocks: int = 3,
    init: Literal["dcgan", "default"] = "dcgan",
) -> nn.Module:
    """pix2pix's U-Net (models/unet.py), image -> image of shape out_shape."""
    return unet(
        out_shape, None, base_channels, depth, norm, max_channels, dropout, dropout_blocks, init
    )


def build_translator(
    options: dict, in_shape: tuple[int, ...], out_channels: int, where: str = "generator"
) -> nn.Module:
    """The image-to-image network a recipe's generator section names, mapping images of
    in_shape to images with out_channels channels."""
    options = dict(options)
    name = options.pop("name", None)
    options.pop("latent_dim", None)
    options.pop("latent_dist", None)
    if name not in TRANSLATORS:
        raise ConfigError(
            f"{where}.name: image-to-image methods need an image-to-image generator "
            f"({', '.join(TRANSLATORS)}), got {name!r}; replace the whole section, e.g. "
            f"--set '{where}={{name: unet}}'"
        )
    resolved = GENERATORS.check_options(name, options, where, ("out_shape", "latent_dim"))
    if name == "unet":
        return unet(tuple(in_shape), out_channels, **resolved)
    return resnet_generator(tuple(in_shape), out_channels, **resolved)
