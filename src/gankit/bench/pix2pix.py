"""gankit's side of the patchgan-unet case: a pix2pix step from gankit's parts.

gankit has no pix2pix method yet, so this step is written here from the components a pix2pix
method will use: the U-Net (models/unet.py), the PatchGAN discriminator, the objective's pure
loss functions, gankit's optimizer builder and fast mode (methods/fast.py: autocast,
channels_last, fused optimizers, torch.compile, fp16 loss scaling), with the data from gankit's
in-memory data set (pairs stored as the channels of one image: a, then b).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.config import RunConfig
from gankit.data.base import InMemoryData
from gankit.methods.base import build_optimizer
from gankit.methods.fast import FastMode
from gankit.models import build_discriminator
from gankit.models.unet import unet
from gankit.objectives import build_objective


def build_pix2pix_players(
    cfg: RunConfig, pair_shape: tuple[int, ...], unet_options: dict
) -> tuple[nn.Module, nn.Module]:
    """The U-Net (a -> b) and the PatchGAN on (a, b) concatenated, in this order (so a seeded
    build gives equal weights wherever it is called)."""
    channels = pair_shape[0] // 2
    image = (channels, *pair_shape[1:])
    G = unet(image, **unet_options)
    D = build_discriminator(cfg.discriminator, pair_shape)
    return G, D


class Pix2PixStep:
    def __init__(
        self,
        cfg: RunConfig,
        data: InMemoryData,
        unet_options: dict,
        l1_weight: float,
        device: torch.device,
    ):
        self.fast = fast = FastMode.for_recipe(cfg, device)
        self.precision = fast.precision
        self.data = data
        self.channels = data.shape[0] // 2
        self.batch_size = cfg.schedule.batch_size
        self.l1_weight = l1_weight
        self.objective = build_objective(cfg.objective)
        G, D = build_pix2pix_players(cfg, data.shape, unet_options)
        self.G = fast.prepare(G.to(device))
        self.D = fast.prepare(D.to(device))
        self.G_fwd = fast.compiled(self.G) or self.G
        self.D_fwd = fast.compiled(self.D) or self.D
        fused = fast.fused_optimizer
        self.opt_g = build_optimizer(self.G.parameters(), cfg.optim.generator, fused)
        self.opt_d = build_optimizer(self.D.parameters(), cfg.optim.discriminator, fused)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    def step(self) -> dict[str, Tensor]:
        fast = self.fast
        pairs, _ = self.data.batch(self.batch_size)
        a, b = pairs[:, : self.channels], pairs[:, self.channels :]
        with fast.autocast():
            fake = self.G_fwd(a)
            d_real = self.D_fwd(torch.cat([a, b], 1)).float()
            d_fake = self.D_fwd(torch.cat([a, fake.detach()], 1)).float()
            d_loss = self.objective.d_loss(d_real, d_fake)
        self.opt_d.zero_grad(set_to_none=True)
        fast.backward(d_loss)
        fast.step(self.opt_d)

        self.D.requires_grad_(False)
        try:
            with fast.autocast():
                d_fake = self.D_fwd(torch.cat([a, fake], 1)).float()
                l1 = (fake.float() - b).abs().mean()
                g_loss = self.objective.g_loss(d_fake) + self.l1_weight * l1
            self.opt_g.zero_grad(set_to_none=True)
            fast.backward(g_loss)
            fast.step(self.opt_g)
        finally:
            self.D.requires_grad_(True)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
