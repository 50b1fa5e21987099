"""Small layers the models share."""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from gankit.errors import ConfigError

SPECTRAL_NORM_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


class Maxout(nn.Module):
    """Linear layer with `pieces` outputs per unit, keeping the largest (Goodfellow et al. 2013).

    The published 2D mode-collapse protocols (VEEGAN, PacGAN) use maxout discriminators.
    The reduction is `max(...).values`, not `amax`: the same values, and the same gradients
    without ties, but its backward pass routes the gradient by index instead of building an
    equality mask, which made the protocol's D forward + backward 1.13-1.24x faster on CPU
    (benchmarks/bench_maxout.py).
    """

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.out_features = out_features
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x).view(x.shape[0], self.out_features, self.pieces)
        return y.max(dim=-1).values


class BodyHead(nn.Module):
    """A discriminator as `body` (features) then `out` (a score per sample, or per patch): the
    split methods and tricks use (feature matching, minibatch layers, MAD-GAN's k + 1 outputs,
    ACGAN's class head). Subclasses build `self.body` and `self.out`."""

    body: nn.Module
    out: nn.Module

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def head(self, h: Tensor) -> Tensor:
        return self.out(h).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def activation(name: str, where: str = "activation") -> nn.Module:
    table = {
        "relu": lambda: nn.ReLU(),
        "leaky_relu": lambda: nn.LeakyReLU(0.2),
        "elu": lambda: nn.ELU(),
        "tanh": lambda: nn.Tanh(),
        "softplus": lambda: nn.Softplus(),
        "silu": lambda: nn.SiLU(),
    }
    if name not in table:
        raise ConfigError(
            f"{where}: unknown activation {name!r}; valid: {', '.join(sorted(table))}"
        )
    return table[name]()


def norm2d(kind: str, channels: int) -> nn.Module:
    """batch: BatchNorm; layer: LayerNorm over (C, H, W) as GroupNorm(1, C); none: identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2015: weights N(0, 0.02); normalization scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def normal_init(module: nn.Module, std: float, where: str) -> None:
    """Every linear/conv weight N(0, std), biases 0; normalization layers keep (1, 0).

    The VEEGAN/PacGAN 2D protocols initialize this way (std 0.02): small weights start D near
    a constant, where PyTorch's default (Kaiming-uniform) starts it steeper.
    """
    if not (std > 0 and math.isfinite(std)):
        raise ConfigError(f"{where}.init_std: must be a positive number, got {std}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def apply_init(module: nn.Module, init: str, std: float, where: str) -> None:
    """init "default" keeps PyTorch's defaults; "normal" is `normal_init` with `std`."""
    if init == "normal":
        normal_init(module, std, where)
    elif init != "default":
        raise ConfigError(f"{where}.init: unknown init {init!r}; valid: default, normal")


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def spectral_norm_of(layer: nn.Module):
    """The spectral-norm parametrization on `layer.weight`, or None."""
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    for p in layer.parametrizations.weight:
        if type(p).__name__ == "_SpectralNorm":  # torch.nn.utils.parametrizations' class
            return p
    return None


def apply_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> int:
    """Spectral normalization (Miyato et al. 2018) on every Linear/conv weight in `module`, in
    place, with torch's parametrization: W is used as W / sigma(W), sigma estimated by
    `n_power_iterations` power-iteration steps per training forward pass. Layers already
    normalized (a discriminator built with spectral norm) are left as they are. Returns how
    many layers are normalized. The `spectral_norm` trick and the networks that build spectral
    norm in (models/resnet_gan.py) both call this."""
    layers = [m for m in module.modules() if isinstance(m, SPECTRAL_NORM_LAYERS)]
    for layer in layers:
        if spectral_norm_of(layer) is None:
            torch_spectral_norm(layer, n_power_iterations=n_power_iterations)
    return len(layers)


def output_layer_like(old: nn.Module, new: nn.Module) -> nn.Module:
    """`new`, a layer replacing a discriminator's output layer `old` (ACGAN's class logits,
    MAD-GAN's k + 1 outputs, minibatch features' widened layer), spectrally normalized as `old`
    was: a discriminator built with spectral norm keeps it on its new head. (The spectral_norm
    trick runs after these replacements and needs no help.)"""
    sn = spectral_norm_of(old)
    if sn is not None:
        torch_spectral_norm(new, n_power_iterations=sn.n_power_iterations)
    return new
