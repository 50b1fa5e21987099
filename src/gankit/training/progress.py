"""The progress bar (rank 0, logging.progress): steps, speed, and the last logged losses."""

from __future__ import annotations

from tqdm.auto import tqdm

from gankit.training.events import Part


class Progress(Part):
    def __init__(self, trainer):
        self.trainer = trainer
        self.bar = None

    def open(self) -> None:
        t = self.trainer
        self.bar = tqdm(
            total=t.cfg.schedule.steps,
            initial=t.step,
            disable=not t.cfg.logging.progress or not t.dist.is_main,
            desc=t.cfg.name,
            unit="step",
            dynamic_ncols=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_step_end(self, logs: dict) -> None:
        self.bar.update(1)

    def on_log_step(self) -> None:
        values = self.trainer.window.last_values
        self.bar.set_postfix({k: f"{values[k]:.3f}" for k in ("d_loss", "g_loss")})

    def on_rollback(self) -> None:
        self.bar.n = self.trainer.step
        self.bar.refresh()
