"""Spectral normalization (Miyato et al. 2018) with torch's parametrization.

Every Linear and convolution weight W of the chosen player is used as W / sigma(W), sigma the
largest singular value estimated by power iteration (one step per training forward pass, the
vectors kept as buffers and checkpointed): each layer is then 1-Lipschitz. The helper lives in
models/layers.py (`apply_spectral_norm`), shared with the networks that build spectral norm in
(`sngan_resnet`'s discriminator); layers already normalized are left as they are, so the trick
on such a discriminator normalizes only the layers other tricks added.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from gankit.errors import ConfigError
from gankit.models.layers import apply_spectral_norm
from gankit.tricks import TRICKS, Trick


class SpectralNorm(Trick):
    wrap_order = 10  # after tricks that add layers, so that those are normalized too

    def __init__(self, players: tuple[str, ...], n_power_iterations: int):
        self.players = players
        self.n_power_iterations = n_power_iterations

    def check(self, objective, cfg) -> None:
        if "d" in self.players and objective.weight_clip is not None:
            raise ConfigError(
                f"tricks: spectral_norm already bounds the critic's Lipschitz constant; the "
                f"{objective.name} objective's weight clipping on top would shrink it again. "
                "Set objective.clip: null"
            )

    def _wrap(self, module: nn.Module, who: str) -> nn.Module:
        if apply_spectral_norm(module, self.n_power_iterations) == 0:
            raise ConfigError(f"tricks.spectral_norm: the {who} has no Linear or conv layer")
        return module

    def wrap_generator(self, generator, cfg):
        return self._wrap(generator, "generator") if "g" in self.players else generator

    def wrap_discriminator(self, discriminator, cfg):
        return self._wrap(discriminator, "discriminator") if "d" in self.players else discriminator


@TRICKS.register("spectral_norm")
def spectral_norm(
    players: Literal["discriminator", "generator", "both"] = "discriminator",
    n_power_iterations: int = 1,
) -> SpectralNorm:
    """players: whose layers to normalize (the paper: the discriminator);
    n_power_iterations: power-iteration steps per forward pass."""
    if n_power_iterations < 1:
        raise ConfigError(
            f"tricks.spectral_norm.n_power_iterations: must be >= 1, got {n_power_iterations}"
        )
    chosen = {"both": ("g", "d"), "generator": ("g",), "discriminator": ("d",)}[players]
    return SpectralNorm(chosen, n_power_iterations)
