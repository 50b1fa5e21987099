"""Unrolled GAN (Metz et al. 2017, "Unrolled Generative Adversarial Networks").

The generator's loss is computed against the discriminator advanced k optimizer steps:

    theta_D^0 = theta_D,  theta_D^{i+1} = U(theta_D^i, grad of d_loss(theta_D^i, theta_G)),
    g_loss = objective.g_loss(D(G(z); theta_D^k))

where U is the discriminator optimizer's own update rule (Adam, SGD or RMSprop, with its
learning rate, betas, momentum and weight decay) starting from its current state (Adam's
moments and step count), as the paper's code does by replacing D's variables with their
optimizer updates. With `second_order: true` the gradient flows through the k updates (the
d_loss gradients are taken with create_graph, D is called with torch.func.functional_call on
the unrolled parameters); with `second_order: false` the unrolled parameters are constants for
G (the fake batch is detached inside the unrolled steps): cheaper, and the "first-order"
ablation of the paper. The unrolled steps reuse the step's real and fake batch.

The real discriminator takes one ordinary step, from the same parameters the unrolling started
from and on the same batch (the paper's simultaneous update: G's update uses f_K(theta_G,
theta_D), D's update uses f(theta_G, theta_D)). The unrolled copy uses copies of D's buffers, so
its passes leave D's BatchNorm statistics alone. Everything runs in fp32 (fast mode's autocast is
not applied; fused optimizers and channels_last are).

Tricks and penalties (methods/critic.py) act inside the unrolled steps too: the step's real and
fake batch are perturbed once (instance noise) and used by the unrolled steps and D's own step;
each unrolled step's loss is the critic's (label smoothing) plus its penalties (R1, WGAN-GP, ...,
also the objective's own), taken on the unrolled parameters; G's terms (feature matching,
pull-away) look at the unrolled D. Historical averaging acts on D's own steps only: its pull
is on D's parameters, not on the unrolled copies. Spectral norm and the minimax layers are
part of D, so the unrolled copies have them.

generator_loss "minus_d_loss" uses -d_loss(D(x; theta_D^k), D(G(z); theta_D^k)) instead, the
surrogate of the paper's reference code (with the minimax objective, -f_K exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.gan import PROBABILISTIC, GANMethod, separation
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    method_options,
    no_compile,
    one_critic_step,
    scoring_discriminator,
)
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig

Params = dict[str, Tensor]


def _sqrt(v: Tensor) -> Tensor:
    """sqrt(v) for v >= 0 with gradient 0 (not inf * 0 = NaN) where v == 0, the same values."""
    positive = v > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, v, torch.ones_like(v))), 0.0)


def _adam(p: Tensor, g: Tensor, st: dict, h: dict) -> tuple[Tensor, dict]:
    b1, b2 = h["betas"]
    if h["weight_decay"]:
        g = g + h["weight_decay"] * p
    t = st["step"] + 1
    m = b1 * st["exp_avg"] + (1 - b1) * g
    v = b2 * st["exp_avg_sq"] + (1 - b2) * g * g
    bias1, bias2 = 1 - b1**t, 1 - b2**t
    denom = _sqrt(v) / torch.sqrt(bias2) + h["eps"]
    return p - (h["lr"] / bias1) * m / denom, {"step": t, "exp_avg": m, "exp_avg_sq": v}


def _sgd(p: Tensor, g: Tensor, st: dict, h: dict) -> tuple[Tensor, dict]:
    if h["weight_decay"]:
        g = g + h["weight_decay"] * p
    st = dict(st)
    if h["momentum"]:
        buf = st.get("momentum_buffer")
        buf = g if buf is None else h["momentum"] * buf + (1 - h["dampening"]) * g
        st["momentum_buffer"] = buf
        g = g + h["momentum"] * buf if h["nesterov"] else buf
    return p - h["lr"] * g, st


def _rmsprop(p: Tensor, g: Tensor, st: dict, h: dict) -> tuple[Tensor, dict]:
    if h["weight_decay"]:
        g = g + h["weight_decay"] * p
    sq = h["alpha"] * st["square_avg"] + (1 - h["alpha"]) * g * g
    avg = _sqrt(sq) + h["eps"]
    st = {**st, "square_avg": sq}
    if h["momentum"] > 0:
        buf = h["momentum"] * st["momentum_buffer"] + g / avg
        st["momentum_buffer"] = buf
        return p - h["lr"] * buf, st
    return p - h["lr"] * g / avg, st


RULES = {torch.optim.Adam: _adam, torch.optim.SGD: _sgd, torch.optim.RMSprop: _rmsprop}


class FunctionalOptimizer:
    """A torch optimizer's update rule as a differentiable function of parameters and
    gradients, starting from a copy of the optimizer's current state (the optimizer itself is
    not changed)."""

    def __init__(self, optimizer: torch.optim.Optimizer, named_params: dict[str, nn.Parameter]):
        self.check(optimizer)
        self.rule = RULES[type(optimizer)]
        group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        self.hyper = {name: group_of[id(p)] for name, p in named_params.items()}
        self.state = {
            name: self._initial(optimizer, optimizer.state.get(p, {}), p)
            for name, p in named_params.items()
        }

    @staticmethod
    def check(optimizer: torch.optim.Optimizer) -> None:
        if type(optimizer) not in RULES:
            raise ConfigError(
                f"optim.discriminator: unrolling supports Adam, SGD and RMSprop, not "
                f"{type(optimizer).__name__}"
            )
        for group in optimizer.param_groups:
            for flag in ("amsgrad", "maximize", "centered", "decoupled_weight_decay"):
                if group.get(flag):
                    raise ConfigError(f"optim.discriminator: unrolling does not support {flag}")

    @staticmethod
    def _initial(optimizer, state: dict, p: Tensor) -> dict:
        """The optimizer's per-parameter state as constants (zeros before its first step)."""
        state = {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in state.items()}
        if isinstance(optimizer, torch.optim.Adam):
            zero = torch.zeros((), dtype=torch.float32, device=p.device)
            return {
                "step": state.get("step", zero).to(p.device, torch.float32),
                "exp_avg": state.get("exp_avg", torch.zeros_like(p)),
                "exp_avg_sq": state.get("exp_avg_sq", torch.zeros_like(p)),
            }
        if isinstance(optimizer, torch.optim.RMSprop):
            return {
                "square_avg": state.get("square_avg", torch.zeros_like(p)),
                "momentum_buffer": state.get("momentum_buffer", torch.zeros_like(p)),
            }
        return {"momentum_buffer": state.get("momentum_buffer")}

    def step(self, params: Params, grads: Params) -> Params:
        out = {}
        for name, p in params.items():
            out[name], self.state[name] = self.rule(
                p, grads[name], self.state[name], self.hyper[name]
            )
        return out

    def detach_state(self) -> None:
        for st in self.state.values():
            for k, v in st.items():
                if isinstance(v, Tensor):
                    st[k] = v.detach()


