"""Recipes: YAML -> typed dataclasses, with --set overrides and errors before training starts.

A recipe names its components (data set, generator, discriminator, objective, regularizers) by
registry name plus options. `resolve` fills every default in, so the config saved with a run is
complete: re-running it needs nothing but gankit.
"""

from __future__ import annotations

import copy
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from gankit.data import DATASETS, resolve_data_options
from gankit.errors import ConfigError
from gankit.methods.options import resolve_method_options
from gankit.metrics.evaluate import check_metrics, default_metrics
from gankit.metrics.registry import score_directions
from gankit.models import DISCRIMINATORS, GENERATORS
from gankit.objectives import OBJECTIVES, build_objective
from gankit.registry import Registry, coerce
from gankit.regularizers import REGULARIZERS
from gankit.schema import (  # noqa: F401 - the recipe types, importable from here too
    DistributedConfig,
    EMAConfig,
    EvalConfig,
    FastConfig,
    GuardConfig,
    LoggingConfig,
    OptimConfig,
    OptimizerConfig,
    RunConfig,
    ScheduleConfig,
    from_dict,
)
from gankit.tricks import TRICKS

PRESET_PACKAGE = "gankit.presets"


def _load_yaml(text: str, origin: str) -> Any:
    """yaml.safe_load, with every way a text can fail as a ConfigError naming `origin`."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{origin}: not valid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4,300 digits
        raise ConfigError(f"{origin}: a value YAML cannot convert ({exc})") from None


def parse_override(text: str) -> tuple[str, Any]:
    """'schedule.steps=500' -> ('schedule.steps', 500); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set schedule.steps=500")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: the key is empty")
    value = _load_yaml(raw, f"--set {text!r}: the value") if raw.strip() else ""
    return key, value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply dotted-key overrides to a raw recipe mapping (list indices allowed: tricks.0.name)."""
    raw = copy.deepcopy(raw)
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    for key, value in items:
        parts = key.split(".")
        node: Any = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not (
                    part.isascii() and part.isdigit() and len(part) < 10 and int(part) < len(node)
                ):
                    raise ConfigError(
                        f"--set {key}: {where} is not an index of a {len(node)}-item list"
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i])} is not a mapping")
            if last:
                node[part] = value
            else:
                if node.get(part) is None:  # absent, or an empty section (`ema:` in YAML)
                    node[part] = {}
                node = node[part]
    return raw


def preset_names() -> list[str]:
    files = resources.files(PRESET_PACKAGE).iterdir()
    return sorted(p.name[: -len(".yaml")] for p in files if p.name.endswith(".yaml"))


def read_recipe(recipe: str | Path | None) -> dict[str, Any]:
    """A YAML file path or a built-in preset name -> its raw mapping. None is the quickstart."""
    recipe = "quickstart" if recipe is None else recipe
    path = Path(recipe)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"recipe file {str(path)!r} is not readable UTF-8: {exc}") from None
        origin = str(path)
    elif path.suffix in (".yaml", ".yml"):
        raise ConfigError(f"recipe file {str(path)!r} does not exist")
    elif str(recipe) in preset_names():
        text = resources.files(PRESET_PACKAGE).joinpath(f"{recipe}.yaml").read_text()
        origin = f"preset {recipe}"
    else:
        raise ConfigError(
            f"{recipe!r} is neither a recipe file nor a preset; "
            f"presets: {', '.join(preset_names())}"
        )
    raw = _load_yaml(text, origin)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a recipe must be a mapping of keys, got {type(raw).__name__}")
    return raw


def load_recipe(
    recipe: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> RunConfig:
    """Read a recipe (file or preset), apply overrides, check and resolve every default."""
    raw = apply_overrides(read_recipe(recipe), overrides or [])
    return resolve(from_dict(RunConfig, raw))


def _check_name(section: dict[str, Any], registry: Registry, where: str) -> None:
    if not isinstance(section, dict) or "name" not in section:
        raise ConfigError(f"{where}.name: required; valid choices: {', '.join(registry.names())}")
    if not isinstance(section["name"], str):
        raise ConfigError(f"{where}.name: expected a string, got {section['name']!r}")


def _component(section: dict[str, Any], registry: Registry, where: str, framework=()) -> dict:
    _check_name(section, registry, where)
    name = section["name"]
    options = {k: v for k, v in section.items() if k != "name"}
    return {"name": name, **registry.check_options(name, options, where, framework)}


def _check_range(value: float, low: float, where: str, what: str, strict: bool = False) -> None:
    finite = isinstance(value, int) or math.isfinite(value)  # ints: any size, no float()
    if not finite or value < low or (strict and value == low):
        shown = value
        if isinstance(value, int) and abs(value) >= 10**30:
            shown = f"an integer of {value.bit_length()} bits"
        raise ConfigError(f"{where}: {what}, got {shown}")


def resolve(cfg: RunConfig) -> RunConfig:
    """Check every component name and option, fill defaults, and check value ranges."""

    cfg = copy.deepcopy(cfg)
    _check_name(cfg.data, DATASETS, "data")
    cfg.data = resolve_data_options(cfg.data)
    gen = dict(cfg.generator)
    latent_dim = gen.pop("latent_dim", 64)
    latent_dist = gen.pop("latent_dist", "normal")
    latent_dim = coerce(latent_dim, int, "generator.latent_dim")
    _check_range(latent_dim, 1, "generator.latent_dim", "must be at least 1")
    coerce(latent_dist, Literal["normal", "uniform"], "generator.latent_dist")
    gen = _component(gen, GENERATORS, "generator", ("out_shape", "latent_dim"))
    cfg.generator = {"name": gen.pop("name"), "latent_dim": latent_dim, "latent_dist": latent_dist}
    cfg.generator.update(gen)
    cfg.discriminator = _component(
        cfg.discriminator, DISCRIMINATORS, "discriminator", ("in_shape",)
    )
    cfg.objective = _component(cfg.objective, OBJECTIVES, "objective")
    objective = build_objective(cfg.objective)

    regs = []
    for i, reg in enumerate(cfg.regularizers):
        where = f"regularizers[{i}]"
        if not isinstance(reg, dict):
            raise ConfigError(f"{where}: expected a mapping with a name, got {reg!r}")
        reg = dict(reg)
        weight, interval = reg.pop("weight", None), reg.pop("interval", 1)
        full = _component(reg, REGULARIZERS, where, ("weight", "interval"))
        if weight is None:
            weight = REGULARIZERS.options(full["name"]).get("weight")
        weight = coerce(weight, float, f"{where}.weight")
        interval = coerce(interval, int, f"{where}.interval")
        _check_range(weight, 0, f"{where}.weight", "must be a number >= 0")
        _check_range(interval, 1, f"{where}.interval", "must be at least 1")
        regs.append({"name": full.pop("name"), "weight": weight, "interval": interval, **full})
    cfg.regularizers = regs
    cfg.tricks = [_component(t, TRICKS, f"tricks[{i}]") for i, t in enumerate(cfg.tricks)]

    for player in ("generator", "discriminator"):
        opt: OptimizerConfig = getattr(cfg.optim, player)
        where = f"optim.{player}"
        paper = objective.default_optimizer or {}
        if opt.name == "auto":
            opt.name = paper.get("name", "adam")
        same = paper.get("name") == opt.name
        if opt.lr is None:
            opt.lr = (
                float(paper["lr"])
                if same
                else {"adam": 2e-4, "rmsprop": 5e-5, "sgd": 1e-2}[opt.name]
            )
        if opt.betas is None and opt.name == "adam":
            opt.betas = tuple(paper.get("betas", (0.5, 0.999))) if same else (0.5, 0.999)
        _check_range(opt.lr, 0, f"{where}.lr", "the learning rate must be positive", strict=True)
        _check_range(opt.weight_decay, 0, f"{where}.weight_decay", "must be >= 0")
        _check_range(opt.momentum, 0, f"{where}.momentum", "must be >= 0")
        if opt.betas is not None and not all(0 <= b < 1 for b in opt.betas):
            raise ConfigError(f"{where}.betas: each beta must be in [0, 1), got {list(opt.betas)}")

    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed: must be in [0, 2**32), got {cfg.seed}")
    s = cfg.schedule
    _check_range(s.steps, 1, "schedule.steps", "must be at least 1")
    _check_range(s.n_critic, 1, "schedule.n_critic", "must be at least 1")
    _check_range(s.batch_size, 1, "schedule.batch_size", "must be at least 1")
    if s.lr_decay_start is not None:
        _check_range(s.lr_decay_start, 0, "schedule.lr_decay_start", "must be >= 0")
    if s.lr_decay_steps is not None:
        if s.lr_decay_start is None:
            raise ConfigError(
                "schedule.lr_decay_steps: set schedule.lr_decay_start too (the step at which the "
                "decay begins; 0 decays from the first step)"
            )
        _check_range(s.lr_decay_steps, 1, "schedule.lr_decay_steps", "must be at least 1")
    if not 0 < cfg.ema.decay < 1:
        raise ConfigError(f"ema.decay: must be in (0, 1), got {cfg.ema.decay}")
    _check_range(cfg.ema.start, 0, "ema.start", "must be >= 0")
    _check_range(cfg.ema.bn_batches, 0, "ema.bn_batches", "must be >= 0 (0: copy G's statistics)")
    log = cfg.logging
    for key in ("every", "sample_every", "checkpoint_every", "keep_checkpoints", "n_samples"):
        _check_range(getattr(log, key), 1, f"logging.{key}", "must be at least 1")
    _resolve_eval(cfg)
    _check_range(cfg.guard.rollbacks, 0, "guard.rollbacks", "must be >= 0 (0 turns the guard off)")
    lr_factor = cfg.guard.lr_factor
    if not (math.isfinite(lr_factor) and 0 < lr_factor <= 1):
        raise ConfigError(
            f"guard.lr_factor: must be in (0, 1] (1 keeps the learning rates), got {lr_factor}"
        )
    if not re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]{1,3})?", cfg.device):
        raise ConfigError(f"device: expected auto, cpu, cuda, cuda:N or mps, got {cfg.device!r}")

    cfg.method_options = resolve_method_options(cfg)  # last: its checks read the whole recipe
    return cfg


def _resolve_eval(cfg: RunConfig) -> None:

    ev = cfg.eval
    _check_range(ev.every, 0, "eval.every", "must be >= 0 (0 turns evaluation off)")
    _check_range(ev.n_fake, 0, "eval.n_fake", "must be >= 0 (0: the default count)")
    try:
        check_metrics(ev.metrics, cfg.data)
    except ConfigError as exc:
        raise ConfigError(f"eval.metrics: {exc}") from None
    if ev.best:
        scores = sorted(score_directions(("images", "points")))  # what training scores
        if ev.best not in scores:
            raise ConfigError(f"eval.best: unknown score {ev.best!r}; valid: {', '.join(scores)}")
        if not ev.every:
            raise ConfigError("eval.best: needs eval.every > 0 to evaluate during training")
    if not ev.metrics and ev.every:
        ev.metrics = default_metrics(cfg.data)
