"""MMD-GAN (Li et al. 2017, "MMD GAN: Towards Deeper Understanding of Moment Matching Network").

The kernel MMD of GMMN computed on learned features: the discriminator is an autoencoder whose
encoder f_phi gives the features (its decoder keeps f_phi injective) and the discriminator
maximizes the MMD, as in the paper's reference code:

    mmd   = sqrt(max(MMD^2(f(x), f(G(z))), 1e-12))        mixture of Gaussian kernels
    rank  = -mean(relu(-(mean f(x) - mean f(G(z)))))       one-sided feasible-set term, <= 0
    ae    = w_x mean (x - Dec(f(x)))^2 + w_y mean (G(z) - Dec(f(G(z))))^2
    d_loss = -(mmd + rank_weight * rank) + ae              (minimized by D)
    g_loss = mmd + rank_weight * rank                      (minimized by G)

After each discriminator step the encoder's parameters are clipped to [-clip, clip] (the
paper's Lipschitz constraint). schedule.n_critic discriminator steps per generator step (the
paper's 5), each on fresh real and fake batches; the generator step draws its own. Defaults are
the reference code's: bandwidths 1, 2, 4, 8, 16, biased MMD^2, rank weight 16, autoencoder
weights 8 and 8, clip 0.01, RMSprop lr 5e-5 (set in the preset). Not done: the code's 100
critic steps for the first 25 generator steps and every 500th.
Logged: `mmd2` (the last critic step's MMD^2 estimate) and `ae` (its reconstruction term).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.gmmn import check_sigmas
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    autoencoder_discriminator,
    method_options,
    no_compile,
    own_discriminator_loss,
)
from gankit.methods.players import Players
from gankit.mmd import DEFAULT_SIGMAS, mmd2
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig


def one_sided(x: Tensor) -> Tensor:
    """-mean(relu(-x)): 0 when every entry of x is >= 0, negative otherwise."""
    return -F.relu(-x).mean()


class MMDGANMethod(Players):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        opts = method_options(cfg)
        self.sigmas = tuple(opts["sigmas"])
        self.unbiased = opts["estimator"] == "unbiased"
        self.rank_weight = opts["rank_weight"]
        self.ae_real, self.ae_fake = opts["ae_weight_real"], opts["ae_weight_fake"]
        self.clip = opts["clip"]
        self.n_critic = cfg.schedule.n_critic

    def witness(self, f_real: Tensor, f_fake: Tensor) -> tuple[Tensor, Tensor]:
        """(mmd + rank_weight * rank, MMD^2) on encoder features, in fp32."""
        value = mmd2(f_real.float(), f_fake.float(), self.sigmas, self.unbiased)
        mmd = F.relu(value).clamp_min(1e-12).sqrt()
        rank = one_sided(f_real.float().mean(0) - f_fake.float().mean(0))
        return mmd + self.rank_weight * rank, value

    def discriminator_step(self, step: int, logs: dict[str, Tensor]) -> Tensor:
        D, fast, critic = self.discriminator, self.fast, self.critic
        real, _ = self.data.batch(self.batch_size)
        real = critic.perturb(real, step)
        with torch.no_grad(), fast.autocast():
            fake = critic.perturb(self.generator(self.noise(self.batch_size)), step)
        with fast.autocast():
            f_real, f_fake = D.encode(real), D.encode(fake)
            objective, value = self.witness(f_real, f_fake)
            ae = self.ae_real * (real.float() - D.decode(f_real).float()).pow(2).mean()
            ae = ae + self.ae_fake * (fake.float() - D.decode(f_fake).float()).pow(2).mean()
            d_loss = -objective + ae
            d_loss = critic.d_terms(d_loss, logs, RegularizerContext(D, real, fake, step))
        critic.player.update(d_loss, logs, self.collect_stats)
        with torch.no_grad():
            for p in D.encoder.parameters():
                p.clamp_(-self.clip, self.clip)
        critic.after_step()  # after the clipping: the tricks see the weights D will use
        logs.update(mmd2=value.detach(), ae=ae.detach())
        return d_loss.detach()

    def train_step(self, step: int) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        for _ in range(self.n_critic):
            d_loss = self.discriminator_step(step, logs)
        D, fast, critic = self.discriminator, self.fast, self.critic
        real, _ = self.data.batch(self.batch_size)
        real = critic.perturb(real, step)
        with critic.frozen():
            with fast.autocast():
                fake = critic.perturb(self.generator(self.noise(self.batch_size)), step)
                g_loss, _ = self.witness(D.encode(real), D.encode(fake))
                g_loss = critic.adversarial(g_loss)
                g_loss = critic.g_terms(g_loss, logs, RegularizerContext(D, real, fake, step))
            self.g_player.update(g_loss, logs, self.collect_stats)
            critic.after_generator_step()
        logs.update(d_loss=d_loss, g_loss=g_loss.detach())
        return logs


@METHOD_OPTIONS.register("mmd_gan")
def mmd_gan_options(
    cfg,
    sigmas: tuple[float, ...] = DEFAULT_SIGMAS,
    estimator: Literal["unbiased", "biased"] = "biased",
    rank_weight: float = 16.0,
    ae_weight_real: float = 8.0,
    ae_weight_fake: float = 8.0,
    clip: float = 0.01,
) -> None:
    """sigmas: Gaussian bandwidths on the encoder's features; estimator of MMD^2; rank_weight:
    the one-sided term's weight (lambda_rg); ae_weight_*: the autoencoder terms' weights
    (lambda_AE); clip: the encoder's weight clipping bound."""
    check_sigmas(sigmas)
    for key, value in (
        ("rank_weight", rank_weight),
        ("ae_weight_real", ae_weight_real),
        ("ae_weight_fake", ae_weight_fake),
    ):
        at_least(value, 0.0, key)
    if not clip > 0:
        at_least(clip, 1e-12, "clip")
    autoencoder_discriminator(cfg, "mmd_gan")
    own_discriminator_loss(cfg, "mmd_gan", "the MMD of its encoder's codes")
    for reg in cfg.regularizers:
        if reg["name"] != "pull_away":
            raise ConfigError(
                f"regularizers: {reg['name']} takes the gradient of D's score, and mmd_gan's D "
                "outputs codes for the kernel, not a score; remove it"
            )
    for trick in cfg.tricks:
        if trick["name"] == "spectral_norm" and trick.get("players") != "generator":
            raise ConfigError(
                "tricks: spectral_norm on mmd_gan's D would fight its weight clipping "
                "(method_options.clip); set players: generator, or remove it"
            )
    no_compile(cfg, "mmd_gan")
