"""The networks of the permutation-invariant MNIST recipe of Salimans et al. 2016 ("Improved
Techniques for Training GANs"), as its official code has them (openai/improved-gan,
mnist_svhn_cifar10/train_mnist_feature_matching.py and nn.py).

Discriminator `ssl_mlp` (a K-way classifier; the K+1-th logit is fixed at 0 by the method):
Gaussian noise (std 0.3) on the input, weight-normalized ReLU layers 1000-500-250-250-250 each
followed by Gaussian noise (std 0.5), then K logits from a weight-normalized linear layer.
Weight normalization W = v * g / ||v|| per output unit, as the official `DenseLayer`: v ~ N(0, 0.1),
b = 0, g = 1, then a data-dependent init (`data_init(x)`) sets g = 1 / std and b = -mean / std of
each unit's pre-activation on an init batch, layer after layer, so that every pre-activation has
zero mean and unit variance on it. The hidden layers' g is fixed after the init (a buffer; the
official `train_scale=False`), the logit layer's g is trained.

Generator `ssl_mlp`: z (100) -> 500 softplus + BN -> 500 softplus + BN -> 784 sigmoid, the last
layer weight-normalized with a trained scale (the official `l2normalize`, eps 1e-6). BN as the
official `batch_norm(..., g=None)`: normalized with batch statistics (eps 1e-6), plus a learned
bias, no learned scale; the dense layers before BN have no bias; Glorot-uniform weights.

Ranges: gankit images live in [-1, 1]; the official code works on pixels in [0, 1]. The
discriminator maps its input x to (x + 1) / 2 before the input noise, and the generator returns
2 sigmoid(.) - 1, so both networks compute exactly the official functions on the [0, 1] scale.
The recipe's latent noise is gankit's `uniform` (U(-1, 1)); `latent: unit` maps it to
(z + 1) / 2 ~ U(0, 1)^100, the official noise.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.errors import ConfigError
from gankit.models import DISCRIMINATORS, GENERATORS
from gankit.models.layers import numel


class GaussianNoise(nn.Module):
    """x + N(0, std^2) in training mode (from the global torch RNG); identity in eval mode."""

    def __init__(self, std: float):
        super().__init__()
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + torch.randn_like(x) * self.std


class WNLinear(nn.Module):
    """Weight-normalized linear layer: y = x (v g / ||v||)^T + b, norms over each output unit's
    incoming weights. train_scale=False keeps g a buffer (set only by `data_init`)."""

    def __init__(
        self, in_features: int, out_features: int, train_scale: bool = False, init_std=0.1
    ):
        super().__init__()
        self.v = nn.Parameter(torch.randn(out_features, in_features) * init_std)
        self.b = nn.Parameter(torch.zeros(out_features))
        g = torch.ones(out_features)
        if train_scale:
            self.g = nn.Parameter(g)
        else:
            self.register_buffer("g", g)
        self.initializing = False  # True during data_init's forward pass

    def weight(self) -> Tensor:
        return self.v * (self.g / self.v.norm(dim=1)).unsqueeze(1)

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight())
        if not self.initializing:
            return y + self.b
        # data-dependent init (official nn.DenseLayer, init=True): normalize this batch's
        # pre-activations and fold the statistics into g and b
        with torch.no_grad():
            m = y.mean(0)
            std = (y - m).square().mean(0).sqrt()
            self.g.div_(std)
            self.b.copy_(-m / std)
        return (y - m) / std


class SSLMLPDiscriminator(nn.Module):
    def __init__(self, in_shape, hidden, n_classes, input_noise, hidden_noise, input_range):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.input_range = input_range
        self.input_noise = GaussianNoise(input_noise)
        layers, noises, width = [], [], numel(self.in_shape)
        for h in hidden:
            layers.append(WNLinear(width, h))
            noises.append(GaussianNoise(hidden_noise))
            width = h
        self.layers = nn.ModuleList(layers)
        self.noises = nn.ModuleList(noises)
        self.out = WNLinear(width, n_classes, train_scale=True)
        self.feature_dim = width
        self.n_classes = n_classes
        self.layer_names = [f"h{i + 1}" for i in range(len(hidden))]

    def named_features(self, x: Tensor) -> dict[str, Tensor]:
        """Every hidden layer's ReLU output (before its noise), by name h1, h2, ...; and the
        logits as "logits"."""
        h = x.reshape(x.shape[0], -1)
        if self.input_range == "unit":
            h = (h + 1) * 0.5
        h = self.input_noise(h)
        out: dict[str, Tensor] = {}
        for name, layer, noise in zip(self.layer_names, self.layers, self.noises):
            a = F.relu(layer(h))
            out[name] = a
            h = noise(a)
        out["logits"] = self.out(h)
        return out

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer (ReLU output, before its noise): the feature-matching layer."""
        return self.named_features(x)[self.layer_names[-1]]

    def head(self, h: Tensor) -> Tensor:
        return self.out(self.noises[-1](h))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def data_init(self, x: Tensor) -> None:
        """The official data-dependent init: one forward pass in training mode (noise on) in
        which every weight-normalized layer normalizes its pre-activations and keeps g, b."""
        wn = [m for m in self.modules() if isinstance(m, WNLinear)]
        for m in wn:
            m.initializing = True
        try:
            self.named_features(x)
        finally:
            for m in wn:
                m.initializing = False


