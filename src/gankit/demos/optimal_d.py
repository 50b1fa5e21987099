"""The optimal discriminator, D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Goodfellow et al. 2014,
Proposition 1), against one trained with gankit's objective on samples.

1D: p_data is an equal mixture of N(-1.5, 0.5^2) and N(1.5, 0.5^2), p_g (a generator held
fixed) is N(0, 1). A gankit MLP discriminator trained on the non-saturating objective's loss
approaches D* where either density has mass; far from both it is unconstrained.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gankit.models import build_discriminator
from gankit.objectives import build_objective

DATA_MEANS, DATA_STD = (-1.5, 1.5), 0.5
FAKE_MEAN, FAKE_STD = 0.0, 1.0


def _normal_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def p_data(x: np.ndarray) -> np.ndarray:
    return sum(_normal_pdf(x, m, DATA_STD) for m in DATA_MEANS) / len(DATA_MEANS)


def p_g(x: np.ndarray) -> np.ndarray:
    return _normal_pdf(x, FAKE_MEAN, FAKE_STD)


def optimal_d(x: np.ndarray) -> np.ndarray:
    return p_data(x) / (p_data(x) + p_g(x))


def train_discriminator(steps: int = 2000, batch: int = 512, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    D = build_discriminator({"name": "mlp", "hidden": 64, "depth": 2, "activation": "relu"}, (1,))
    objective = build_objective({"name": "non_saturating"})
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    means = torch.tensor(DATA_MEANS)
    for _ in range(steps):
        which = torch.randint(len(DATA_MEANS), (batch,), generator=gen)
        real = means[which] + DATA_STD * torch.randn(batch, generator=gen)
        fake = FAKE_MEAN + FAKE_STD * torch.randn(batch, generator=gen)
        loss = objective.d_loss(D(real[:, None]), D(fake[:, None]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return D.eval()


def run(steps: int = 2000, seed: int = 0) -> dict:
    x = np.linspace(-3, 3, 121)
    D = train_discriminator(steps, seed=seed)
    with torch.no_grad():
        trained = torch.sigmoid(D(torch.tensor(x, dtype=torch.float32)[:, None])).numpy()
    return {"x": x, "optimal": optimal_d(x), "trained": trained.astype(np.float64)}


def figure(path: str | Path, steps: int = 2000) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = run(steps)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.fill_between(r["x"], p_data(r["x"]), alpha=0.25, label="p_data")
    ax.fill_between(r["x"], p_g(r["x"]), alpha=0.25, label="p_g")
    ax.plot(r["x"], r["optimal"], "k-", lw=2, label="D*(x) = p_data / (p_data + p_g)")
    ax.plot(r["x"], r["trained"], "r--", lw=1.5, label=f"trained D ({steps} Adam steps)")
    ax.set(xlabel="x", ylim=(0, 1.05), title="The optimal discriminator")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    inside = np.abs(r["x"]) <= 2.5
    return {"max_abs_error_in_[-2.5,2.5]": float(np.abs(r["trained"] - r["optimal"])[inside].max())}
