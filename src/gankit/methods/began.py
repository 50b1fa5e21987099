"""BEGAN (Berthelot et al. 2017, "BEGAN: Boundary Equilibrium Generative Adversarial Networks").

The discriminator is an autoencoder; L(v) = mean |v - D(v)| is its L1 reconstruction loss over a
batch (the paper's eta = 1). With an equilibrium control k_t in [0, 1]:

    d_loss = L(x) - k_t L(G(z)),   g_loss = L(G(z)),
    k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1),
    M_global = L(x) + |gamma L(x) - L(G(z))|        (the convergence measure)

gamma = E[L(G(z))] / E[L(x)] is the diversity ratio the training holds. Both players update from
the same parameters (the paper's simultaneous step); the k update uses the step's L(x) and
L(G(z)) as the discriminator measured them. M_global is logged every step (`m_global`; the log
lines average it over each logging window), with `k` (the k_t after the step), `l_real`,
`l_fake`. k_t is a tensor on the device (no host sync) and is in the checkpoint; under torchrun
the k update uses L(x) and L(G(z)) averaged over the processes, so all keep the same k_t.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from gankit.data.base import DataSource
from gankit.methods.critic import NegativeEnergy
from gankit.methods.options import (
    METHOD_OPTIONS,
    autoencoder_discriminator,
    in_range,
    method_options,
    no_compile,
    one_critic_step,
    own_discriminator_loss,
)
from gankit.methods.players import Players
from gankit.regularizers import RegularizerContext
from gankit.schema import RunConfig


def reconstruction_l1(x: Tensor, recon: Tensor) -> Tensor:
    """L(v) = mean |v - D(v)| over the batch and every entry, in fp32."""
    return (x.float() - recon.float()).abs().mean()


def sample_l1(x: Tensor, recon: Tensor) -> Tensor:
    """L(v) per sample: mean |v - D(v)| over each sample's entries, shape (N,), in fp32."""
    return (x.float() - recon.float()).abs().flatten(1).mean(1)


def k_update(k: Tensor, l_real: Tensor, l_fake: Tensor, gamma: float, lambda_k: float) -> Tensor:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)."""
    return (k + lambda_k * (gamma * l_real - l_fake)).clamp(0.0, 1.0)


def convergence(l_real: Tensor, l_fake: Tensor, gamma: float) -> Tensor:
    """M_global = L(x) + |gamma L(x) - L(G(z))|."""
    return l_real + (gamma * l_real - l_fake).abs()


def _global_mean(l_real: Tensor, l_fake: Tensor) -> tuple[Tensor, Tensor]:
    """Under torchrun, the means over the processes (equal local batches: the global batch's
    L), so that every process keeps the same k_t; alone, the values themselves."""
    if not (dist.is_available() and dist.is_initialized()):
        return l_real, l_fake
    both = torch.stack([l_real, l_fake])
    dist.all_reduce(both)
    both = both / dist.get_world_size()
    return both[0], both[1]


class BEGANMethod(Players):
    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        super().__init__(cfg, data, device)
        opts = method_options(cfg)
        self.gamma, self.lambda_k = opts["gamma"], opts["lambda_k"]
        self.k = torch.tensor(opts["k_init"], dtype=torch.float32, device=device)

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, D, fast, critic = self.generator, self.discriminator, self.fast, self.critic
        real, _ = self.data.batch(self.batch_size)
        real = critic.perturb(real, step)
        score = NegativeEnergy(D, sample_l1)  # the penalties' view of D
        logs: dict[str, Tensor] = {}
        with fast.autocast():
            fake = critic.perturb(G(self.noise(self.batch_size)), step)
            # both losses at the current parameters (simultaneous update)
            g_loss = critic.adversarial(reconstruction_l1(fake, D(fake)))
            g_loss = critic.g_terms(g_loss, logs, RegularizerContext(score, real, fake, step))
            l_real = reconstruction_l1(real, D(real))
            l_fake = reconstruction_l1(fake.detach(), D(fake.detach()))
            d_loss = l_real - self.k * l_fake
            ctx = RegularizerContext(score, real, fake.detach(), step)
            d_loss = critic.d_terms(d_loss, logs, ctx)
        self.g_player.update(g_loss, logs, self.collect_stats)
        critic.after_generator_step()
        critic.step(d_loss, logs, self.collect_stats)
        l_real, l_fake = _global_mean(l_real.detach(), l_fake.detach())
        self.k = k_update(self.k, l_real, l_fake, self.gamma, self.lambda_k)
        logs.update(
            d_loss=d_loss.detach(),
            g_loss=g_loss.detach(),
            l_real=l_real,
            l_fake=l_fake,
            k=self.k,
            m_global=convergence(l_real, l_fake, self.gamma),
        )
        return logs

    def extra_state(self) -> dict:
        return {**super().extra_state(), "k": self.k.clone()}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.k = state["k"].to(self.device, torch.float32)


@METHOD_OPTIONS.register("began")
def began_options(cfg, gamma: float = 0.5, lambda_k: float = 0.001, k_init: float = 0.0) -> None:
    """gamma: the diversity ratio (the paper shows 0.3, 0.5, 0.7); lambda_k: k's learning rate
    (0.001 in the paper); k_init: k_0 (0 in the paper)."""
    in_range(gamma, 0.0, 1.0, "gamma")
    in_range(lambda_k, 0.0, 1.0, "lambda_k")
    in_range(k_init, 0.0, 1.0, "k_init")
    autoencoder_discriminator(cfg, "began")
    own_discriminator_loss(cfg, "began", "L(x) - k_t L(G(z)) of reconstruction errors")
    one_critic_step(cfg, "began")
    no_compile(cfg, "began")
