"""Autoencoder discriminators, for the methods whose discriminator reconstructs its input:
BEGAN (Berthelot et al. 2017), EBGAN (Zhao et al. 2017) and MMD-GAN (Li et al. 2017).

Unlike the scoring discriminators, `forward(x)` returns the reconstruction decode(encode(x)),
of x's shape; `encode(x)` is the code (N, code_dim) and `features(x)` the same code. The
methods turn reconstructions into energies themselves (L1 for BEGAN, MSE for EBGAN), so the
GAN method refuses these models (methods/options.py).

- autoencoder: MLP encoder (depth x hidden, then a linear code layer) and a mirrored decoder,
  for 2D data and flattened images.
- conv_autoencoder: BEGAN's shape for images: 3x3 convolutions with ELU, a stride-2
  convolution per halving down to 4x4 (7x7 for 28 px), a linear code of `code_dim` (BEGAN's
  N_h = 64); the decoder projects the code back to the small map and upsamples with nearest
  neighbour + 3x3 convolutions, `base_channels` wide at every level as in the paper.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS
from gankit.models.dcgan import _levels
from gankit.models.layers import numel
from gankit.models.mlp import Activation, _hidden_stack


class Autoencoder(nn.Module):
    """encoder: x -> code (N, code_dim); decoder: code -> x's shape."""

    is_autoencoder = True

    def __init__(self, in_shape, encoder: nn.Module, decoder: nn.Module, code_dim: int):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.code_dim = code_dim
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(h).reshape(h.shape[0], *self.in_shape)

    def features(self, x: Tensor) -> Tensor:
        return self.encode(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


@DISCRIMINATORS.register("autoencoder")
def mlp_autoencoder(
    in_shape: tuple[int, ...],
    hidden: int = 128,
    depth: int = 2,
    code_dim: int = 16,
    activation: Activation = "elu",
    batch_norm: bool = False,
) -> Autoencoder:
    """MLP autoencoder: depth x hidden units each way around a code of code_dim."""
    if code_dim < 1:
        raise ConfigError(f"discriminator.code_dim: must be at least 1, got {code_dim}")
    n = numel(tuple(in_shape))
    enc = _hidden_stack(n, hidden, depth, activation, batch_norm, 5, "discriminator")
    dec = _hidden_stack(code_dim, hidden, depth, activation, batch_norm, 5, "discriminator")
    encoder = nn.Sequential(nn.Flatten(), *enc, nn.Linear(hidden, code_dim))
    decoder = nn.Sequential(*dec, nn.Linear(hidden, n))
    return Autoencoder(in_shape, encoder, decoder, code_dim)


@DISCRIMINATORS.register("conv_autoencoder")
def conv_autoencoder(
    in_shape: tuple[int, ...],
    base_channels: int = 64,
    code_dim: int = 64,
    out_activation: Literal["none", "tanh"] = "none",
) -> Autoencoder:
    """BEGAN-style convolutional autoencoder for the DCGAN sizes (28 px, or 8 to 256 px powers
    of two)."""
    if base_channels < 1 or code_dim < 1:
        raise ConfigError(
            "discriminator: base_channels and code_dim must be at least 1, got "
            f"{base_channels}, {code_dim}"
        )
    channels, start, stages = _levels(tuple(in_shape), "discriminator")
    n = base_channels
    enc: list[nn.Module] = [nn.Conv2d(channels, n, 3, 1, 1), nn.ELU()]
    width = n
    for i in range(stages):
        wider = n * (i + 2)  # BEGAN widens linearly: n, 2n, 3n, ...
        enc += [nn.Conv2d(width, wider, 3, 2, 1), nn.ELU()]
        width = wider
    # stride-2 3x3 convs with padding 1 halve even sizes and round 7 -> 4; force the start size
    enc += [nn.AdaptiveAvgPool2d(start), nn.Flatten(), nn.Linear(width * start * start, code_dim)]
    dec: list[nn.Module] = [
        nn.Linear(code_dim, n * start * start),
        nn.Unflatten(1, (n, start, start)),
    ]
    for _ in range(stages):
        dec += [nn.Conv2d(n, n, 3, 1, 1), nn.ELU(), nn.Upsample(scale_factor=2, mode="nearest")]
    dec += [nn.Conv2d(n, n, 3, 1, 1), nn.ELU(), nn.Conv2d(n, channels, 3, 1, 1)]
    if out_activation == "tanh":
        dec.append(nn.Tanh())
    return Autoencoder(in_shape, nn.Sequential(*enc), nn.Sequential(*dec), code_dim)
