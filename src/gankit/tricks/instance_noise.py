"""Instance noise (Sønderby et al. 2017; Arjovsky & Bottou 2017).

Gaussian noise added to every input of the discriminator, real and fake, makes the two
distributions overlap, so D cannot separate them perfectly and its gradients stay informative
early on. The noise std is annealed to 0 so that the model of the data is exact in the end:
linear: std (1 - t / T); exponential: std 100^(-t / T) (1% of std at T); zero from step T on.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from gankit.errors import ConfigError
from gankit.tricks import TRICKS, Trick


class InstanceNoise(Trick):
    def __init__(self, std: float, anneal_steps: int | None, schedule: str):
        self.std = std
        self.anneal_steps = anneal_steps
        self.schedule = schedule
        self.generator: torch.Generator | None = None

    def attach(self, method) -> None:
        if self.anneal_steps is None:  # anneal over the whole run
            self.anneal_steps = method.cfg.schedule.steps
        seed = self.stream_seed(method, 12)
        self.generator = torch.Generator(device=method.device).manual_seed(seed)

    def std_at(self, step: int) -> float:
        frac = step / self.anneal_steps
        if frac >= 1:
            return 0.0
        if self.schedule == "linear":
            return self.std * (1 - frac)
        return self.std * 100.0 ** (-frac)

    def perturb(self, x: Tensor, step: int) -> Tensor:
        std = self.std_at(step)
        if std == 0:
            return x
        noise = self.draw_local(
            lambda shape: torch.randn(
                shape, generator=self.generator, device=x.device, dtype=x.dtype
            ),
            x.shape,
        )
        return x + std * noise

    def state_dict(self) -> dict:
        if self.generator is None:
            return {}
        return {"generator": self.generator.get_state(), "anneal_steps": self.anneal_steps}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state and self.generator is not None:
            self.generator.set_state(state["generator"])
        # a run resumed with more schedule.steps keeps the schedule it started with
        self.anneal_steps = int(state.get("anneal_steps", self.anneal_steps))


@TRICKS.register("instance_noise")
def instance_noise(
    std: float = 0.1,
    anneal_steps: int | None = None,
    schedule: Literal["linear", "exponential"] = "linear",
) -> InstanceNoise:
    """std: the noise std at step 0, in data units; anneal_steps: steps to reach 0 (default:
    the run's schedule.steps when it starts; a resume with more steps keeps that schedule)."""
    if not std > 0:
        raise ConfigError(f"tricks.instance_noise.std: must be > 0, got {std}")
    if anneal_steps is not None and anneal_steps < 1:
        raise ConfigError(f"tricks.instance_noise.anneal_steps: must be >= 1, got {anneal_steps}")
    return InstanceNoise(float(std), anneal_steps, schedule)
