"""The recipe's learning-rate decay (schedule.lr_decay_start / lr_decay_steps), applied before
every step on top of the divergence guard's scale; logged as lr_factor."""

from __future__ import annotations

import torch

from gankit.errors import ConfigError
from gankit.methods.lr_decay import StepDecay, decay_window
from gankit.training.events import Part


class LRSchedule(Part):
    def __init__(self, trainer):
        self.trainer = trainer
        self.decay = self.build(trainer)  # reads the recipe's rates: before any checkpoint load
        self.factor = 1.0

    @staticmethod
    def build(trainer) -> StepDecay | None:
        cfg = trainer.cfg
        window = decay_window(cfg.schedule)
        if window is None:
            return None
        if trainer.method.owns_lr_schedule:
            raise ConfigError(
                f"schedule.lr_decay_start: method {cfg.method!r} decays its learning rates "
                "itself (method_options.decay_start, decay_steps); leave "
                "schedule.lr_decay_start unset"
            )
        return StepDecay(trainer.method.optimizers(), *window)

    def on_step_begin(self) -> None:
        if self.decay is not None:
            t = self.trainer
            self.factor = self.decay.apply(t.step, t.guard.lr_scale)

    def on_step_end(self, logs: dict) -> None:
        t = self.trainer
        if self.decay is not None and t.method.collect_stats:
            logs["lr_factor"] = torch.tensor(self.factor, device=t.device)
