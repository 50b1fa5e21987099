"""LAPGAN (Denton et al. 2015, "Deep Generative Image Models using a Laplacian Pyramid of
Adversarial Networks").

The images are split into a Laplacian pyramid (gankit/pyramid.py: 2x2 average pooling down,
fixed nearest or bilinear up) of L levels, sides s_0 < s_1 = 2 s_0 < ... < s_{L-1} = the data's
side (`levels`; by default chosen from the data: halve while the side stays even and the half is
at least 4, at most 3 levels: 8 px -> 4, 8; 28 px -> 7, 14, 28; 32 px -> 8, 16, 32).

Level 0 is an unconditional GAN on the coarsest images I_0: the recipe's generator and
discriminator sections built at shape (C, s_0, s_0) (an mlp, as the paper's coarsest CIFAR
level; dcgan where it supports s_0). Level k >= 1 is a conditional GAN on the residual
h_k = I_k - l_k, l_k = up(I_{k-1}):

- G_k(l_k, n_k) takes the upsampled coarser image with a plane of noise n_k as an extra input
  channel (the paper's "noise as a fourth colour plane") and returns the residual:
  3x3 convolutions, BatchNorm + ReLU, a linear output (residuals are not bounded by tanh).
- D_k judges the full image at level k, residual plus upsampled coarse image, with the coarse
  image concatenated as extra channels: D_k(cat(l_k + h, l_k)). The paper adds l_k to h before
  D_k's first layer; the concatenation keeps that sum and also gives D_k the condition
  explicitly (the brief's channel conditioning).

Every level trains on the real pyramid of the same batch (level k is conditioned on the true
coarser image I_{k-1}, not on a generated one, as in the paper), with the recipe's objective
(its d_loss and g_loss per level). `train: joint` trains all levels every step;
`train: levelwise` trains level k alone during steps [k * level_steps, (k + 1) * level_steps)
and the finest level from then on. The per-level losses are summed and each player takes one
optimizer step over all levels' parameters: each level's parameters get gradients from their
own level's loss only, so with a per-parameter optimizer (Adam) this is one optimizer per level
(levels not trained in a step have no gradient and are not stepped).

Sampling runs the pyramid from coarse to fine: `method.generator` is a LapGANGenerator, an
nn.Module of z alone, so sample grids, EMA and the metrics work unchanged. z has
`generator.latent_dim` entries, the concatenation [z_0 | n_1 | ... | n_{L-1}]: z_0 the coarsest
generator's latent code (latent_dim - sum_k C_n s_k^2 entries) and n_k the level-k noise plane
(C_n = `noise_channels` planes of s_k x s_k, row-major), so latent_dim must exceed
sum_k C_n s_k^2 (e.g. 8 px digits with levels 4, 8: 64 + the coarse code; 28 px with
7, 14, 28: 196 + 784 + the coarse code). Logged: d_loss, g_loss (sums over the trained levels)
and d_loss/level{k}, g_loss/level{k}.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.base import Method, Noise, build_optimizer
from gankit.methods.critic import Critic, Pairing, ScoreOf
from gankit.methods.fast import FastMode
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    method_options,
    no_compile,
    one_critic_step,
    scoring_discriminator,
)
from gankit.methods.player import Player
from gankit.methods.players import Players
from gankit.models import build_discriminator, build_generator
from gankit.objectives import build_objective
from gankit.pyramid import auto_levels, downsample, pyramid_sizes, upsample
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator, wrap_generator


class LevelGenerator(nn.Module):
    """G_k: (l_k, noise planes) -> residual h_k, same side as l_k."""

    def __init__(self, channels: int, noise_channels: int, width: int):
        super().__init__()
        self.noise_channels = noise_channels
        self.net = nn.Sequential(
            nn.Conv2d(channels + noise_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, channels, 3, padding=1),
        )

    def forward(self, coarse_up: Tensor, noise: Tensor) -> Tensor:
        return self.net(torch.cat([coarse_up, noise], dim=1))


class LevelDiscriminator(nn.Module):
    """D_k: (residual h, l_k) -> one score per sample, from cat(l_k + h, l_k)."""

    def __init__(self, channels: int, side: int, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2 * channels, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.feature_dim = 2 * width * (side // 2) ** 2
        self.out = nn.Linear(self.feature_dim, 1)

    def features(self, residual: Tensor, coarse_up: Tensor) -> Tensor:
        return self.body(torch.cat([coarse_up + residual, coarse_up], dim=1))

    def forward(self, residual: Tensor, coarse_up: Tensor) -> Tensor:
        return self.out(self.features(residual, coarse_up)).squeeze(1)


class LapGANGenerator(nn.Module):
    """The pyramid of generators as one module of z (see the module docstring for z's layout)."""

    def __init__(
        self,
        coarse: nn.Module,
        levels: list[LevelGenerator],
        sizes: list[int],
        coarse_dim: int,
        noise_channels: int,
        upsample_mode: str = "nearest",
    ):
        super().__init__()
        self.coarse = coarse
        self.levels = nn.ModuleList(levels)
        self.sizes = list(sizes)
        self.coarse_dim = coarse_dim
        self.noise_channels = noise_channels
        self.upsample_mode = upsample_mode

    def split(self, z: Tensor) -> tuple[Tensor, list[Tensor]]:
        """z -> (z_0, [n_1, ..., n_{L-1}]) with n_k of shape (N, C_n, s_k, s_k)."""
        z0, rest = z[:, : self.coarse_dim], z[:, self.coarse_dim :]
        planes, start = [], 0
        for side in self.sizes[1:]:
            size = self.noise_channels * side * side
            planes.append(
                rest[:, start : start + size].reshape(-1, self.noise_channels, side, side)
            )
            start += size
        return z0, planes

    def forward(self, z: Tensor) -> Tensor:
        z0, planes = self.split(z)
        image = self.coarse(z0)
        for G, noise in zip(self.levels, planes):
            coarse_up = upsample(image, self.upsample_mode)
            image = coarse_up + G(coarse_up, noise)
        return image


def _plan(cfg: RunConfig, shape: tuple[int, ...], opts: dict) -> tuple[list[int], int]:
    """(the pyramid's sides from coarse to fine, the coarsest generator's latent size)."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"data: method 'lapgan' needs square images (C, H, H), got {shape}")
    levels = opts["levels"] or auto_levels(shape[1])
    try:
        sizes = pyramid_sizes(shape[1], levels)
    except ValueError as e:
        raise ConfigError(f"method_options.levels: {e}") from None
    noise = sum(opts["noise_channels"] * s * s for s in sizes[1:])
    coarse_dim = cfg.generator["latent_dim"] - noise
    if coarse_dim < 1:
        raise ConfigError(
            f"generator.latent_dim: LAPGAN's z is the coarsest code plus {noise} noise entries "
            f"for the levels {sizes[1:]}; set latent_dim above {noise} (e.g. {noise + 32}), "
            f"got {cfg.generator['latent_dim']}"
        )
    return sizes, coarse_dim


def build_lapgan_generator(cfg: RunConfig, shape: tuple[int, ...]) -> LapGANGenerator:
    opts = method_options(cfg)
    sizes, coarse_dim = _plan(cfg, shape, opts)
    g_cfg = {**cfg.generator, "latent_dim": coarse_dim}
    coarse = build_generator(g_cfg, (shape[0], sizes[0], sizes[0]))
    levels = [
        LevelGenerator(shape[0], opts["noise_channels"], opts["level_width"]) for _ in sizes[1:]
    ]
    return LapGANGenerator(
        coarse, levels, sizes, coarse_dim, opts["noise_channels"], opts["upsample"]
    )


class LapGANMethod(Players):
    """Tricks and penalties attach to every level's discriminator (methods/critic.py), each
    with its own instance and paired with that level's generator; a level's penalties take
    its D at the coarser image of the batch (real and generated residuals share it); logs
    carry /level{k}."""

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        Method.__init__(self, cfg, data, device)
        opts = method_options(cfg)
        shape = tuple(data.shape)
        self.sizes, _ = _plan(cfg, shape, opts)
        self.train_mode, self.level_steps = opts["train"], opts["level_steps"]
        self.mode = opts["upsample"]
        self.objective = build_objective(cfg.objective)
        self.fast = fast = FastMode.for_recipe(cfg, device)
        fused = fast.fused_optimizer
        G = build_lapgan_generator(cfg, shape)
        coarse_D = build_discriminator(cfg.discriminator, (shape[0], self.sizes[0], self.sizes[0]))
        level_Ds = [LevelDiscriminator(shape[0], s, opts["level_width"]) for s in self.sizes[1:]]
        tricks = [build_tricks(cfg, self.objective) for _ in self.sizes]
        G = wrap_generator(tricks[0], G, cfg)  # one generator module: its changes once
        Ds = [wrap_discriminator(t, D, cfg) for t, D in zip(tricks, [coarse_D, *level_Ds])]
        self.generator = fast.prepare(G.to(device))
        self.discriminator = fast.prepare(nn.ModuleList(Ds).to(device))
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        self.opt_d = build_optimizer(
            self.discriminator.parameters(), cfg.optim.discriminator, fused
        )
        self.g_player = Player("generator", self.generator, self.opt_g, fast)
        self.d_player = Player("discriminator", self.discriminator, self.opt_d, fast)
        self.critics = []
        level_generators = [self.generator.coarse, *self.generator.levels]
        for k, (t, D) in enumerate(zip(tricks, self.discriminator)):
            critic = Critic(cfg, self.objective, t, D, self.d_player, fast, tag=f"level{k}")
            critic.attach(Pairing(cfg, device, level_generators[k], D, seed_offset=100 * k))
            self.critics.append(critic)
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        self.batch_size = cfg.schedule.batch_size

    def extra_state(self) -> dict:
        tricks = [c.state_dict() for c in self.critics]
        return {**super().extra_state(), "tricks": tricks}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        for critic, saved in zip(self.critics, state.get("tricks", [])):
            critic.load_state_dict(saved, self.device)

    @staticmethod
    def build_sampler(cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        """The module `generator` is, for loading it from a checkpoint outside training."""
        return build_lapgan_generator(cfg, shape)

    def active_levels(self, step: int) -> list[int]:
        """The levels trained at `step` (0-based count of steps done)."""
        n = len(self.sizes)
        if self.train_mode == "joint":
            return list(range(n))
        return [min(step // self.level_steps, n - 1)]

    def real_levels(self, real: Tensor) -> list[Tensor]:
        """[I_0, ..., I_{L-1}]: the batch at every level of its pyramid, coarse to fine."""
        images = [real]
        for _ in range(len(self.sizes) - 1):
            images.append(downsample(images[-1]))
        return images[::-1]

    def score(self, k: int, x: Tensor, cond: Tensor | None) -> Tensor:
        """Level k's D on x (a level-0 image, or a residual given its coarser image)."""
        D = self.discriminator[k]
        return (D(x) if cond is None else D(x, cond)).float()

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, fast = self.generator, self.fast
        real, _ = self.data.batch(self.batch_size)
        z0, planes = G.split(self.noise(self.batch_size))
        images = self.real_levels(real)
        logs: dict[str, Tensor] = {}
        fakes, conds, reals = {}, {}, {}
        levels = self.active_levels(step)
        with fast.autocast():
            d_loss = torch.zeros((), device=real.device)
            for k in levels:
                critic = self.critics[k]
                if k == 0:
                    fakes[0], reals[0], conds[0] = G.coarse(z0), images[0], None
                else:
                    cond = upsample(images[k - 1], self.mode)
                    fakes[k] = G.levels[k - 1](cond, planes[k - 1])
                    reals[k], conds[k] = images[k] - cond, cond
                reals[k] = critic.perturb(reals[k], step)
                fake = critic.perturb(fakes[k].detach(), step)
                d_k = critic.d_loss(
                    self.score(k, reals[k], conds[k]), self.score(k, fake, conds[k])
                )
                view = ScoreOf(self.discriminator[k], condition=conds[k])
                d_k = critic.d_terms(d_k, logs, RegularizerContext(view, reals[k], fake, step))
                logs[f"d_loss/level{k}"] = d_k.detach()
                d_loss = d_loss + d_k
        self.d_player.update(d_loss, logs, self.collect_stats)
        for k in levels:
            self.critics[k].after_step()

        with self.d_player.frozen(), fast.autocast():
            g_loss = torch.zeros((), device=real.device)
            for k, fake in fakes.items():
                critic = self.critics[k]
                fake = critic.perturb(fake, step)
                g_k = critic.g_loss(self.score(k, fake, conds[k]))
                view = ScoreOf(self.discriminator[k], condition=conds[k])
                g_k = critic.g_terms(g_k, logs, RegularizerContext(view, reals[k], fake, step))
                logs[f"g_loss/level{k}"] = g_k.detach()
                g_loss = g_loss + g_k
        self.g_player.update(g_loss, logs, self.collect_stats)
        for k in fakes:
            self.critics[k].after_generator_step()
        logs.update(d_loss=d_loss.detach(), g_loss=g_loss.detach())
        return logs


@METHOD_OPTIONS.register("lapgan")
def lapgan_options(
    cfg,
    levels: int | None = None,
    train: Literal["joint", "levelwise"] = "joint",
    level_steps: int = 1000,
    noise_channels: int = 1,
    level_width: int = 64,
    upsample: Literal["nearest", "bilinear"] = "nearest",
) -> None:
    """levels: pyramid levels (None: from the data's side, see methods/lapgan.py); train:
    joint (every level every step) or levelwise (level k during steps [k, k + 1) *
    level_steps, the finest level from then on); noise_channels: noise planes per level;
    level_width: channels of the level generators and discriminators (k >= 1); upsample: the
    pyramid's fixed upsampling."""
    if levels is not None:
        at_least(levels, 1, "levels")
    at_least(level_steps, 1, "level_steps")
    at_least(noise_channels, 1, "noise_channels")
    at_least(level_width, 1, "level_width")
    scoring_discriminator(cfg, "lapgan")
    one_critic_step(cfg, "lapgan")
    no_compile(cfg, "lapgan")
    for trick in cfg.tricks:
        if trick["name"] in ("minibatch_discrimination", "minibatch_stddev", "virtual_batch_norm"):
            raise ConfigError(
                f"tricks: {trick['name']} is not supported under method 'lapgan' yet: its "
                "level networks take the coarser image as a second input, which the trick's "
                "wrapper does not pass on"
            )
