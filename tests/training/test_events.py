"""The loop's events: which fire at which step, in which order, and a user's own part."""

from __future__ import annotations

import pytest

import gankit
from gankit.api import prepare
from gankit.training.checkpoint import load_checkpoint
from gankit.training.events import EVENTS, Events, Part
from gankit.training.trainer import Trainer

TINY = {
    "schedule.steps": 10,
    "schedule.batch_size": 16,
    "logging.every": 4,
    "logging.sample_every": 5,
    "logging.checkpoint_every": 3,
    "logging.tensorboard": False,
    "logging.progress": False,
}


class Recorder(Part):
    def __init__(self):
        self.seen: list[tuple[str, int]] = []
        self.saved_steps = 0

    def _record(self, name):
        self.seen.append((name, self.trainer.step))

    def on_step_begin(self):
        self._record("step_begin")

    def on_step_end(self, logs):
        assert {"d_loss", "g_loss"} <= set(logs)
        self._record("step_end")

    def on_log_step(self):
        self._record("log_step")

    def on_sample_step(self):
        self._record("sample_step")

    def on_eval_step(self):
        self._record("eval_step")

    def on_checkpoint_step(self):
        self._record("checkpoint_step")

    def on_stop(self, status):
        self._record(f"stop:{status}")

    def state_dict(self):
        self.saved_steps += 1
        return {"recorder_calls": len(self.seen)}


def expected_schedule(steps, every, sample_every, eval_every, checkpoint_every):
    """The events a run of `steps` steps fires, by hand: each periodic event at multiples of
    its period and at the last step, in the documented order."""
    out = []
    for step in range(1, steps + 1):
        out += [("step_begin", step - 1), ("step_end", step)]
        for name, period in (
            ("log_step", every),
            ("sample_step", sample_every),
            ("eval_step", eval_every),
            ("checkpoint_step", checkpoint_every),
        ):
            if period and (step % period == 0 or step == steps):
                out.append((name, step))
    return out


def test_events_fire_at_their_steps_in_order(tmp_path):
    trainer = prepare("ring8", {**TINY, "eval.every": 7, "eval.n_fake": 200}, tmp_path / "r")
    recorder = Recorder()
    trainer.add_part(recorder)
    assert recorder.trainer is trainer
    result = trainer.fit()
    assert result["status"] == "finished"
    assert recorder.seen == [*expected_schedule(10, 4, 5, 7, 3), ("stop:finished", 10)]
    # the part's state went into every checkpoint (steps 3, 6, 9, 10); it runs before the
    # checkpoint manager, so the last checkpoint saw all of step 10
    ckpts = sorted((tmp_path / "r" / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts][-1] == "step_00000010"
    state, _ = load_checkpoint(ckpts[-1])
    assert state["trainer"]["recorder_calls"] == len(expected_schedule(10, 4, 5, 7, 3))


def test_eval_every_without_the_evaluation_part_says_how(tmp_path):
    cfg = gankit.load_recipe("ring8", {**TINY, "eval.every": 5})
    with pytest.raises(gankit.ConfigError, match="PeriodicEval"):
        Trainer(cfg, tmp_path / "r")


def test_a_part_state_is_restored_on_resume(tmp_path):
    class Counter(Part):
        def __init__(self):
            self.steps = 0

        def on_step_end(self, logs):
            self.steps += 1

        def state_dict(self):
            return {"counter_steps": self.steps}

        def load_state_dict(self, state):
            self.steps = state.get("counter_steps", 0)

    cfg = gankit.load_recipe("ring8", {**TINY, "schedule.steps": 6})
    Trainer(cfg, tmp_path / "r", parts=[Counter()]).fit()
    counter = Counter()
    resumed = Trainer(
        gankit.load_recipe(tmp_path / "r" / "config.yaml", {"schedule.steps": 9}),
        tmp_path / "r",
        resume=True,
        parts=[counter],
    )
    assert counter.steps == 6  # restored from the step-6 checkpoint
    resumed.fit()
    assert counter.steps == 9


def test_unknown_event_is_refused():
    with pytest.raises(ValueError, match="unknown training event 'step_start'"):
        Events([]).emit("step_start")
    assert EVENTS[0] == "step_begin" and EVENTS[-1] == "stop"


def test_the_loop_reads_on_one_screen():
    """The issue's bar: the step loop itself (Trainer._steps) fits on one screen."""
    import inspect

    assert len(inspect.getsource(Trainer._steps).splitlines()) <= 40
