"""PacGAN (Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial
networks"): the discriminator judges packs of m samples instead of single samples.

A pack is m consecutive samples of one batch concatenated along the feature axis: for vectors
(N, d) -> (N/m, m d), for images (N, C, H, W) -> (N/m, m C, H, W) (channels of sample j of a
pack at [j C, (j + 1) C)). Real and fake batches are packed separately, so a pack is all real or
all fake. The discriminator is built for the packed shape (its input m times as wide) and
otherwise unchanged; the step is the GAN method's.

Packing happens where the GAN method hands inputs to the discriminator (`perturb`, after the
per-sample tricks such as instance noise), so everything downstream sees packs: objectives,
tricks and regularizers treat a pack as one sample of the product distribution P^m (a gradient
penalty interpolates and normalizes per pack, R1 takes the gradient per pack), which is the
GAN that PacGAN trains. The batch size (per process under torchrun) must be divisible by m.

`split_generator: true` runs G as PacGAN's reference code does: m calls of batch/m noise vectors
each, pack i made of sample i of every call. It differs from one call on the whole batch only
through what couples the samples of one forward pass, a batch-normalized G's batch statistics
(then taken over batch/m samples per call). `updates` is the GAN method's option.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.gan import GANMethod
from gankit.methods.options import (
    METHOD_OPTIONS,
    Updates,
    at_least,
    method_options,
    scoring_discriminator,
)
from gankit.models import build_discriminator
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator


def packed_shape(shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """The shape of a pack of m samples of `shape`: the first (feature/channel) axis times m."""
    return (m * shape[0], *shape[1:])


def pack(x: Tensor, m: int) -> Tensor:
    """(N, C, ...) -> (N/m, m C, ...): samples [i m, (i + 1) m) concatenated into pack i."""
    n = x.shape[0]
    if n % m:
        raise ConfigError(
            f"method_options.pack: a batch of {n} samples cannot be split into packs of {m}; "
            f"use a batch size (per process under torchrun) divisible by {m}"
        )
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])


class PacGANMethod(GANMethod):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        options = method_options(cfg)
        self.pack_size, self.split_generator = options["pack"], options["split_generator"]
        super().__init__(cfg, data, device)

    def discriminator_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return packed_shape(shape, self.pack_size)

    def build_critic(self, cfg: RunConfig, shape: tuple[int, ...]) -> None:
        # Earlier versions built a single-sample D first and then the packed one; building
        # (and dropping) it keeps the random stream, so runs reproduce bit for bit.
        single = (shape[0] // self.pack_size, *shape[1:])
        wrap_discriminator(self.tricks, build_discriminator(cfg.discriminator, single), cfg)
        super().build_critic(cfg, shape)

    def generate(self, n: int) -> Tensor:
        """One G call, or m calls of n/m (split_generator) interleaved so that pack i holds
        sample i of every call: (m, n/m, ...) -> (n/m, m, ...) -> (n, ...)."""
        if not self.split_generator:
            return super().generate(n)
        m = self.pack_size
        calls = [super(PacGANMethod, self).generate(n // m) for _ in range(m)]
        stacked = torch.stack(calls, dim=1)
        return stacked.reshape(n, *stacked.shape[2:])

    def perturb(self, x: Tensor, step: int) -> Tensor:
        """Per-sample tricks first, then packing: every input of D is a batch of packs."""
        return pack(super().perturb(x, step), self.pack_size)

    @staticmethod
    def checkpoint_discriminator(cfg: RunConfig, shape: tuple[int, ...]):
        """(the packed D, to load a checkpoint into; a per-sample view of it for plots: the
        score of x is D's score of a pack of m copies of x)."""
        m = method_options(cfg)["pack"]
        D = build_discriminator(cfg.discriminator, packed_shape(tuple(shape), m))
        D = wrap_discriminator(build_tricks(cfg), D, cfg)
        return D, RepeatedPack(D, m)


class RepeatedPack(nn.Module):
    """Scores single samples with a packed discriminator: x -> D(pack of m copies of x)."""

    def __init__(self, discriminator: nn.Module, m: int):
        super().__init__()
        self.discriminator, self.m = discriminator, m

    def forward(self, x: Tensor) -> Tensor:
        return self.discriminator(torch.cat([x] * self.m, dim=1))


@METHOD_OPTIONS.register("pacgan")
def pacgan_options(
    cfg, pack: int = 2, split_generator: bool = False, updates: Updates = "alternating"
) -> None:
    """pack: samples per pack, m (PacGAN2, 3, 4 in the paper's tables); split_generator: m
    generator calls of batch/m samples (the reference code's batch-norm statistics); updates:
    alternating or simultaneous, as method gan."""
    at_least(pack, 1, "pack")
    scoring_discriminator(cfg, "pacgan")
    if cfg.schedule.batch_size % pack:
        raise ConfigError(
            f"method_options.pack: schedule.batch_size {cfg.schedule.batch_size} is not "
            f"divisible by the pack size {pack}"
        )
