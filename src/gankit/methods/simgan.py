"""SimGAN (Shrivastava et al. 2017, "Learning from Simulated and Unsupervised Images through
Adversarial Training").

A refiner R (the recipe's generator section: simgan_refiner, models/refiner.py, or an
image-to-image generator) maps a synthetic image x to a refined image R(x) of the same size; a
local discriminator D (the recipe's discriminator section, patchgan) scores every patch of an
image as real or refined, and every loss averages over the patches (the paper sums a per-patch
cross-entropy; the mean only rescales it). With ||.||_1 the mean absolute error over all entries:

    R:  adversarial loss of D(R(x)) (as real)  +  lambda ||R(x) - x||_1      (self-regularization)
    D:  loss of D(y) as real + loss of D(fake) as fake,   y real images (domain B)

with the recipe's objective (non_saturating, the paper's cross-entropy, or least_squares).
D's fake batch is half refined images of the current refiner and half images drawn from a
history buffer of earlier refined images (`HistoryBuffer`, Sec. 3.2), which is then updated.

Algorithm 1 with pre-training (Sec. 4.1: R on the self-regularization loss alone, then D):
step s (0-based) < pretrain_refiner: one R update on lambda ||R(x) - x||_1 only; then
pretrain_discriminator steps of one D update each; afterwards every step makes
refiner_updates (K_g) R updates, then discriminator_updates (K_d) D updates, each on a fresh
synthetic batch. `method.generator` is the TranslationSampler of R (synthetic, refined) pairs.

Data: two domains (data/domains.py), A synthetic, B real: `rendered_digits` (font-rendered
digits vs. scikit-learn digits), or any unpaired pair. Logged: d_loss, g_loss (R's total),
adv, self_reg (the unweighted L1), phase (0 R pre-training, 1 D pre-training, 2 adversarial).

Tricks and penalties attach to D (methods/critic.py). The refiner's steps come before D's in a
step, so a refiner-side term that looks at real data (feature matching) gets a real batch of
its own, drawn only when the recipe has such a term.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.base import Method, build_optimizer
from gankit.methods.critic import Critic
from gankit.methods.cyclegan import l1
from gankit.methods.fast import FastMode
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    method_options,
    no_compile,
    one_critic_step,
)
from gankit.methods.player import Player
from gankit.methods.translation import (
    BANK,
    PAPER_OBJECTIVES,
    ImageStore,
    TranslationSampler,
    sampler_bank,
    two_domains,
)
from gankit.models import build_discriminator
from gankit.models.refiner import build_refiner
from gankit.objectives import build_objective
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator, wrap_generator


class HistoryBuffer(ImageStore):
    """SimGAN's buffer of refined images (Sec. 3.2), of fixed capacity `size`.

    sample(k): k images drawn uniformly without replacement from the stored ones (all of them
    when fewer than k are stored; none while empty), in the order drawn.
    push(images): while the buffer has room, images are appended in order; once it is full, each
    remaining image replaces a stored one, at slots drawn uniformly without replacement from the
    whole buffer ("randomly replace b/2 samples in the buffer with the newly generated refined
    images"). Draws come from the buffer's own CPU generator; the stored images, their count and
    the generator state are its checkpoint state."""

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def sample(self, k: int) -> Tensor | None:
        if self.count == 0 or k <= 0:
            return None
        k = min(k, self.count)
        idx = torch.randperm(self.count, generator=self.generator)[:k]
        return self.images[idx.to(self.images.device)].clone()

    @torch.no_grad()
    def push(self, images: Tensor) -> None:
        images = images.detach()
        if self.size == 0 or len(images) == 0:
            return
        if self.images is None:
            self.images = images.new_zeros((self.size, *images.shape[1:]))
        room = min(self.size - self.count, len(images))
        if room:
            self.images[self.count : self.count + room] = images[:room]
            self.count += room
        rest = images[room:][: self.size]
        if len(rest):
            slots = torch.randperm(self.size, generator=self.generator)[: len(rest)]
            self.images[slots.to(self.images.device)] = rest


def discriminator_fakes(refined: Tensor, buffer: HistoryBuffer) -> Tensor:
    """D's fake batch of b images: the first b - k current refined images and k = b // 2 from
    the buffer (fewer while it holds fewer), then the buffer takes the current half pushed."""
    b = len(refined)
    history = buffer.sample(b // 2)
    k = 0 if history is None else len(history)
    current = refined[: b - k].detach()
    buffer.push(current[: b // 2])
    return current if history is None else torch.cat([current, history.to(current.dtype)])


class SimGANMethod(Method):
    evaluator = "refinement"

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        self.data = data = two_domains(data, "simgan")
        if data.shape_a != data.shape_b:
            raise ConfigError(
                f"data: simgan needs synthetic and real images of one shape, got A "
                f"{data.shape_a} and B {data.shape_b}"
            )
        opts = method_options(cfg)
        self.lam = opts["self_reg"]
        self.k_g, self.k_d = opts["refiner_updates"], opts["discriminator_updates"]
        self.pre_r, self.pre_d = opts["pretrain_refiner"], opts["pretrain_discriminator"]
        self.fast = fast = FastMode.for_recipe(cfg, device)
        self.objective = build_objective(cfg.objective)
        self.tricks = tricks = build_tricks(cfg, self.objective)
        shape = data.shape_a
        R = build_refiner(cfg.generator, shape)
        source = data.images("a")[0]
        bank = sampler_bank(source[torch.arange(BANK) % len(source)])
        sampler = wrap_generator(tricks, TranslationSampler(R, bank), cfg)
        self.generator = fast.prepare(sampler.to(device))
        D = wrap_discriminator(tricks, build_discriminator(cfg.discriminator, shape), cfg)
        self.discriminator = fast.prepare(D.to(device))
        fused = fast.fused_optimizer
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        self.g_player = Player("generator", self.generator, self.opt_g, fast)
        self.critic = Critic.with_optimizer(cfg, self.objective, tricks, self.discriminator, fast)
        self.opt_d = self.critic.optimizer
        self.buffer = HistoryBuffer(opts["buffer_size"], cfg.seed + 13)
        self.batch_size = cfg.schedule.batch_size
        self.critic.attach(self)

    @classmethod
    def build_sampler(cls, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        return TranslationSampler(build_refiner(cfg.generator, shape), torch.zeros(BANK, *shape))

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        return {
            "fast": self.fast.state_dict(),
            "buffer": self.buffer.state_dict(),
            "tricks": self.critic.state_dict(),
        }

    def load_extra_state(self, state: dict) -> None:
        self.fast.load_state_dict(state.get("fast", {}))
        self.buffer.load_state_dict(state["buffer"], self.device)
        self.critic.load_state_dict(state.get("tricks", {}), self.device)

    def phase(self, step: int) -> int:
        """0: refiner pre-training, 1: discriminator pre-training, 2: adversarial training."""
        if step < self.pre_r:
            return 0
        return 1 if step < self.pre_r + self.pre_d else 2

    def refiner_step(self, adversarial: bool, step: int, logs: dict) -> None:
        R, D, fast, critic = self.generator.net, self.discriminator, self.fast, self.critic
        x, _ = self.data.batch_a(self.batch_size)
        real = None
        if adversarial and critic.has_generator_terms:
            real = critic.perturb(self.data.batch_b(self.batch_size)[0], step)
        with critic.frozen():  # R's step needs gradients through D, not for D's weights
            with fast.autocast():
                refined = R(x)
                reg = l1(refined, x)
                if adversarial:
                    seen = critic.perturb(refined, step)
                    adv = critic.g_loss(D(seen).float())
                else:
                    adv = torch.zeros((), device=x.device)
                loss = adv + self.lam * reg
                if adversarial:
                    loss = critic.g_terms(loss, logs, RegularizerContext(D, real, seen, step))
            self.g_player.update(loss, logs, self.collect_stats)
            if adversarial:
                critic.after_generator_step()
        logs.update(g_loss=loss.detach(), adv=adv.detach(), self_reg=reg.detach())

    def discriminator_step(self, step: int, logs: dict) -> None:
        R, D, fast, critic = self.generator.net, self.discriminator, self.fast, self.critic
        x, _ = self.data.batch_a(self.batch_size)
        y, _ = self.data.batch_b(self.batch_size)
        with fast.autocast():
            with torch.no_grad():
                refined = R(x)
            fake = critic.perturb(discriminator_fakes(refined, self.buffer), step)
            y = critic.perturb(y, step)
            d_loss = critic.d_loss(D(y).float(), D(fake).float())
            d_loss = critic.d_terms(d_loss, logs, RegularizerContext(D, y, fake, step))
        critic.step(d_loss, logs, self.collect_stats)
        logs["d_loss"] = d_loss.detach()

    def train_step(self, step: int) -> dict[str, Tensor]:
        phase = self.phase(step)
        logs: dict[str, Tensor] = {}
        if phase == 0:
            self.refiner_step(False, step, logs)
        elif phase == 1:
            self.discriminator_step(step, logs)
        else:
            for _ in range(self.k_g):
                self.refiner_step(True, step, logs)
            for _ in range(self.k_d):
                self.discriminator_step(step, logs)
        zero = torch.zeros((), device=self.device)
        for key in ("d_loss", "g_loss", "adv", "self_reg"):
            logs.setdefault(key, zero)
        logs["phase"] = torch.tensor(float(phase), device=self.device)
        return logs


@METHOD_OPTIONS.register("simgan")
def simgan_options(
    cfg,
    self_reg: float = 0.5,
    buffer_size: int = 512,
    refiner_updates: int = 2,
    discriminator_updates: int = 1,
    pretrain_refiner: int = 500,
    pretrain_discriminator: int = 100,
) -> None:
    """self_reg: lambda, the weight of the L1 self-regularization ||R(x) - x||_1 (a mean over
    pixels; gankit's default); buffer_size: refined images in D's history buffer (0: none, D
    sees only the current refiner); refiner_updates, discriminator_updates: K_g and K_d of
    Algorithm 1 per step; pretrain_refiner, pretrain_discriminator: steps of refiner
    pre-training (self-regularization only) and then of discriminator pre-training (the paper:
    1,000 and 200) before the adversarial steps."""
    at_least(self_reg, 0.0, "self_reg")
    at_least(buffer_size, 0, "buffer_size")
    at_least(refiner_updates, 1, "refiner_updates")
    at_least(discriminator_updates, 1, "discriminator_updates")
    at_least(pretrain_refiner, 0, "pretrain_refiner")
    at_least(pretrain_discriminator, 0, "pretrain_discriminator")
    if cfg.discriminator["name"] != "patchgan":
        raise ConfigError(
            "discriminator.name: method 'simgan' uses a local (patch) discriminator (patchgan), "
            f"got {cfg.discriminator['name']!r}"
        )
    if cfg.objective["name"] not in PAPER_OBJECTIVES:
        raise ConfigError(
            f"objective.name: method 'simgan' supports {', '.join(PAPER_OBJECTIVES)}, got "
            f"{cfg.objective['name']!r}"
        )
    if cfg.data["name"] not in ("rendered_digits", "unpaired", "transformed", "class_domains"):
        raise ConfigError(
            "data.name: method 'simgan' needs synthetic (A) and real (B) domains, e.g. "
            f"{{name: rendered_digits}}, got {cfg.data['name']!r}"
        )
    if any(t["name"] == "virtual_batch_norm" for t in cfg.tricks):
        raise ConfigError(
            "tricks: virtual_batch_norm does not apply to method 'simgan': its refiner "
            "translates images and has no latent noise to draw a reference batch from"
        )
    one_critic_step(cfg, "simgan")
    no_compile(cfg, "simgan")
