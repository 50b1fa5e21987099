"""Generative moment matching networks (Li et al. 2015; Dziugaite et al. 2015): no
discriminator; the generator minimizes the kernel MMD^2 between a generated batch and a real
batch, on the flattened samples themselves (gankit/mmd.py: a mixture of Gaussian kernels).

    g_loss = MMD^2(G(z), x)           (or sqrt(max(MMD^2, 1e-12)) with `sqrt: true`)

A baseline for MMD-GAN (methods/mmd_gan.py), which computes the same MMD on learned features.
The recipe's discriminator and objective are not used. The trainer's log needs a d_loss: it is
logged as 0 (there is no discriminator); `mmd2` is the step's estimate.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.options import (
    METHOD_OPTIONS,
    method_options,
    no_compile,
    one_critic_step,
)
from gankit.methods.players import Players
from gankit.mmd import mmd2
from gankit.schema import RunConfig

GMMN_SIGMAS = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)  # Li et al. 2015's bandwidths


class GMMNMethod(Players):
    uses_discriminator = False

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        opts = method_options(cfg)
        self.sigmas = tuple(opts["sigmas"])
        self.unbiased = opts["estimator"] == "unbiased"
        self.sqrt = opts["sqrt"]

    def train_step(self, step: int) -> dict[str, Tensor]:
        real, _ = self.data.batch(self.batch_size)
        logs: dict[str, Tensor] = {}
        with self.fast.autocast():
            fake = self.generator(self.noise(self.batch_size))
        value = mmd2(fake.float(), real.float(), self.sigmas, self.unbiased)
        g_loss = value.clamp_min(1e-12).sqrt() if self.sqrt else value
        self.update(g_loss, "generator", logs)
        zero = torch.zeros((), device=g_loss.device)
        logs.update(g_loss=g_loss.detach(), d_loss=zero, mmd2=value.detach())
        return logs


def check_sigmas(sigmas) -> None:
    if not sigmas or any(not s > 0 for s in sigmas):
        raise ConfigError(f"method_options.sigmas: a list of bandwidths > 0, got {list(sigmas)}")


@METHOD_OPTIONS.register("gmmn")
def gmmn_options(
    cfg,
    sigmas: tuple[float, ...] = GMMN_SIGMAS,
    estimator: Literal["unbiased", "biased"] = "unbiased",
    sqrt: bool = False,
) -> None:
    """sigmas: the Gaussian kernels' bandwidths (on the data's scale); estimator: unbiased or
    biased MMD^2; sqrt: minimize sqrt(MMD^2) instead."""
    check_sigmas(sigmas)
    if estimator == "unbiased" and cfg.schedule.batch_size < 2:
        raise ConfigError("schedule.batch_size: the unbiased MMD needs at least 2 samples")
    for trick in cfg.tricks:
        generator_only = trick["name"] == "virtual_batch_norm" or (
            trick["name"] == "spectral_norm" and trick.get("players") == "generator"
        )
        if not generator_only:
            raise ConfigError(
                f"tricks: {trick['name']} acts on a discriminator, and gmmn has no "
                "discriminator (G minimizes the MMD to the data); only changes to G's layers apply "
                "(spectral_norm with players: generator, virtual_batch_norm)"
            )
    if cfg.regularizers:
        names = ", ".join(r["name"] for r in cfg.regularizers)
        raise ConfigError(
            f"regularizers: gmmn has no discriminator for {names} to act on (G minimizes the "
            "MMD to the data); remove them"
        )
    one_critic_step(cfg, "gmmn")
    no_compile(cfg, "gmmn")
