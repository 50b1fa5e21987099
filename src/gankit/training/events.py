"""The training loop's events, and the parts that listen to them.

The loop (training/trainer.py) only runs steps and says what just happened; everything else a
run does (logging, samples, evaluation, checkpoints, EMA, the learning-rate schedule, progress)
is a `Part` in its own file that reacts to these events. Parts are called in the order they
were given, which is the order a step's work must happen in (the EMA is ready before samples
are drawn; the log window is checked before a checkpoint is written).

    step_begin          before the method's train_step
    step_end(logs)      after it; logs are the step's device tensors (mutable)
    log_step            every logging.every steps and at the last step
    sample_step         every logging.sample_every steps and at the last step
    eval_step           every eval.every steps and at the last step (when eval.every is set)
    checkpoint_step     every logging.checkpoint_every steps and at the last step
    rollback            after the divergence guard restored an earlier state
    stop(status)        the loop ended: "finished", or "interrupted" by a signal (not on a
                        failure); the metrics log is still open, collectives may be gone
"""

from __future__ import annotations

EVENTS = (
    "step_begin",
    "step_end",
    "log_step",
    "sample_step",
    "eval_step",
    "checkpoint_step",
    "rollback",
    "stop",
)


class Part:
    """One job of a training run, hooked on the loop's events. Override the `on_*` methods a
    part needs; a part with state in checkpoints adds it to the "trainer" section through
    `state_dict` / `load_state_dict` (keys of its own)."""

    def on_step_begin(self) -> None: ...
    def on_step_end(self, logs: dict) -> None: ...
    def on_log_step(self) -> None: ...
    def on_sample_step(self) -> None: ...
    def on_eval_step(self) -> None: ...
    def on_checkpoint_step(self) -> None: ...
    def on_rollback(self) -> None: ...
    def on_stop(self, status: str) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class Events:
    """Calls every part's handler of an event, in the parts' order."""

    def __init__(self, parts: list[Part]):
        self.parts = list(parts)

    def emit(self, event: str, *args) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown training event {event!r}; events: {', '.join(EVENTS)}")
        for part in self.parts:
            getattr(part, f"on_{event}")(*args)
