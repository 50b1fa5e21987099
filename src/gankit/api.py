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

from torch import nn

from gankit.config import RunConfig, load_recipe, parse_override, preset_names, resolve
from gankit.errors import ConfigError, GankitError
from gankit.methods.lr_decay import check_resume_decay
from gankit.metrics.evaluate import evaluate as _evaluate
from gankit.metrics.periodic import PeriodicEval
from gankit.registry import OBJECT, object_path, provided
from gankit.run import Run
from gankit.schema import from_dict
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
    *,
    generator: Any = None,
    discriminator: Any = None,
    data: Any = None,
) -> Trainer:
    """Build everything a run needs (data, networks, run folder) without training yet, so
    every error in the recipe or the data shows up before the first step. parts: your own
    parts of training (gankit.training.events.Part), hooked on the loop's events.
    generator, discriminator: your own nn.Modules (gankit trains copies of them: the trained
    ones are in the returned Run); data: a torch Dataset, a DataLoader, a tensor of samples or
    a (samples, labels) pair. They replace the recipe's sections."""
    if isinstance(recipe, RunConfig):
        if overrides:
            raise GankitError("pass overrides to load_recipe, not with a RunConfig")
        cfg = recipe
    else:
        cfg = load_recipe(recipe, overrides)
    objects = as_objects(generator=generator, discriminator=discriminator, data=data)
    cfg = with_objects(cfg, objects)
    run_dir = Path(out) if out is not None else default_run_dir(cfg)
    return Trainer(cfg, run_dir, parts=[*run_parts(cfg), *parts], objects=objects)


def as_objects(generator: Any = None, discriminator: Any = None, data: Any = None) -> dict:
    """The objects by registry kind, checked to be what each place takes."""
    for key, value in (("generator", generator), ("discriminator", discriminator)):
        if value is not None and not isinstance(value, nn.Module):
            raise ConfigError(f"{key}: expected a torch.nn.Module, got {type(value).__name__}")
    objects = {"generator": generator, "discriminator": discriminator, "dataset": data}
    return {k: v for k, v in objects.items() if v is not None}


def with_objects(cfg: RunConfig, objects: dict[str, Any]) -> RunConfig:
    """The recipe with a `python-object` section for each object, recording its class."""
    if not objects:
        return cfg
    raw = cfg.to_dict()
    for kind, obj in objects.items():
        section = {"name": OBJECT, "object": object_path(getattr(obj, "dataset", obj))}
        if kind == "generator":  # the noise it takes: its own latent_dim, else the recipe's
            latent_dim = getattr(obj, "latent_dim", raw["generator"].get("latent_dim"))
            section["latent_dim"] = latent_dim
            section["latent_dist"] = raw["generator"].get("latent_dist", "normal")
        raw["data" if kind == "dataset" else kind] = section
    with provided(objects):
        return resolve(from_dict(RunConfig, raw))


def run_parts(cfg: RunConfig) -> list[Part]:
    """The parts a run has beyond the trainer's own: evaluation when eval.every is set."""
    return [PeriodicEval()] if cfg.eval.every else []


def fit(trainer: Trainer) -> Run:
    result = trainer.fit()
    run = Run(trainer.run_dir, **api_objects(trainer.objects))
    run.result = result
    return run


def train(
    recipe: RunConfig | str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    out: str | Path | None = None,
    parts: list[Part] = (),
    *,
    generator: Any = None,
    discriminator: Any = None,
    data: Any = None,
) -> Run:
    """Train a recipe (a RunConfig, a YAML path or a preset name; None is the quickstart) into
    the folder `out` (default runs/NAME-TIMESTAMP) and return the finished Run. parts,
    generator, discriminator, data: as for `prepare`."""
    trainer = prepare(
        recipe, overrides, out, parts, generator=generator, discriminator=discriminator, data=data
    )
    return fit(trainer)


def api_objects(objects: dict[str, Any]) -> dict[str, Any]:
    return {("data" if k == "dataset" else k): v for k, v in objects.items()}


def resume(
    run_dir: str | Path,
    overrides: list[str] | dict[str, Any] | None = None,
    parts: list[Part] = (),
    *,
    generator: Any = None,
    discriminator: Any = None,
    data: Any = None,
) -> Run:
    """Continue a run from its newest complete checkpoint, with its own saved config.

    Only schedule.steps (to train longer), logging.*, guard.* and device may be overridden:
    anything else would make it a different run. schedule.lr_decay_start and lr_decay_steps may
    too, where they leave the rates of the steps already trained as they were (a decay added
    from a step at or after the newest checkpoint): the run stays the one its saved recipe makes.
    generator, discriminator, data: the objects a run trained from Python objects was given.
    """
    objects = as_objects(generator=generator, discriminator=discriminator, data=data)
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
    with provided(objects):
        cfg = load_recipe(run_dir / "config.yaml", overrides)
    if keys:
        with provided(objects):
            saved = load_recipe(run_dir / "config.yaml")
        found = list_checkpoints(run_dir / "checkpoints")
        trained = checkpoint_step(found[-1]) if found else 0
        check_resume_decay(saved.schedule, cfg.schedule, trained)
    trainer = Trainer(cfg, run_dir, resume=True, parts=[*run_parts(cfg), *parts], objects=objects)
    if overrides and trainer.dist.is_main:  # under torchrun, rank 0 owns the run folder
        write_text_atomic(run_dir / "config.yaml", cfg.to_yaml())
    return fit(trainer)


def evaluate(run_dir: str | Path | Run, **options: Any) -> dict:
    """Score a run (a folder, or a Run opened with its objects; see
    gankit.metrics.evaluate.evaluate for the options) and write eval.json."""
    return _evaluate(run_dir if isinstance(run_dir, Run) else Run(run_dir), **options)


def presets() -> list[str]:
    return preset_names()


def open_run(
    path: str | Path, *, generator: Any = None, discriminator: Any = None, data: Any = None
) -> Run:
    """A run folder; pass the objects a run trained from Python objects was given."""
    return Run(path, generator=generator, discriminator=discriminator, data=data)
