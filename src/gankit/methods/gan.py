"""The classic GAN step: n_critic discriminator steps, then one generator step.

`method_options.updates` says where the generator's gradient is taken. `alternating` (the
default, Goodfellow et al.'s Algorithm 1): against the discriminator its step just updated.
`simultaneous`: both players' gradients at the same point (theta_G, theta_D), as the
reference code of ALI and PacGAN trains (one gradient pass, both optimizers step). It is run as
the generator's step first, against the D of this step, then D's last step on the same fake
batch (detached, so the generator's step does not change it): the same updates.

The fake batch of the last discriminator step is generated with gradients on and reused for the
generator step (as in PyTorch's DCGAN example): one generator forward pass per step saved.

Statistics for the log: D's mean raw scores on real and fake batches (d_real, d_fake) and, for
the objectives whose scores are logits of P(real) (minimax, non-saturating), the mean
probabilities p_real and p_fake. On the trainer's log steps (`collect_stats`) also each
player's gradient norm (the L2 norm over all its parameters' gradients after backward of its
full loss: objective, regularizers and tricks) and D's `d_separation` (see `separation`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.data.base import DataSource
from gankit.methods.base import Method, Noise, build_optimizer
from gankit.methods.critic import Critic
from gankit.methods.fast import FastMode
from gankit.methods.options import method_options
from gankit.methods.player import Player
from gankit.models import build_discriminator, build_generator
from gankit.objectives import build_objective
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator, wrap_generator

# Objectives whose discriminator scores are logits of P(real): sigmoid(score) is a probability.
# Least squares also trains toward targets, but its scores are not logits.
PROBABILISTIC = ("minimax", "non_saturating")


class GANMethod(Method):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        self.objective = build_objective(cfg.objective)
        self.tricks = build_tricks(cfg, self.objective)
        self.fast = fast = FastMode.for_recipe(cfg, device)
        generator = wrap_generator(self.tricks, build_generator(cfg.generator, data.shape), cfg)
        self.generator = fast.prepare(generator.to(device))
        fused = fast.fused_optimizer
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        self.g_player = Player("generator", self.generator, self.opt_g, fast)
        self.build_critic(cfg, self.discriminator_shape(tuple(data.shape)))
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        self.batch_size = cfg.schedule.batch_size
        self.n_critic = cfg.schedule.n_critic
        self.probabilistic = self.objective.name in PROBABILISTIC
        self.real: Tensor | None = None  # the real batch of the last discriminator step
        # methods built on this one without the option (unrolled) take their own steps
        self.simultaneous = method_options(cfg).get("updates") == "simultaneous"
        self.critic.attach(self)

    def discriminator_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape D takes (PacGAN: a pack of samples)."""
        return shape

    def build_critic(self, cfg: RunConfig, shape: tuple[int, ...]) -> None:
        """D from the recipe, the tricks' changes to it, its optimizer, penalties and compiled
        forward passes (fast.compile; tricks, penalties, checkpoints and sampling use the
        modules themselves, whose parameters the compiled versions share)."""
        fast = self.fast
        discriminator = build_discriminator(cfg.discriminator, shape)
        discriminator = wrap_discriminator(self.tricks, discriminator, cfg).to(self.device)
        self.discriminator = fast.prepare(discriminator)
        self.critic = Critic.with_optimizer(
            cfg, self.objective, self.tricks, self.discriminator, fast
        )
        self.opt_d = self.critic.optimizer
        self._compiled = {
            "G": fast.compiled(self.generator),
            "D": fast.compiled(self.discriminator),
        }

    @property
    def G_fwd(self) -> nn.Module:
        """The generator for the step's forward passes."""
        compiled = self._compiled["G"]
        return self.generator if compiled is None else compiled

    @property
    def D_fwd(self) -> nn.Module:
        compiled = self._compiled["D"]
        return self.discriminator if compiled is None else compiled

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        tricks = self.critic.state_dict()
        return {"noise": self.noise.state_dict(), "tricks": tricks, "fast": self.fast.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.noise.load_state_dict(state["noise"])
        self.fast.load_state_dict(state.get("fast", {}))
        self.critic.load_state_dict(state.get("tricks", {}), self.device)

    def perturb(self, x: Tensor, step: int) -> Tensor:
        """What the discriminator sees of a batch (instance noise, ...)."""
        return self.critic.perturb(x, step)

    def real_batch(self, step: int) -> Tensor:
        """A real batch as D sees it (perturbed), kept in self.real for the generator's terms."""
        real, _ = self.data.batch(self.batch_size)
        self.real = self.perturb(real, step)
        return self.real

    def generate(self, n: int) -> Tensor:
        """n fake samples from the generator's forward pass (PacGAN may split the call)."""
        return self.G_fwd(self.noise(n))

    def discriminator_step(
        self, step: int, fake: Tensor, real: Tensor | None = None
    ) -> dict[str, Tensor]:
        """One D step on `fake` (detached here) and `real` (perturbed; drawn when None)."""
        critic, fast = self.critic, self.fast
        real = self.real_batch(step) if real is None else real
        fake = self.perturb(fake.detach(), step)
        with fast.autocast():
            # separate passes: BatchNorm sees each batch alone; scores and losses in fp32
            d_real, d_fake = self.D_fwd(real).float(), self.D_fwd(fake).float()
            d_loss = critic.d_loss(d_real, d_fake)
            logs = {"d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}
            if self.probabilistic:
                logs["p_real"] = torch.sigmoid(d_real.detach()).mean()
                logs["p_fake"] = torch.sigmoid(d_fake.detach()).mean()
            ctx = RegularizerContext(self.discriminator, real, fake, step)
            d_loss = critic.d_terms(d_loss, logs, ctx)
        if self.collect_stats:
            logs["d_separation"] = separation(d_real.detach(), d_fake.detach())
        critic.step(d_loss, logs, self.collect_stats)
        logs["d_loss"] = d_loss.detach()
        return logs

    def generator_step(self, step: int, fake: Tensor) -> Tensor:
        critic, fast = self.critic, self.fast
        with critic.frozen():  # G's step needs gradients through D, not for D's weights
            with fast.autocast():
                fake = self.perturb(fake, step)
                g_loss = critic.g_loss(self.D_fwd(fake).float())
                logs: dict[str, Tensor] = {}
                ctx = RegularizerContext(self.discriminator, self.real, fake, step)
                g_loss = critic.g_terms(g_loss, logs, ctx)
            self.g_player.update(g_loss, logs, self.collect_stats)
            critic.after_generator_step()
        logs["g_loss"] = g_loss.detach()
        return logs

    def train_step(self, step: int) -> dict[str, Tensor]:
        for i in range(self.n_critic):
            last = i == self.n_critic - 1  # its fake batch is kept for the generator step
            with torch.set_grad_enabled(last), self.fast.autocast():
                fake = self.generate(self.batch_size)
            if last and self.simultaneous:
                real = self.real_batch(step)  # drawn first: the generator's terms may use it
                g_logs = self.generator_step(step, fake)
                logs = self.discriminator_step(step, fake, real)
                logs.update(g_logs)
                return logs
            logs = self.discriminator_step(step, fake)
        logs.update(self.generator_step(step, fake))
        return logs


def separation(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """How many standard deviations apart D puts real and fake scores (signal detection's d'):
    (mean D(x) - mean D(G(z))) / sqrt((var D(x) + var D(G(z))) / 2). Scale-free, so it reads the
    same for every objective; above ~5 the two score distributions barely overlap."""
    pooled = (d_real.float().var(unbiased=False) + d_fake.float().var(unbiased=False)) / 2
    return (d_real.float().mean() - d_fake.float().mean()) / torch.sqrt(pooled + 1e-12)
