"""The plain PyTorch loops gankit is timed against: what a careful user writes by hand.

fp32, default `torch.optim.Adam` (the recipe's lr and betas), BCE-with-logits losses, no
gankit code in the step. The networks are built with gankit's model builders (and, for the
Improved-GAN tricks, gankit's layers) in the same order and from the same seed as gankit's
method, so both start from equal weights. The work per step is gankit's `GANMethod`'s: one
generator forward, the fake batch reused for the generator step, D on the real and the fake
batch in separate passes, the generator step through D with D's requires_grad off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.config import RunConfig
from gankit.data.base import DataSource, InMemoryData
from gankit.errors import ConfigError
from gankit.models import build_discriminator, build_generator
from gankit.models.minibatch import MinibatchDiscrimination
from gankit.models.vbn import VirtualBatchGenerator

# the tricks the reference loop writes out by hand (those of the Improved-GAN recipe)
SUPPORTED_TRICKS = {
    "minibatch_discrimination",
    "historical_averaging",
    "label_smoothing",
    "virtual_batch_norm",
}


def adam(params, opt) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=opt.lr, betas=tuple(opt.betas))


class RealBatches:
    """Real batches as a user slices them: a fresh permutation per epoch over an in-memory
    tensor, or fresh samples of a 2D mixture."""

    def __init__(self, data: DataSource, batch_size: int, device: torch.device, seed: int):
        self.n = batch_size
        self.device = device
        self.g = torch.Generator().manual_seed(seed + 7)
        if isinstance(data, InMemoryData):
            self.x = data.x.to(device)
            self.perm = torch.randperm(len(self.x), generator=self.g).to(device)
            self.pos = 0
        elif hasattr(data, "means"):  # a toy2d ring or grid
            self.x = None
            self.means, self.std = data.means, data.std
        else:
            raise ConfigError(f"the reference loop cannot read data set {data.name!r}")

    def __call__(self) -> Tensor:
        n = self.n
        if self.x is None:
            idx = torch.randint(len(self.means), (n,), generator=self.g)
            points = self.means[idx] + self.std * torch.randn(n, 2, generator=self.g)
            return points.to(self.device)
        if self.pos + n > len(self.perm):
            self.perm = torch.randperm(len(self.x), generator=self.g).to(self.device)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + n]
        self.pos += n
        return self.x[idx]


class ReferenceGAN:
    """Non-saturating GAN, n_critic 1, optionally with the four Improved-GAN tricks written out:
    minibatch discrimination and virtual batch norm as layers, historical averaging as a
    penalty on each loss, one-sided label smoothing as the real target."""

    precision = "fp32"

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        if cfg.method != "gan":
            raise ConfigError(f"the reference loop implements method gan only, not {cfg.method}")
        if cfg.objective["name"] != "non_saturating" or cfg.regularizers:
            raise ConfigError(
                "the reference loop implements the non-saturating objective without "
                "regularizers only"
            )
        if cfg.schedule.n_critic != 1:
            raise ConfigError("the reference loop implements n_critic 1 only")
        tricks = {t["name"]: t for t in cfg.tricks}
        unknown = sorted(set(tricks) - SUPPORTED_TRICKS)
        if unknown:
            raise ConfigError(f"the reference loop does not implement the tricks {unknown}")
        self.device = device
        self.batch_size = cfg.schedule.batch_size
        self.latent_dim = cfg.generator["latent_dim"]
        self.uniform = cfg.generator["latent_dist"] == "uniform"
        # the same builders, in the same order, as gankit's GANMethod: equal initial weights
        G = build_generator(cfg.generator, data.shape)
        if "virtual_batch_norm" in tricks:
            g = torch.Generator().manual_seed(cfg.seed + 13)
            n_ref = tricks["virtual_batch_norm"]["reference_size"]
            if self.uniform:
                ref_z = torch.rand(n_ref, self.latent_dim, generator=g) * 2 - 1
            else:
                ref_z = torch.randn(n_ref, self.latent_dim, generator=g)
            G = VirtualBatchGenerator(G, ref_z)
        D = build_discriminator(cfg.discriminator, data.shape)
        if "minibatch_discrimination" in tricks:
            t = tricks["minibatch_discrimination"]
            D = MinibatchDiscriminator(D, t["num_kernels"], t["kernel_dim"])
        self.G, self.D = G.to(device), D.to(device)
        self.opt_g = adam(self.G.parameters(), cfg.optim.generator)
        self.opt_d = adam(self.D.parameters(), cfg.optim.discriminator)
        self.real_target = tricks.get("label_smoothing", {}).get("real", 1.0)
        if tricks.get("label_smoothing", {}).get("real_range") is not None:
            raise ConfigError("the reference loop implements label_smoothing.real only")
        self.ha_weight = 0.0
        if "historical_averaging" in tricks:
            if tricks["historical_averaging"]["players"] != "both":
                raise ConfigError("the reference loop implements historical averaging of both")
            self.ha_weight = tricks["historical_averaging"]["weight"]
            self.ha = {
                "g": HistoricalAverage(self.G.parameters()),
                "d": HistoricalAverage(self.D.parameters()),
            }
        self.real_batch = RealBatches(data, self.batch_size, device, cfg.seed)
        self.noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    def z(self) -> Tensor:
        shape = (self.batch_size, self.latent_dim)
        if self.uniform:
            return torch.rand(shape, device=self.device, generator=self.noise) * 2 - 1
        return torch.randn(shape, device=self.device, generator=self.noise)

    def step(self) -> dict[str, Tensor]:
        G, D = self.G, self.D
        real = self.real_batch()
        fake = G(self.z())

        d_real, d_fake = D(real), D(fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(
            d_real, torch.full_like(d_real, self.real_target)
        ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        if self.ha_weight:
            d_loss = d_loss + self.ha_weight * self.ha["d"].penalty()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        if self.ha_weight:
            self.ha["d"].update()

        D.requires_grad_(False)
        d_fake = D(fake)
        g_loss = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        if self.ha_weight:
            g_loss = g_loss + self.ha_weight * self.ha["g"].penalty()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        D.requires_grad_(True)
        if self.ha_weight:
            self.ha["g"].update()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


class MinibatchDiscriminator(nn.Module):
    """D's features, then the minibatch-discrimination statistics, then a widened output layer
    whose weights on the statistics start at zero (gankit's layout, so the weights match)."""

    def __init__(self, inner: nn.Module, num_kernels: int, kernel_dim: int):
        super().__init__()
        self.inner = inner
        self.layer = MinibatchDiscrimination(inner.feature_dim, num_kernels, kernel_dim)
        old = inner.out
        inner.out = nn.Linear(old.in_features + num_kernels, 1)
        with torch.no_grad():
            inner.out.weight.zero_()
            inner.out.weight[:, : old.in_features] = old.weight
            inner.out.bias.copy_(old.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.inner.out(self.layer(self.inner.features(x))).squeeze(1)


class HistoricalAverage:
    """||theta - running mean of past thetas||^2; the mean starts at the initial parameters."""

    def __init__(self, params):
        self.params = [p for p in params if p.requires_grad]
        self.means = [p.detach().clone() for p in self.params]
        self.count = 1

    def penalty(self) -> Tensor:
        return sum((p - m).pow(2).sum() for p, m in zip(self.params, self.means))

    @torch.no_grad()
    def update(self) -> None:
        self.count += 1
        for p, m in zip(self.params, self.means):
            m.lerp_(p, 1.0 / self.count)


class ReferencePix2Pix:
    """pix2pix: a U-Net maps image a to b; a PatchGAN scores the pairs (a, b) and (a, G(a));
    non-saturating GAN loss (averaged over patches) plus l1_weight * |G(a) - b|."""

    precision = "fp32"

    def __init__(
        self,
        cfg: RunConfig,
        pairs: Tensor,
        G: nn.Module,
        D: nn.Module,
        l1_weight: float,
        device: torch.device,
    ):
        self.device = device
        self.batch_size = cfg.schedule.batch_size
        self.pairs = pairs.to(device)
        self.channels = pairs.shape[1] // 2
        self.G, self.D = G.to(device), D.to(device)
        self.opt_g = adam(self.G.parameters(), cfg.optim.generator)
        self.opt_d = adam(self.D.parameters(), cfg.optim.discriminator)
        self.l1_weight = l1_weight
        self.g = torch.Generator().manual_seed(cfg.seed + 7)
        self.perm = torch.randperm(len(self.pairs), generator=self.g).to(device)
        self.pos = 0

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    def batch(self) -> tuple[Tensor, Tensor]:
        n = self.batch_size
        if self.pos + n > len(self.perm):
            self.perm = torch.randperm(len(self.pairs), generator=self.g).to(self.device)
            self.pos = 0
        pairs = self.pairs[self.perm[self.pos : self.pos + n]]
        self.pos += n
        return pairs[:, : self.channels], pairs[:, self.channels :]

    def step(self) -> dict[str, Tensor]:
        G, D = self.G, self.D
        a, b = self.batch()
        fake = G(a)

        d_real = D(torch.cat([a, b], 1))
        d_fake = D(torch.cat([a, fake.detach()], 1))
        d_loss = F.binary_cross_entropy_with_logits(
            d_real, torch.ones_like(d_real)
        ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        D.requires_grad_(False)
        d_fake = D(torch.cat([a, fake], 1))
        g_loss = F.binary_cross_entropy_with_logits(
            d_fake, torch.ones_like(d_fake)
        ) + self.l1_weight * F.l1_loss(fake, b)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        D.requires_grad_(True)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
