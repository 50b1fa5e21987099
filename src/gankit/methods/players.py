"""The setup the methods with their own losses share (BEGAN, EBGAN, GMMN, MMD-GAN): the
generator and (unless a method has none) the discriminator built from the recipe, their
optimizers, the latent noise and fast mode, and the checkpoint state of all of it. Each method
keeps its own `train_step`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.config import RunConfig
from gankit.data.base import DataSource
from gankit.methods.base import Method, Noise, build_optimizer
from gankit.methods.player import grad_norm
from gankit.models import build_discriminator, build_generator
from gankit.training.fast import FastMode


class Players(Method):
    uses_discriminator = True

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        self.fast = fast = FastMode.for_recipe(cfg, device)
        fused = fast.fused_optimizer
        self.generator = fast.prepare(build_generator(cfg.generator, data.shape).to(device))
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        if self.uses_discriminator:
            D = build_discriminator(cfg.discriminator, data.shape).to(device)
            self.discriminator = fast.prepare(D)
            self.opt_d = build_optimizer(D.parameters(), cfg.optim.discriminator, fused)
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        self.batch_size = cfg.schedule.batch_size

    def modules(self) -> dict[str, nn.Module]:
        if not self.uses_discriminator:
            return {"generator": self.generator}
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if not self.uses_discriminator:
            return {"generator": self.opt_g}
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        return {"noise": self.noise.state_dict(), "fast": self.fast.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.noise.load_state_dict(state["noise"])
        self.fast.load_state_dict(state.get("fast", {}))

    def update(self, loss: Tensor, player: str, logs: dict[str, Tensor]) -> None:
        """Backward of `loss` into `player`'s parameters only ("generator" or "discriminator";
        the other player's gradients are left alone) and one step of its optimizer; its
        gradient norm is logged on the trainer's log steps."""
        module, opt = self.modules()[player], self.optimizers()[player]
        opt.zero_grad(set_to_none=True)
        scaled = loss if self.fast.scaler is None else self.fast.scaler.scale(loss)
        scaled.backward(inputs=list(module.parameters()))
        if self.collect_stats:
            self.fast.unscale(opt)
            logs[f"grad_norm/{player}"] = grad_norm(module)
        self.fast.step(opt)
