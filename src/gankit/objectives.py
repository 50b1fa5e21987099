"""GAN objectives as pure functions of the discriminator's raw outputs.

An objective never calls backward() or steps an optimizer: the method's train_step does. Each
one turns raw scores d_real = D(x) and d_fake = D(G(z)) into a discriminator loss and a
generator loss. Scores are logits for the probabilistic objectives (D(x) = sigmoid(score)), so
log D and log(1 - D) are computed stably with softplus:
  log D(x) = -softplus(-s),  log(1 - D(x)) = -softplus(s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from gankit.registry import Registry

OBJECTIVES = Registry("objective")


@dataclass(frozen=True)
class Objective:
    """d_loss(d_real, d_fake) and g_loss(d_fake) plus what the training method must know."""

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    # d_loss with the real target t in place of 1 (label smoothing); None: no targets exist
    d_loss_targets: Callable[[Tensor, Tensor, Tensor | float], Tensor] | None = None
    weight_clip: float | None = None  # clamp D's parameters to [-c, c] after each D step
    regularizers: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # implied by it
    default_optimizer: dict[str, Any] | None = None  # the paper's optimizer, where it has one

    @property
    def uses_labels(self) -> bool:
        """Whether D is trained toward real/fake targets (what label smoothing changes)."""
        return self.d_loss_targets is not None

    def __call__(self, d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Tensor]:
        return self.d_loss(d_real, d_fake), self.g_loss(d_fake)


def _bce_d_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    # -E[log D(x)] - E[log(1 - D(G(z)))]
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def _bce_d_loss_targets(d_real: Tensor, d_fake: Tensor, real_target: Tensor | float) -> Tensor:
    # cross-entropy toward target t for reals: -t log D(x) - (1 - t) log(1 - D(x))
    t = real_target
    real = t * F.softplus(-d_real) + (1 - t) * F.softplus(d_real)
    return real.mean() + F.softplus(d_fake).mean()


@OBJECTIVES.register("minimax")
def minimax() -> Objective:
    """Goodfellow et al. 2014, the saturating form: G minimizes E[log(1 - D(G(z)))]."""
    return Objective(
        "minimax", _bce_d_loss, lambda d_fake: -F.softplus(d_fake).mean(), _bce_d_loss_targets
    )


@OBJECTIVES.register("non_saturating")
def non_saturating() -> Objective:
    """Goodfellow et al. 2014, the practical form: G minimizes -E[log D(G(z))]."""
    return Objective(
        "non_saturating",
        _bce_d_loss,
        lambda d_fake: F.softplus(-d_fake).mean(),
        _bce_d_loss_targets,
    )


def _wasserstein_d_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    return d_fake.mean() - d_real.mean()


def _wasserstein_g_loss(d_fake: Tensor) -> Tensor:
    return -d_fake.mean()


@OBJECTIVES.register("wasserstein")
def wasserstein(clip: float | None = 0.01) -> Objective:
    """Arjovsky et al. 2017: the critic maximizes E[D(x)] - E[D(G(z))] under weight clipping.

    clip: clamp the critic's weights to [-clip, clip] after every critic step (null: no
    clipping, for use with another Lipschitz constraint). Default optimizer: RMSprop, lr 5e-5.
    """
    return Objective(
        "wasserstein",
        _wasserstein_d_loss,
        _wasserstein_g_loss,
        weight_clip=clip,
        default_optimizer={"name": "rmsprop", "lr": 5e-5},
    )


@OBJECTIVES.register("wgan_gp")
def wgan_gp(gp_weight: float = 10.0) -> Objective:
    """Gulrajani et al. 2017: Wasserstein loss plus a gradient penalty (lambda 10) on the critic.

    Default optimizer: Adam, lr 1e-4, betas (0, 0.9), as in the paper.
    """
    return Objective(
        "wgan_gp",
        _wasserstein_d_loss,
        _wasserstein_g_loss,
        regularizers=({"name": "gradient_penalty", "weight": gp_weight},),
        default_optimizer={"name": "adam", "lr": 1e-4, "betas": [0.0, 0.9]},
    )


@OBJECTIVES.register("least_squares")
def least_squares(a: float = 0.0, b: float = 1.0, c: float = 1.0) -> Objective:
    """Mao et al. 2017 (LSGAN) on raw scores: a is the fake target, b the real target and c the
    value G wants D to believe for fakes.

      d_loss = 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2],  g_loss = 1/2 E[(D(G(z)) - c)^2]

    A smoothed real label t (1 = real, 0 = fake) means the real target a + t (b - a).
    """

    def d_loss_targets(d_real: Tensor, d_fake: Tensor, t: Tensor | float) -> Tensor:
        real_target = a + t * (b - a)
        return 0.5 * ((d_real - real_target) ** 2).mean() + 0.5 * ((d_fake - a) ** 2).mean()

    return Objective(
        "least_squares",
        lambda d_real, d_fake: d_loss_targets(d_real, d_fake, 1.0),
        lambda d_fake: 0.5 * ((d_fake - c) ** 2).mean(),
        d_loss_targets,
    )


@OBJECTIVES.register("hinge")
def hinge() -> Objective:
    """Lim & Ye 2017 / Miyato et al. 2018: d_loss = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))],
    g_loss = -E[D(G(z))]."""
    return Objective(
        "hinge",
        lambda d_real, d_fake: F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean(),
        lambda d_fake: -d_fake.mean(),
    )


def build_objective(options: dict, where: str = "objective") -> Objective:
    options = dict(options)
    name = options.pop("name", None)
    builder = OBJECTIVES.get(name, where=f"{where}.name")
    return builder(**OBJECTIVES.check_options(name, options, where))
