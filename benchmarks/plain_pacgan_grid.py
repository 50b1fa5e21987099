"""A cross-check outside gankit: PacGAN's 2D grid protocol as one plain PyTorch loop.

gankit's PacGAN4 keeps its discriminator at chance on the 25-mode grid (README, "Why PacGAN4
fails on the grid"). This script imports nothing from gankit, so if it shows the same, the cause
is the protocol at this budget, not gankit's method, trainer or models. The protocol: G maps
2-d N(0, I) noise through 4 hidden layers of 400 (batch norm + ReLU) to 2-d; D has 3 maxout
layers of 200 units with 5 pieces and sees packs of m samples; weights N(0, 0.02), biases 0;
Adam lr 1e-4, betas (0.8, 0.999); 100 packs a step; non-saturating losses; alternating updates.
Every --every steps it prints D's mean probabilities on the last batches and the modes hit by
2,500 samples (a sample is high quality within 3 std, 0.15, of its nearest mode).

    OMP_NUM_THREADS=1 python benchmarks/plain_pacgan_grid.py --pack 4 --steps 6000
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

STD = 0.05  # each grid mode's standard deviation
TICKS = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
MEANS = torch.stack(torch.meshgrid(TICKS, TICKS, indexing="ij"), dim=-1).reshape(-1, 2)


class Maxout(nn.Module):
    def __init__(self, n_in: int, n_out: int, pieces: int):
        super().__init__()
        self.linear, self.n_out, self.pieces = nn.Linear(n_in, n_out * pieces), n_out, pieces

    def forward(self, x):
        return self.linear(x).view(x.shape[0], self.n_out, self.pieces).max(dim=-1).values


def networks(pack: int) -> tuple[nn.Module, nn.Module]:
    hidden = []
    for n_in in (2, 400, 400, 400):
        hidden += [nn.Linear(n_in, 400), nn.BatchNorm1d(400), nn.ReLU()]
    G = nn.Sequential(*hidden, nn.Linear(400, 2))
    D = nn.Sequential(
        Maxout(2 * pack, 200, 5), Maxout(200, 200, 5), Maxout(200, 200, 5), nn.Linear(200, 1)
    )
    for net in (G, D):
        for layer in net.modules():
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, 0.02)
                nn.init.zeros_(layer.bias)
    return G, D


def real(n: int) -> torch.Tensor:
    return MEANS[torch.randint(len(MEANS), (n,))] + STD * torch.randn(n, 2)


@torch.no_grad()
def score(G: nn.Module, n: int = 2500) -> tuple[int, float]:
    """(modes with a high-quality sample, share of high-quality samples); G in eval mode."""
    G.eval()
    x = G(torch.randn(n, 2))
    G.train()
    dist, nearest = torch.cdist(x, MEANS).min(dim=1)
    good = dist < 3 * STD
    return len(set(nearest[good].tolist())), good.float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=int, default=4, help="m: samples per pack (1: a GAN)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    m, batch = args.pack, 100
    G, D = networks(m)
    opt_g = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.8, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.8, 0.999))
    for step in range(1, args.steps + 1):
        fake = G(torch.randn(batch * m, 2))
        d_real = D(real(batch * m).reshape(batch, 2 * m))
        d_fake = D(fake.detach().reshape(batch, 2 * m))
        d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-D(fake.reshape(batch, 2 * m))).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        if step % args.every == 0:
            modes, good = score(G)
            print(
                f"step {step}: p_real {torch.sigmoid(d_real).mean():.3f}, p_fake "
                f"{torch.sigmoid(d_fake).mean():.3f}, d_loss {d_loss:.4f}; "
                f"{modes} modes, {100 * good:.1f}% high quality",
                flush=True,
            )


if __name__ == "__main__":
    main()
