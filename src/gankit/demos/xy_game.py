"""The xy game, min_x max_y V(x, y) = xy, whose only equilibrium is (0, 0).

Simultaneous gradient steps (x, y) <- (x - eta y, y + eta x) multiply the distance to the
equilibrium by exactly sqrt(1 + eta^2) each step: they spiral out. Alternating steps (y uses the
new x) are area-preserving and circle at about the starting radius forever. Adding historical
averaging (gankit's own trick: each player's loss gets w ||theta - running mean||^2) to the
simultaneous steps pulls both players toward their average, which drifts to the equilibrium.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from gankit.tricks.historical_averaging import HistoricalAveraging


def simultaneous(x: float, y: float, eta: float, steps: int) -> np.ndarray:
    """(steps + 1, 2) trajectory of simultaneous gradient descent (x) / ascent (y)."""
    path = [(x, y)]
    for _ in range(steps):
        x, y = x - eta * y, y + eta * x
        path.append((x, y))
    return np.array(path)


def alternating(x: float, y: float, eta: float, steps: int) -> np.ndarray:
    """(steps + 1, 2) trajectory when y's step sees x's new value."""
    path = [(x, y)]
    for _ in range(steps):
        x = x - eta * y
        y = y + eta * x
        path.append((x, y))
    return np.array(path)


class _Player(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value, dtype=torch.float64))


def with_historical_averaging(
    x: float, y: float, eta: float, steps: int, weight: float = 0.5
) -> np.ndarray:
    """Simultaneous SGD steps on xy + historical averaging, through gankit's trick object."""
    px, py = _Player(x), _Player(y)
    trick = HistoricalAveraging(weight, ("g", "d"))
    trick.attach(SimpleNamespace(generator=px, discriminator=py))
    opt_x = torch.optim.SGD(px.parameters(), lr=eta)
    opt_y = torch.optim.SGD(py.parameters(), lr=eta)
    path = [(x, y)]
    for _ in range(steps):
        loss_x = px.value * py.value.detach() + trick.penalty("g")  # x minimizes xy
        loss_y = -px.value.detach() * py.value + trick.penalty("d")  # y maximizes it
        opt_x.zero_grad()
        opt_y.zero_grad()
        (loss_x + loss_y).backward()  # both gradients at the same (x, y): simultaneous
        opt_x.step()
        opt_y.step()
        trick.after_step("g")
        trick.after_step("d")
        path.append((px.value.item(), py.value.item()))
    return np.array(path)


def run(eta: float = 0.1, steps: int = 200, start: tuple[float, float] = (1.0, 0.0)) -> dict:
    x, y = start
    return {
        "simultaneous": simultaneous(x, y, eta, steps),
        "alternating": alternating(x, y, eta, steps),
        "historical averaging": with_historical_averaging(x, y, eta, steps),
    }


def figure(path: str | Path, eta: float = 0.1, steps: int = 200) -> dict:
    """Plot the three trajectories; returns the final distances to the equilibrium."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = run(eta, steps)
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, p in paths.items():
        ax.plot(p[:, 0], p[:, 1], lw=1, label=f"{label} (r = {np.hypot(*p[-1]):.2f})")
    ax.plot([1], [0], "ko", ms=4, label="start")
    ax.plot([0], [0], "r*", ms=10, label="equilibrium")
    ax.set(xlabel="x (minimizes xy)", ylabel="y (maximizes xy)", aspect="equal")
    ax.set_title(f"min_x max_y xy, {steps} gradient steps, eta = {eta}")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {label: float(np.hypot(*p[-1])) for label, p in paths.items()}
