"""Historical averaging (Salimans et al. 2016, sec 3.3).

Each player's loss gets weight * ||theta - (1/t) sum_{i<=t} theta[i]||^2, the squared distance
of its parameters from their running mean over the steps so far: a pull toward the past that
damps the orbits simultaneous gradient games fall into. The running mean starts at the initial
parameters and is updated after each optimizer step; it is saved in the checkpoint.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from gankit.errors import ConfigError
from gankit.regularizers import RegularizerContext
from gankit.tricks import TRICKS, Trick


class HistoricalAveraging(Trick):
    def __init__(self, weight: float, players: tuple[str, ...]):
        self.weight = weight
        self.players = players
        self.params: dict[str, list[Tensor]] = {}
        self.means: dict[str, list[Tensor]] = {}
        self.counts: dict[str, int] = {}

    def attach(self, method) -> None:
        modules = {"g": method.generator, "d": method.discriminator}
        for player in self.players:
            self.params[player] = [p for p in modules[player].parameters() if p.requires_grad]
            self.means[player] = [p.detach().clone() for p in self.params[player]]
            self.counts[player] = 1

    def penalty(self, player: str) -> Tensor:
        squares = [(p - m).pow(2).sum() for p, m in zip(self.params[player], self.means[player])]
        return self.weight * torch.stack(squares).sum()

    def d_penalty(self, ctx: RegularizerContext) -> Tensor | None:
        return self.penalty("d") if "d" in self.players else None

    def g_penalty(self, ctx: RegularizerContext) -> Tensor | None:
        return self.penalty("g") if "g" in self.players else None

    @torch.no_grad()
    def after_step(self, player: str) -> None:
        if player not in self.players:
            return
        self.counts[player] += 1
        weight = 1.0 / self.counts[player]  # mean_t = mean_{t-1} + (theta_t - mean_{t-1}) / t
        for p, m in zip(self.params[player], self.means[player]):
            m.lerp_(p, weight)

    def state_dict(self) -> dict:
        return {"counts": dict(self.counts), "means": {k: list(v) for k, v in self.means.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        for player, saved in state["means"].items():
            for m, s in zip(self.means[player], saved):
                m.copy_(s)


@TRICKS.register("historical_averaging")
def historical_averaging(
    weight: float = 1.0, players: Literal["both", "generator", "discriminator"] = "both"
) -> HistoricalAveraging:
    """weight: the penalty's coefficient; players: whose loss gets it."""
    if not weight > 0:
        raise ConfigError(f"tricks.historical_averaging.weight: must be > 0, got {weight}")
    chosen = {"both": ("g", "d"), "generator": ("g",), "discriminator": ("d",)}[players]
    return HistoricalAveraging(float(weight), chosen)
