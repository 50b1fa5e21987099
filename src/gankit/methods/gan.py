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

import dataclasses

import torch
from torch import Tensor, nn

from gankit.config import RunConfig
from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.base import Method, Noise, build_optimizer
from gankit.methods.options import method_options
from gankit.models import build_discriminator, build_generator
from gankit.objectives import build_objective
from gankit.regularizers import RegularizerContext, build_regularizer
from gankit.training.fast import FastMode
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
        discriminator = build_discriminator(cfg.discriminator, data.shape)
        self.generator = fast.prepare(generator.to(device))
        discriminator = wrap_discriminator(self.tricks, discriminator, cfg).to(device)
        self.discriminator = fast.prepare(discriminator)
        specs = [*self.objective.regularizers, *cfg.regularizers]
        regularizers = [
            build_regularizer(spec, f"regularizers[{i}]") for i, spec in enumerate(specs)
        ]
        if fast.compile and any(r.double_backward for r in regularizers):
            raise ConfigError(
                "fast.compile: torch.compile cannot differentiate twice, which the gradient "
                "penalties in this recipe do; set fast.compile=false"
            )
        self.d_regularizers = [r for r in regularizers if r.player == "d"]
        self.g_regularizers = [r for r in regularizers if r.player == "g"]
        fused = fast.fused_optimizer
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        self.opt_d = build_optimizer(
            self.discriminator.parameters(), cfg.optim.discriminator, fused
        )
        # compiled versions for the step's forward passes (fast.compile); tricks, penalties,
        # checkpoints and sampling use the modules themselves (the parameters are shared)
        self._compiled = {
            "G": fast.compiled(self.generator),
            "D": fast.compiled(self.discriminator),
        }
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        self.batch_size = cfg.schedule.batch_size
        self.n_critic = cfg.schedule.n_critic
        self.adversarial_g_loss = not any(t.replaces_generator_loss for t in self.tricks)
        self.probabilistic = self.objective.name in PROBABILISTIC
        self.real: Tensor | None = None  # the real batch of the last discriminator step
        # methods built on this one without the option (unrolled) take their own steps
        self.simultaneous = method_options(cfg).get("updates") == "simultaneous"
        for trick in self.tricks:
            trick.attach(self)

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
        tricks = {t.name: t.state_dict() for t in self.tricks}
        return {"noise": self.noise.state_dict(), "tricks": tricks, "fast": self.fast.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.noise.load_state_dict(state["noise"])
        self.fast.load_state_dict(state.get("fast", {}))
        saved = state.get("tricks", {})
        for trick in self.tricks:
            if saved.get(trick.name):
                trick.load_state_dict(_to_device(saved[trick.name], self.device))

    def perturb(self, x: Tensor, step: int) -> Tensor:
        """What the discriminator sees of a batch (instance noise, ...)."""
        for trick in self.tricks:
            x = trick.perturb(x, step)
        return x

    def _add_terms(self, loss, logs, ctx, regularizers, player):
        exact = None  # the context in fp32, for penalties that differentiate D's gradient
        for reg in regularizers:
            if reg.active(ctx.step):
                if reg.double_backward:
                    # under bf16 autocast their parameter gradients were off by up to 11% of
                    # the largest entry (tests/training/test_fast.py): run them in fp32
                    if exact is None:
                        exact = dataclasses.replace(
                            ctx, real=ctx.real.float(), fake=ctx.fake.float()
                        )
                    with self.fast.full_precision():
                        term = reg(exact)
                else:
                    term = reg(ctx)
                logs[f"reg/{type(reg).__name__}"] = term.detach()
                loss = loss + term
        for trick in self.tricks:
            term = trick.d_penalty(ctx) if player == "d" else trick.g_penalty(ctx)
            if term is not None:
                # per player: a trick may add a term to both losses (historical averaging)
                logs[f"trick/{trick.name}/{player}"] = term.detach()
                loss = loss + term
        return loss

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
        D, fast = self.discriminator, self.fast
        real = self.real_batch(step) if real is None else real
        fake = self.perturb(fake.detach(), step)
        with fast.autocast():
            # separate passes: BatchNorm sees each batch alone; scores and losses in fp32
            d_real, d_fake = self.D_fwd(real).float(), self.D_fwd(fake).float()
            d_loss = None
            for trick in self.tricks:
                if d_loss is None:
                    d_loss = trick.d_loss(self.objective, d_real, d_fake)
            if d_loss is None:
                d_loss = self.objective.d_loss(d_real, d_fake)
            logs = {"d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}
            if self.probabilistic:
                logs["p_real"] = torch.sigmoid(d_real.detach()).mean()
                logs["p_fake"] = torch.sigmoid(d_fake.detach()).mean()
            ctx = RegularizerContext(D, real, fake, step)
            d_loss = self._add_terms(d_loss, logs, ctx, self.d_regularizers, "d")
        self.opt_d.zero_grad(set_to_none=True)
        fast.backward(d_loss)
        if self.collect_stats:
            fast.unscale(self.opt_d)
            logs["grad_norm/discriminator"] = grad_norm(D)
            logs["d_separation"] = separation(d_real.detach(), d_fake.detach())
        fast.step(self.opt_d)
        if self.objective.weight_clip is not None:
            clip = self.objective.weight_clip
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-clip, clip)
        for trick in self.tricks:  # after clipping: tricks see the parameters D will use
            trick.after_step("d")
        logs["d_loss"] = d_loss.detach()
        return logs

    def generator_step(self, step: int, fake: Tensor) -> Tensor:
        D, fast = self.discriminator, self.fast
        D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        try:
            with fast.autocast():
                fake = self.perturb(fake, step)
                if self.adversarial_g_loss:
                    g_loss = self.objective.g_loss(self.D_fwd(fake).float())
                else:
                    g_loss = torch.zeros((), device=fake.device)
                logs: dict[str, Tensor] = {}
                ctx = RegularizerContext(D, self.real, fake, step)
                g_loss = self._add_terms(g_loss, logs, ctx, self.g_regularizers, "g")
            self.opt_g.zero_grad(set_to_none=True)
            fast.backward(g_loss)
            if self.collect_stats:
                fast.unscale(self.opt_g)
                logs["grad_norm/generator"] = grad_norm(self.generator)
            fast.step(self.opt_g)
            for trick in self.tricks:
                trick.after_step("g")
        finally:
            D.requires_grad_(True)
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


def grad_norm(module: nn.Module) -> Tensor:
    """sqrt(sum of squared gradient entries) over all parameters, as a 0-d tensor on the device
    (no host sync: the trainer reads it with the losses)."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=next(module.parameters()).device)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def separation(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """How many standard deviations apart D puts real and fake scores (signal detection's d'):
    (mean D(x) - mean D(G(z))) / sqrt((var D(x) + var D(G(z))) / 2). Scale-free, so it reads the
    same for every objective; above ~5 the two score distributions barely overlap."""
    pooled = (d_real.float().var(unbiased=False) + d_fake.float().var(unbiased=False)) / 2
    return (d_real.float().mean() - d_fake.float().mean()) / torch.sqrt(pooled + 1e-12)


def _to_device(state, device: torch.device):
    """Checkpointed tensors come back on the CPU; a trick's state lives with the model."""
    if isinstance(state, Tensor):
        return state if state.dtype == torch.uint8 else state.to(device)
    if isinstance(state, dict):
        return {k: _to_device(v, device) for k, v in state.items()}
    if isinstance(state, list):
        return [_to_device(v, device) for v in state]
    return state
