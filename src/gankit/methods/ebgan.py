"""EBGAN (Zhao et al. 2017, "Energy-based Generative Adversarial Network").

The discriminator is an autoencoder whose energy is its reconstruction error; as in the paper's
experiments, the per-sample mean squared error over the sample's entries:

    D(v) = mean_j (Dec(Enc(v))_j - v_j)^2
    d_loss = E[D(x)] + E[max(0, m - D(G(z)))]            (margin m)
    g_loss = E[D(G(z))] + w * f_PT(Enc(G(z)))            (pull-away term, weight w)

f_PT is the pull-away term of regularizers/pull_away.py on the encoder's codes of the fake batch
(the batch G's loss is computed on). One discriminator step, then one generator step (the
generator step reuses the fake batch, against the updated discriminator, as the GAN method).
Logged: `e_real`, `e_fake` (mean energies the discriminator step saw) and `pull_away`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.critic import NegativeEnergy
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    autoencoder_discriminator,
    method_options,
    no_compile,
    one_critic_step,
    own_discriminator_loss,
)
from gankit.methods.players import Players
from gankit.regularizers import RegularizerContext
from gankit.regularizers.pull_away import pull_away
from gankit.schema import RunConfig


def energy(x: Tensor, recon: Tensor) -> Tensor:
    """Per-sample mean squared reconstruction error, shape (N,), in fp32."""
    return (recon.float() - x.float()).pow(2).flatten(1).mean(1)


def ebgan_d_loss(e_real: Tensor, e_fake: Tensor, margin: float) -> Tensor:
    return e_real.mean() + F.relu(margin - e_fake).mean()


def ebgan_g_loss(e_fake: Tensor, codes: Tensor, pt_weight: float) -> Tensor:
    loss = e_fake.mean()
    if pt_weight:
        loss = loss + pt_weight * pull_away(codes.float())
    return loss


class EBGANMethod(Players):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        opts = method_options(cfg)
        self.margin, self.pt_weight = opts["margin"], opts["pt_weight"]

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, D, fast, critic = self.generator, self.discriminator, self.fast, self.critic
        real, _ = self.data.batch(self.batch_size)
        real = critic.perturb(real, step)
        score = NegativeEnergy(D, energy)  # the penalties' view of D
        logs: dict[str, Tensor] = {}
        with fast.autocast():
            fake = G(self.noise(self.batch_size))  # kept for the generator step
            seen = critic.perturb(fake.detach(), step)
            e_real = energy(real, D(real))
            e_fake = energy(seen, D(seen))
            d_loss = ebgan_d_loss(e_real, e_fake, self.margin)
            d_loss = critic.d_terms(d_loss, logs, RegularizerContext(score, real, seen, step))
        critic.step(d_loss, logs, self.collect_stats)

        with critic.frozen():
            with fast.autocast():
                gen = critic.perturb(fake, step)
                codes = D.encode(gen)
                e_gen = energy(gen, D.decode(codes))
                g_loss = critic.adversarial(ebgan_g_loss(e_gen, codes, self.pt_weight))
                ctx = RegularizerContext(score, real, gen, step)
                g_loss = critic.g_terms(g_loss, logs, ctx)
            self.g_player.update(g_loss, logs, self.collect_stats)
            critic.after_generator_step()
        logs.update(
            d_loss=d_loss.detach(),
            g_loss=g_loss.detach(),
            e_real=e_real.detach().mean(),
            e_fake=e_fake.detach().mean(),
        )
        if self.pt_weight:
            logs["pull_away"] = pull_away(codes.detach().float())
        return logs


@METHOD_OPTIONS.register("ebgan")
def ebgan_options(cfg, margin: float = 1.0, pt_weight: float = 0.1) -> None:
    """margin: m, the energy above which fakes cost D nothing (tune it to the data's scale of
    reconstruction errors; the paper searched it per data set); pt_weight: the pull-away term's
    weight (0.1 in the paper; 0 turns it off)."""
    at_least(margin, 0.0, "margin")
    at_least(pt_weight, 0.0, "pt_weight")
    if pt_weight and cfg.schedule.batch_size < 2:
        raise ConfigError(
            "schedule.batch_size: the pull-away term compares pairs of samples; use a batch "
            "of at least 2 or method_options.pt_weight=0"
        )
    autoencoder_discriminator(cfg, "ebgan")
    own_discriminator_loss(cfg, "ebgan", "energies with a margin")
    one_critic_step(cfg, "ebgan")
    no_compile(cfg, "ebgan")
