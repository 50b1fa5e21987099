"""Fully connected generator and discriminator, for 2D mixtures and flattened images."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS, GENERATORS
from gankit.models.layers import Maxout, activation, apply_init, numel

Activation = Literal["relu", "leaky_relu", "elu", "tanh", "softplus", "silu", "maxout"]
Init = Literal["default", "normal"]


def _hidden_stack(
    in_features: int,
    hidden: int,
    depth: int,
    act: str,
    batch_norm: bool,
    maxout_pieces: int,
    where: str,
) -> nn.Sequential:
    if depth < 1 or hidden < 1:
        raise ConfigError(f"{where}: depth and hidden must be at least 1, got {depth}, {hidden}")
    if act == "maxout" and maxout_pieces < 2:
        raise ConfigError(f"{where}.maxout_pieces: needs at least 2 pieces, got {maxout_pieces}")
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        if act == "maxout":
            layers.append(Maxout(width, hidden, maxout_pieces))
        else:
            layers.append(nn.Linear(width, hidden))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        if act != "maxout":
            layers.append(activation(act, f"{where}.activation"))
        width = hidden
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    def __init__(
        self, out_shape, latent_dim, hidden, depth, act, batch_norm, maxout_pieces, out_act
    ):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.latent_dim = latent_dim
        self.body = _hidden_stack(
            latent_dim, hidden, depth, act, batch_norm, maxout_pieces, "generator"
        )
        self.out = nn.Linear(hidden, numel(self.out_shape))
        self.out_act = nn.Tanh() if out_act == "tanh" else nn.Identity()

    def forward(self, z: Tensor) -> Tensor:
        x = self.out_act(self.out(self.body(z)))
        return x.view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape, hidden, depth, act, batch_norm, maxout_pieces, dropout):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.body = _hidden_stack(
            numel(self.in_shape), hidden, depth, act, batch_norm, maxout_pieces, "discriminator"
        )
        if dropout > 0:
            self.body.append(nn.Dropout(dropout))
        self.out = nn.Linear(hidden, 1)
        self.feature_dim = self.out.in_features  # for layers on features(x) (minibatch disc.)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.reshape(x.shape[0], -1))

    def head(self, h: Tensor) -> Tensor:
        return self.out(h).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@GENERATORS.register("mlp")
def mlp_generator(
    out_shape: tuple[int, ...],
    latent_dim: int,
    hidden: int = 400,
    depth: int = 4,
    activation: Activation = "relu",
    batch_norm: bool = True,
    maxout_pieces: int = 5,
    out_activation: Literal["auto", "tanh", "none"] = "auto",
    init: Init = "default",
    init_std: float = 0.02,
) -> MLPGenerator:
    """Default: 4 x 400 ReLU + BN, as in the VEEGAN/PacGAN 2D experiments.

    out_activation "auto" is tanh for images (which live in [-1, 1]) and none for vectors.
    init "normal" draws weights from N(0, init_std) with zero biases (the PacGAN code's init);
    "default" keeps PyTorch's defaults.
    """
    if out_activation == "auto":
        out_activation = "tanh" if len(out_shape) == 3 else "none"
    g = MLPGenerator(
        out_shape, latent_dim, hidden, depth, activation, batch_norm, maxout_pieces, out_activation
    )
    apply_init(g, init, init_std, "generator")
    return g


@DISCRIMINATORS.register("mlp")
def mlp_discriminator(
    in_shape: tuple[int, ...],
    hidden: int = 200,
    depth: int = 3,
    activation: Activation = "maxout",
    maxout_pieces: int = 5,
    batch_norm: bool = False,
    dropout: float = 0.0,
    init: Init = "default",
    init_std: float = 0.02,
) -> MLPDiscriminator:
    """Default: 3 x 200 maxout units with 5 pieces, as in the VEEGAN/PacGAN 2D experiments.

    init as for the generator: "normal" is N(0, init_std) weights and zero biases."""
    if not 0 <= dropout < 1:
        raise ConfigError(f"discriminator.dropout: must be in [0, 1), got {dropout}")
    d = MLPDiscriminator(in_shape, hidden, depth, activation, batch_norm, maxout_pieces, dropout)
    apply_init(d, init, init_std, "discriminator")
    return d