def unroll(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Params, Params], Tensor],
    steps: int,
    second_order: bool,
    clip: float | None = None,
) -> tuple[Params, Params]:
    """(parameters, buffers) of `module` after `steps` updates of `optimizer`'s rule on
    loss_fn(parameters, buffers), from the module's current parameters and the optimizer's
    current state; neither is changed. second_order: the result stays differentiable through
    the updates (w.r.t. whatever loss_fn depends on besides the parameters); else it is
    detached. clip: clamp the parameters to [-clip, clip] after each update (weight clipping)."""
    named = dict(module.named_parameters())
    rule = FunctionalOptimizer(optimizer, named)
    params = {k: p.detach().requires_grad_(True) for k, p in named.items()}
    buffers = {k: b.detach().clone() for k, b in module.named_buffers()}
    for _ in range(steps):
        loss = loss_fn(params, buffers)
        grads = torch.autograd.grad(
            loss, list(params.values()), create_graph=second_order, allow_unused=True
        )
        grads = {
            k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), grads)
        }
        params = rule.step(params, grads)
        if clip is not None:
            params = {k: p.clamp(-clip, clip) for k, p in params.items()}
        if not second_order:
            params = {k: p.detach().requires_grad_(True) for k, p in params.items()}
            rule.detach_state()
    return params, buffers


