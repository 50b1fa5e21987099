"""MAD-GAN (Ghosh et al. 2018, "Multi-Agent Diverse Generative Adversarial Networks").

k generators G_1..G_k (built from the recipe's generator section, each with its own weights, or
with `shared_trunk: true` sharing every layer but the last) and one discriminator.

variant "identify" (the paper's MAD-GAN): D has k + 1 outputs, logits l(x) = (l_1 .. l_{k+1});
class j <= k means "made by G_j", class k + 1 means real (here 0-based: j < k, k). With
D_c(x) = softmax(l(x))_c, D maximizes the paper's objective

    E_{x~p_d} log D_{k+1}(x) + sum_i E_z log D_i(G_i(z)),

so d_loss = CE(l(x), k+1) + sum_i CE(l(G_i(z)), i): a softmax cross-entropy taken from the
logits (F.cross_entropy, never a softmax first), averaged within each of the k + 1 batches and
summed over them. Generator i minimizes E_z log(1 - D_{k+1}(G_i(z))) in the paper's game and,
as the paper does in practice (and its authors' code, a cross-entropy toward the real class),
the non-saturating -E_z log D_{k+1}(G_i(z)) here (`generator_loss: non_saturating`; `minimax`
gives the saturating form, log(1 - D_{k+1}) = logsumexp(l_{1..k}) - logsumexp(l)). g_loss is
the sum over generators; each generator's own term is the only one that depends on it.

variant "sim" (MAD-GAN-Sim, the paper's appendix "similarity based competing objective"): D is
the recipe's one-output discriminator (D(x) = sigmoid(logit), P(real)), trained by
CE(real -> 1) + mean_i CE(G_i(z) -> 0). Generator i minimizes -E log D(G_i(z)) plus
`sim_weight` times

    E_z max(0, 1/(k-1) sum_{j != i} [cos(phi(G_i(z)), phi(G_j(z))) - (D(G_i(z)) - D(G_j(z)))])

with phi = D.features (its last hidden layer) and the same z for all generators: a sample may
resemble another generator's sample for the same z only as far as D rates it as more real.
This is the averaged form of the authors' reference code (arnabgho/dcgan.torch,
n_compete_avg_gen_n_alter.lua); the other generators' samples G_j(z) are constants in G_i's
term (each generator minimizes its own objective), while G_i's gradient flows through both
D(G_i(z)) and phi(G_i(z)) (the reference code passed it through D(G_i(z)) only).

One step: one batch z (schedule.batch_size rows) shared by all generators, one real batch; D
takes one step on the real batch and the k fake batches (separate passes, so batch norm sees
each batch alone), then the generators take one step against the updated D, on the same fake
batches. All generators share one optimizer (optim.generator): with per-parameter optimizers
such as Adam and with every generator's parameters receiving only its own objective's
gradient, this is k optimizers in one (a shared trunk receives the sum of the k gradients).

`method.generator` is a MixtureGenerator: forward(z) draws row n from generator n mod k (a
uniform mixture, split deterministically), so sample grids and metrics see every generator.
Logged: `p_real`, `p_fake` (D's mean P(real) on the real and all fake batches) and, for sim,
`sim` (the mean penalty).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    method_options,
    no_compile,
    one_critic_step,
    own_discriminator_loss,
    scoring_discriminator,
)
from gankit.methods.players import Players
from gankit.models import build_discriminator, build_generator
from gankit.models.dcgan import DCGANGenerator
from gankit.models.layers import output_layer_like
from gankit.models.mlp import MLPGenerator
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig


# -- the k generators -----------------------------------------------------------------------
class _MLPHead(nn.Module):
    """The mlp generator's output layer (and output activation and reshape)."""

    def __init__(self, g: MLPGenerator):
        super().__init__()
        self.out_shape = g.out_shape
        self.out = g.out
        self.out_act = g.out_act

    def forward(self, h: Tensor) -> Tensor:
        return self.out_act(self.out(h)).view(h.shape[0], *self.out_shape)


