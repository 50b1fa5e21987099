"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks").

Two generators G: A -> B and F: B -> A (the recipe's generator section: resnet_translator, the
paper's, or unet), two PatchGAN discriminators D_A (real A vs. F(b)) and D_B (real B vs. G(a)),
both built from the recipe's discriminator section. With lambda = lambda_cycle and
||.||_1 the mean absolute error over all entries:

    L_cyc = lambda (||F(G(a)) - a||_1 + ||G(F(b)) - b||_1)
    L_idt = identity * lambda (||G(b) - b||_1 + ||F(a) - a||_1)     (identity = 0.5: the paper's
                                                                     0.5 lambda, Sec. 5.2)
    G, F:  E(D_B(G(a)) - 1)^2 + E(D_A(F(b)) - 1)^2 + L_cyc + L_idt   (least squares, Sec. 4)
    D_B:   (E(D_B(b) - 1)^2 + E D_B(pool_B(G(a)))^2) / 2,   D_A likewise with a and F(b)

(the paper halves D's objective; methods/translation.py `paper_scales` for the scaling and the
non_saturating alternative). The discriminators see generated images through a history pool
of `pool_size` images each (Shrivastava et al. 2017, `ImagePool`). One step, as the authors'
code: G and F take one step (one optimizer over both, optim.generator) against the current
discriminators, then D_A and D_B take one step (one optimizer over both, optim.discriminator)
on the same real batches and the pooled fakes. Both learning rates follow `LinearDecay`
(constant until decay_start, default half of schedule.steps, then linearly toward 0 over
decay_steps, default the rest of the run).

Data: `batch_a` and `batch_b` of a two-domain data set (data/domains.py), both domains of one
image shape. `method.generator` is the TranslationSampler of G (A -> B); F is `generator_ba`.
Logged: d_loss (D_A's plus D_B's), g_loss (G's and F's total), adv, cycle, identity, d_a, d_b,
lr (the generators' current rate).

Tricks and penalties attach to both discriminators (methods/critic.py), each with its own
instance: D_B's judges G (its generator-side terms go to G's loss), D_A's judges F; their
logs carry /d_b and /d_a, and their random streams differ.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.base import Method, build_optimizer
from gankit.methods.critic import Critic, Pairing
from gankit.methods.fast import FastMode
from gankit.methods.options import METHOD_OPTIONS, at_least, method_options
from gankit.methods.player import Player
from gankit.methods.translation import (
    BANK,
    ImageStore,
    LinearDecay,
    TranslationSampler,
    check_decay,
    check_recipe,
    decay_window,
    paper_scales,
    sampler_bank,
    two_domains,
)
from gankit.models import build_discriminator
from gankit.models.resnet_generator import build_translator
from gankit.objectives import build_objective
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator, wrap_generator


# -- losses (pure functions) --------------------------------------------------------------------
def l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute difference over all entries, in fp32."""
    return (x.float() - y.float()).abs().mean()


def cycle_loss(a: Tensor, rec_a: Tensor, b: Tensor, rec_b: Tensor, lam: float) -> Tensor:
    """lambda (||F(G(a)) - a||_1 + ||G(F(b)) - b||_1)."""
    return lam * (l1(rec_a, a) + l1(rec_b, b))


def identity_loss(
    a: Tensor, f_a: Tensor, b: Tensor, g_b: Tensor, lam: float, weight: float
) -> Tensor:
    """weight * lambda (||G(b) - b||_1 + ||F(a) - a||_1)."""
    return weight * lam * (l1(g_b, b) + l1(f_a, a))


# -- the image pool -------------------------------------------------------------------------------
class ImagePool(ImageStore):
    """A history of generated images (Shrivastava et al. 2017; CycleGAN's ImagePool).

    query(images) returns a batch of the same size, image by image in order: while the pool
    holds fewer than `size` images, the image is stored and returned; once it is full, one
    uniform u is drawn from the pool's own generator: if u > 0.5 an index j is drawn
    (uniform over the pool), the stored image j is returned and the new image takes its
    place; else the new image is returned and the pool is left as it is. size 0: no pool.
    The stored images and the generator's state are the pool's checkpoint state."""

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        images = images.detach()
        if self.size == 0:
            return images
        if self.images is None:
            self.images = images.new_zeros((self.size, *images.shape[1:]))
        out = []
        for image in images:
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                j = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[j].clone())
                self.images[j] = image
            else:
                out.append(image)
        return torch.stack(out)


# -- the method -----------------------------------------------------------------------------------
class CycleGANMethod(Method):
    evaluator = "translation"
    owns_lr_schedule = True

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        self.data = data = two_domains(data, "cyclegan")
        if data.shape_a != data.shape_b:
            raise ConfigError(
                f"data: cyclegan needs both domains of one shape, got A {data.shape_a} and "
                f"B {data.shape_b}"
            )
        opts = method_options(cfg)
        self.lam, self.identity = opts["lambda_cycle"], opts["identity"]
        self.fast = fast = FastMode.for_recipe(cfg, device)
        self.objective = objective = build_objective(cfg.objective)
        tricks_a, tricks_b = build_tricks(cfg, objective), build_tricks(cfg, objective)
        shape = data.shape_a
        G = build_translator(cfg.generator, shape, shape[0])
        Fn = build_translator(cfg.generator, shape, shape[0])
        D_A = build_discriminator(cfg.discriminator, shape)
        D_B = build_discriminator(cfg.discriminator, shape)
        sampler = wrap_generator(tricks_b, TranslationSampler(G, self.bank(data)), cfg)
        self.generator = fast.prepare(sampler.to(device))
        self.generator_ba = fast.prepare(wrap_generator(tricks_a, Fn, cfg).to(device))
        self.discriminator_a = fast.prepare(wrap_discriminator(tricks_a, D_A, cfg).to(device))
        self.discriminator_b = fast.prepare(wrap_discriminator(tricks_b, D_B, cfg).to(device))
        fused = fast.fused_optimizer
        generators = [self.generator, self.generator_ba]
        discriminators = [self.discriminator_a, self.discriminator_b]
        self.opt_g = build_optimizer(
            [p for m in generators for p in m.parameters()], cfg.optim.generator, fused
        )
        self.opt_d = build_optimizer(
            [p for m in discriminators for p in m.parameters()], cfg.optim.discriminator, fused
        )
        self.g_player = Player("generator", generators, self.opt_g, fast)
        self.d_player = Player("discriminator", discriminators, self.opt_d, fast)
        scale = paper_scales(objective)
        self.critic_a = Critic(
            cfg, objective, tricks_a, self.discriminator_a, self.d_player, fast, scale, "d_a"
        )
        self.critic_b = Critic(
            cfg, objective, tricks_b, self.discriminator_b, self.d_player, fast, scale, "d_b"
        )
        self.critic_b.attach(Pairing(cfg, device, self.generator, self.discriminator_b))
        self.critic_a.attach(
            Pairing(cfg, device, self.generator_ba, self.discriminator_a, seed_offset=100)
        )
        self.pool_a = ImagePool(opts["pool_size"], cfg.seed + 11)
        self.pool_b = ImagePool(opts["pool_size"], cfg.seed + 12)
        start, length = decay_window(cfg, opts["decay_start"], opts["decay_steps"])
        self.schedule = LinearDecay(self.optimizers(), start, length)
        self.batch_size = cfg.schedule.batch_size

    @staticmethod
    def bank(data) -> Tensor:
        x = data.images("a")[0]
        return sampler_bank(x[torch.arange(BANK) % len(x)])

    @classmethod
    def build_sampler(cls, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        """method.generator's module for loading a checkpoint (its bank comes from there)."""
        net = build_translator(cfg.generator, shape, shape[0])
        return TranslationSampler(net, torch.zeros(BANK, *shape))

    def modules(self) -> dict[str, nn.Module]:
        return {
            "generator": self.generator,
            "generator_ba": self.generator_ba,
            "discriminator_a": self.discriminator_a,
            "discriminator_b": self.discriminator_b,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        return {
            "fast": self.fast.state_dict(),
            "pool_a": self.pool_a.state_dict(),
            "pool_b": self.pool_b.state_dict(),
            "schedule": self.schedule.state_dict(),
            "tricks_a": self.critic_a.state_dict(),
            "tricks_b": self.critic_b.state_dict(),
        }

    def load_extra_state(self, state: dict) -> None:
        self.fast.load_state_dict(state.get("fast", {}))
        self.pool_a.load_state_dict(state["pool_a"], self.device)
        self.pool_b.load_state_dict(state["pool_b"], self.device)
        self.schedule.load_state_dict(state["schedule"])
        self.critic_a.load_state_dict(state.get("tricks_a", {}), self.device)
        self.critic_b.load_state_dict(state.get("tricks_b", {}), self.device)

    def generator_losses(self, a: Tensor, b: Tensor, step: int, logs: dict) -> dict[str, Tensor]:
        G, Fn = self.generator.net, self.generator_ba
        D_A, D_B = self.discriminator_a, self.discriminator_b
        ca, cb = self.critic_a, self.critic_b
        fake_b, fake_a = G(a), Fn(b)
        rec_a, rec_b = Fn(fake_b), G(fake_a)
        seen_b, seen_a = cb.perturb(fake_b, step), ca.perturb(fake_a, step)
        adv = cb.g_loss(D_B(seen_b).float()) + ca.g_loss(D_A(seen_a).float())
        cyc = cycle_loss(a, rec_a, b, rec_b, self.lam)
        if self.identity > 0:
            idt = identity_loss(a, Fn(a), b, G(b), self.lam, self.identity)
        else:
            idt = torch.zeros((), device=a.device)
        g_loss = adv + cyc + idt
        # the terms tricks and penalties add: D_B's for G (real b), D_A's for F (real a)
        g_loss = cb.g_terms(g_loss, logs, RegularizerContext(D_B, b, seen_b, step))
        g_loss = ca.g_terms(g_loss, logs, RegularizerContext(D_A, a, seen_a, step))
        return {
            "g_loss": g_loss,
            "adv": adv,
            "cycle": cyc,
            "identity": idt,
            "fake_a": fake_a,
            "fake_b": fake_b,
        }

    def critic_loss(self, critic: Critic, real: Tensor, fake: Tensor, step: int, logs) -> Tensor:
        """One discriminator's loss on a real batch and pooled fakes, with its penalties."""
        real, fake = critic.perturb(real, step), critic.perturb(fake, step)
        D = critic.discriminator
        loss = critic.d_loss(D(real).float(), D(fake).float())
        return critic.d_terms(loss, logs, RegularizerContext(D, real, fake, step))

    def train_step(self, step: int) -> dict[str, Tensor]:
        fast = self.fast
        self.schedule.apply(step)
        a, _ = self.data.batch_a(self.batch_size)
        b, _ = self.data.batch_b(self.batch_size)
        logs: dict[str, Tensor] = {}
        # G's step needs gradients through the discriminators, not for their weights
        with self.d_player.frozen():
            with fast.autocast():
                losses = self.generator_losses(a, b, step, logs)
            self.g_player.update(losses["g_loss"], logs, self.collect_stats)
            self.critic_a.after_generator_step()
            self.critic_b.after_generator_step()
        with fast.autocast():
            fake_b = self.pool_b.query(losses["fake_b"])
            fake_a = self.pool_a.query(losses["fake_a"])
            d_b = self.critic_loss(self.critic_b, b, fake_b, step, logs)
            d_a = self.critic_loss(self.critic_a, a, fake_a, step, logs)
            d_loss = d_a + d_b
        self.d_player.update(d_loss, logs, self.collect_stats)
        self.critic_a.after_step()
        self.critic_b.after_step()
        for key in ("g_loss", "adv", "cycle", "identity"):
            logs[key] = losses[key].detach()
        logs.update(
            d_loss=d_loss.detach(),
            d_a=d_a.detach(),
            d_b=d_b.detach(),
            lr=torch.tensor(self.opt_g.param_groups[0]["lr"], device=self.device),
        )
        return logs


@METHOD_OPTIONS.register("cyclegan")
def cyclegan_options(
    cfg,
    lambda_cycle: float = 10.0,
    identity: float = 0.5,
    pool_size: int = 50,
    decay_start: int | None = None,
    decay_steps: int | None = None,
) -> None:
    """lambda_cycle: weight of the cycle-consistency loss (paper: 10); identity: weight of the
    identity loss as a fraction of lambda_cycle (paper: 0.5; 0 turns it off); pool_size:
    generated images in each discriminator's history pool (paper: 50; 0: none); decay_start,
    decay_steps: the learning rates are constant for decay_start updates (default half of
    schedule.steps), then decay linearly toward 0 over decay_steps updates (default the rest);
    set both when a run may be extended with resume."""
    at_least(lambda_cycle, 0.0, "lambda_cycle")
    at_least(identity, 0.0, "identity")
    at_least(pool_size, 0, "pool_size")
    check_decay(decay_start, decay_steps)
    check_recipe(cfg, "cyclegan")