class FunctionalView(nn.Module):
    """D evaluated with given parameters and buffers (torch.func.functional_call): forward and
    `features`, for the critic's penalties and G's terms on the unrolled discriminator."""

    def __init__(self, D: nn.Module, params: Params, buffers: Params):
        super().__init__()
        self.call = _MethodCall(D)
        self.state = {f"module.{k}": v for k, v in {**params, **buffers}.items()}

    def forward(self, x: Tensor) -> Tensor:
        return functional_call(self.call, self.state, (x,), {"method": "forward"})

    def features(self, x: Tensor) -> Tensor:
        return functional_call(self.call, self.state, (x,), {"method": "features"})


class _MethodCall(nn.Module):
    """forward(x, method) = module.method(x): functional_call reaches methods besides forward."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor, method: str) -> Tensor:
        return getattr(self.module, method)(x)


class UnrolledGANMethod(GANMethod):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        opts = method_options(cfg)
        self.unroll_steps = opts["unroll_steps"]
        self.second_order = opts["second_order"]
        self.generator_loss = opts["generator_loss"]
        FunctionalOptimizer.check(self.opt_d)

    def unrolled_discriminator(
        self, real: Tensor, fake: Tensor, step: int
    ) -> tuple[Params, Params]:
        """D's parameters and buffers after unroll_steps steps on this batch."""
        D, critic = self.discriminator, self.critic
        target = fake if self.second_order else fake.detach()
        terms = critic.d_regularizers or critic.tricks

        def d_loss(params: Params, buffers: Params) -> Tensor:
            d_real = functional_call(D, (params, buffers), (real,))
            d_fake = functional_call(D, (params, buffers), (target,))
            loss = critic.d_loss(d_real, d_fake)
            if terms:
                ctx = RegularizerContext(FunctionalView(D, params, buffers), real, target, step)
                loss = critic.d_terms(loss, {}, ctx)
            return loss

        clip = self.objective.weight_clip
        return unroll(D, self.opt_d, d_loss, self.unroll_steps, self.second_order, clip)

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, D, objective, critic = self.generator, self.discriminator, self.objective, self.critic
        real, _ = self.data.batch(self.batch_size)
        real = critic.perturb(real, step)
        fake = critic.perturb(G(self.noise(self.batch_size)), step)
        logs: dict[str, Tensor] = {}

        # generator: its loss against D unrolled from D's current parameters and optimizer state
        params, buffers = self.unrolled_discriminator(real, fake, step)

        def unrolled(x: Tensor) -> Tensor:
            return functional_call(D, (params, buffers), (x,))

        with critic.frozen():
            if self.generator_loss == "objective":
                g_loss = critic.g_loss(unrolled(fake))
            else:
                g_loss = -objective.d_loss(unrolled(real), unrolled(fake))
            if critic.has_generator_terms:
                ctx = RegularizerContext(FunctionalView(D, params, buffers), real, fake, step)
                g_loss = critic.g_terms(g_loss, logs, ctx)
            self.g_player.update(g_loss, logs, self.collect_stats)
            critic.after_generator_step()

        # discriminator: one ordinary step from the same parameters, on the same batch
        d_real, d_fake = D(real), D(fake.detach())
        d_loss = critic.d_loss(d_real, d_fake)
        d_loss = critic.d_terms(d_loss, logs, RegularizerContext(D, real, fake.detach(), step))
        if self.collect_stats:
            logs["d_separation"] = separation(d_real.detach(), d_fake.detach())
        critic.step(d_loss, logs, self.collect_stats)

        logs.update(d_loss=d_loss.detach(), g_loss=g_loss.detach())
        logs.update(d_real=d_real.detach().mean(), d_fake=d_fake.detach().mean())
        if objective.name in PROBABILISTIC:
            logs["p_real"] = torch.sigmoid(d_real.detach()).mean()
            logs["p_fake"] = torch.sigmoid(d_fake.detach()).mean()
        return logs


@METHOD_OPTIONS.register("unrolled")
def unrolled_options(
    cfg,
    unroll_steps: int = 5,
    second_order: bool = True,
    generator_loss: Literal["objective", "minus_d_loss"] = "objective",
) -> None:
    """unroll_steps: k, the discriminator steps G looks ahead (0: a plain simultaneous GAN);
    second_order: differentiate through the unrolled updates (false: first-order, cheaper);
    generator_loss: objective (the objective's G loss at the unrolled D) or minus_d_loss."""
    at_least(unroll_steps, 0, "unroll_steps")
    scoring_discriminator(cfg, "unrolled")
    one_critic_step(cfg, "unrolled")
    no_compile(cfg, "unrolled")
