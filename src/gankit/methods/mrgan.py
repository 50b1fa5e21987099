"""Mode-Regularized GAN and Manifold-Diffusion GAN (Che et al. 2017, "Mode Regularized
Generative Adversarial Networks").

Both add an encoder E (method_options.encoder, an encoder model of models/encoder.py mapping
data to the generator's latent space; its optimizer takes the optim.generator settings) so that
G(E(x)) reconstructs real data. D(v) = sigmoid(D's logit) is P(real); the losses are the GAN
cross-entropies computed from logits (-log D = softplus(-logit), -log(1 - D) = softplus(logit)).
d(x, y) = ||x - y||^2, the squared L2 distance summed over a sample's entries; every loss is a
batch mean.

mrgan, the regularized GAN (the paper's Sec. 3.1-3.2):

    d_loss = -E_x log D(x) - E_z log(1 - D(G(z)))                  (D as in a GAN)
    reg    = E_x [lambda1 d(x, G(E(x))) + lambda2 (-log D(G(E(x))))]
    T_G    = -E_z log D(G(z)) + reg,      T_E = reg

The geometric term lambda1 d(x, G(E(x))) makes G∘E an autoencoder of the data; the mode term
rewards G(E(x)) for looking real to D, so that every mode x is drawn from reaches G with a
gradient. The paper prints the mode term as "+ lambda2 log D(G∘E(x))" in T_G and T_E; minimized,
that would push G(E(x)) away from what D calls real, against the term's stated purpose and its
MDGAN manifold step (which ascends lambda log D_1(G(E(x)))), so it is implemented as
lambda2 (-log D(G(E(x)))), the non-saturating form. One step: D takes one step on a real batch
and G(z); then G and E take one step each (one backward pass; E's gradient of T_G is that of
T_E, since -log D(G(z)) does not depend on E) against the updated D, on the same batches.

mdgan, the manifold-diffusion GAN (the paper's Sec. 3.3 and its Algorithm), with two
discriminators, `discriminator` (D_m, the manifold step's) and `discriminator_diffusion` (D_d),
both built from the recipe's discriminator section with the optim.discriminator settings:

    manifold step (real batch x):
      D_m:   -E_x log D_m(x) - E_x log(1 - D_m(G(E(x))))
      G, E:  E_x [lambda1 d(x, G(E(x))) + lambda2 (-log D_m(G(E(x))))]     (against the new D_m)
    diffusion step (a new real batch x', noise z):
      D_d:   -E_x' log D_d(G(E(x'))) - E_z log(1 - D_d(G(z)))               (G(E(x')) constant)
      G:     -E_z log D_d(G(z))                                             (against the new D_d)

so the manifold step fits G∘E to the data and the diffusion step spreads G(z) over what G∘E
reaches. Logged: `d_loss`/`g_loss` are the diffusion step's (D_d's and G's), `d_manifold` and
`g_manifold` the manifold step's, `geometric` the mean d(x, G(E(x))); mrgan logs `geometric`
and `mode` (the mean -log D(G(E(x)))).

Tricks and penalties attach to the discriminators (methods/critic.py): mrgan's D, and each of
mdgan's D_m and D_d with its own instance (logs of D_d's carry /diffusion). They see what each
D scores (instance noise on G(E(x)) too); label smoothing moves each D's "real" target (for D_d
that is G(E(x'))); G's terms join the loss of the step whose D they belong to, so G's
historical averaging acts in both of mdgan's G steps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.base import build_optimizer
from gankit.methods.critic import Critic, Pairing
from gankit.methods.options import (
    METHOD_OPTIONS,
    at_least,
    method_options,
    no_compile,
    one_critic_step,
    scoring_discriminator,
)
from gankit.methods.player import grad_norm
from gankit.methods.players import Players
from gankit.models import ENCODERS, build_discriminator, build_encoder
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig
from gankit.tricks import build_tricks, wrap_discriminator

DEFAULT_ENCODER = {"name": "mlp"}


# -- losses (pure functions) --------------------------------------------------------------------
def gan_g_loss(fake_logits: Tensor) -> Tensor:
    """-E log D(fake) (non-saturating), from logits."""
    return F.softplus(-fake_logits.float()).mean()


def geometric(x: Tensor, recon: Tensor) -> Tensor:
    """d(x, G(E(x))) = ||x - G(E(x))||^2 per sample, shape (N,), in fp32."""
    return (x.float() - recon.float()).flatten(1).pow(2).sum(1)


def mode_regularizer(
    x: Tensor, recon: Tensor, recon_logits: Tensor, lambda1: float, lambda2: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(reg, mean geometric term, mean mode term), with
    reg = lambda1 E d(x, G(E(x))) + lambda2 E -log D(G(E(x)))."""
    geo = geometric(x, recon).mean()
    mode = F.softplus(-recon_logits.float()).mean()
    return lambda1 * geo + lambda2 * mode, geo, mode


