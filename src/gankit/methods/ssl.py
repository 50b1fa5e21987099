"""Semi-supervised GAN with a K+1 classifier (Salimans et al. 2016, "Improved Techniques for
Training GANs", section 5), as its official code (openai/improved-gan,
mnist_svhn_cifar10/train_mnist_feature_matching.py) trains it.

The discriminator is a K-way classifier with logits l(x); the K+1-th class ("generated") has its
logit fixed at 0, so with Z(x) = sum_k exp l_k(x) = exp(lse(l)):

    D(x) = Z / (Z + 1),   log D(x) = lse(l) - softplus(lse(l)),   log(1 - D(x)) = -softplus(lse(l))

(all from logsumexp and softplus: finite for any logits). One step:

    discriminator: a labeled batch (x_l, y), an unlabeled real batch x_u and a generated batch,
        d_loss = CE(l(x_l), y) + w * loss_unl,
        loss_unl = -1/2 E log D(x_u) - 1/2 E log(1 - D(G(z)))            (w: unlabeled_weight)
    generator: feature matching against a second unlabeled stream x_u' and new z,
        g_loss = mean_j (E f_j(x_u') - E f_j(G(z)))^2
        on D's features f (the layer `feature_layer` names; default its last hidden layer).

The labeled set: `labels_per_class` examples of each class, the first ones of a permutation of the
training set seeded with `label_seed` (the official selection with seed_data); it is cycled
("tiled"), each pass in a new seeded order. Batch composition: `labeled_batch` labeled,
schedule.batch_size unlabeled and `fake_batch` generated samples per step (the paper: 100 each).
The discriminator's weight-normalized layers get their data-dependent init on the first
`init_batch` training samples at construction (models with `data_init`).

An exponential moving average of the classifier's parameters (`ema_decay`, 0.9999 as the
official 0.0001 update; 0 turns it off) is what `gankit eval` tests (`accuracy`); the official
code starts the average at zero, here it starts at the initialized weights. The three data
streams, the noise, the classifier EMA and everything else are in the checkpoints.
Logged: loss_lab, loss_unl, train_err (error on the labeled batch), p_real, p_fake (mean D).

`unlabeled_weight: 0` is the supervised-only baseline: the same classifier (noise layers, weight
norm, optimizer, EMA) trained on the labeled examples alone. The generator and the unlabeled data
are then not used at all (no generator step; the data-dependent init sees the labeled examples
only), so a comparison with it measures what the unlabeled data and the GAN add.

Tricks and penalties attach to the classifier (methods/critic.py) through its real/fake logit
s(x) = lse(l(x)) (log D = s - softplus(s), log(1 - D) = -softplus(s)): loss_unl is the
`k_plus_one` objective of s (`unlabeled_objective`), so label smoothing moves the unlabeled
real target; the penalties take the gradient of s; instance noise perturbs every input of the
classifier. The generator's own loss is feature matching, so the feature_matching trick is
refused; the supervised-only baseline trains no GAN and takes none.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.data.base import DataSource, InMemoryData
from gankit.data.sharded import ShardedData
from gankit.errors import ConfigError
from gankit.methods.base import Method, Noise, build_optimizer
from gankit.methods.critic import Critic
from gankit.methods.ema import EMA
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
from gankit.methods.player import Player
from gankit.methods.players import Players
from gankit.models import build_discriminator, build_generator
from gankit.models.layers import output_layer_like
from gankit.objectives import Objective
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator
from gankit.tricks.feature_matching import feature_matching_loss


# -- the K+1 probabilities and losses (pure functions of the K logits) ------------------------
def log_d(logits: Tensor) -> Tensor:
    """log D(x) = log(Z / (Z + 1)) = lse(l) - softplus(lse(l)), per sample."""
    lse = torch.logsumexp(logits.float(), dim=1)
    return lse - F.softplus(lse)


def log_one_minus_d(logits: Tensor) -> Tensor:
    """log(1 - D(x)) = log(1 / (Z + 1)) = -softplus(lse(l)), per sample."""
    return -F.softplus(torch.logsumexp(logits.float(), dim=1))


def unlabeled_objective() -> Objective:
    """loss_unl as an objective of the real/fake logit s = lse(l): D's loss
    -1/2 E log D(x_u) - 1/2 E log(1 - D(G(z))), with log D = s - softplus(s) and
    log(1 - D) = -softplus(s), and with a real target t (label smoothing)
    -1/2 E [t log D(x_u) + (1 - t) log(1 - D(x_u))] - 1/2 E log(1 - D(G(z))). G's loss is
    feature matching, not this objective's."""

    def d_loss(s_unl: Tensor, s_fake: Tensor) -> Tensor:
        return -0.5 * (s_unl - F.softplus(s_unl)).mean() - 0.5 * (-F.softplus(s_fake)).mean()

    def d_loss_targets(s_unl: Tensor, s_fake: Tensor, t) -> Tensor:
        real = t * (s_unl - F.softplus(s_unl)) + (1 - t) * -F.softplus(s_unl)
        return -0.5 * real.mean() - 0.5 * (-F.softplus(s_fake)).mean()

    def g_loss(s_fake: Tensor) -> Tensor:
        raise NotImplementedError("the ssl generator minimizes feature matching")

    return Objective("k_plus_one", d_loss, g_loss, d_loss_targets)