class UnitBias(nn.Module):
    """A learned per-unit bias (the official BN's `b` when its scale `g` is None)."""

    def __init__(self, n: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias


class L2NormalizedLinear(nn.Module):
    """The official `l2normalize(DenseLayer)`: W = v g / sqrt(1e-6 + ||v||^2), g trained (init 1),
    v Glorot-uniform, b = 0."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.v = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.v)
        self.g = nn.Parameter(torch.ones(out_features))
        self.b = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.g / torch.sqrt(1e-6 + self.v.square().sum(1))
        return F.linear(x, self.v * scale.unsqueeze(1), self.b)


class SSLMLPGenerator(nn.Module):
    def __init__(self, out_shape, latent_dim, hidden, latent, output_range):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.latent_dim = latent_dim
        self.latent = latent
        self.output_range = output_range
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            linear = nn.Linear(width, h, bias=False)
            nn.init.xavier_uniform_(linear.weight)
            layers += [
                linear,
                nn.BatchNorm1d(h, eps=1e-6, affine=False),
                UnitBias(h),
                nn.Softplus(),
            ]
            width = h
        self.body = nn.Sequential(*layers)
        self.out = L2NormalizedLinear(width, numel(self.out_shape))

    def forward(self, z: Tensor) -> Tensor:
        if self.latent == "unit":
            z = (z + 1) * 0.5  # U(-1, 1) -> U(0, 1)
        x = torch.sigmoid(self.out(self.body(z)))
        if self.output_range == "symmetric":
            x = x * 2 - 1
        return x.view(z.shape[0], *self.out_shape)


@DISCRIMINATORS.register("ssl_mlp")
def ssl_mlp_discriminator(
    in_shape: tuple[int, ...],
    hidden: list[int] = (1000, 500, 250, 250, 250),
    n_classes: int = 10,
    input_noise: float = 0.3,
    hidden_noise: float = 0.5,
    input_range: Literal["unit", "symmetric"] = "unit",
) -> SSLMLPDiscriminator:
    """Salimans et al. 2016's permutation-invariant MNIST classifier (K logits). input_range
    unit: x in [-1, 1] is mapped to [0, 1] first (the official pixel range)."""
    hidden = list(hidden)
    if not hidden or min(hidden) < 1:
        raise ConfigError(f"discriminator.hidden: needs at least one width >= 1, got {hidden}")
    if n_classes < 2:
        raise ConfigError(f"discriminator.n_classes: must be at least 2, got {n_classes}")
    if input_noise < 0 or hidden_noise < 0:
        raise ConfigError("discriminator.input_noise/hidden_noise: must be >= 0")
    return SSLMLPDiscriminator(in_shape, hidden, n_classes, input_noise, hidden_noise, input_range)


@GENERATORS.register("ssl_mlp")
def ssl_mlp_generator(
    out_shape: tuple[int, ...],
    latent_dim: int,
    hidden: list[int] = (500, 500),
    latent: Literal["unit", "as_drawn"] = "unit",
    output_range: Literal["symmetric", "unit"] = "symmetric",
) -> SSLMLPGenerator:
    """Salimans et al. 2016's MNIST generator. latent unit: U(-1, 1) noise is mapped to U(0, 1)
    (use generator.latent_dist uniform); output_range symmetric: 2 sigmoid - 1, in gankit's
    [-1, 1] image range."""
    hidden = list(hidden)
    if not hidden or min(hidden) < 1:
        raise ConfigError(f"generator.hidden: needs at least one width >= 1, got {hidden}")
    return SSLMLPGenerator(out_shape, latent_dim, hidden, latent, output_range)
