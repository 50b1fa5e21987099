"""AdaGAN (Tolstikhin et al. 2017, "AdaGAN: Boosting Generative Models").

A mixture of T = `rounds` generators trained one per round. Round t (0-based) trains a fresh
GAN (generator G_t, the recipe's generator; a freshly initialized discriminator, the recipe's
discriminator; the recipe's objective) on the training points reweighted toward the points the
current mixture P_{t-1} covers badly, then adds it with weight beta_t:
P_t = (1 - beta_t) P_{t-1} + beta_t G_t (beta_0 = 1).

Reweighting (paper Sec. 3.1, eqs. (17)-(18) of the arXiv version, the authors' `theory_star`
weights in tolstikhin/adagan): at the start of round t >= 1 a classifier D_mix (the recipe's
discriminator, freshly initialized) is trained for `classifier_steps` steps to tell the N
training points (label 1) from samples of P_{t-1} (label 0), with logistic loss. With
D_mix(x) = sigmoid(logit(x)) ~ p_d / (p_d + p_{t-1}), the density ratio is estimated as
h(x_i) = dP_{t-1}/dP_d (x_i) ~ (1 - D_mix(x_i)) / D_mix(x_i) = exp(-logit(x_i)), and

    w_i = p_i / beta * (lambda* - (1 - beta) h(x_i))_+ ,   p_i = 1 / N,

with lambda* the unique value making sum_i w_i = 1 (`adagan_weights`): sort h ascending; for
the j points kept (the j smallest h), lambda = (beta N + (1 - beta) sum_{i<=j} h_(i)) / j, valid
when (1 - beta) h_(j) <= lambda <= (1 - beta) h_(j+1). `reweight: false` keeps uniform weights
(bagging: independently trained GANs in a uniform-or-beta mixture, the paper's baseline).

beta_t (`beta`): "uniform", beta_t = 1 / (t + 1) (every component ends with equal weight, the
authors' `uniform` heuristic) or "constant" (`beta_constant`, the paper's experiments use a
constant such as 0.5).

The data: the paper's experiments train on a finite sample, so a data set drawn fresh each step
(SampledData: the 2D ring and grid) is first drawn once as `n_points` points from a generator
seeded by the run's seed; an in-memory data set (digits, stacked digits, idx) uses its points.
Batches come from a WeightedSampler: rows drawn with replacement with probabilities w from its
own seeded generator (its state and w are checkpointed).

Schedule: round t runs steps [t * R, (t + 1) * R) with R = `steps_per_round` (0: schedule.steps
// rounds); the last round also takes any steps left. In round t >= 1 the first
`classifier_steps` steps train D_mix; then the weights are computed and the GAN of round t
trains for the rest of the round. `method.generator` is an AdaGANMixture (weights in a buffer):
row n of a batch comes from component i where u_n = frac(0.5 + n * (sqrt(5) - 1) / 2) falls in
i's interval of the cumulative weights (a deterministic low-discrepancy split, so any batch's
rows follow the mixture weights up to O(log n) rows). While D_mix trains it is P_{t-1}; from
then on it includes G_t with weight beta_t. Logged: d_loss, g_loss (the round's GAN),
c_loss (D_mix; in its steps d_loss is c_loss and g_loss is 0, no generator
update), round, and at each reweighting w_max, w_zero (the fraction of zero weights).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.data.base import DataSource, InMemoryData, SampledData
from gankit.errors import ConfigError
from gankit.methods.base import Method, Noise, build_optimizer
from gankit.methods.critic import Critic, Pairing
from gankit.methods.fast import FastMode
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    in_range,
    method_options,
    no_compile,
    one_critic_step,
    scoring_discriminator,
)
from gankit.methods.players import Players
from gankit.models import build_discriminator, build_generator
from gankit.objectives import build_objective
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator, wrap_generator

GOLDEN = (math.sqrt(5) - 1) / 2


def adagan_weights(h: Tensor, beta: float) -> Tensor:
    """w_i = (lambda* - (1 - beta) h_i)_+ / (N beta), lambda* such that sum w = 1 (paper
    Sec. 3.1, eqs. (17)-(18)); h: density ratios dP_model/dP_data >= 0 at the N points."""
    h = h.double()
    n = h.numel()
    if beta >= 1.0:
        return torch.full_like(h, 1.0 / n)
    hs, _ = torch.sort(h)
    cum = torch.cumsum(hs, 0)
    j = torch.arange(1, n + 1, dtype=h.dtype, device=h.device)
    lam = (beta * n + (1 - beta) * cum) / j  # lambda if the j smallest h are kept
    lower = (1 - beta) * hs <= lam
    upper = torch.cat([(1 - beta) * hs[1:] >= lam[:-1], lam.new_ones(1, dtype=torch.bool)])
    ok = torch.nonzero(lower & upper)
    if len(ok) == 0:  # cannot happen for finite h >= 0; kept as the authors' fallback
        return torch.full_like(h, 1.0 / n)
    lam_star = lam[ok[0, 0]]
    w = torch.clamp(lam_star - (1 - beta) * h, min=0) / (n * beta)
    return w / w.sum()


class WeightedSampler:
    """Batches of a finite point set drawn with replacement with probabilities `weights`."""

    def __init__(self, x: Tensor, seed: int):
        self.x = x
        self.weights = torch.full((len(x),), 1.0 / len(x), dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(seed)

    def set_weights(self, w: Tensor) -> None:
        if w.shape != (len(self.x),) or (w < 0).any() or not w.sum() > 0:
            raise ValueError("weights: one non-negative weight per point, not all zero")
        self.weights = (w.double() / w.sum()).cpu()

    def indices(self, n: int) -> Tensor:
        return torch.multinomial(self.weights, n, replacement=True, generator=self.generator)

    def batch(self, n: int) -> Tensor:
        return self.x[self.indices(n).to(self.x.device)]

    def state_dict(self) -> dict:
        return {"weights": self.weights.clone(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.weights = state["weights"].double().cpu()
        self.generator.set_state(state["generator"])


def mixture_assignment(n: int, weights: Tensor) -> Tensor:
    """The component of rows 0..n-1: u_n = frac(0.5 + n * golden) in the cumulative weights."""
    u = torch.frac(0.5 + torch.arange(n, dtype=torch.float64) * GOLDEN)
    cum = torch.cumsum(weights.double().cpu(), 0)
    cum = cum / cum[-1]
    return torch.clamp(torch.searchsorted(cum, u, right=True), max=len(weights) - 1)


class AdaGANMixture(nn.Module):
    """The T generators with mixture weights (a buffer); forward(z) splits z's rows among the
    components with positive weight (mixture_assignment)."""

    def __init__(self, generators: list[nn.Module]):
        super().__init__()
        self.components = nn.ModuleList(generators)
        weights = torch.zeros(len(generators))
        weights[0] = 1.0
        self.register_buffer("weights", weights)

    def forward(self, z: Tensor) -> Tensor:
        which = mixture_assignment(z.shape[0], self.weights).to(z.device)
        out = None
        for i in torch.unique(which).tolist():
            rows = torch.nonzero(which == i).squeeze(1)
            part = self.components[i](z[rows])
            if out is None:
                out = part.new_empty((z.shape[0], *part.shape[1:]))
            out[rows] = part
        return out


def _reinit(module: nn.Module, fresh: nn.Module) -> None:
    with torch.no_grad():
        module.load_state_dict(fresh.state_dict())


class AdaGANMethod(Players):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        Method.__init__(self, cfg, data, device)
        opts = method_options(cfg)
        self.opts = opts
        self.rounds = opts["rounds"]
        self.round_steps = opts["steps_per_round"] or max(1, cfg.schedule.steps // self.rounds)
        self.classifier_steps = opts["classifier_steps"]
        if self.rounds > 1 and self.classifier_steps >= self.round_steps:
            raise ConfigError(
                f"method_options.classifier_steps: {self.classifier_steps} classifier steps "
                f"leave no GAN steps in rounds of {self.round_steps} steps; lower it or raise "
                "steps_per_round (or schedule.steps)"
            )
        self.objective = build_objective(cfg.objective)
        self.fast = fast = FastMode.for_recipe(cfg, device)
        fused = fast.fused_optimizer
        shape = tuple(data.shape)
        self.tricks = tricks = build_tricks(cfg, self.objective)
        G = wrap_generator(tricks, self.build_sampler(cfg, shape), cfg)
        self.generator = fast.prepare(G.to(device))
        D = wrap_discriminator(tricks, build_discriminator(cfg.discriminator, shape), cfg)
        self.discriminator = fast.prepare(D.to(device))
        self.classifier = fast.prepare(build_discriminator(cfg.discriminator, shape).to(device))
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        self.opt_c = build_optimizer(self.classifier.parameters(), cfg.optim.discriminator, fused)
        self.critic = Critic.with_optimizer(cfg, self.objective, tricks, self.discriminator, fast)
        self.opt_d = self.critic.optimizer
        self.attach_round(0)
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        self.batch_size = cfg.schedule.batch_size
        self.sampler = WeightedSampler(self.training_points(data, opts["n_points"]), cfg.seed + 7)

    def training_points(self, data: DataSource, n_points: int) -> Tensor:
        if isinstance(data, InMemoryData):
            return data.x
        if isinstance(data, SampledData):
            x, _ = data.sampler(n_points, torch.Generator().manual_seed(self.cfg.seed + 11))
            return x.to(self.device)
        raise ConfigError(
            f"data: method 'adagan' reweights a finite set of points; {data.name} is neither "
            "in memory nor sampled"
        )

    @staticmethod
    def build_sampler(cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        """The module `generator` is, for loading it from a checkpoint outside training."""
        rounds = method_options(cfg)["rounds"]
        return AdaGANMixture([build_generator(cfg.generator, shape) for _ in range(rounds)])

    def modules(self) -> dict[str, nn.Module]:
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "classifier": self.classifier,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d, "classifier": self.opt_c}

    def attach_round(self, t: int) -> None:
        """The tricks work on round t's generator and the discriminator (fresh each round)."""
        self.attached_round = t
        G_t = self.generator.components[t]
        self.critic.attach(Pairing(self.cfg, self.device, G_t, self.discriminator, 100 * t))

    def extra_state(self) -> dict:
        state = {**super().extra_state(), "sampler": self.sampler.state_dict()}
        return {**state, "round": self.attached_round}

    def load_extra_state(self, state: dict) -> None:
        if state.get("round", 0):  # the tricks on the round's players, then their state
            self.attach_round(int(state["round"]))
        super().load_extra_state(state)
        self.sampler.load_state_dict(state["sampler"])

    def beta(self, t: int) -> float:
        if t == 0:
            return 1.0
        if self.opts["beta"] == "uniform":
            return 1.0 / (t + 1)
        return self.opts["beta_constant"]

    def where(self, step: int) -> tuple[int, int]:
        """(round, step within the round) of a 0-based step."""
        t = min(step // self.round_steps, self.rounds - 1)
        return t, step - t * self.round_steps

    def _fresh_discriminator(
        self, module: nn.Module, opt: torch.optim.Optimizer, tricks: list = ()
    ) -> None:
        """A new initialization (from the global RNG, checkpointed by the trainer), with the
        tricks' changes to it, and a new optimizer state."""
        shape = tuple(self.data.shape)
        fresh = wrap_discriminator(
            list(tricks), build_discriminator(self.cfg.discriminator, shape), self.cfg
        )
        _reinit(module, fresh.to(self.device))
        opt.state.clear()

    @torch.no_grad()
    def density_ratios(self) -> Tensor:
        """h(x_i) = (1 - D_mix(x_i)) / D_mix(x_i) = exp(-logit) at every training point."""
        C = self.classifier
        was_training = C.training
        C.eval()
        logits = torch.cat([C(x).float() for x in self.sampler.x.split(4096)])
        C.train(was_training)
        return torch.exp(-logits.clamp(-30, 30)).cpu()

    def start_round(self, t: int, logs: dict[str, Tensor]) -> None:
        """Reweight the data (t >= 1), put G_t in the mixture with weight beta_t, reset D."""
        beta = self.beta(t)
        if t > 0 and self.opts["reweight"]:
            w = adagan_weights(self.density_ratios(), beta)
            self.sampler.set_weights(w)
            logs["w_max"] = w.max().float()
            logs["w_zero"] = (w == 0).double().mean().float()
        G = self.generator
        with torch.no_grad():
            G.weights.mul_(1 - beta)
            G.weights[t] = beta
        if t > 0:
            self._fresh_discriminator(self.discriminator, self.opt_d, self.tricks)
            self.attach_round(t)

    def classifier_step(self, logs: dict[str, Tensor]) -> None:
        n = self.batch_size
        real = self.sampler.x[
            torch.randint(len(self.sampler.x), (n,), generator=self.sampler.generator).to(
                self.sampler.x.device
            )
        ]
        G = self.generator
        was_training = G.training
        G.eval()  # the mixture as it samples (BatchNorm's running statistics, left unchanged)
        with torch.no_grad():
            fake = G(self.noise(n))
        G.train(was_training)
        with self.fast.autocast():
            c_real, c_fake = self.classifier(real).float(), self.classifier(fake).float()
            loss = F.binary_cross_entropy_with_logits(
                c_real, torch.ones_like(c_real)
            ) + F.binary_cross_entropy_with_logits(c_fake, torch.zeros_like(c_fake))
        self.update(loss, "classifier", logs)
        logs["c_loss"] = loss.detach()

    def train_step(self, step: int) -> dict[str, Tensor]:
        t, s = self.where(step)
        logs: dict[str, Tensor] = {"round": torch.tensor(float(t))}
        if t > 0 and s == 0:
            self._fresh_discriminator(self.classifier, self.opt_c)
        if t > 0 and s < self.classifier_steps:
            self.classifier_step(logs)
            # the trainer reads d_loss and g_loss every step: D_mix's loss, no generator update
            logs.update(d_loss=logs["c_loss"], g_loss=torch.zeros_like(logs["c_loss"]))
            return logs
        if s == (self.classifier_steps if t > 0 else 0):
            self.start_round(t, logs)
        G, D, critic = self.generator.components[t], self.discriminator, self.critic
        n = self.batch_size
        real = critic.perturb(self.sampler.batch(n), step)
        with self.fast.autocast():
            fake = G(self.noise(n))
            seen = critic.perturb(fake.detach(), step)
            d_loss = critic.d_loss(D(real).float(), D(seen).float())
            d_loss = critic.d_terms(d_loss, logs, RegularizerContext(D, real, seen, step))
        critic.step(d_loss, logs, self.collect_stats)
        with critic.frozen():
            with self.fast.autocast():
                seen = critic.perturb(fake, step)
                g_loss = critic.g_loss(D(seen).float())
                g_loss = critic.g_terms(g_loss, logs, RegularizerContext(D, real, seen, step))
            self.update(g_loss, "generator", logs)
            critic.after_generator_step()
        logs.update(d_loss=d_loss.detach(), g_loss=g_loss.detach())
        return logs


@METHOD_OPTIONS.register("adagan")
def adagan_options(
    cfg,
    rounds: int = 5,
    steps_per_round: int = 0,
    classifier_steps: int = 500,
    beta: Literal["uniform", "constant"] = "uniform",
    beta_constant: float = 0.5,
    reweight: bool = True,
    n_points: int = 64000,
) -> None:
    """rounds: generators in the mixture; steps_per_round: trainer steps per round (0:
    schedule.steps // rounds; the last round takes the rest); classifier_steps: steps of the
    data-vs-mixture classifier at the start of rounds >= 1; beta: each new component's weight,
    uniform (1 / (t + 1)) or constant (beta_constant); reweight: false keeps uniform data
    weights (bagging); n_points: the finite sample drawn from a sampled data set (2D toys)."""
    at_least(rounds, 1, "rounds")
    at_least(steps_per_round, 0, "steps_per_round")
    at_least(classifier_steps, 1, "classifier_steps")
    in_range(beta_constant, 1e-6, 1.0 - 1e-6, "beta_constant")
    at_least(n_points, 1, "n_points")
    scoring_discriminator(cfg, "adagan")
    one_critic_step(cfg, "adagan")
    no_compile(cfg, "adagan")
    if any(t["name"] == "virtual_batch_norm" for t in cfg.tricks):
        raise ConfigError(
            "tricks: virtual_batch_norm is not supported under method 'adagan' yet: the "
            "mixture calls its components itself, past the trick's reference batch"
        )
