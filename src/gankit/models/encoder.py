"""Encoders: data -> latent code, for the methods that map data back to the generator's latent
space (Mode-Regularized GAN and MDGAN, Che et al. 2017: G(E(x)) should reconstruct x).

Encoder builders take `in_shape` (the data's shape) and `latent_dim` (the generator's) from the
framework; `forward(x)` returns codes of shape (N, latent_dim), unbounded unless
`out_activation: tanh` (for generators fed U(-1, 1) noise).

- mlp: flatten, depth x hidden units, then a linear layer to the code (2D data, small images).
- dcgan: the DCGAN discriminator's convolution stack (stride-2 convolutions, LeakyReLU(0.2),
  batch norm after the first layer) and a linear layer to the code.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import ENCODERS
from gankit.models.dcgan import DCGANDiscriminator
from gankit.models.layers import dcgan_init, numel
from gankit.models.mlp import Activation, _hidden_stack


class Encoder(nn.Module):
    def __init__(self, body: nn.Module, out: nn.Linear, out_activation: str):
        super().__init__()
        self.body = body
        self.out = out
        self.out_act = nn.Tanh() if out_activation == "tanh" else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.out_act(self.out(self.body(x)))


@ENCODERS.register("mlp")
def mlp_encoder(
    in_shape: tuple[int, ...],
    latent_dim: int,
    hidden: int = 400,
    depth: int = 3,
    activation: Activation = "relu",
    batch_norm: bool = False,
    maxout_pieces: int = 5,
    out_activation: Literal["none", "tanh"] = "none",
) -> Encoder:
    """depth x hidden units (the mirror of the mlp generator, without batch norm by default)."""
    stack = _hidden_stack(
        numel(tuple(in_shape)), hidden, depth, activation, batch_norm, maxout_pieces, "encoder"
    )
    return Encoder(
        nn.Sequential(nn.Flatten(), *stack), nn.Linear(hidden, latent_dim), out_activation
    )


@ENCODERS.register("dcgan")
def dcgan_encoder(
    in_shape: tuple[int, ...],
    latent_dim: int,
    base_channels: int = 64,
    norm: Literal["batch", "layer", "none"] = "batch",
    extra_layers: int = 0,
    out_activation: Literal["none", "tanh"] = "none",
) -> Encoder:
    """The DCGAN discriminator's body (28 px, or 8 to 256 px powers of two) with a linear code
    layer."""
    if base_channels < 1:
        raise ConfigError(f"encoder.base_channels: must be at least 1, got {base_channels}")
    if extra_layers < 0:
        raise ConfigError(f"encoder.extra_layers: must be >= 0, got {extra_layers}")
    d = DCGANDiscriminator(in_shape, base_channels, norm, extra_layers)
    dcgan_init(d)
    return Encoder(d.body, nn.Linear(d.feature_dim, latent_dim), out_activation)