def cross_entropy_objective(cfg, method: str) -> None:
    """These methods use the GAN cross-entropy losses of their papers."""
    if cfg.objective["name"] != "non_saturating":
        raise ConfigError(
            f"objective.name: method {method!r} uses its paper's cross-entropy losses (the "
            f"non_saturating objective); got {cfg.objective['name']!r}"
        )


def check_encoder(spec, method: str) -> None:
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(
            f"method_options.encoder: expected a mapping with a name (e.g. {{name: mlp}}), "
            f"got {spec!r}"
        )
    options = {k: v for k, v in spec.items() if k != "name"}
    ENCODERS.get(spec["name"], where="method_options.encoder.name")
    ENCODERS.check_options(
        spec["name"], options, "method_options.encoder", framework_args=("in_shape", "latent_dim")
    )


# -- shared machinery -----------------------------------------------------------------------------
class _EncoderMethod(Players):
    """Players (G, D, their optimizers, noise) plus the encoder and its optimizer."""

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        opts = method_options(cfg)
        self.lambda1, self.lambda2 = opts["lambda1"], opts["lambda2"]
        E = build_encoder(
            opts["encoder"],
            tuple(data.shape),
            cfg.generator["latent_dim"],
            "method_options.encoder",
        )
        self.encoder = self.fast.prepare(E.to(device))
        self.opt_e = build_optimizer(
            self.encoder.parameters(), cfg.optim.generator, self.fast.fused_optimizer
        )

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "encoder": self.encoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "encoder": self.opt_e}

    def update_players(self, loss: Tensor, players: tuple[str, ...], logs: dict) -> None:
        """One backward of `loss` into the parameters of `players` only, then one step of
        each one's optimizer (with loss scaling: one scale for the pass, updated once)."""
        modules, optimizers = self.modules(), self.optimizers()
        fast = self.fast
        for name in players:
            optimizers[name].zero_grad(set_to_none=True)
        params = [p for name in players for p in modules[name].parameters()]
        (loss if fast.scaler is None else fast.scaler.scale(loss)).backward(inputs=params)
        if self.collect_stats:
            for name in players:
                fast.unscale(optimizers[name])
                logs[f"grad_norm/{name}"] = grad_norm(modules[name])
        if fast.scaler is None:
            for name in players:
                optimizers[name].step()
            return
        for name in players:
            fast.scaler.step(optimizers[name])
        fast.scaler.update()
        for name in players:
            optimizers[name].zero_grad(set_to_none=True)


