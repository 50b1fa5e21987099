"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks").

A generator G maps an input image x to an output (the recipe's generator section: unet, the
paper's, or resnet_translator); a conditional PatchGAN discriminator D (the recipe's
discriminator section) scores the input and an output concatenated on the channels, (x, y) for
the true target y and (x, G(x)) for the translation. With ||.||_1 the mean absolute error:

    D:  (loss of D(x, y) as real + loss of D(x, G(x)) as fake) / 2       (the paper halves it)
    G:  adversarial loss of D(x, G(x)) + l1_weight ||y - G(x)||_1       (paper: lambda = 100)

with the recipe's objective, non_saturating (the paper's) or least_squares, at the paper's scale
(methods/translation.py `paper_scales`). The paper gives G no noise z: its randomness is dropout
(generator.dropout, 0.5 in the three innermost decoder blocks as in the paper); the paper keeps
dropout on at test time, gankit's sample grids and eval run the generator in eval mode (no
dropout). One step, as the authors' code: G translates the batch; D takes one step on the real
and the (detached) generated pairs; G takes one step against the updated D, on the same
translation.

Data: paired domains (data/domains.py, `transformed` with paired: true); `direction` AtoB maps
domain A to B, BtoA the reverse. `method.generator` is the TranslationSampler of G.
Logged: d_loss, g_loss, adv (G's adversarial term), l1 (the unweighted L1 distance).

Tricks and penalties attach to D (methods/critic.py): they see the pairs D scores (instance
noise on both images of a pair, R1 on the real pairs).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.base import Method, build_optimizer
from gankit.methods.cyclegan import l1
from gankit.methods.fast import FastMode
from gankit.methods.options import METHOD_OPTIONS, at_least, method_options
from gankit.methods.player import Player
from gankit.methods.translation import (
    BANK,
    TranslationSampler,
    check_recipe,
    sampler_bank,
    translation_critic,
    two_domains,
)
from gankit.models import build_discriminator
from gankit.models.resnet_generator import build_translator
from gankit.objectives import build_objective
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator, wrap_generator


def pair_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """D's input shape: input and output (both of `shape`) on the channels."""
    return (2 * shape[0], *shape[1:])


class Pix2PixMethod(Method):
    name = "pix2pix"  # in error messages (composite reuses these players)
    evaluator = "translation"

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        self.opts = opts = method_options(cfg)
        self.l1_weight = opts["l1_weight"]
        self.build_players(cfg, data, device)

    def build_players(self, cfg: RunConfig, data: DataSource, device: torch.device) -> None:
        """The paired data, the translator G (with its sample bank), the pair D, optimizers and
        the paper-scaled losses; direction from method_options."""
        self.data = data = two_domains(data, self.name)
        if not data.paired:
            raise ConfigError(
                f"data: {self.name} needs paired domains (e.g. data {{name: transformed, "
                "paired: true})"
            )
        if data.shape_a != data.shape_b:
            raise ConfigError(
                f"data: {self.name} needs both domains of one shape, got A {data.shape_a} and "
                f"B {data.shape_b}"
            )
        self.reverse = self.opts["direction"] == "BtoA"
        self.fast = fast = FastMode.for_recipe(cfg, device)
        self.objective = build_objective(cfg.objective)
        self.tricks = tricks = build_tricks(cfg, self.objective)
        shape = data.shape_a
        G = build_translator(cfg.generator, shape, shape[0])
        source = data.images("b" if self.reverse else "a")[0]
        bank = sampler_bank(source[torch.arange(BANK) % len(source)])
        sampler = wrap_generator(tricks, TranslationSampler(G, bank), cfg)
        self.generator = fast.prepare(sampler.to(device))
        D = build_discriminator(cfg.discriminator, pair_shape(shape))
        D = wrap_discriminator(tricks, D, cfg)
        self.discriminator = fast.prepare(D.to(device))
        fused = fast.fused_optimizer
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        self.g_player = Player("generator", self.generator, self.opt_g, fast)
        self.critic = translation_critic(self, cfg, self.discriminator, tricks)
        self.opt_d = self.critic.optimizer
        self.batch_size = cfg.schedule.batch_size
        self.critic.attach(self)

    @classmethod
    def build_sampler(cls, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        net = build_translator(cfg.generator, shape, shape[0])
        return TranslationSampler(net, torch.zeros(BANK, *shape))

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        return {"fast": self.fast.state_dict(), "tricks": self.critic.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.fast.load_state_dict(state.get("fast", {}))
        self.critic.load_state_dict(state.get("tricks", {}), self.device)

    def discriminator_step(self, x: Tensor, y: Tensor, fake: Tensor, step: int, logs) -> Tensor:
        """D's step on the real pair (x, y) and the generated pair (x, fake); its loss."""
        critic, D = self.critic, self.discriminator
        with self.fast.autocast():
            real_pair = critic.perturb(torch.cat([x, y], 1), step)
            fake_pair = critic.perturb(torch.cat([x, fake.detach()], 1), step)
            d_loss = critic.d_loss(D(real_pair).float(), D(fake_pair).float())
            self.real_pair = real_pair  # for G's terms that look at real data (feature matching)
            ctx = RegularizerContext(D, real_pair, fake_pair, step)
            d_loss = critic.d_terms(d_loss, logs, ctx)
        critic.step(d_loss, logs, self.collect_stats)
        return d_loss

    def adversarial_loss(self, x: Tensor, fake: Tensor, step: int) -> Tensor:
        """G's adversarial loss on the pair (x, fake); the pair D saw is kept for `g_terms`."""
        self.fake_pair = self.critic.perturb(torch.cat([x, fake], 1), step)
        return self.critic.g_loss(self.discriminator(self.fake_pair).float())

    def g_terms(self, g_loss: Tensor, step: int, logs) -> Tensor:
        """G's loss with the terms its tricks and penalties add (feature matching, ...)."""
        ctx = RegularizerContext(self.discriminator, self.real_pair, self.fake_pair, step)
        return self.critic.g_terms(g_loss, logs, ctx)

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, fast = self.generator.net, self.fast
        x, y, _ = self.data.batch_pairs(self.batch_size)
        if self.reverse:
            x, y = y, x
        logs: dict[str, Tensor] = {}
        with fast.autocast():
            fake = G(x)  # kept for the generator step
        d_loss = self.discriminator_step(x, y, fake, step, logs)
        with self.critic.frozen():  # G's step needs gradients through D, not for D's weights
            with fast.autocast():
                adv = self.adversarial_loss(x, fake, step)
                dist = l1(fake, y)
                g_loss = self.g_terms(adv + self.l1_weight * dist, step, logs)
            self.g_player.update(g_loss, logs, self.collect_stats)
            self.critic.after_generator_step()
        logs.update(
            d_loss=d_loss.detach(), g_loss=g_loss.detach(), adv=adv.detach(), l1=dist.detach()
        )
        return logs


@METHOD_OPTIONS.register("pix2pix")
def pix2pix_options(
    cfg, l1_weight: float = 100.0, direction: Literal["AtoB", "BtoA"] = "AtoB"
) -> None:
    """l1_weight: the L1 term's weight (paper: lambda = 100); direction: AtoB translates the
    data's domain A into B, BtoA the reverse."""
    at_least(l1_weight, 0.0, "l1_weight")
    check_recipe(cfg, "pix2pix")
    if cfg.data["name"] != "transformed" or not cfg.data.get("paired"):
        raise ConfigError("data: pix2pix needs paired data: {name: transformed, paired: true, ...}")
