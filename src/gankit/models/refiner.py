"""SimGAN's refiner (Shrivastava et al. 2017, Sec. 3.1): a fully convolutional ResNet that maps
a synthetic image to a refined image of the same size.

Layers (k = base_channels; the paper: k = 64, 4 blocks, no normalization): a 3x3 convolution
C -> k and ReLU; `n_blocks` ResNet blocks, each conv3x3 -> norm -> ReLU -> conv3x3 -> norm, plus
the block's input, then ReLU; a 1x1 convolution k -> C; tanh (gankit's images are in [-1, 1]).
No downsampling: every output pixel sees a (1 + 2 (2 n_blocks + 1))-pixel window of the input,
which keeps the refinement local, as the paper wants.

Registered as generator `simgan_refiner`: an image -> image network that only method simgan
builds (`build_refiner`); as a noise generator it refuses with a ConfigError.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import GENERATORS
from gankit.models.layers import dcgan_init
from gankit.models.resnet_generator import TRANSLATORS, build_translator


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


class RefinerBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(norm, channels),
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


class Refiner(nn.Module):
    def __init__(self, channels: int, base_channels: int, n_blocks: int, norm: str):
        super().__init__()
        self.channels = channels
        self.net = nn.Sequential(
            nn.Conv2d(channels, base_channels, 3, padding=1),
            nn.ReLU(),
            *[RefinerBlock(base_channels, norm) for _ in range(n_blocks)],
            nn.Conv2d(base_channels, channels, 1),
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"Refiner expects images (N, {self.channels}, H, W), got {tuple(x.shape)}"
            )
        return self.net(x)


@GENERATORS.register("simgan_refiner")
def simgan_refiner(
    out_shape: tuple[int, ...],
    latent_dim: int,
    base_channels: int = 64,
    n_blocks: int = 4,
    norm: Literal["none", "batch", "instance"] = "none",
    init: Literal["dcgan", "default"] = "default",
) -> Refiner:
    """SimGAN's refiner; built by method simgan only."""
    raise ConfigError(
        "generator.name: 'simgan_refiner' maps synthetic images to refined images, not noise "
        "to images; it is for method simgan"
    )


def build_refiner(options: dict, shape: tuple[int, ...], where: str = "generator") -> nn.Module:
    """The refiner a recipe's generator section names: simgan_refiner, or an image-to-image
    generator (unet, resnet_translator), mapping images of `shape` to the same shape."""

    options = dict(options)
    name = options.get("name")
    if name in TRANSLATORS:
        return build_translator(options, shape, shape[0], where)
    if name != "simgan_refiner":
        raise ConfigError(
            f"{where}.name: method simgan needs a refiner (simgan_refiner, "
            f"{', '.join(TRANSLATORS)}), got {name!r}; replace the whole section, e.g. "
            f"--set '{where}={{name: simgan_refiner}}'"
        )
    options.pop("name")
    options.pop("latent_dim", None)
    options.pop("latent_dist", None)
    opts = GENERATORS.check_options(name, options, where, ("out_shape", "latent_dim"))
    if len(shape) != 3:
        raise ConfigError(f"{where}: a refiner needs images (C, H, W), got shape {tuple(shape)}")
    for key in ("base_channels", "n_blocks"):
        if opts[key] < (1 if key == "base_channels" else 0):
            raise ConfigError(f"{where}.{key}: too small, got {opts[key]}")
    net = Refiner(shape[0], opts["base_channels"], opts["n_blocks"], opts["norm"])
    if opts["init"] == "dcgan":
        dcgan_init(net)
    return net
