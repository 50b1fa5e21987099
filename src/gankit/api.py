"""The Python API: everything the CLI does, as function calls.

import gankit
cfg = gankit.load_recipe("ring8", {"schedule.steps": 500})
run = gankit.train(cfg, out="runs/ring8")
points = run.sample(2500)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from gankit.config import RunConfig, load_recipe, parse_override, preset_names
from gankit.errors import GankitError
from gankit.methods.lr_decay import check_resume_decay
from gankit.metrics.evaluate import evaluate as _evaluate
from gankit.metrics.periodic import PeriodicEval
from gankit.run import Run
from gankit.training.checkpoint import checkpoint_step, list_checkpoints
from gankit.training.events import Part
from gankit.training.outputs import write_text_atomic
from gankit.training.trainer import Trainer

RESUME_OVERRIDABLE = (
    "schedule.steps",
    "schedule.lr_decay_start",
    "schedule.lr_decay_steps",
    "logging.",
    "device",
    "guard.",
)


def default_run_dir(cfg: RunConfig, root: str | Path = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg.name}-{stamp}"


def prepare(
    recipe: RunConfig | str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    out: str | Path | None = None,
    parts: list[Part] = (),
) -> Trainer:
    """Build everything a run needs (data, networks, run folder) without training yet, so
    every error in the recipe or the data shows up before the first step. parts: your own
    parts of training (gankit.training.events.Part), hooked on the loop's events."""
    if isinstance(recipe, RunConfig):
        if overrides:
            raise GankitError("pass overrides to load_recipe, not with a RunConfig")
        cfg = recipe
    else:
        cfg = load_recipe(recipe, overrides)
    run_dir = Path(out) if out is not None else default_run_dir(cfg)
    return Trainer(cfg, run_dir, parts=[*run_parts(cfg), *parts])


def run_parts(cfg: RunConfig) -> list[Part]:
    """The parts a run has beyond the trainer's own: evaluation when eval.every is set."""
    return [PeriodicEval()] if cfg.eval.every else []


def fit(trainer: Trainer) -> Run:
    result = trainer.fit()
    run = Run(trainer.run_dir)
    run.result = result
    return run


def train(
    recipe: RunConfig | str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    out: str | Path | None = None,
    parts: list[Part] = (),
) -> Run:
    """Train a recipe (a RunConfig, a YAML path or a preset name; None is the quickstart) into
    the folder `out` (default runs/NAME-TIMESTAMP) and return the finished Run. parts: as for
    `prepare`."""
    return fit(prepare(recipe, overrides, out, parts))


def resume(
    run_dir: str | Path,
    overrides: list[str] | dict[str, Any] | None = None,
    parts: list[Part] = (),
) -> Run:
    """Continue a run from its newest complete checkpoint, with its own saved config.

    Only schedule.steps (to train longer), logging.*, guard.* and device may be overridden:
    anything else would make it a different run. schedule.lr_decay_start and lr_decay_steps may
    too, where they leave the rates of the steps already trained as they were (a decay added
    from a step at or after the newest checkpoint): the run stays the one its saved recipe makes.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise GankitError(f"{run_dir} is not a gankit run folder (no config.yaml)")
    keys = overrides if isinstance(overrides, dict) else dict(map(parse_override, overrides or []))
    for key in keys:
        if not key.startswith(RESUME_OVERRIDABLE):
            raise GankitError(
                f"--set {key}: a resumed run keeps its recipe; only schedule.steps, "
                "schedule.lr_decay_start, schedule.lr_decay_steps, logging.*, guard.* and device "
                "can change. Start a new run to change anything else."
            )
    cfg = load_recipe(run_dir / "config.yaml", overrides)
    if keys:
        saved = load_recipe(run_dir / "config.yaml")
        found = list_checkpoints(run_dir / "checkpoints")
        trained = checkpoint_step(found[-1]) if found else 0
        check_resume_decay(saved.schedule, cfg.schedule, trained)
    trainer = Trainer(cfg, run_dir, resume=True, parts=[*run_parts(cfg), *parts])
    if overrides and trainer.dist.is_main:  # under torchrun, rank 0 owns the run folder
        write_text_atomic(run_dir / "config.yaml", cfg.to_yaml())
    return fit(trainer)


def evaluate(run_dir: str | Path, **options: Any) -> dict:
    """Score a run (see gankit.metrics.evaluate.evaluate for the options) and write eval.json."""

    return _evaluate(Run(run_dir), **options)


def presets() -> list[str]:
    return preset_names()


def open_run(path: str | Path) -> Run:
    return Run(path)
