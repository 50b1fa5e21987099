"""The classic alternating GAN step: n_critic discriminator steps, then one generator step.

The fake batch of the last discriminator step is generated with gradients on and reused for the
generator step (as in PyTorch's DCGAN example): one generator forward pass per step saved.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.config import RunConfig
from gankit.data.base import DataSource
from gankit.methods.base import Method, Noise, build_optimizer
from gankit.models import build_discriminator, build_generator
from gankit.objectives import build_objective
from gankit.regularizers import RegularizerContext, build_regularizer
from gankit.tricks import build_tricks, wrap_discriminator, wrap_generator


class GANMethod(Method):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        self.objective = build_objective(cfg.objective)
        self.tricks = build_tricks(cfg, self.objective)
        generator = wrap_generator(self.tricks, build_generator(cfg.generator, data.shape), cfg)
        discriminator = build_discriminator(cfg.discriminator, data.shape)
        self.generator = generator.to(device)
        self.discriminator = wrap_discriminator(self.tricks, discriminator, cfg).to(device)
        specs = [*self.objective.regularizers, *cfg.regularizers]
        regularizers = [
            build_regularizer(spec, f"regularizers[{i}]") for i, spec in enumerate(specs)
        ]
        self.d_regularizers = [r for r in regularizers if r.player == "d"]
        self.g_regularizers = [r for r in regularizers if r.player == "g"]
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator)
        self.opt_d = build_optimizer(self.discriminator.parameters(), cfg.optim.discriminator)
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        self.batch_size = cfg.schedule.batch_size
        self.n_critic = cfg.schedule.n_critic
        self.adversarial_g_loss = not any(t.replaces_generator_loss for t in self.tricks)
        self.real: Tensor | None = None  # the real batch of the last discriminator step
        for trick in self.tricks:
            trick.attach(self)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        tricks = {t.name: t.state_dict() for t in self.tricks}
        return {"noise": self.noise.state_dict(), "tricks": tricks}

    def load_extra_state(self, state: dict) -> None:
        self.noise.load_state_dict(state["noise"])
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
        for reg in regularizers:
            if reg.active(ctx.step):
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

    def discriminator_step(self, step: int, fake: Tensor) -> dict[str, Tensor]:
        D = self.discriminator
        real, _ = self.data.batch(self.batch_size)
        real, fake = self.perturb(real, step), self.perturb(fake.detach(), step)
        self.real = real
        d_real, d_fake = D(real), D(fake)  # separate passes: BatchNorm sees each batch alone
        d_loss = None
        for trick in self.tricks:
            d_loss = trick.d_loss(self.objective, d_real, d_fake) if d_loss is None else d_loss
        if d_loss is None:
            d_loss = self.objective.d_loss(d_real, d_fake)
        logs = {"d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}
        ctx = RegularizerContext(D, real, fake, step)
        d_loss = self._add_terms(d_loss, logs, ctx, self.d_regularizers, "d")
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
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
        D = self.discriminator
        D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        try:
            fake = self.perturb(fake, step)
            if self.adversarial_g_loss:
                g_loss = self.objective.g_loss(D(fake))
            else:
                g_loss = torch.zeros((), device=fake.device)
            logs: dict[str, Tensor] = {}
            ctx = RegularizerContext(D, self.real, fake, step)
            g_loss = self._add_terms(g_loss, logs, ctx, self.g_regularizers, "g")
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
            for trick in self.tricks:
                trick.after_step("g")
        finally:
            D.requires_grad_(True)
        logs["g_loss"] = g_loss.detach()
        return logs

    def train_step(self, step: int) -> dict[str, Tensor]:
        G = self.generator
        for i in range(self.n_critic):
            if i < self.n_critic - 1:
                with torch.no_grad():
                    fake = G(self.noise(self.batch_size))
            else:
                fake = G(self.noise(self.batch_size))  # kept for the generator step
            logs = self.discriminator_step(step, fake)
        logs.update(self.generator_step(step, fake))
        return logs


def _to_device(state, device: torch.device):
    """Checkpointed tensors come back on the CPU; a trick's state lives with the model."""
    if isinstance(state, Tensor):
        return state if state.dtype == torch.uint8 else state.to(device)
    if isinstance(state, dict):
        return {k: _to_device(v, device) for k, v in state.items()}
    if isinstance(state, list):
        return [_to_device(v, device) for v in state]
    return state
