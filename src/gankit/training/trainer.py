"""The training loop: build a run from its config, then run steps and announce them.

The loop knows nothing about the method's players, and little about what a run does besides
stepping: logging, samples, evaluation, checkpoints, the EMA, the learning-rate schedule, the
divergence guard and the progress bar are parts (training/events.py) in files of their own,
called on the loop's events. Losses stay on the device and are summed there; the host reads
them only every `logging.every` steps (training/log_window.py), so the hot loop never waits.

Divergence guard (training/guard.py): a non-finite loss, weight or gradient found at a log
step, an evaluation or a checkpoint rolls the run back to its last good checkpoint with lower
learning rates and reseeded streams, or stops it with a TrainingError.

Data-parallel training (under torchrun, training/distributed.py): every process runs this loop
on its rows of each global batch, and the optimizers average the gradients before they step.
Rank 0 alone owns the run folder (lock, config, run.json, metrics, TensorBoard, samples,
evaluation, checkpoints, progress bar, warnings); the others wait for it where they must read
what it wrote. Logged values are means over the processes, and every finite-check is reduced
over them, so all processes take the same rollback and stop decisions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gankit.data import build_dataset
from gankit.data.sharded import ShardedData
from gankit.errors import CheckpointError, ConfigError, DataError, TrainingError
from gankit.methods import METHODS
from gankit.methods.ema import EMA
from gankit.registry import provided
from gankit.schema import RunConfig
from gankit.training.checkpoint import list_checkpoints
from gankit.training.checkpoint_manager import CheckpointManager
from gankit.training.distributed import (
    Distributed,
    convert_sync_batchnorm,
    dump_rank_state,
    mirrored,
    shard_method_streams,
)
from gankit.training.ema_part import EMAPart
from gankit.training.events import Events, Part
from gankit.training.guard import Diverged, DivergenceGuard
from gankit.training.log_window import LogWindow
from gankit.training.lr_schedule import LRSchedule
from gankit.training.outputs import MetricsLog, warn_user
from gankit.training.progress import Progress
from gankit.training.rng import seed_everything
from gankit.training.run_folder import RunFolder
from gankit.training.samples import SampleWriter
from gankit.training.stop import StopFlag


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"device: {name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device: {name!r} asked for, but this machine has no CUDA GPU; use device=cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device: {name!r} asked for, but this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s) (cuda:0 ...)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} asked for, but MPS is not available; use cpu")
    return device


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        resume: bool = False,
        parts: list[Part] = (),
        objects: dict[str, Any] | None = None,
    ):
        """parts: more parts (training/events.py; gankit.train adds periodic evaluation), run
        after the built-in ones; their state_dict() goes into every checkpoint and comes back
        on resume. objects: the user's own networks or data by registry kind ("generator",
        "discriminator", "dataset"), built where the recipe names `python-object`."""
        self.objects = dict(objects or {})
        with provided(self.objects):
            self._build(cfg, run_dir, resume, parts)

    def _build(self, cfg: RunConfig, run_dir: Path, resume: bool, parts: list[Part]) -> None:
        self.cfg = cfg
        self.dist = Distributed.from_env()  # torchrun's place for this process; no-op alone
        if self.dist.enabled:
            self.device = self.dist.setup(cfg)
            # rank 0's folder (a default folder name holds a timestamp, which may differ)
            run_dir = Path(self.dist.broadcast_object(str(run_dir)))
        else:
            self.device = resolve_device(cfg.device)
        self.run_dir = Path(run_dir)
        self.folder = RunFolder(self, self.run_dir)
        self.step = 0
        self.log = None  # the MetricsLog, open while fit() runs
        self.stop: StopFlag | None = None
        self.stop_agreed: str | None = None  # under torchrun: the signal the processes agreed on
        seed_everything(cfg.seed)  # the same on every process: identical initial networks
        self.data = build_dataset(cfg.data, seed=cfg.seed).to(self.device)
        if self.dist.enabled:
            self.data = ShardedData(self.data, self.dist.rank, self.dist.world_size)
        self.method = METHODS[cfg.method](cfg, self.data, self.device)
        if self.dist.enabled:
            self._setup_data_parallel()
        self.ema = (
            EMA(self.method.generator, cfg.ema.decay, cfg.ema.start) if cfg.ema.enabled else None
        )
        if self.ema is not None and cfg.ema.bn_batches and hasattr(self.ema.model, "sample_grid"):
            raise ConfigError(
                f"ema.bn_batches: method {cfg.method!r} feeds its generator images, not noise, so "
                "its BatchNorm statistics cannot be recomputed from noise; set ema.bn_batches=0"
            )
        # the parts, in the order a step's work happens (training/events.py)
        self.lr_schedule = LRSchedule(self)
        self.ema_part = EMAPart(self)
        self.window = LogWindow(self)
        self.progress = Progress(self)
        self.samples = SampleWriter(self)
        self.guard = DivergenceGuard(self)
        self.checkpoints = CheckpointManager(self)
        self.events = Events(
            [
                self.lr_schedule,
                self.window,
                self.ema_part,
                self.progress,
                self.samples,
                self.guard,
                self.checkpoints,
            ]
        )
        for part in parts:
            self.add_part(part)
        if cfg.eval.every and not any(getattr(p, "evaluates", False) for p in parts):
            raise ConfigError(
                "eval.every: evaluation during training is a part of its own; train through "
                "gankit.train / gankit.prepare (which add it) or pass "
                "parts=[gankit.metrics.periodic.PeriodicEval()]"
            )
        try:
            if resume:
                self._resume()
            else:
                self.dist.on_main(self.folder.start)
        except BaseException:
            self.folder.unlock()  # a run that could not start leaves its folder free
            raise

    # -- set-up -----------------------------------------------------------------------------
    def _setup_data_parallel(self) -> None:
        """Per-rank shards of the data and noise streams, SyncBatchNorm if asked, rank 0's
        initial weights everywhere, gradient averaging before every optimizer step, and
        per-rank global RNG seeds."""
        cfg, dist = self.cfg, self.dist
        fast = getattr(self.method, "fast", None)
        if getattr(fast, "scaler", None) is not None:
            raise ConfigError(
                "fast.precision: fp16 with loss scaling (what auto picks on GPUs without bf16) "
                "skips overflowing steps on each process separately, which torchrun training "
                "does not support yet; set fast.precision=fp32 (or bf16 where the GPU has it)"
            )
        if cfg.distributed.sync_batchnorm:
            convert_sync_batchnorm(self.method)
        shard_method_streams(self.method, dist.rank, dist.world_size)
        for module in self.method.modules().values():
            dist.broadcast_module(module)
        dist.install_gradient_averaging(self.method.optimizers().values())
        # per-process draws of the global RNGs (penalty coefficients, dropout) must differ
        seed_everything(dist.rank_seed(cfg.seed))

    def _resume(self) -> None:
        """Rank 0 picks (and loads) the newest readable checkpoint; the others load it too."""
        chosen = self.dist.on_main(self._resume_folder)
        if self.dist.is_main or chosen is None:
            return
        try:
            self.checkpoints.load(chosen)
        except CheckpointError as exc:
            raise CheckpointError(
                f"rank {self.dist.rank}: {exc}. Every process reads rank 0's checkpoint: on "
                "several machines, the run folder must be on a filesystem they all see"
            ) from None

    def _resume_folder(self) -> Path | None:
        self.folder.reopen()
        found = list_checkpoints(self.folder.checkpoints)
        chosen = None
        if found:
            chosen = self.checkpoints.load_newest_readable(found)
        else:
            # killed before its first checkpoint: the state after __init__ is the run's
            # initial state (everything is seeded), so starting over is the exact same run
            warn_user(f"{self.run_dir} has no complete checkpoint yet; starting it again at step 0")
        self.folder.trim_metrics(self.step, self.guard.rollbacks)
        self.folder.write_info("running")
        return chosen

    def add_part(self, part: Part) -> None:
        """Hook a part of your own on the loop's events: after the built-in ones, before the
        checkpoint manager (a checkpoint holds what the step's parts did). It can reach this
        trainer as `part.trainer`."""
        part.trainer = self
        self.events.parts.insert(self.events.parts.index(self.checkpoints), part)

    # -- what the parts share -----------------------------------------------------------------
    def warn(self, message: str) -> None:
        """A warning from rank 0 only: the other processes would repeat it."""
        if self.dist.is_main:
            warn_user(message)

    def sample_generator(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.method.generator

    def sync_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every process."""
        if not self.dist.enabled:
            return
        modules = list(self.method.modules().values())
        if self.ema is not None:
            modules.append(self.ema.model)
        for module in modules:
            self.dist.broadcast_module(module, buffers_only=True)

    def save(self, pending: dict | None = None) -> Path:
        return self.checkpoints.save(pending)

    # -- the loop -----------------------------------------------------------------------------
    def _due(self, every: int | None) -> bool:
        return bool(every) and (self.step % every == 0 or self.step == self.cfg.schedule.steps)

    def _steps(self) -> str:
        """Train to schedule.steps; "finished", or "interrupted" after a stop request."""
        emit, logging, total = self.events.emit, self.cfg.logging, self.cfg.schedule.steps
        while self.step < total:
            try:
                emit("step_begin")
                logs = self.method.train_step(self.step)
                self.step += 1
                emit("step_end", logs)
                for event, every in (
                    ("log_step", logging.every),
                    ("sample_step", logging.sample_every),
                    ("eval_step", self.cfg.eval.every),
                    ("checkpoint_step", logging.checkpoint_every),
                ):
                    if self._due(every):
                        emit(event)
            except Diverged as d:
                self.guard.rollback(d)
                emit("rollback")
                continue
            # under torchrun a Ctrl-C is agreed on at the next logging step, so that every
            # process stops after the same step
            if self.stop.requested if not self.dist.enabled else self.stop_agreed:
                try:
                    self.save(self.window.pending())
                except Diverged as d:  # keep the last good checkpoint, stop anyway
                    self.warn(f"{d} non-finite at step {self.step}; not saved")
                return "interrupted"
        return "finished"

    def fit(self) -> dict:
        with provided(self.objects):
            return self._fit()

    def _fit(self) -> dict:
        if self.checkpoints.newest() is None:
            self.guard.initial = self.checkpoints.snapshot()  # rollback target until a checkpoint
        main = self.dist.is_main  # only rank 0 writes files and shows progress
        self.log = MetricsLog(self.run_dir, self.cfg.logging.tensorboard and main, enabled=main)
        self.progress.open()
        self.window.reset()  # the first window's clock starts with the first step
        try:
            with StopFlag() as self.stop:
                status = self._steps()
            self.events.emit("stop", status)
        except KeyboardInterrupt:
            status = "interrupted"  # a second signal: the last complete checkpoint stands
            self.dist.destroy()  # other processes may be gone: no more collectives
            self.events.emit("stop", status)
        except TrainingError:
            self._fail()
            raise
        except DataError as exc:  # a file gone bad or a worker lost mid-run: resumable
            self._fail()
            found = list_checkpoints(self.folder.checkpoints)
            where = f"the last complete checkpoint is {found[-1]}" if found else "no checkpoint"
            raise DataError(
                f"{exc} (at step {self.step}; {where}: fix the data, then `gankit train "
                f"--resume {self.run_dir}`)"
            ) from None
        except OSError as exc:  # disk full, folder removed or made read-only mid-run
            self._fail()
            raise self._write_error(exc) from None
        finally:
            self.progress.close()
            self.log.close()
            self.guard.initial = None
        # this process's signal, else the one the torchrun vote carried
        stopped_by = None
        if status == "interrupted":
            stopped_by = self.stop.requested or self.stop_agreed or "SIGINT"
        self.folder.write_info(status, stopped_by)
        self.folder.unlock()
        dump_rank_state(self.dist, self.checkpoints.full_state)  # test-only (its env variable)
        self.dist.barrier()  # rank 0's run.json is final before anyone returns
        self.dist.destroy()
        result = {"status": status, "step": self.step, "last": self.window.last_values}
        if stopped_by:
            result["signal"] = stopped_by
        return result

    def _fail(self) -> None:
        try:
            self.folder.write_info("failed")
        except OSError:
            pass
        self.folder.unlock()
        self.dist.destroy()

    def _write_error(self, exc: OSError) -> TrainingError:
        found = list_checkpoints(self.folder.checkpoints)
        where = f"the last complete checkpoint is {found[-1]}" if found else "no checkpoint"
        error = TrainingError(
            f"cannot write to the run folder {self.run_dir} at step {self.step} "
            f"({exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}); "
            f"{where}. Free space or fix the folder, then `gankit train --resume "
            f"{self.run_dir}`."
        )
        if getattr(exc, "mirrored", False):
            mirrored(error)
        return error