# -- mrgan ----------------------------------------------------------------------------------------
class MRGANMethod(_EncoderMethod):
    def generator_losses(
        self, real: Tensor, fake: Tensor, step: int = 0, logs: dict | None = None
    ) -> dict[str, Tensor]:
        """T_G (with D's terms for G), T_E and their parts for a real batch and a fake batch
        G(z)."""
        D, critic = self.discriminator, self.critic
        recon = self.generator(self.encoder(real))
        reg, geo, mode = mode_regularizer(
            real, recon, D(critic.perturb(recon, step)), self.lambda1, self.lambda2
        )
        seen = critic.perturb(fake, step)
        g_loss = critic.g_loss(D(seen).float()) + reg
        ctx = RegularizerContext(D, critic.perturb(real, step), seen, step)
        g_loss = critic.g_terms(g_loss, {} if logs is None else logs, ctx)
        return {"g_loss": g_loss, "e_loss": reg, "geometric": geo, "mode": mode}

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, fast, critic = self.generator, self.fast, self.critic
        real, _ = self.data.batch(self.batch_size)
        logs: dict[str, Tensor] = {}
        with fast.autocast():
            fake = G(self.noise(self.batch_size))  # kept for the generator step
            d_loss = critic_loss(critic, real, fake.detach(), step, logs)
        critic.step(d_loss, logs, self.collect_stats)
        with critic.frozen():
            with fast.autocast():
                losses = self.generator_losses(real, fake, step, logs)
            # E's gradient of T_G is its gradient of T_E: one pass for both
            self.update_players(losses["g_loss"], ("generator", "encoder"), logs)
            critic.after_generator_step()
        logs.update({k: v.detach() for k, v in losses.items()}, d_loss=d_loss.detach())
        return logs


def critic_loss(critic: Critic, real: Tensor, fake: Tensor, step: int, logs: dict) -> Tensor:
    """A critic's D loss on `real` (as real) and `fake` (constants), both perturbed as D sees
    them, with its penalties: the papers' cross-entropy (the non_saturating objective)."""
    D = critic.discriminator
    real, fake = critic.perturb(real, step), critic.perturb(fake, step)
    loss = critic.d_loss(D(real).float(), D(fake).float())
    return critic.d_terms(loss, logs, RegularizerContext(D, real, fake, step))


