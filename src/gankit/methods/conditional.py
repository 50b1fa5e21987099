"""Class-conditional GANs: a conditional GAN with a projection discriminator (`cgan`; Miyato &
Koyama 2018, "cGANs with Projection Discriminator") and the auxiliary-classifier GAN (`acgan`;
Odena et al. 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs").

Generator (both methods): the recipe's generator built with latent size latent_dim + embed_dim;
a learned class embedding e(y) (embed_dim) is concatenated to z: G(z, y) = G'([z, e(y)]).
Called with z only (sample grids, EMA, `gankit eval`), row i gets class i mod K, so every batch
covers the classes evenly; `G(z, labels=y)` (and `Run.sample(n, labels=c)`) asks for classes.

Generated labels are drawn uniformly from the K classes with their own seeded torch.Generator,
whose state is in the checkpoints (with the latent noise), so resumed runs continue exactly.

cgan: D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, with phi = the recipe discriminator's
`features` (its last hidden layer), psi its output layer and embed a K x feature_dim embedding.
The objective (objective.name: hinge as the paper, non_saturating, ...) takes these scores for
(x, y_real) and (G(z, y), y). One discriminator step then one generator step on the same fake
labels (new z for the generator step).

acgan: D's output layer is replaced by one with 1 + K outputs: the source logit (real/fake) and
K class logits. With the objective's losses on the source logits and cross-entropy CE on the
class logits (taken from the logits, F.cross_entropy, never after a softmax):

    d_loss = objective.d_loss(s(x), s(G(z, c))) + w (CE(k(x), y) + CE(k(G(z, c)), c))
    g_loss = objective.g_loss(s(G(z, c))) + w CE(k(G(z, c)), c)

(the paper: D maximizes L_S + L_C, G maximizes L_C - L_S; here the objective's G loss, the
non-saturating one by default). With `d_class_loss: real`, D's class term is w CE(k(x), y)
only. With `d_class_loss: twin` (TAC-GAN, Gong et al. 2019, "Twin Auxiliary Classifiers GAN"),
D has a second set of K logits t, a classifier of the fakes:

    d_loss = objective.d_loss(...) + w (CE(k(x), y) + CE(t(G(z, c)), c))
    g_loss = objective.g_loss(...) + w (CE(k(G(z, c)), c) - CE(t(G(z, c)), c))

Logged: `acc_real`, `acc_fake` (D's class accuracy, its main classifier).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.data import build_dataset
from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.critic import ScoreOf
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    method_options,
    no_compile,
    one_critic_step,
    scoring_discriminator,
)
from gankit.methods.players import Players
from gankit.models import build_discriminator, build_generator
from gankit.models.layers import output_layer_like
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import wrap_discriminator


# -- networks ---------------------------------------------------------------------------------
class ConditionalGenerator(nn.Module):
    """G(z, y) = base([z, embed(y)]); labels=None: row i gets class i mod K."""

    def __init__(self, base: nn.Module, num_classes: int, embed_dim: int):
        super().__init__()
        self.base = base
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.latent_dim = base.latent_dim - embed_dim  # z's size, without the embedding
        self.out_shape = base.out_shape

    def default_labels(self, n: int, device) -> Tensor:
        return torch.arange(n, device=device) % self.num_classes

    def labels_for(self, n: int, labels: Tensor | int | None, device) -> Tensor:
        """n labels: the given ones, one class for all (an int), or row i -> i mod K (None)."""
        if labels is None:
            labels = self.default_labels(n, device)
        elif isinstance(labels, int):
            labels = torch.full((n,), labels, dtype=torch.long, device=device)
        labels = labels.to(device, torch.long)
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels.tolist()}")
        return labels

    def forward(self, z: Tensor, labels: Tensor | int | None = None) -> Tensor:
        labels = self.labels_for(z.shape[0], labels, z.device)
        return self.base(torch.cat([z, self.embed(labels).to(z.dtype)], dim=1))


def _check_feature_head(D: nn.Module, method: str, replaced: bool = False) -> None:
    """D scores a feature vector: features(x) of size feature_dim, then head (an output layer
    `out` where the method replaces it)."""
    head = isinstance(getattr(D, "out", None), nn.Linear) if replaced else hasattr(D, "head")
    if not head or not hasattr(D, "feature_dim") or not hasattr(D, "features"):
        raise ConfigError(
            f"discriminator.name: method {method!r} needs a discriminator whose output layer "
            f"scores a feature vector (mlp, dcgan), not {type(D).__name__}"
        )


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> on a gankit discriminator (phi = features,
    psi = head)."""

    def __init__(self, D: nn.Module, num_classes: int):
        super().__init__()
        _check_feature_head(D, "cgan")
        self.D = D
        self.embed = nn.Embedding(num_classes, D.feature_dim)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def features(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """phi(x), which does not depend on the labels."""
        return self.D.features(x)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        phi = self.D.features(x)
        return self.D.head(phi) + (self.embed(labels).to(phi.dtype) * phi).sum(1)


def add_class_logits(D: nn.Module, num_classes: int, heads: int = 1) -> nn.Module:
    """D with its output layer replaced by one with 1 + heads K outputs: the source
    (real/fake) logit and K class logits per classifier (TAC-GAN: 2)."""
    _check_feature_head(D, "acgan", replaced=True)
    D.out = output_layer_like(D.out, nn.Linear(D.feature_dim, 1 + heads * num_classes))
    return D


class ACGANDiscriminator(nn.Module):
    """A discriminator whose head has 1 + K outputs (`add_class_logits`, then any layers the
    tricks add): forward(x) -> (source logit (N,), class logits (N, K))."""

    def __init__(self, D: nn.Module):
        super().__init__()
        self.D = D

    def features(self, x: Tensor) -> Tensor:
        return self.D.features(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.D.head(self.D.features(x))
        return out[:, 0], out[:, 1:]


# -- ACGAN losses (pure functions of D's outputs) ---------------------------------------------
def acgan_losses(
    source_d_loss: Tensor,
    k_real,
    y_real,
    k_fake,
    y_fake,
    class_weight: float = 1.0,
    d_class_loss: str = "real_and_fake",
) -> tuple[Tensor, Tensor]:
    """(d_loss, CE of the fakes' class logits) for ACGAN: the objective's D loss on the source
    logits plus the weighted cross-entropies of the class logits k (not softmaxed).
    d_class_loss: real_and_fake (the paper), real (D's classifier learns from real images
    only) or twin (TAC-GAN: k has 2K columns, the main classifier's on real images, the twin's
    on the fakes)."""
    K = k_real.shape[1] // 2 if d_class_loss == "twin" else k_real.shape[1]
    ce_real = F.cross_entropy(k_real[:, :K].float(), y_real)
    ce_fake = F.cross_entropy(k_fake[:, :K].float(), y_fake)
    if d_class_loss == "real_and_fake":
        class_loss = ce_real + ce_fake
    elif d_class_loss == "twin":
        class_loss = ce_real + F.cross_entropy(k_fake[:, K:].float(), y_fake)
    else:
        class_loss = ce_real
    return source_d_loss + class_weight * class_loss, ce_fake


def acgan_generator_class_loss(k_gen: Tensor, y: Tensor, d_class_loss: str) -> Tensor:
    """G's class term: CE of the main classifier on its samples; under TAC-GAN minus the twin
    classifier's CE, which cancels the bias toward easily classified samples (Gong et al.
    2019, "Twin Auxiliary Classifiers GAN")."""
    if d_class_loss != "twin":
        return F.cross_entropy(k_gen.float(), y)
    K = k_gen.shape[1] // 2
    return F.cross_entropy(k_gen[:, :K].float(), y) - F.cross_entropy(k_gen[:, K:].float(), y)


# -- methods ----------------------------------------------------------------------------------
class ConditionalMethod(Players):
    """Shared setup: conditional G, a discriminator built by `wrap_discriminator` with the
    recipe's tricks and penalties attached (methods/critic.py), optimizers, the latent noise
    and the generated-label stream. Penalties score an input through `score_view`: ACGAN's
    source logit; the projection D at the real batch's labels (for every input, fakes and
    interpolates included, as StudioGAN's conditional gradient penalties do)."""

    name = "cgan"
    conditional = True

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        self.opts = opts = method_options(cfg)
        if not data.num_classes:
            raise ConfigError(
                f"data: method {self.name!r} needs a labeled data set (digits, idx, cifar10, "
                f"a folder with one subfolder per class); {data.name} has no labels"
            )
        self.num_classes = int(data.num_classes)
        self.d_class_loss = opts.get("d_class_loss", "real_and_fake")  # before D is built
        super().__init__(cfg, data, device)
        self.label_gen = torch.Generator(device=device).manual_seed(cfg.seed + 5)
        self.class_weight = opts.get("class_weight", 1.0)

    def make_generator(self, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        return self.build_sampler(cfg, shape, self.num_classes, self.opts["embed_dim"])

    def discriminator_with_tricks(self, cfg: RunConfig, shape: tuple[int, ...]) -> nn.Module:
        """The recipe's D, the layers tricks add (minibatch features: on D's own features,
        beneath the class projection or logits), the method's head, then spectral norm over
        all of it."""
        adds_layers = [t for t in self.tricks if t.wrap_order == 0]
        rest = [t for t in self.tricks if t.wrap_order != 0]
        D = self.with_output(build_discriminator(cfg.discriminator, shape))
        D = self.conditional_view(wrap_discriminator(adds_layers, D, cfg), self.num_classes)
        return wrap_discriminator(rest, D, cfg)

    def with_output(self, D: nn.Module) -> nn.Module:
        """The base D's output layer as the method needs it (ACGAN: 1 + K logits)."""
        return D

    @classmethod
    def build_sampler(cls, cfg, shape, num_classes: int | None = None, embed_dim=None):
        """The conditional generator of a recipe (also for loading a checkpoint's generator)."""
        if num_classes is None:
            num_classes = build_dataset(cfg.data, seed=cfg.seed).num_classes
        if embed_dim is None:
            embed_dim = method_options(cfg)["embed_dim"]
        g_cfg = dict(cfg.generator)
        g_cfg["latent_dim"] = g_cfg["latent_dim"] + embed_dim
        return ConditionalGenerator(build_generator(g_cfg, shape), int(num_classes), embed_dim)

    def conditional_view(self, D: nn.Module, K: int) -> nn.Module:
        return ProjectionDiscriminator(D, K)

    def score_view(self, labels: Tensor) -> nn.Module:
        return ScoreOf(self.discriminator, condition=labels)

    def fake_labels(self, n: int) -> Tensor:
        return torch.randint(
            0, self.num_classes, (n,), generator=self.label_gen, device=self.device
        )

    def extra_state(self) -> dict:
        return {**super().extra_state(), "labels": self.label_gen.get_state()}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.label_gen.set_state(state["labels"])

    # the discriminator's outputs: (real/fake score, class logits or None)
    def judge(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.discriminator(x, labels).float(), None

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, critic, fast, n = self.generator, self.critic, self.fast, self.batch_size
        real, y_real = self.data.batch(n)
        y_fake = self.fake_labels(n)
        real = critic.perturb(real, step)
        logs: dict[str, Tensor] = {}
        with fast.autocast():
            with torch.no_grad():
                fake = critic.perturb(G(self.noise(n), y_fake), step)
            d_real, k_real = self.judge(real, y_real)
            d_fake, k_fake = self.judge(fake, y_fake)
            d_loss = critic.d_loss(d_real, d_fake)
            if k_real is not None:
                d_loss, _ = acgan_losses(
                    d_loss, k_real, y_real, k_fake, y_fake, self.class_weight, self.d_class_loss
                )
            ctx = RegularizerContext(self.score_view(y_real), real, fake, step)
            d_loss = critic.d_terms(d_loss, logs, ctx)
        critic.step(d_loss, logs, self.collect_stats)
        with critic.frozen():
            with fast.autocast():
                gen = critic.perturb(G(self.noise(n), y_fake), step)
                s_gen, k_gen = self.judge(gen, y_fake)
                g_loss = critic.g_loss(s_gen)
                if k_gen is not None:
                    g_loss = g_loss + self.class_weight * acgan_generator_class_loss(
                        k_gen, y_fake, self.d_class_loss
                    )
                ctx = RegularizerContext(self.score_view(y_real), real, gen, step)
                g_loss = critic.g_terms(g_loss, logs, ctx)
            self.g_player.update(g_loss, logs, self.collect_stats)
            critic.after_generator_step()
        logs.update(
            d_loss=d_loss.detach(),
            g_loss=g_loss.detach(),
            d_real=d_real.detach().mean(),
            d_fake=d_fake.detach().mean(),
        )
        if k_real is not None:
            K = self.num_classes
            logs["acc_real"] = (k_real.detach()[:, :K].argmax(1) == y_real).float().mean()
            logs["acc_fake"] = (k_fake.detach()[:, :K].argmax(1) == y_fake).float().mean()
        return logs


class CGANMethod(ConditionalMethod):
    name = "cgan"


class ACGANMethod(ConditionalMethod):
    name = "acgan"

    def with_output(self, D: nn.Module) -> nn.Module:
        return add_class_logits(D, self.num_classes, 2 if self.d_class_loss == "twin" else 1)

    def conditional_view(self, D: nn.Module, K: int) -> nn.Module:
        return ACGANDiscriminator(D)

    def score_view(self, labels: Tensor) -> nn.Module:
        return ScoreOf(self.discriminator, index=0)

    def judge(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        s, k = self.discriminator(x)
        return s.float(), k


def _conditional_checks(cfg, method: str, embed_dim: int) -> None:
    at_least(embed_dim, 1, "embed_dim")
    scoring_discriminator(cfg, method)
    one_critic_step(cfg, method)
    no_compile(cfg, method)


@METHOD_OPTIONS.register("cgan")
def cgan_options(cfg, embed_dim: int = 32) -> None:
    """embed_dim: size of the class embedding concatenated to z in the generator. D is the
    projection discriminator built on the recipe's discriminator (mlp, dcgan)."""
    _conditional_checks(cfg, "cgan", embed_dim)


@METHOD_OPTIONS.register("acgan")
def acgan_options(
    cfg, embed_dim: int = 32, class_weight: float = 1.0, d_class_loss: str = "real_and_fake"
) -> None:
    """embed_dim: as cgan; class_weight: weight of the class cross-entropies in both losses;
    d_class_loss: which images D's classifier learns from: real_and_fake (the paper), real
    (D cannot read the requested class off G's artifacts; G tends to draw one typical image
    per class) or twin (TAC-GAN, Gong et al. 2019: the classifier learns from real images and a
    twin classifier from the fakes, which G plays against to keep each class diverse)."""
    _conditional_checks(cfg, "acgan", embed_dim)
    if d_class_loss not in ("real_and_fake", "real", "twin"):
        raise ConfigError(
            f"method_options.d_class_loss: must be real_and_fake, real or twin, got "
            f"{d_class_loss!r}"
        )
    if class_weight < 0:
        raise ConfigError(f"method_options.class_weight: must be >= 0, got {class_weight}")
