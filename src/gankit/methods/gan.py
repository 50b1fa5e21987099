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


class GANMethod(Method):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        self.generator = build_generator(cfg.generator, data.shape).to(device)
        self.discriminator = build_discriminator(cfg.discriminator, data.shape).to(device)
        self.objective = build_objective(cfg.objective)
        specs = [*self.objective.regularizers, *cfg.regularizers]
        self.regularizers = [
            build_regularizer(spec, f"regularizers[{i}]") for i, spec in enumerate(specs)
        ]
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator)
        self.opt_d = build_optimizer(self.discriminator.parameters(), cfg.optim.discriminator)
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        self.batch_size = cfg.schedule.batch_size
        self.n_critic = cfg.schedule.n_critic

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        return {"noise": self.noise.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.noise.load_state_dict(state["noise"])

    def discriminator_step(self, step: int, fake: Tensor) -> dict[str, Tensor]:
        D = self.discriminator
        real, _ = self.data.batch(self.batch_size)
        fake = fake.detach()
        d_real, d_fake = D(real), D(fake)  # separate passes: BatchNorm sees each batch alone
        d_loss = self.objective.d_loss(d_real, d_fake)
        logs = {"d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}
        ctx = RegularizerContext(D, real, fake, step)
        for reg in self.regularizers:
            if reg.active(step):
                term = reg(ctx)
                logs[f"reg/{type(reg).__name__}"] = term.detach()
                d_loss = d_loss + term
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        if self.objective.weight_clip is not None:
            clip = self.objective.weight_clip
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-clip, clip)
        logs["d_loss"] = d_loss.detach()
        return logs

    def generator_step(self, fake: Tensor) -> Tensor:
        D = self.discriminator
        D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        try:
            g_loss = self.objective.g_loss(D(fake))
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
        finally:
            D.requires_grad_(True)
        return g_loss.detach()

    def train_step(self, step: int) -> dict[str, Tensor]:
        G = self.generator
        for i in range(self.n_critic):
            if i < self.n_critic - 1:
                with torch.no_grad():
                    fake = G(self.noise(self.batch_size))
            else:
                fake = G(self.noise(self.batch_size))  # kept for the generator step
            logs = self.discriminator_step(step, fake)
        logs["g_loss"] = self.generator_step(fake)
        return logs
