"""Stabilization tricks by name: the switchboard a recipe's `tricks:` list is checked against.

A trick is a small object with hooks the training method calls at fixed points; every hook is a
no-op unless the trick overrides it, so tricks compose: any subset, with any objective and
model, unless a trick says at build time why a combination makes no sense (a ConfigError).

Hooks, in the order a training step meets them:
  wrap_generator / wrap_discriminator  when the players are built (also when a finished run's
                                       generator is rebuilt for sampling)
  attach(method)                       once the players and optimizers exist
  perturb(x, step)                     every input of the discriminator, real and fake
  d_loss(objective, d_real, d_fake)    may replace the objective's discriminator loss
  d_penalty(ctx) / g_penalty(ctx)      terms added to each player's loss (logged as
                                       trick/NAME/d and trick/NAME/g)
  after_step(player)                   after each optimizer step of that player
  state_dict / load_state_dict         whatever must survive a checkpoint

Under data-parallel training the trainer calls `shard(rank, world)` once: a trick that draws
per-sample random values draws them for the global batch with `draw_local` and keeps this
process's rows, so every process sees the values a single process would.
"""

from __future__ import annotations

from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.registry import Registry
from gankit.regularizers import RegularizerContext

TRICKS = Registry("trick")


class Trick:
    name: str = ""
    wrap_order: int = 0  # model changes apply in this order (layers before spectral norm)
    replaces_generator_loss: bool = False  # the adversarial G loss is dropped when used
    rank: int = 0  # this process's place in data-parallel training (see shard)
    world: int = 1

    def check(self, objective, cfg) -> None:
        """Raise ConfigError when this trick makes no sense with the objective or config."""

    def wrap_generator(self, generator: nn.Module, cfg) -> nn.Module:
        return generator

    def wrap_discriminator(self, discriminator: nn.Module, cfg) -> nn.Module:
        return discriminator

    def attach(self, method) -> None:
        pass

    @staticmethod
    def stream_seed(method, offset: int) -> int:
        """A seed for a trick's own random stream: the run's seed + offset, moved by the
        pairing's seed_offset where a method has several discriminators (methods/critic.py)."""
        return method.cfg.seed + offset + getattr(method, "seed_offset", 0)

    def perturb(self, x: Tensor, step: int) -> Tensor:
        return x

    def d_loss(self, objective, d_real: Tensor, d_fake: Tensor) -> Tensor | None:
        return None

    def d_penalty(self, ctx: RegularizerContext) -> Tensor | None:
        return None

    def g_penalty(self, ctx: RegularizerContext) -> Tensor | None:
        return None

    def after_step(self, player: str) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def shard(self, rank: int, world: int) -> None:
        """Data-parallel training: this process holds rows [rank * b, (rank + 1) * b) of each
        global batch of world * b rows."""
        self.rank, self.world = rank, world

    def draw_local(self, draw, shape: tuple[int, ...]) -> Tensor:
        """draw(shape) for this process's rows of a batch: draws the global batch (world times
        the rows of `shape`) and keeps this rank's slice, the values one process would draw."""
        if self.world == 1:
            return draw(tuple(shape))
        b = shape[0]
        return draw((b * self.world, *shape[1:]))[self.rank * b : (self.rank + 1) * b]


def build_tricks(cfg, objective=None) -> list[Trick]:
    """The tricks of a resolved config, checked against its objective and against each other."""
    tricks: list[Trick] = []
    for i, spec in enumerate(cfg.tricks):
        options = dict(spec)
        name = options.pop("name")
        where = f"tricks[{i}]"
        builder = TRICKS.get(name, where=f"{where}.name")
        trick = builder(**TRICKS.check_options(name, options, where))
        trick.name = name
        if any(t.name == name for t in tricks):
            raise ConfigError(f"{where}: {name} is listed twice; keep one entry")
        if objective is not None:
            trick.check(objective, cfg)
        tricks.append(trick)
    writers = [t.name for t in tricks if type(t).d_loss is not Trick.d_loss]
    if len(writers) > 1:
        raise ConfigError(f"tricks: {writers} each replace the discriminator loss; keep one")
    return tricks


def wrap_generator(tricks: list[Trick], generator: nn.Module, cfg) -> nn.Module:
    for trick in sorted(tricks, key=lambda t: t.wrap_order):
        generator = trick.wrap_generator(generator, cfg)
    return generator


def wrap_discriminator(tricks: list[Trick], discriminator: nn.Module, cfg) -> nn.Module:
    for trick in sorted(tricks, key=lambda t: t.wrap_order):
        discriminator = trick.wrap_discriminator(discriminator, cfg)
    return discriminator


from gankit.tricks import (  # noqa: E402,F401
    feature_matching,
    historical_averaging,
    instance_noise,
    label_smoothing,
    layers,
    spectral_norm,
)

__all__ = ["TRICKS", "Trick", "build_tricks", "wrap_discriminator", "wrap_generator"]
