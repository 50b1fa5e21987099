"""A discriminator player with everything a recipe attaches to it: the objective, the tricks
(`tricks:`) and the penalties (`regularizers:` and those the objective implies).

Every method that trains a discriminator against a generator holds one `Critic` per
discriminator (CycleGAN two, LAPGAN one per level) and calls it at the same points of its
`train_step`, so every trick and penalty runs under every such method without the method
knowing them:

    real, fake = critic.perturb(real, step), critic.perturb(fake, step)   # instance noise
    d_loss = critic.d_loss(D(real), D(fake))          # the objective, or label smoothing's
    d_loss = critic.d_terms(d_loss, logs, ctx)        # R1, WGAN-GP, DRAGAN, trick terms
    critic.step(d_loss, logs, collect_stats)          # update, then critic.after_step():
                                                      # weight clip, the tricks' hooks
    with critic.frozen():
        g_loss = critic.g_loss(D(fake))               # dropped by feature matching
        g_loss = critic.g_terms(g_loss, logs, ctx)    # feature matching, pull-away, HA
    ...generator update...; critic.after_generator_step()

`scale` (d, g) multiplies the objective's losses: the image-to-image papers halve D's loss
(methods/translation.py `paper_scales`). A method whose discriminator is not a plain scorer
hands the penalties a view of it in their RegularizerContext, a module x -> D's real/fake
score of x: `ScoreOf` (ACGAN's source logit, a conditional D at given labels, a LAPGAN level
at its coarser image) or `NegativeEnergy` (an autoencoder D). `tag` names a second
discriminator in the logs (reg/R1/d_a). Discriminators that share one optimizer (CycleGAN's
D_A and D_B) share one `Player`: the method updates it once on the summed losses and calls
each critic's `after_step`.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.methods.base import build_optimizer
from gankit.methods.fast import FastMode
from gankit.methods.player import Player, freeze
from gankit.regularizers import RegularizerContext, build_regularizer
from gankit.tricks import Trick


class Critic:
    def __init__(
        self,
        cfg,
        objective,
        tricks: list,
        discriminator: nn.Module,
        player: Player,
        fast: FastMode,
        scale: tuple[float, float] = (1.0, 1.0),
        tag: str = "",
    ):
        self.objective = objective
        self.tricks = tricks
        self.player = player
        self.discriminator = discriminator
        self.fast = fast
        self.d_scale, self.g_scale = scale
        self.tag = tag
        specs = [*objective.regularizers, *cfg.regularizers]
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
        self.adversarial_g_loss = not any(t.replaces_generator_loss for t in tricks)
        # whether anything adds to the generator's loss (its terms may need a real batch)
        self.has_generator_terms = bool(self.g_regularizers) or any(
            type(t).g_penalty is not Trick.g_penalty for t in tricks
        )

    @classmethod
    def with_optimizer(
        cls, cfg, objective, tricks: list, discriminator: nn.Module, fast: FastMode, **options
    ) -> Critic:
        """A Critic whose D has an optimizer of its own (optim.discriminator) in a Player
        named `name` (default "discriminator"); `scale` and `tag` as the constructor's."""
        name = options.pop("name", "discriminator")
        opt = build_optimizer(
            discriminator.parameters(), cfg.optim.discriminator, fast.fused_optimizer
        )
        player = Player(name, discriminator, opt, fast)
        return cls(cfg, objective, tricks, discriminator, player, fast, **options)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.player.optimizer

    def attach(self, host) -> None:
        """Hand every trick the players it works on: `host` has .generator, .discriminator,
        .cfg, .device (the method itself, or a `Pairing` for a method's other pairs)."""
        for trick in self.tricks:
            trick.attach(host)

    # -- the discriminator's side --------------------------------------------------------------
    def perturb(self, x: Tensor, step: int) -> Tensor:
        """What the discriminator sees of a batch (instance noise, ...)."""
        for trick in self.tricks:
            x = trick.perturb(x, step)
        return x

    def d_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        """The objective's D loss, or the one a trick puts in its place (label smoothing)."""
        loss = None
        for trick in self.tricks:
            if loss is None:
                loss = trick.d_loss(self.objective, d_real, d_fake)
        if loss is None:
            loss = self.objective.d_loss(d_real, d_fake)
        return loss if self.d_scale == 1 else self.d_scale * loss

    def adversarial(self, loss: Tensor) -> Tensor:
        """A method's own adversarial G loss, or zero where a trick replaces it (feature
        matching with adversarial: false)."""
        return loss if self.adversarial_g_loss else torch.zeros((), device=loss.device)

    def g_loss(self, d_fake: Tensor) -> Tensor:
        """The objective's G loss, or zero where a trick replaces it (feature matching)."""
        if not self.adversarial_g_loss:
            return torch.zeros((), device=d_fake.device)
        loss = self.objective.g_loss(d_fake)
        return loss if self.g_scale == 1 else self.g_scale * loss

    def d_terms(self, loss: Tensor, logs: dict, ctx: RegularizerContext) -> Tensor:
        return self._add_terms(loss, logs, ctx, self.d_regularizers, "d")

    def g_terms(self, loss: Tensor, logs: dict, ctx: RegularizerContext) -> Tensor:
        return self._add_terms(loss, logs, ctx, self.g_regularizers, "g")

    def _key(self, key: str) -> str:
        return f"{key}/{self.tag}" if self.tag else key

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
                logs[self._key(f"reg/{type(reg).__name__}")] = term.detach()
                loss = loss + term
        for trick in self.tricks:
            term = trick.d_penalty(ctx) if player == "d" else trick.g_penalty(ctx)
            if term is not None:
                # per player: a trick may add a term to both losses (historical averaging)
                logs[self._key(f"trick/{trick.name}/{player}")] = term.detach()
                loss = loss + term
        return loss

    def step(self, loss: Tensor, logs: dict, collect_stats: bool) -> None:
        """D's update, then `after_step`."""
        self.player.update(loss, logs, collect_stats)
        self.after_step()

    def after_step(self) -> None:
        """After D's optimizer step: the objective's weight clipping, then the tricks' hooks
        (after clipping: they see the parameters D will use)."""
        clip = self.objective.weight_clip
        if clip is not None:
            with torch.no_grad():
                for p in self.discriminator.parameters():
                    p.clamp_(-clip, clip)
        for trick in self.tricks:
            trick.after_step("d")

    # -- the generator's side ------------------------------------------------------------------
    def frozen(self):
        """D's parameters take no gradient while a generator's loss goes through D."""
        return freeze(self.discriminator)

    def after_generator_step(self) -> None:
        for trick in self.tricks:
            trick.after_step("g")

    # -- state ---------------------------------------------------------------------------------
    def shard(self, rank: int, world: int) -> None:
        for trick in self.tricks:
            trick.shard(rank, world)

    def state_dict(self) -> dict:
        return {t.name: t.state_dict() for t in self.tricks}

    def load_state_dict(self, saved: dict, device: torch.device) -> None:
        for trick in self.tricks:
            if saved.get(trick.name):
                trick.load_state_dict(to_device(saved[trick.name], device))


