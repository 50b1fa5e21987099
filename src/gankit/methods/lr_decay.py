"""A linear learning-rate decay for every method (schedule.lr_decay_start, lr_decay_steps).

Why: a GAN trained at a constant rate keeps moving around its equilibrium; lowering the rates
at the end lets the networks settle (on the 2D grid, 10,000 decaying steps after 120,000 lifted
high quality from 87.6-91.4% to 90.4-93.7%; README). The update
at generator step s (0-based; its discriminator updates included) uses

    lr(s) = recipe lr * lr_scale * f(s)
    f(s)  = 1 - clip(s + 1 - start, 0, length + 1) / (length + 1)

`start` updates at the recipe's rate, then `length` updates decaying linearly toward 0 (the last
at 1 / (length + 1) of it), the same shape as the image-to-image methods' own schedule
(`gankit.methods.translation.LinearDecay`). lr_scale is the divergence guard's product of
rollback factors. The rate is a function of the step alone, so nothing is checkpointed and a
resumed run continues on the same curve.
"""

from __future__ import annotations

import torch

from gankit.errors import GankitError
from gankit.schema import ScheduleConfig


def linear_decay_factor(step: int, start: int, length: int) -> float:
    """f(step) of the module docstring."""
    done = min(max(step + 1 - start, 0), length + 1)
    return 1.0 - done / (length + 1)


def decay_window(schedule: ScheduleConfig) -> tuple[int, int] | None:
    """(start, length) of the recipe's decay, or None for a constant rate. length defaults to
    the rest of the run."""
    if schedule.lr_decay_start is None:
        return None
    start = schedule.lr_decay_start
    steps = schedule.lr_decay_steps
    return start, max(schedule.steps - start, 0) if steps is None else steps


class StepDecay:
    """Sets every optimizer's rates for the update at a step; the recipe's rates are read once,
    from the optimizers as built (before any checkpoint is loaded)."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], start: int, length: int):
        self.optimizers = optimizers
        self.start, self.length = start, length
        self.base = {k: [float(g["lr"]) for g in o.param_groups] for k, o in optimizers.items()}

    def factor(self, step: int) -> float:
        return linear_decay_factor(step, self.start, self.length)

    def apply(self, step: int, lr_scale: float = 1.0) -> float:
        """Set the rates for the update at `step`; returns their multiple of the recipe's."""
        f = self.factor(step) * lr_scale
        for name, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self.base[name]):
                group["lr"] = base * f
        return f


def check_resume_decay(old: ScheduleConfig, new: ScheduleConfig, trained: int) -> None:
    """Refuse a resume whose overrides would change the rate of a step already trained: the
    resumed run must stay the run its saved recipe, trained from scratch, would make."""
    before, after = decay_window(old), decay_window(new)
    if before == after:
        return
    for step in range(trained):
        f_old = 1.0 if before is None else linear_decay_factor(step, *before)
        f_new = 1.0 if after is None else linear_decay_factor(step, *after)
        if f_old != f_new:
            raise GankitError(
                f"the resumed overrides change the learning rate of step {step}, which the run "
                f"has already trained (x{f_old:g} -> x{f_new:g} of the recipe's rate): a decay "
                f"may only be added or moved where it starts at or after step {trained}. When "
                "schedule.steps changes under an active decay, set schedule.lr_decay_steps "
                "explicitly to its old length."
            )
