"""One-sided label smoothing (Salimans et al. 2016, sec 3.4).

The discriminator is trained toward a real target alpha < 1 (default 0.9) instead of 1; the fake
target stays 0, since smoothing it would reward the generator for samples where the data has
none. `real_range` instead draws each real example's target uniformly from [low, high] (soft,
noisy labels). Only objectives with real/fake targets have labels to smooth.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gankit.errors import ConfigError
from gankit.tricks import TRICKS, Trick


class LabelSmoothing(Trick):
    def __init__(self, real: float, real_range: tuple[float, float] | None):
        self.real = real
        self.real_range = real_range
        self.generator: torch.Generator | None = None

    def check(self, objective, cfg) -> None:
        if not objective.uses_labels:
            raise ConfigError(
                f"tricks: label_smoothing needs an objective with real/fake targets "
                f"(non_saturating, minimax, least_squares); {objective.name} trains D on "
                "unbounded scores with no labels to smooth"
            )

    def attach(self, method) -> None:
        seed = self.stream_seed(method, 11)
        self.generator = torch.Generator(device=method.device).manual_seed(seed)

    def targets(self, d_real: Tensor) -> Tensor | float:
        if self.real_range is None:
            return self.real
        low, high = self.real_range
        u = self.draw_local(
            lambda shape: torch.rand(shape, generator=self.generator, device=d_real.device),
            d_real.shape,
        )
        return low + (high - low) * u.to(d_real.dtype)

    def d_loss(self, objective, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return objective.d_loss_targets(d_real, d_fake, self.targets(d_real))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()} if self.generator is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state and self.generator is not None:
            self.generator.set_state(state["generator"])


@TRICKS.register("label_smoothing")
def label_smoothing(real: float = 0.9, real_range: list[float] | None = None) -> LabelSmoothing:
    """real: the discriminator's target for real data (fakes stay 0); real_range: [low, high]
    to draw a random target per real example instead (both within [0, 1])."""
    if not 0 < real <= 1:
        raise ConfigError(f"tricks.label_smoothing.real: must be in (0, 1], got {real}")
    if real_range is not None:
        if len(real_range) != 2 or not 0 <= real_range[0] <= real_range[1] <= 1:
            raise ConfigError(
                "tricks.label_smoothing.real_range: expected [low, high] with "
                f"0 <= low <= high <= 1, got {real_range}"
            )
        real_range = (float(real_range[0]), float(real_range[1]))
    return LabelSmoothing(float(real), real_range)