# -- mdgan ----------------------------------------------------------------------------------------
class MDGANMethod(_EncoderMethod):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        tricks = build_tricks(cfg, self.objective)
        D = wrap_discriminator(
            tricks, build_discriminator(cfg.discriminator, tuple(data.shape)), cfg
        )
        self.discriminator_diffusion = D = self.fast.prepare(D.to(device))
        self.critic_diffusion = Critic.with_optimizer(
            cfg,
            self.objective,
            tricks,
            D,
            self.fast,
            name="discriminator_diffusion",
            tag="diffusion",
        )
        self.opt_dd = self.critic_diffusion.optimizer
        self.critic_diffusion.attach(Pairing(cfg, device, self.generator, D, seed_offset=100))

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "discriminator_diffusion": self.discriminator_diffusion}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "discriminator_diffusion": self.opt_dd}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "tricks_diffusion": self.critic_diffusion.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.critic_diffusion.load_state_dict(state.get("tricks_diffusion", {}), self.device)

    def manifold_d_loss(
        self, real: Tensor, recon: Tensor, step: int = 0, logs: dict | None = None
    ) -> Tensor:
        """D_m's loss: x real, G(E(x)) fake (a constant)."""
        return critic_loss(self.critic, real, recon.detach(), step, {} if logs is None else logs)

    def diffusion_d_loss(
        self, target: Tensor, fake: Tensor, step: int = 0, logs: dict | None = None
    ) -> Tensor:
        """D_d's loss: G(E(x')) real, G(z) fake (both constants)."""
        logs = {} if logs is None else logs
        return critic_loss(self.critic_diffusion, target.detach(), fake.detach(), step, logs)

    def manifold_g_loss(
        self, real: Tensor, recon: Tensor, step: int = 0, logs: dict | None = None
    ) -> tuple[Tensor, Tensor]:
        """(G∘E's loss lambda1 E d(x, G(E(x))) + lambda2 E -log D_m(G(E(x))) with D_m's terms,
        E d(x, G(E(x))))."""
        D, critic = self.discriminator, self.critic
        geo = geometric(real, recon).mean()
        seen = critic.perturb(recon, step)
        loss = self.lambda1 * geo + self.lambda2 * gan_g_loss(D(seen))
        ctx = RegularizerContext(D, critic.perturb(real, step), seen, step)
        return critic.g_terms(loss, {} if logs is None else logs, ctx), geo

    def diffusion_g_loss(
        self, fake: Tensor, target: Tensor | None = None, step: int = 0, logs: dict | None = None
    ) -> Tensor:
        """G's loss in the diffusion step: -E log D_d(G(z)), with D_d's terms (those that
        look at real data see `target`, D_d's "real" batch G(E(x')))."""
        D, critic = self.discriminator_diffusion, self.critic_diffusion
        seen = critic.perturb(fake, step)
        loss = critic.g_loss(D(seen).float())
        if not critic.has_generator_terms:
            return loss
        ctx = RegularizerContext(D, critic.perturb(target, step), seen, step)
        return critic.g_terms(loss, {} if logs is None else logs, ctx)

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, E, fast = self.generator, self.encoder, self.fast
        manifold, diffusion = self.critic, self.critic_diffusion
        logs: dict[str, Tensor] = {}
        # manifold step: D_m, then G and E against the updated D_m (same batch)
        real, _ = self.data.batch(self.batch_size)
        with fast.autocast():
            recon = G(E(real))
            d_manifold = self.manifold_d_loss(real, recon, step, logs)
        manifold.step(d_manifold, logs, self.collect_stats)
        with manifold.frozen():
            with fast.autocast():
                g_manifold, geo = self.manifold_g_loss(real, recon, step, logs)
            self.update_players(g_manifold, ("generator", "encoder"), logs)
            manifold.after_generator_step()

        # diffusion step: D_d, then G against the updated D_d (same batches)
        real, _ = self.data.batch(self.batch_size)
        with fast.autocast():
            with torch.no_grad():
                target = G(E(real))
            fake = G(self.noise(self.batch_size))
            d_loss = self.diffusion_d_loss(target, fake, step, logs)
        diffusion.step(d_loss, logs, self.collect_stats)
        with diffusion.frozen():
            with fast.autocast():
                g_loss = self.diffusion_g_loss(fake, target, step, logs)
            self.update(g_loss, "generator", logs)
            diffusion.after_generator_step()
        logs.update(
            d_loss=d_loss.detach(),
            g_loss=g_loss.detach(),
            d_manifold=d_manifold.detach(),
            g_manifold=g_manifold.detach(),
            geometric=geo.detach(),
        )
        return logs


def _common_checks(cfg, method: str, lambda1: float, lambda2: float, encoder) -> None:
    at_least(lambda1, 0.0, "lambda1")
    at_least(lambda2, 0.0, "lambda2")
    check_encoder(encoder, method)
    scoring_discriminator(cfg, method)
    one_critic_step(cfg, method)
    no_compile(cfg, method)
    cross_entropy_objective(cfg, method)


@METHOD_OPTIONS.register("mrgan")
def mrgan_options(
    cfg, lambda1: float = 0.2, lambda2: float = 0.4, encoder: dict = DEFAULT_ENCODER
) -> None:
    """lambda1: weight of the geometric term ||x - G(E(x))||^2; lambda2: weight of the mode
    term -log D(G(E(x))); encoder: the encoder model ({name: mlp} or {name: dcgan} with its
    options, models/encoder.py)."""
    _common_checks(cfg, "mrgan", lambda1, lambda2, encoder)


@METHOD_OPTIONS.register("mdgan")
def mdgan_options(
    cfg, lambda1: float = 1.0, lambda2: float = 1.0, encoder: dict = DEFAULT_ENCODER
) -> None:
    """lambda1: weight of the manifold step's ||x - G(E(x))||^2; lambda2: weight of its
    adversarial term -log D_m(G(E(x))) (the paper's lambda); encoder: as for mrgan."""
    _common_checks(cfg, "mdgan", lambda1, lambda2, encoder)