def split_generator(g: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(trunk, head) with head(trunk(z)) == g(z): the head is the last layer (mlp: the output
    linear layer; dcgan: the last transposed convolution and tanh)."""
    if isinstance(g, MLPGenerator):
        return g.body, _MLPHead(g)
    if isinstance(g, DCGANGenerator):
        return nn.Sequential(g.project, *g.body[:-2]), nn.Sequential(*g.body[-2:])
    raise ConfigError(
        f"method_options.shared_trunk: sharing layers is supported for the mlp and dcgan "
        f"generators, not {type(g).__name__}; set shared_trunk=false"
    )


class MixtureGenerator(nn.Module):
    """k generators as one module: member i is heads[i](trunk(z)) (trunk None: heads[i](z)).

    forward(z) is the uniform mixture: row n of the output comes from generator n mod k, so a
    batch of n rows has ceil/floor(n / k) samples from each generator, in a fixed order."""

    def __init__(self, heads: list[nn.Module], trunk: nn.Module | None = None):
        super().__init__()
        self.k = len(heads)
        self.trunk = trunk
        self.heads = nn.ModuleList(heads)

    def outputs(self, z: Tensor) -> list[Tensor]:
        """[G_1(z), ..., G_k(z)]: every generator on all of z (the trunk runs once)."""
        h = z if self.trunk is None else self.trunk(z)
        return [head(h) for head in self.heads]

    def member(self, i: int, z: Tensor) -> Tensor:
        """G_i(z) for one generator i (0-based)."""
        return self.heads[i](z if self.trunk is None else self.trunk(z))

    def forward(self, z: Tensor) -> Tensor:
        h = z if self.trunk is None else self.trunk(z)
        n = z.shape[0]
        parts = [self.heads[i](h[i :: self.k]) for i in range(min(self.k, n))]
        out = parts[0].new_empty((n, *parts[0].shape[1:]))
        for i, part in enumerate(parts):
            out[i :: self.k] = part
        return out


def build_mixture(cfg: RunConfig, shape: tuple[int, ...], k: int, shared: bool) -> nn.Module:
    """The k generators of a MAD-GAN recipe (each built from the recipe's generator section)."""
    generators = [build_generator(cfg.generator, shape) for _ in range(k)]
    if not shared:
        return MixtureGenerator(generators)
    trunk, _ = split_generator(generators[0])
    return MixtureGenerator([split_generator(g)[1] for g in generators], trunk)


def with_outputs(D: nn.Module, n: int) -> nn.Module:
    """D with its output layer `out` replaced by one with n outputs (logits, shape (N, n))."""
    if not isinstance(getattr(D, "out", None), nn.Linear) or not hasattr(D, "feature_dim"):
        raise ConfigError(
            f"discriminator.name: MAD-GAN needs a discriminator whose output layer scores a "
            f"feature vector (mlp, dcgan), not {type(D).__name__}"
        )
    D.out = output_layer_like(D.out, nn.Linear(D.feature_dim, n))
    return D


class RealLogit(nn.Module):
    """A k+1-class discriminator read as a real-vs-fake score: the logit of D_{k+1}(x),
    l_{k+1} - log sum_{j <= k} exp l_j (for plots of D's decision surface, and the score the
    penalties take the gradient of)."""

    def __init__(self, D: nn.Module, k: int):
        super().__init__()
        self.D, self.k = D, k

    def features(self, x: Tensor) -> Tensor:
        return self.D.features(x)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.D(x).float()
        return logits[:, self.k] - torch.logsumexp(logits[:, : self.k], dim=1)


# -- losses (pure functions of D's outputs) ---------------------------------------------------
def madgan_d_loss(real_logits: Tensor, fake_logits: list[Tensor]) -> Tensor:
    """CE(l(x), k) + sum_i CE(l(G_i(z)), i), classes 0-based (k: real), each a batch mean."""

    def labels(logits: Tensor, c: int) -> Tensor:
        return torch.full((logits.shape[0],), c, dtype=torch.long, device=logits.device)

    k = len(fake_logits)
    loss = F.cross_entropy(real_logits.float(), labels(real_logits, k))
    for i, logits in enumerate(fake_logits):
        loss = loss + F.cross_entropy(logits.float(), labels(logits, i))
    return loss


def madgan_g_loss(fake_logits: list[Tensor], form: str = "non_saturating") -> Tensor:
    """sum_i E_z -log D_{k+1}(G_i(z)) (non_saturating) or sum_i E_z log(1 - D_{k+1}(G_i(z)))
    (minimax), from the logits."""
    k = len(fake_logits)
    loss = fake_logits[0].new_zeros((), dtype=torch.float32)
    for logits in fake_logits:
        logits = logits.float()
        log_real = logits[:, k] - torch.logsumexp(logits, dim=1)  # log D_{k+1}
        if form == "non_saturating":
            loss = loss - log_real.mean()
        else:  # log(1 - D_{k+1}) = log sum_{j<k} exp l_j - logsumexp(l)
            log_fake = torch.logsumexp(logits[:, :k], dim=1) - torch.logsumexp(logits, dim=1)
            loss = loss + log_fake.mean()
    return loss


def binary_g_loss(fake_logits: list[Tensor], form: str = "non_saturating") -> Tensor:
    """For a one-output D (logit l, D = sigmoid(l)): sum_i E_z -log D(G_i(z)) (non_saturating)
    or sum_i E_z log(1 - D(G_i(z))) (minimax)."""
    loss = fake_logits[0].new_zeros((), dtype=torch.float32)
    for logits in fake_logits:
        logits = logits.float()
        if form == "non_saturating":
            loss = loss + F.softplus(-logits).mean()  # -log sigmoid(l)
        else:
            loss = loss - F.softplus(logits).mean()  # log(1 - sigmoid(l))
    return loss


def sim_penalty(probs: list[Tensor], features: list[Tensor]) -> list[Tensor]:
    """MAD-GAN-Sim's competing term of each generator i, per sample (shape (N,)):
    max(0, 1/(k-1) sum_{j != i} [cos(phi_i, phi_j) - (D_i - D_j)]), with D_j = probs[j] and
    phi_j = features[j] (flattened) for the same z; the other generators' values are detached."""
    k = len(probs)
    flat = [f.flatten(1).float() for f in features]
    out = []
    for i in range(k):
        total = torch.zeros_like(probs[i].float())
        for j in range(k):
            if j == i:
                continue
            cos = F.cosine_similarity(flat[i], flat[j].detach(), dim=1, eps=1e-8)
            total = total + cos - (probs[i].float() - probs[j].detach().float())
        out.append(F.relu(total / (k - 1)))
    return out


# -- the method ---------------------------------------------------------------------------------
class MADGANMethod(Players):
    """Tricks and penalties attach to the one D (methods/critic.py): every generator's batch
    is perturbed and judged as D sees it; the penalties take the real-vs-fake score (the
    real class's logit against the others for `identify`) on the real batch and a batch of the
    mixture (sample j from generator j mod k); the generators' terms see all k batches."""

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        self.opts = opts = method_options(cfg)
        self.k, self.variant = opts["k"], opts["variant"]
        self.generator_loss, self.sim_weight = opts["generator_loss"], opts["sim_weight"]
        super().__init__(cfg, data, device)
        self.score = (
            RealLogit(self.discriminator, self.k)
            if self.variant == "identify"
            else self.discriminator
        )

    def make_generator(self, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        return build_mixture(cfg, shape, self.k, self.opts["shared_trunk"])

    def make_discriminator(self, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        D = build_discriminator(cfg.discriminator, shape)
        return with_outputs(D, self.k + 1) if self.variant == "identify" else D

    @staticmethod
    def build_sampler(cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        """The module `generator` is, for loading it from a checkpoint outside training."""
        opts = method_options(cfg)
        return build_mixture(cfg, shape, opts["k"], opts["shared_trunk"])

    @staticmethod
    def checkpoint_discriminator(
        cfg: RunConfig, shape: tuple[int, ...]
    ) -> tuple[nn.Module, nn.Module]:
        """(the module `discriminator` is, to load a checkpoint into; a one-score view of it)."""
        opts = method_options(cfg)
        D = build_discriminator(cfg.discriminator, shape)
        if opts["variant"] != "identify":
            return D, D
        D = with_outputs(D, opts["k"] + 1)
        return D, RealLogit(D, opts["k"])

    def _p_real(self, logits: Tensor) -> Tensor:
        if self.variant == "identify":
            return torch.softmax(logits.float(), dim=1)[:, self.k]
        return torch.sigmoid(logits.float())

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, D, fast, k, critic = self.generator, self.discriminator, self.fast, self.k, self.critic
        real, _ = self.data.batch(self.batch_size)
        real = critic.perturb(real, step)
        logs: dict[str, Tensor] = {}
        with fast.autocast():
            fakes = G.outputs(self.noise(self.batch_size))  # kept for the generator step
            seen = [critic.perturb(f.detach(), step) for f in fakes]
            d_real = D(real).float()
            d_fakes = [D(f).float() for f in seen]
            if self.variant == "identify":
                d_loss = madgan_d_loss(d_real, d_fakes)
            else:
                d_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                for d_fake in d_fakes:
                    d_loss = (
                        d_loss
                        + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)) / k
                    )
            if critic.d_regularizers or critic.tricks:
                ctx = RegularizerContext(self.score, real, mixture_batch(seen), step)
                d_loss = critic.d_terms(d_loss, logs, ctx)
        critic.step(d_loss, logs, self.collect_stats)

        with critic.frozen(), fast.autocast():
            fakes = [critic.perturb(f, step) for f in fakes]
            if self.variant == "identify":
                g_loss = madgan_g_loss([D(f).float() for f in fakes], self.generator_loss)
            else:
                feats = [D.features(f) for f in fakes]
                logits = [D.head(h).float() for h in feats]
                g_loss = binary_g_loss(logits, self.generator_loss)
                penalty = sim_penalty([torch.sigmoid(lg) for lg in logits], feats)
                sim = torch.stack([p.mean() for p in penalty]).sum()
                g_loss = g_loss + self.sim_weight * sim
                logs["sim"] = sim.detach()
            if critic.has_generator_terms:
                ctx = RegularizerContext(self.score, real, torch.cat(fakes), step)
                g_loss = critic.g_terms(g_loss, logs, ctx)
        self.g_player.update(g_loss, logs, self.collect_stats)
        critic.after_generator_step()
        p_fake = torch.cat([self._p_real(d.detach()) for d in d_fakes]).mean()
        logs.update(
            d_loss=d_loss.detach(),
            g_loss=g_loss.detach(),
            p_real=self._p_real(d_real.detach()).mean(),
            p_fake=p_fake,
        )
        return logs


def mixture_batch(fakes: list[Tensor]) -> Tensor:
    """n samples of the k-generator mixture from k batches of n: sample j of generator j mod k."""
    stacked = torch.stack(fakes)  # (k, n, ...)
    n = stacked.shape[1]
    index = torch.arange(n, device=stacked.device)
    return stacked[index % len(fakes), index]


@METHOD_OPTIONS.register("madgan")
def madgan_options(
    cfg,
    k: int = 4,
    variant: Literal["identify", "sim"] = "identify",
    shared_trunk: bool = False,
    generator_loss: Literal["non_saturating", "minimax"] = "non_saturating",
    sim_weight: float = 1.0,
) -> None:
    """k: the number of generators; variant: identify (D has k + 1 classes, the paper's
    MAD-GAN) or sim (one-output D plus the cosine-similarity competing term, MAD-GAN-Sim);
    shared_trunk: the generators share every layer but the last (mlp and dcgan generators);
    generator_loss: non_saturating (-log D_{k+1}(G_i(z)), the paper's practice) or minimax
    (log(1 - D_{k+1}(G_i(z)))); sim_weight: the competing term's weight (variant sim)."""
    at_least(k, 1, "k")
    at_least(sim_weight, 0.0, "sim_weight")
    if variant == "sim" and k < 2:
        raise ConfigError("method_options.k: variant sim compares generators; use k >= 2")
    scoring_discriminator(cfg, "madgan")
    own_discriminator_loss(cfg, "madgan", "a (k + 1)-way cross-entropy" if variant == "identify"
                           else "cross-entropy toward fixed targets")  # fmt: skip
    one_critic_step(cfg, "madgan")
    no_compile(cfg, "madgan")
    if any(t["name"] == "virtual_batch_norm" for t in cfg.tricks):
        raise ConfigError(
            "tricks: virtual_batch_norm is not supported under method 'madgan' yet: the "
            "mixture calls its k generators itself, past the trick's reference batch"
        )
    if cfg.generator["name"] not in ("mlp", "dcgan") and shared_trunk:
        raise ConfigError(
            f"method_options.shared_trunk: supported for the mlp and dcgan generators, not "
            f"{cfg.generator['name']!r}"
        )
    if cfg.discriminator["name"] not in ("mlp", "dcgan", "tiny_dcgan"):
        raise ConfigError(
            f"discriminator.name: method madgan needs an mlp, dcgan or tiny_dcgan discriminator "
            f"(an output layer on a feature vector), got {cfg.discriminator['name']!r}"
        )