@dataclasses.dataclass
class Pairing:
    """What a trick attaches to beyond the method's main pair: one generator, the
    discriminator that judges it, and an offset to the tricks' seeds (so that two
    discriminators' instance noise differs)."""

    cfg: object
    device: torch.device
    generator: nn.Module
    discriminator: nn.Module
    seed_offset: int = 0


class ScoreOf(nn.Module):
    """x -> the real/fake score of a discriminator whose forward returns more (ACGAN's
    (source logit, class logits): `index` 0) or needs more (a second input, `condition`: a
    conditional D's labels, a LAPGAN level's coarser image), for the penalties and tricks that
    call D on inputs of their own. `features` is D's (with the same condition)."""

    def __init__(self, discriminator: nn.Module, condition: Tensor | None = None, index=None):
        super().__init__()
        self.discriminator = discriminator
        self.condition, self.index = condition, index

    def _inputs(self, x: Tensor) -> tuple:
        return (x,) if self.condition is None else (x, self.condition)

    def features(self, x: Tensor) -> Tensor:
        return self.discriminator.features(*self._inputs(x))

    def forward(self, x: Tensor) -> Tensor:
        out = self.discriminator(*self._inputs(x))
        return out if self.index is None else out[self.index]


class NegativeEnergy(nn.Module):
    """An autoencoder discriminator read as a score: -energy(x, D(x)) per sample (low energy,
    a good reconstruction, is "real"), for the penalties; `features` is D's (its code)."""

    def __init__(self, discriminator: nn.Module, energy):
        super().__init__()
        self.discriminator, self.energy = discriminator, energy

    def features(self, x: Tensor) -> Tensor:
        return self.discriminator.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return -self.energy(x, self.discriminator(x))


def to_device(state, device: torch.device):
    """Checkpointed tensors come back on the CPU; a trick's state lives with the model."""
    if isinstance(state, Tensor):
        return state if state.dtype == torch.uint8 else state.to(device)
    if isinstance(state, dict):
        return {k: to_device(v, device) for k, v in state.items()}
    if isinstance(state, list):
        return [to_device(v, device) for v in state]
    return state
