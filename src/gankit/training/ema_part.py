"""The EMA generator in a run: updated after every step, and given standing BatchNorm
statistics (ema.bn_batches) before it is sampled, scored or saved."""

from __future__ import annotations

import torch

from gankit.models.latent import sample_latent
from gankit.training.events import Part


class EMAPart(Part):
    def __init__(self, trainer):
        self.trainer = trainer
        self.ready_at: int | None = None  # the step of the EMA's standing statistics

    def load_state_dict(self, state: dict) -> None:
        self.ready_at = None  # restored weights: their statistics are recomputed when needed

    def on_step_end(self, logs: dict) -> None:
        t = self.trainer
        if t.ema is not None:
            t.ema.update(t.method.generator, t.step)

    def on_sample_step(self) -> None:
        self.ready()

    def on_eval_step(self) -> None:
        self.ready()

    def ready(self) -> None:
        """Standing BatchNorm statistics for the EMA generator (ema.bn_batches). The noise comes
        from its own generator seeded by (seed, step), so training's random streams are
        untouched and a resumed run saves the same statistics. Every process calls it at the
        same steps (SyncBatchNorm layers take part in it)."""
        t = self.trainer
        batches = t.cfg.ema.bn_batches
        if t.ema is None or not batches or self.ready_at == t.step:
            return
        g_cfg = t.cfg.generator
        noise_gen = torch.Generator(device=t.device).manual_seed(
            (t.cfg.seed + 4) * 1_000_003 + t.step
        )
        t.ema.recalibrate(
            lambda: sample_latent(
                t.cfg.schedule.batch_size,
                g_cfg["latent_dim"],
                g_cfg["latent_dist"],
                t.device,
                noise_gen,
            ),
            batches,
        )
        self.ready_at = t.step