class RealFakeLogit(nn.Module):
    """The K-way classifier read as a real/fake score: s(x) = lse(l(x)), the logit of D(x);
    `features` is the classifier's."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def features(self, x: Tensor) -> Tensor:
        return self.classifier.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return real_fake_logit(self.classifier(x))


def ssl_d_losses(
    logits_lab: Tensor,
    labels: Tensor,
    logits_unl: Tensor,
    logits_fake: Tensor,
    unlabeled_loss=None,
) -> tuple[Tensor, Tensor]:
    """(loss_lab, loss_unl): the supervised cross-entropy over the K classes on the labeled batch
    and -1/2 E log D(x_u) - 1/2 E log(1 - D(G(z))) (`unlabeled_loss` of the real/fake logits,
    default `unlabeled_objective().d_loss`; a Critic's d_loss with label smoothing)."""
    loss_lab = F.cross_entropy(logits_lab.float(), labels)
    loss_fn = unlabeled_objective().d_loss if unlabeled_loss is None else unlabeled_loss
    return loss_lab, loss_fn(real_fake_logit(logits_unl), real_fake_logit(logits_fake))


def real_fake_logit(logits: Tensor) -> Tensor:
    """s = lse(l): the logit of D(x) = Z / (Z + 1), per sample."""
    return torch.logsumexp(logits.float(), dim=1)


def labeled_subset(labels: Tensor, per_class: int, seed: int, num_classes: int) -> Tensor:
    """Indices of `per_class` examples of each class: the first of each class in a permutation
    seeded with `seed`, grouped by class."""
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels.cpu()[perm]
    chosen = []
    for c in range(num_classes):
        idx = perm[shuffled == c][:per_class]
        if len(idx) < per_class:
            raise ConfigError(
                f"method_options.labels_per_class: class {c} has only {len(idx)} training "
                f"examples, fewer than {per_class}"
            )
        chosen.append(idx)
    return torch.cat(chosen)


# -- the classifier ---------------------------------------------------------------------------
def with_class_logits(D: nn.Module, num_classes: int) -> nn.Module:
    """The recipe's discriminator as a K-way classifier: ssl_mlp has K logits already; mlp/dcgan
    get an output layer with K outputs (on their features)."""
    if getattr(D, "n_classes", None) is not None:
        if D.n_classes != num_classes:
            raise ConfigError(
                f"discriminator.n_classes: {D.n_classes}, but the data has {num_classes} classes"
            )
        return D
    if not isinstance(getattr(D, "out", None), nn.Linear) or not hasattr(D, "feature_dim"):
        raise ConfigError(
            f"discriminator.name: method 'ssl' needs a discriminator whose output layer scores "
            f"a feature vector (ssl_mlp, mlp, dcgan), not {type(D).__name__}"
        )
    D.out = output_layer_like(D.out, nn.Linear(D.feature_dim, num_classes))
    return D


def build_classifier(cfg, shape, num_classes: int) -> nn.Module:
    return with_class_logits(build_discriminator(cfg.discriminator, shape), num_classes)


def _in_memory(data: DataSource) -> InMemoryData:
    base = getattr(data, "source", data)  # under torchrun, the sharded source's own data
    if not isinstance(base, InMemoryData) or base.labels is None or not base.num_classes:
        raise ConfigError(
            f"data: method 'ssl' needs a labeled in-memory data set (digits, idx, cifar10, "
            f"folder with class subfolders); {data.name} is not one"
        )
    return base


class SSLMethod(Players):
    trains_classifier = True
    # modules() key of the network `gankit eval` tests (metrics/evaluate.py: accuracy)
    classifier_keys = ("classifier_ema", "discriminator")

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        Method.__init__(self, cfg, data, device)
        opts = method_options(cfg)
        base = _in_memory(data)
        self.num_classes = K = int(base.num_classes)
        self.fast = fast = FastMode.for_recipe(cfg, device)
        fused = fast.fused_optimizer
        G = build_generator(cfg.generator, data.shape)
        self.generator = fast.prepare(G.to(device))
        D = build_classifier(cfg, data.shape, K).to(device)
        idx = labeled_subset(base.labels, opts["labels_per_class"], opts["label_seed"], K)
        idx = idx.to(base.x.device)
        self.supervised_only = opts["unlabeled_weight"] == 0
        if hasattr(D, "data_init"):  # weight normalization's data-dependent init
            init = base.x[idx] if self.supervised_only else base.reference(opts["init_batch"])
            D.data_init(init.to(device))
        objective = unlabeled_objective()
        tricks = build_tricks(cfg, objective)
        self.discriminator = D = fast.prepare(wrap_discriminator(tricks, D, cfg).to(device))
        self.opt_g = build_optimizer(self.generator.parameters(), cfg.optim.generator, fused)
        self.g_player = Player("generator", self.generator, self.opt_g, fast)
        self.critic = Critic.with_optimizer(cfg, objective, tricks, D, fast)
        self.opt_d = self.critic.optimizer
        self.score = RealFakeLogit(D)
        self.ema = EMA(D, opts["ema_decay"]) if opts["ema_decay"] > 0 else None
        self.noise = Noise(
            cfg.generator["latent_dim"], cfg.generator["latent_dist"], cfg.seed + 1, device
        )
        # the labeled set, cycled in a new seeded order each pass, and a second unlabeled stream
        # for the generator's feature matching (the official trainx_unl2)
        self.labeled = InMemoryData(
            base.x[idx], base.labels[idx], seed=cfg.seed + 7, name="labeled", num_classes=K
        )
        self.unlabeled2 = InMemoryData(base.x, None, seed=cfg.seed + 8, name="unlabeled2")
        if base is not data:  # torchrun: every process keeps its rows of the global batches
            self.labeled = ShardedData(self.labeled, data.rank, data.world)
            self.unlabeled2 = ShardedData(self.unlabeled2, data.rank, data.world)
        self.labeled_batch = opts["labeled_batch"] or cfg.schedule.batch_size
        self.fake_batch = opts["fake_batch"] or cfg.schedule.batch_size
        self.batch_size = cfg.schedule.batch_size
        self.unlabeled_weight = opts["unlabeled_weight"]
        self.feature_layer = opts["feature_layer"]
        self.critic.attach(self)

    @property
    def classifier(self) -> nn.Module:
        """The network to test: the EMA of the discriminator when kept."""
        return self.discriminator if self.ema is None else self.ema.model

    @classmethod
    def build_classifier(cls, cfg, shape, num_classes: int) -> nn.Module:
        return build_classifier(cfg, shape, num_classes)

    def modules(self) -> dict[str, nn.Module]:
        mods = super().modules()
        if self.ema is not None:
            mods["classifier_ema"] = self.ema.model
        return mods

    def extra_state(self) -> dict:
        return {
            **super().extra_state(),
            "labeled": self.labeled.state_dict(),
            "unlabeled2": self.unlabeled2.state_dict(),
        }

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.labeled.load_state_dict(state["labeled"])
        self.unlabeled2.load_state_dict(state["unlabeled2"])

    def features(self, D: nn.Module, x: Tensor) -> Tensor:
        if self.feature_layer == "features":
            return D.features(x)
        return D.named_features(x)[self.feature_layer]

    def train_step(self, step: int) -> dict[str, Tensor]:
        if self.supervised_only:
            return self.supervised_step(step)
        G, D, fast, critic = self.generator, self.discriminator, self.fast, self.critic
        x_lab, y_lab = self.labeled.batch(self.labeled_batch)
        x_unl, _ = self.data.batch(self.batch_size)
        x_lab, x_unl = critic.perturb(x_lab, step), critic.perturb(x_unl, step)
        logs: dict[str, Tensor] = {}
        with fast.autocast():
            with torch.no_grad():
                fake = critic.perturb(G(self.noise(self.fake_batch)), step)
            # separate passes: any batch statistics see each batch alone
            l_lab, l_unl, l_fake = D(x_lab).float(), D(x_unl).float(), D(fake).float()
            loss_lab, loss_unl = ssl_d_losses(l_lab, y_lab, l_unl, l_fake, critic.d_loss)
            d_loss = loss_lab + self.unlabeled_weight * loss_unl
            ctx = RegularizerContext(self.score, x_unl, fake, step)
            d_loss = critic.d_terms(d_loss, logs, ctx)
        critic.step(d_loss, logs, self.collect_stats)
        if self.ema is not None:
            self.ema.update(D, step)
        # generator: feature matching on new noise and the second unlabeled stream
        x_unl2, _ = self.unlabeled2.batch(self.batch_size)
        with critic.frozen():
            with fast.autocast():
                x_unl2 = critic.perturb(x_unl2, step)
                f_real = self.features(D, x_unl2).detach()
                gen = critic.perturb(G(self.noise(self.fake_batch)), step)
                f_fake = self.features(D, gen)
                g_loss = feature_matching_loss(f_real, f_fake, reduction="mean")
                ctx = RegularizerContext(self.score, x_unl2, gen, step)
                g_loss = critic.g_terms(g_loss, logs, ctx)
            self.g_player.update(g_loss, logs, self.collect_stats)
            critic.after_generator_step()
        logs.update(
            d_loss=d_loss.detach(),
            g_loss=g_loss.detach(),
            loss_lab=loss_lab.detach(),
            loss_unl=loss_unl.detach(),
            train_err=(l_lab.detach().argmax(1) != y_lab).float().mean(),
            p_real=log_d(l_unl.detach()).exp().mean(),
            p_fake=log_d(l_fake.detach()).exp().mean(),
        )
        return logs

    def supervised_step(self, step: int) -> dict[str, Tensor]:
        """The baseline's step: cross-entropy on a labeled batch, nothing else."""
        D = self.discriminator
        x_lab, y_lab = self.labeled.batch(self.labeled_batch)
        logs: dict[str, Tensor] = {}
        with self.fast.autocast():
            l_lab = D(x_lab).float()
            loss_lab = F.cross_entropy(l_lab, y_lab)
        self.update(loss_lab, "discriminator", logs)
        if self.ema is not None:
            self.ema.update(D, step)
        zero = torch.zeros((), device=self.device)
        logs.update(
            d_loss=loss_lab.detach(),
            g_loss=zero,  # no generator is trained
            loss_lab=loss_lab.detach(),
            train_err=(l_lab.detach().argmax(1) != y_lab).float().mean(),
        )
        return logs


@METHOD_OPTIONS.register("ssl")
def ssl_options(
    cfg,
    labels_per_class: int = 10,
    label_seed: int = 1,
    labeled_batch: int = 0,
    fake_batch: int = 0,
    unlabeled_weight: float = 1.0,
    feature_layer: str = "features",
    ema_decay: float = 0.9999,
    init_batch: int = 500,
) -> None:
    """labels_per_class: labeled examples of each class (the rest of the training set is used
    unlabeled); label_seed: seed of their selection (the official seed_data 1); labeled_batch,
    fake_batch: labeled and generated samples per step (0: schedule.batch_size, the unlabeled
    batch); unlabeled_weight: weight of the unsupervised loss (0: the supervised-only baseline, no
    generator and no unlabeled data); feature_layer: D's layer for
    feature matching ("features": its last hidden layer; or a name of its named_features, e.g.
    h3 for ssl_mlp); ema_decay: EMA of the classifier for testing (0: none); init_batch: samples
    for the data-dependent init of weight-normalized layers."""
    at_least(labels_per_class, 1, "labels_per_class")
    at_least(labeled_batch, 0, "labeled_batch")
    at_least(fake_batch, 0, "fake_batch")
    at_least(unlabeled_weight, 0.0, "unlabeled_weight")
    in_range(ema_decay, 0.0, 1.0, "ema_decay")
    at_least(init_batch, 2, "init_batch")
    scoring_discriminator(cfg, "ssl")
    if unlabeled_weight == 0 and (cfg.tricks or cfg.regularizers):
        raise ConfigError(
            "tricks, regularizers: unlabeled_weight 0 is the supervised-only baseline, which "
            "trains no GAN for them to act on; remove them or set unlabeled_weight > 0"
        )
    for trick in cfg.tricks:
        if trick["name"] in ("feature_matching", "virtual_batch_norm"):
            raise ConfigError(
                f"tricks: {trick['name']} does not apply to method 'ssl': "
                + (
                    "its generator already minimizes feature matching (feature_layer)"
                    if trick["name"] == "feature_matching"
                    else "not supported yet (the generator's reference batch)"
                )
            )
    one_critic_step(cfg, "ssl")
    no_compile(cfg, "ssl")
