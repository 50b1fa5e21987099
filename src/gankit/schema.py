"""The recipe's sections as typed dataclasses (RunConfig and its parts), and the checked
conversion of a mapping into them. Every layer reads a recipe through these types; loading,
overrides and resolving against the registries are config.py's, above the components.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from gankit.errors import ConfigError
from gankit.registry import coerce


@dataclass
class OptimizerConfig:
    """name auto takes the objective's paper optimizer (RMSprop for WGAN) or else Adam."""

    name: Literal["auto", "adam", "rmsprop", "sgd"] = "auto"
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float = 0.0
    momentum: float = 0.0


@dataclass
class OptimConfig:
    generator: OptimizerConfig = field(default_factory=OptimizerConfig)
    discriminator: OptimizerConfig = field(default_factory=OptimizerConfig)


@dataclass
class ScheduleConfig:
    steps: int = 2000  # generator steps
    n_critic: int = 1  # discriminator steps per generator step
    batch_size: int = 64
    # linear learning-rate decay toward 0 (gankit.methods.lr_decay): None keeps the rates
    # constant; otherwise lr_decay_start steps at the recipe's rates, then lr_decay_steps
    # decaying steps (default: the rest of the run)
    lr_decay_start: int | None = None
    lr_decay_steps: int | None = None


@dataclass
class EMAConfig:
    """Exponential moving average of the generator's weights, used for sampling when enabled."""

    enabled: bool = False
    decay: float = 0.999
    start: int = 0  # step at which averaging begins (before it, the EMA copies G)
    # batches of fresh noise from which the EMA's BatchNorm statistics are recomputed before it
    # is used (samples, eval, checkpoints); 0 copies the raw G's, which fit G, not the average
    bn_batches: int = 0


@dataclass
class LoggingConfig:
    every: int = 100  # steps between metrics.jsonl / TensorBoard scalars (host syncs only here)
    sample_every: int = 500  # steps between sample grids
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    n_samples: int = 64  # images in each sample grid (points for 2D data: 2,500)
    tensorboard: bool = True
    progress: bool = True


@dataclass
class EvalConfig:
    """Evaluation during training: every `every` steps (0: off) the metrics are logged to
    metrics.jsonl/TensorBoard, and with `best` set (a score such as fid) the best checkpoint is
    kept in RUN_DIR/best."""

    every: int = 0
    metrics: list[str] = field(default_factory=list)  # empty: every metric that fits the data
    n_fake: int = 0  # 0: 2,500 for 2D data, 2,000 for images
    extractor: str = "auto"
    ref_split: str = "test"
    best: str = ""


@dataclass
class GuardConfig:
    """Divergence guard. Losses, parameters and gradients are checked for NaN/inf at every
    logging step (logging.every, in the one host sync there) and before every checkpoint. On a
    non-finite value the run rolls back to its last good checkpoint (its initial state before
    the first one), multiplies every learning rate by `lr_factor` and reseeds the data stream and
    the global RNGs with (seed, rollback number); after `rollbacks` rollbacks it stops with a
    TrainingError. rollbacks 0 stops at the first non-finite value."""

    rollbacks: int = 3
    lr_factor: float = 0.5


@dataclass
class FastConfig:
    """Fast mode: reduced-precision autocast, channels_last and fused optimizers where they are
    safe and measured to help (methods/fast.py resolves `auto`); `enabled: false` trains in
    plain fp32 like a hand-written PyTorch loop. `compile` wraps G and D in torch.compile (slow
    first steps; not with double-backward penalties)."""

    enabled: bool = True
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True  # convolutional models only
    fused_optimizer: bool = True
    compile: bool = False


@dataclass
class DistributedConfig:
    """Data-parallel training under torchrun (read only when WORLD_SIZE > 1).
    schedule.batch_size is the global batch; each rank trains on batch_size / world_size."""

    backend: Literal["auto", "gloo", "nccl"] = "auto"  # auto: nccl on CUDA, gloo on CPU
    sync_batchnorm: bool = False  # CUDA only: BatchNorm statistics over the global batch


@dataclass
class RunConfig:
    name: str = "run"
    description: str = ""
    source: str = ""  # the paper or recipe the settings come from
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    method: str = "gan"  # a registered method: gan, pacgan, unrolled, began, ebgan, gmmn, ...
    method_options: dict[str, Any] = field(default_factory=dict)  # see methods/options.py
    data: dict[str, Any] = field(default_factory=lambda: {"name": "digits"})
    generator: dict[str, Any] = field(default_factory=lambda: {"name": "dcgan", "latent_dim": 64})
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "dcgan"})
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "non_saturating"})
    regularizers: list[dict[str, Any]] = field(default_factory=list)
    tricks: list[dict[str, Any]] = field(default_factory=list)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    fast: FastConfig = field(default_factory=FastConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _plain(value: Any) -> Any:
    """Tuples -> lists so the YAML stays plain."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from a mapping, naming any unknown key and listing the valid ones."""
    label = where or "recipe"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"{path}: unknown key; valid keys here: {', '.join(sorted(fields))}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, path)
        else:
            kwargs[key] = coerce(value, tp, path)
    return cls(**kwargs)
