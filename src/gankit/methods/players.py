"""The setup the methods with their own losses share (BEGAN, EBGAN, GMMN, MMD-GAN, MRGAN,
MDGAN, AdaGAN): the generator and (unless a method has none) the discriminator built from the
recipe with the tricks' changes to them, their optimizers, the discriminator's Critic (its
objective, tricks and penalties, methods/critic.py), the latent noise and fast mode, and the
checkpoint state of all of it. Each method keeps its own `train_step`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.data.base import DataSource
from gankit.methods.base import Method, Noise, build_optimizer
from gankit.methods.critic import Critic
from gankit.methods.fast import FastMode
from gankit.methods.player import Player
from gankit.models import build_discriminator, build_generator
from gankit.objectives import build_objective
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator, wrap_generator


class Players(Method):
    uses_discriminator = True
    critic: Critic | None = None  # the discriminator's, where the method has one

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        self.fast = fast = FastMode.for_recipe(cfg, device)
        self.objective = build_objective(cfg.objective)
        self.tricks = build_tricks(cfg, self.objective)
        fused = fast.fused_optimizer
        shape = tuple(data.shape)
        G = wrap_generator(self.tricks, self.make_generator(cfg, shape), cfg)
        self.generator = fast.prepare(G.to(device))
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        self.g_player = Player("generator", self.generator, self.opt_g, fast)
        if self.uses_discriminator:
            D = self.discriminator_with_tricks(cfg, shape).to(device)
            self.discriminator = fast.prepare(D)
            self.critic = Critic.with_optimizer(
                cfg, self.objective, self.tricks, self.discriminator, fast
            )
            self.opt_d = self.critic.optimizer
            self.critic.attach(self)
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        self.batch_size = cfg.schedule.batch_size

    def make_generator(self, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        """The generator before the tricks' changes (a method's own: MAD-GAN's mixture, a
        conditional G)."""
        return build_generator(cfg.generator, shape)

    def make_discriminator(self, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        """The discriminator before the tricks' changes (with a method's own head)."""
        return build_discriminator(cfg.discriminator, shape)

    def discriminator_with_tricks(self, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        """make_discriminator's D with the tricks' changes (a method whose head must sit
        between them overrides this)."""
        return wrap_discriminator(self.tricks, self.make_discriminator(cfg, shape), cfg)

    def modules(self) -> dict[str, nn.Module]:
        if not self.uses_discriminator:
            return {"generator": self.generator}
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if not self.uses_discriminator:
            return {"generator": self.opt_g}
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict:
        state = {"noise": self.noise.state_dict(), "fast": self.fast.state_dict()}
        if self.critic is not None:
            state["tricks"] = self.critic.state_dict()
        return state

    def load_extra_state(self, state: dict) -> None:
        self.noise.load_state_dict(state["noise"])
        self.fast.load_state_dict(state.get("fast", {}))
        if self.critic is not None:
            self.critic.load_state_dict(state.get("tricks", {}), self.device)

    def update(self, loss: Tensor, player: str, logs: dict[str, Tensor]) -> None:
        """One optimizer step of the player named `player` (a key of modules()) on `loss`
        (methods/player.py)."""
        module, opt = self.modules()[player], self.optimizers()[player]
        Player(player, module, opt, self.fast).update(loss, logs, self.collect_stats)
