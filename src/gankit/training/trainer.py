"""The generic training loop: build a run from its config, train, log, sample, checkpoint.

The loop knows nothing about the method's players. Losses stay on the device and are summed
there; the host reads them only every `logging.every` steps, so the hot loop never waits.

Training statistics: on log steps the method also computes each player's gradient norm
(`collect_stats`), and the trainer measures sample diversity (`diversity`: mean pairwise distance
of DIVERSITY_N fixed-noise samples over that of real data), read in the same host sync. A
Watchdog (training/diagnostics.py) turns these values into warnings (discriminator wins, sample
diversity drops): event lines in metrics.jsonl, printed like rollbacks.

Divergence guard: at every logging step (in the same single host sync as the losses) and before
every checkpoint, the losses, parameters and gradients are checked for NaN/inf. A non-finite
value rolls the run back to its last good checkpoint (or its initial state), multiplies the
learning rates by `guard.lr_factor` and reseeds the data stream and the global RNGs with
(seed, rollback number); after `guard.rollbacks` rollbacks the run stops with a TrainingError.

Data-parallel training (under torchrun, training/distributed.py): every process runs this loop
on its rows of each global batch, and the optimizers average the gradients before they step.
Rank 0 alone owns the run folder (lock, config, run.json, metrics, TensorBoard, samples,
evaluation, checkpoints, progress bar, warnings); the others wait for it where they must read
what it wrote. Logged values are means over the processes, and every finite-check is reduced
over them, so all processes take the same rollback and stop decisions.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gankit.data import build_dataset
from gankit.data.sharded import ShardedData
from gankit.errors import CheckpointError, ConfigError, GankitError, TrainingError
from gankit.machine import machine_info
from gankit.methods import METHODS
from gankit.methods.ema import EMA
from gankit.methods.fast import align_optimizer_state
from gankit.methods.lr_decay import StepDecay, decay_window
from gankit.models.latent import sample_latent
from gankit.schema import RunConfig
from gankit.training.checkpoint import (
    clean_partial,
    flatten_state,
    list_checkpoints,
    load_checkpoint,
    load_module_state,
    prune_checkpoints,
    save_checkpoint,
    unflatten_state,
)
from gankit.training.diagnostics import Watchdog
from gankit.training.distributed import (
    Distributed,
    convert_sync_batchnorm,
    dump_rank_state,
    mirrored,
    shard_method_streams,
)
from gankit.training.outputs import (
    MetricsLog,
    read_metrics_lines,
    save_samples,
    write_text_atomic,
)
from gankit.training.rng import mix_seed, rng_state, seed_everything, set_rng_state
from gankit.version import __version__

N_POINTS_2D = 2500  # PacGAN's sample count for the 2D mixtures
DIVERSITY_N = 64  # generated samples whose spread is compared with real data's at log steps
DIVERSITY_N_REAL = 256  # real samples for the reference spread (computed once)
LOCK_FILE = ".lock"
logger = logging.getLogger("gankit.training")


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


def write_json_atomic(path: Path, value: dict) -> None:
    write_text_atomic(path, json.dumps(value, indent=2))


class _Diverged(Exception):
    """Internal: something became non-finite; the loop rolls back or stops."""

    def __init__(self, what: list[str], step: int, window: int | None = None):
        super().__init__(", ".join(what))
        self.what = what
        self.step = step
        self.window = window  # steps the checked losses were summed over (None: a state check)


def _warn(message: str) -> None:
    """A warning that reaches the user: through `logging` when the application configured it,
    else printed above the progress bar."""
    if logger.hasHandlers():
        logger.warning(message)
    else:
        tqdm.write(f"gankit: warning: {message}", file=sys.stderr)


class _StopFlag:
    """The first Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step and
    checkpoint; a second one interrupts at once. SIGTERM is what `timeout`, `kill`, job
    schedulers and container runtimes send before they kill: without this a preempted run lost
    everything since its last periodic checkpoint."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: str | None = None  # the signal's name once one arrived
        self._previous: dict[int, object] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


class Trainer:
    _lock_fd: int | None = None  # set while this object holds the run folder's lock

    def __init__(self, cfg: RunConfig, run_dir: Path, resume: bool = False):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = Distributed.from_env()  # torchrun's place for this process; no-op alone
        if self.dist.enabled:
            self.device = self.dist.setup(cfg)
            # rank 0's folder (a default folder name holds a timestamp, which may differ)
            self.run_dir = Path(self.dist.broadcast_object(str(self.run_dir)))
        else:
            self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)  # the same on every process: identical initial networks
        self.data = build_dataset(cfg.data, seed=cfg.seed).to(self.device)
        if self.dist.enabled:
            self.data = ShardedData(self.data, self.dist.rank, self.dist.world_size)
        self.method = METHODS[cfg.method](cfg, self.data, self.device)
        if self.dist.enabled:
            self._setup_data_parallel()
        self.lr_decay = self._build_lr_decay()  # reads the recipe's rates: before any load
        self.ema = (
            EMA(self.method.generator, cfg.ema.decay, cfg.ema.start) if cfg.ema.enabled else None
        )
        if self.ema is not None and cfg.ema.bn_batches and hasattr(self.ema.model, "sample_grid"):
            raise ConfigError(
                f"ema.bn_batches: method {cfg.method!r} feeds its generator images, not noise, so "
                "its BatchNorm statistics cannot be recomputed from noise; set ema.bn_batches=0"
            )
        self._ema_ready_at: int | None = None  # the step of the EMA's standing statistics
        self.step = 0
        self.best: float | None = None  # best eval score so far (eval.best)
        self.rollbacks = 0  # divergence-guard rollbacks so far (kept in checkpoints)
        self.lr_scale = 1.0  # product of the lr_factor of every rollback so far
        self._initial: tuple[int, dict] | None = None  # state to roll back to before any checkpoint
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.samples_dir = self.run_dir / "samples"
        self.watchdog = Watchdog(cfg.logging.every)
        if resume:
            self._resume()
        else:
            self._start()
        noise_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)
        n_fixed = N_POINTS_2D if self._is_2d else cfg.logging.n_samples
        self.fixed_noise = sample_latent(
            n_fixed,
            cfg.generator["latent_dim"],
            cfg.generator["latent_dist"],
            self.device,
            noise_gen,
        )
        g_cfg = cfg.generator
        self.diversity_noise = sample_latent(
            DIVERSITY_N,
            g_cfg["latent_dim"],
            g_cfg["latent_dist"],
            self.device,
            torch.Generator(device=self.device).manual_seed(cfg.seed + 3),
        )
        self.real_spread = _mean_distance(self.data.reference(DIVERSITY_N_REAL))

    def _build_lr_decay(self) -> StepDecay | None:
        window = decay_window(self.cfg.schedule)
        if window is None:
            return None
        if self.method.owns_lr_schedule:
            raise ConfigError(
                f"schedule.lr_decay_start: method {self.cfg.method!r} decays its learning rates "
                "itself (method_options.decay_start, decay_steps); leave "
                "schedule.lr_decay_start unset"
            )
        return StepDecay(self.method.optimizers(), *window)

    @property
    def _is_2d(self) -> bool:
        return tuple(self.data.shape) == (2,)

    # -- data parallelism -------------------------------------------------------------------
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

    def _on_main(self, fn):
        """fn() on rank 0 only; its result reaches every process, and so does its error (the
        others raise it marked as mirrored: rank 0 reports it). Also a barrier."""
        if not self.dist.enabled:
            return fn()
        outcome = None
        if self.dist.is_main:
            try:
                outcome = ("ok", fn())
            except (GankitError, OSError) as exc:
                outcome = ("error", exc)
        outcome = self.dist.broadcast_object(outcome)
        if outcome[0] == "error":
            raise outcome[1] if self.dist.is_main else mirrored(outcome[1])
        return outcome[1]

    def _newest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint, as rank 0 sees it (collective)."""
        found = list_checkpoints(self.checkpoint_dir) if self.dist.is_main else None
        return self.dist.broadcast_object(found[-1] if found else None)

    def _sync_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every process."""
        if not self.dist.enabled:
            return
        modules = list(self.method.modules().values())
        if self.ema is not None:
            modules.append(self.ema.model)
        for module in modules:
            self.dist.broadcast_module(module, buffers_only=True)

    def _agree_ok(self, flags: dict[str, torch.Tensor]) -> list[str]:
        """Names of the 0-d bool flags that are False on any process (one host sync)."""
        if not flags:
            return []
        ok = self.dist.all_reduce_mean(torch.stack([f.float() for f in flags.values()]))
        return [name for name, good in zip(flags, ok.tolist()) if good != 1.0]

    def _warn(self, message: str) -> None:
        if self.dist.is_main:
            _warn(message)

    # -- run folder -------------------------------------------------------------------------
    def _start(self) -> None:
        self._on_main(self._start_folder)

    def _start_folder(self) -> None:
        if self.run_dir.is_dir() and any(p.name != LOCK_FILE for p in self.run_dir.iterdir()):
            raise ConfigError(
                f"{self.run_dir} already holds files; continue that run with "
                f"`gankit train --resume {self.run_dir}` or choose another --out"
            )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock()
            # written atomically: a kill never leaves a truncated recipe that resume would read
            write_text_atomic(self.run_dir / "config.yaml", self.cfg.to_yaml())
            self._write_run_info("running")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run folder {self.run_dir}: {exc.strerror or exc}; "
                "choose a writable --out"
            ) from None

    def _lock(self) -> None:
        """One process trains a run folder at a time; the lock dies with the process (even on
        SIGKILL), so a killed run can be resumed at once."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"{self.run_dir} is being trained by another process right now; wait for it "
                "to finish or stop it (a killed process releases the folder at once)"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self):
        self._unlock()

    def _write_run_info(self, status: str, stopped_by: str | None = None) -> None:
        if not self.dist.is_main:
            return
        write_json_atomic(
            self.run_dir / "run.json",
            {
                "gankit_version": __version__,
                "name": self.cfg.name,
                "status": status,
                **({"signal": stopped_by} if stopped_by else {}),
                "step": self.step,
                "steps": self.cfg.schedule.steps,
                "data_shape": list(self.data.shape),
                "num_classes": self.data.num_classes,
                "device": str(self.device),
                **self._hardware(),
                "world_size": self.dist.world_size,
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )

    def _hardware(self) -> dict:
        """The processor and the precision fast mode resolved to: a result read later (a
        sweep's table) says which machine and number format made it, since `precision: auto`
        picks bf16 on some CPUs and fp32 on others."""
        if not hasattr(self, "_hardware_info"):
            info = machine_info(self.device)
            fast = getattr(getattr(self, "method", None), "fast", None)  # none yet on early failure
            self._hardware_info = {
                "processor": info.get("gpu") or info["cpu"],
                **({"precision": fast.precision, "fast": fast.describe()} if fast else {}),
            }
        return self._hardware_info

    def _resume(self) -> None:
        """Rank 0 picks (and loads) the newest readable checkpoint; the others load it too."""
        chosen = self._on_main(self._resume_folder)
        if self.dist.is_main or chosen is None:
            return
        try:
            self.load(chosen)
        except CheckpointError as exc:
            raise CheckpointError(
                f"rank {self.dist.rank}: {exc}. Every process reads rank 0's checkpoint: on "
                "several machines, the run folder must be on a filesystem they all see"
            ) from None

    def _resume_folder(self) -> Path | None:
        try:
            self._lock()
        except OSError as exc:
            raise ConfigError(f"cannot write the run folder {self.run_dir}: {exc}") from None
        for folder in (self.checkpoint_dir, self.run_dir / "best"):
            clean_partial(folder)  # temporary folders of writes a kill cut short
        for tmp in self.run_dir.glob(".*.tmp-*"):  # ... and of write_text_atomic
            tmp.unlink(missing_ok=True)
        found = list_checkpoints(self.checkpoint_dir)
        chosen = None
        if found:
            chosen = self._load_newest_readable(found)
        else:
            # killed before its first checkpoint: the state after __init__ is the run's
            # initial state (everything is seeded), so starting over is the exact same run
            _warn(f"{self.run_dir} has no complete checkpoint yet; starting it again at step 0")
        self._trim_metrics()
        self._write_run_info("running")
        return chosen

    def _load_newest_readable(self, found: list[Path]) -> Path:
        """Load the newest checkpoint; when it cannot be read (damaged on disk after it was
        written), fall back to the one before it, saying so."""
        errors = []
        for path in reversed(found):
            try:
                self.load(path)
            except CheckpointError as exc:
                errors.append(exc)
                continue
            for newer in found[found.index(path) + 1 :]:  # kept aside, no longer "newest"
                newer.rename(newer.with_name(f"damaged-{newer.name}"))
            if errors:
                _warn(
                    f"{errors[0]}; resumed from the older checkpoint {path} instead (the "
                    "unreadable one is kept as damaged-step_...)"
                )
            return path
        raise errors[0]

    def _trim_metrics(self) -> None:
        """Drop log lines the restored state does not include (written after its step, or a
        rollback event it does not know of): the resumed run writes them again. A line cut
        short by a kill is dropped too."""
        path = self.run_dir / "metrics.jsonl"
        if not self.dist.is_main or not path.exists():
            return
        keep = []
        for line, value in read_metrics_lines(path):
            if value is None or value.get("step", math.inf) > self.step:
                continue
            if value.get("event") == "rollback" and value.get("rollback", 0) > self.rollbacks:
                continue
            keep.append(line)
        write_text_atomic(path, "".join(line + "\n" for line in keep))

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        modules = {k: m.state_dict() for k, m in self.method.modules().items()}
        if self.ema is not None:
            modules["generator_ema"] = self.ema.model.state_dict()
        return {
            "modules": modules,
            "optimizers": {k: o.state_dict() for k, o in self.method.optimizers().items()},
            "method": self.method.extra_state(),
            "data": self.data.state_dict(),
            "rng": rng_state(),
            "trainer": {
                "best": self.best,
                "rollbacks": self.rollbacks,
                "lr_scale": self.lr_scale,
                "watchdog": self.watchdog.state_dict(),
                "world_size": self.dist.world_size,
            },
        }

    def checkpoint_meta(self) -> dict:
        """What `load` checks a checkpoint against, plus when and by what it was written."""
        return {
            "gankit_version": __version__,
            "name": self.cfg.name,
            "method": self.cfg.method,
            "data_shape": list(self.data.shape),
            "world_size": self.dist.world_size,
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def checked_state(self, pending: dict[str, torch.Tensor] | None = None) -> dict:
        """state_dict(), after checking (one host sync) that no parameter, buffer, optimizer
        moment or pending loss is NaN/inf: nothing non-finite is ever saved."""
        self._ready_ema()
        state = self.state_dict()
        flags: dict[str, torch.Tensor] = {}
        for group in ("modules", "optimizers"):
            for name, sub in state[group].items():
                flag = _all_finite(list(_tensors(sub)), self.device)
                if flag is not None:
                    what = "weights" if group == "modules" else "optimizer state"
                    flags[f"{name} {what}"] = flag
        for key, value in (pending or {}).items():
            flags[key] = torch.isfinite(value).all().to(self.device)
        bad = self._agree_ok(flags)  # the same decision on every process
        if bad:
            raise _Diverged(bad, self.step)
        return state

    def save(self, pending: dict[str, torch.Tensor] | None = None) -> Path:
        """Check and write a checkpoint (rank 0 writes; every process takes part and returns
        once it is complete). It holds every process's global RNG states (rng_by_rank)."""
        state = self.checked_state(pending)
        if self.dist.enabled:
            state["rng_by_rank"] = self.dist.gather_objects(state["rng"])

        def write() -> Path:
            path = save_checkpoint(self.checkpoint_dir, self.step, state, self.checkpoint_meta())
            prune_checkpoints(self.checkpoint_dir, self.cfg.logging.keep_checkpoints)
            return path

        return self._on_main(write)

    def load(self, path: Path) -> None:
        state, meta = load_checkpoint(path)
        if meta.get("method") != self.cfg.method or meta.get("data_shape") != list(self.data.shape):
            raise CheckpointError(
                f"{path}: written for method {meta.get('method')!r} on data of shape "
                f"{meta.get('data_shape')}, but the recipe trains {self.cfg.method!r} on "
                f"{list(self.data.shape)}; was it written by another recipe?"
            )
        self._apply_state(state, int(meta["step"]), path)

    def _snapshot(self) -> tuple[int, dict]:
        """A deep copy of the full state on the CPU, as a checkpoint would hold it."""
        return self.step, unflatten_state(*flatten_state(self.state_dict()))

    def _apply_state(self, state: dict, step: int, path: Path | str) -> None:
        self._ema_ready_at = None
        modules = dict(self.method.modules())
        if self.ema is not None:
            modules["generator_ema"] = self.ema.model
        for name, module in modules.items():
            if name not in state["modules"]:
                raise CheckpointError(
                    f"{path}: has no {name} (was EMA turned on after the run began?)"
                )
            load_module_state(module, state["modules"][name], name, path)
        for name, opt in self.method.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
            align_optimizer_state(opt)
        self.method.load_extra_state(state["method"])
        self.data.load_state_dict(state["data"])
        self._restore_rng(state, step)
        trainer = state.get("trainer", {})
        self.best = trainer.get("best")
        self.rollbacks = int(trainer.get("rollbacks", 0))
        self.lr_scale = float(trainer.get("lr_scale", 1.0))
        self.watchdog.load_state_dict(trainer.get("watchdog", {}))
        self.step = step

    def _restore_rng(self, state: dict, step: int) -> None:
        """This process's global RNG states; reseeded when the checkpoint was written by
        another number of processes (the data and noise streams are global and continue)."""
        saved = int(state.get("trainer", {}).get("world_size", 1))
        world = self.dist.world_size
        if saved == world:
            by_rank = state.get("rng_by_rank")
            set_rng_state(by_rank[self.dist.rank] if by_rank is not None else state["rng"])
            return
        self._warn(
            f"the checkpoint was written by {saved} process(es), this run has {world}: the "
            "networks, optimizers, data order and latent noise continue exactly; the global "
            "RNGs (gradient-penalty coefficients, dropout) start from new seeds"
        )
        seed_everything(mix_seed(self.dist.rank_seed(self.cfg.seed), step))

    # -- divergence guard -------------------------------------------------------------------
    def _health_flags(self) -> dict[str, torch.Tensor]:
        """0-d bool tensors (on the device, no sync): are the parameters and the last
        gradients of each network finite?"""
        flags = {}
        for name, module in self.method.modules().items():
            params = list(module.parameters())
            for what, tensors in (
                ("parameters", params),
                ("gradients", [p.grad for p in params if p.grad is not None]),
            ):
                flag = _all_finite(tensors, self.device)
                if flag is not None:
                    flags[f"{name} {what}"] = flag
        return flags

    def _check_health(self) -> None:
        bad = self._agree_ok(self._health_flags())
        if bad:
            raise _Diverged(bad, self.step)

    def _diverged_message(self, d: _Diverged) -> str:
        found = list_checkpoints(self.checkpoint_dir)
        where = f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was saved"
        when = (
            f"in the {d.window} steps up to step {d.step}"
            if d.window is not None
            else f"at step {d.step}"
        )
        guard = self.cfg.guard
        if guard.rollbacks == 0:
            tried = "the divergence guard is off (guard.rollbacks=0)"
        else:
            tried = (
                f"this is divergence number {self.rollbacks + 1}: after {self.rollbacks} "
                f"rollbacks (guard.rollbacks={guard.rollbacks}, learning rates now "
                f"{self.lr_scale:g} x the recipe's) it diverged again"
            )
        return (
            f"training diverged: {', '.join(d.what)} became non-finite (NaN or inf) {when}; "
            f"{tried}; {where}. Lower the learning rates (optim.*.lr) or add a regularizer, "
            "then resume or start again."
        )

    def _rollback(self, d: _Diverged, log: MetricsLog) -> None:
        """Restore the last good state, scale the learning rates and reseed, or stop."""
        guard = self.cfg.guard
        if self.rollbacks >= guard.rollbacks:
            error = TrainingError(self._diverged_message(d))
            raise error if self.dist.is_main else mirrored(error)
        newest = self._newest_checkpoint()
        count, scale = self.rollbacks + 1, self.lr_scale * guard.lr_factor
        if newest is not None:
            self.load(newest)
            origin = str(newest)
        elif self._initial is not None:
            step, state = self._initial
            self._apply_state(state, step, "the initial state")
            origin = f"the initial state (step {step})"
        else:  # pragma: no cover - fit() always keeps one of the two
            raise TrainingError(self._diverged_message(d))
        ratio = scale / self.lr_scale  # the restored optimizers carry the restored scale
        for opt in self.method.optimizers().values():
            for group in opt.param_groups:
                group["lr"] = group["lr"] * ratio
        self.rollbacks, self.lr_scale = count, scale
        # a retry with other data batches and other global random draws, not a replay of the
        # diverging trajectory (which with lr_factor 1 would diverge again, identically)
        salt = mix_seed(self.cfg.seed, count)
        seed_everything(self.dist.rank_seed(salt))
        self.data.reseed(salt)  # the data stream is global: the same salt on every process
        self._trim_metrics()
        event = {
            "event": "rollback",
            "rollback": count,
            "of": guard.rollbacks,
            "detected_at": d.step,
            "non_finite": d.what,
            "restored": origin,
            "lr_scale": scale,
        }
        log.event(self.step, event)
        self._warn(
            f"{', '.join(d.what)} became non-finite at step {d.step}; rolled back to {origin} "
            f"(rollback {count} of {guard.rollbacks}), learning rates now {scale:g} x the "
            "recipe's"
        )

    # -- the loop ---------------------------------------------------------------------------
    def _ready_ema(self) -> None:
        """Standing BatchNorm statistics for the EMA generator (ema.bn_batches) before it is
        sampled, scored or saved. The noise comes from its own generator seeded by (seed, step),
        so training's random streams are untouched and a resumed run saves the same statistics.
        Every process calls it at the same steps (SyncBatchNorm layers take part in it)."""
        batches = self.cfg.ema.bn_batches
        if self.ema is None or not batches or self._ema_ready_at == self.step:
            return
        g_cfg = self.cfg.generator
        noise_gen = torch.Generator(device=self.device).manual_seed(
            (self.cfg.seed + 4) * 1_000_003 + self.step
        )
        self.ema.recalibrate(
            lambda: sample_latent(
                self.cfg.schedule.batch_size,
                g_cfg["latent_dim"],
                g_cfg["latent_dist"],
                self.device,
                noise_gen,
            ),
            batches,
        )
        self._ema_ready_at = self.step

    def sample_generator(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.method.generator

    @torch.no_grad()
    def write_samples(self, log: MetricsLog) -> Path:
        G = self.sample_generator()
        was_training = G.training
        G.eval()
        grid = getattr(G, "sample_grid", None)  # image-to-image: (source, translation) pairs
        samples = G(self.fixed_noise) if grid is None else grid(self.fixed_noise)
        G.train(was_training)
        real = self.data.reference(N_POINTS_2D) if self._is_2d else None
        path = save_samples(
            samples, self.samples_dir / f"step_{self.step:08d}.png", real, f"step {self.step}"
        )
        log.image(self.step, "samples", path)
        return path

    def fit(self) -> dict:
        cfg = self.cfg
        log_cfg = cfg.logging
        total = cfg.schedule.steps
        if self._newest_checkpoint() is None:
            self._initial = self._snapshot()  # the guard's rollback target until a checkpoint
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        last_log_time, last_log_step = time.perf_counter(), self.step
        last_values: dict[str, float] = {}
        status = "finished"
        main = self.dist.is_main  # only rank 0 writes files and shows progress
        log = MetricsLog(self.run_dir, log_cfg.tensorboard and main, enabled=main)
        self._stop_agreed: str | None = None  # under torchrun: the signal the processes agreed on
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not log_cfg.progress or not main,
            desc=cfg.name,
            unit="step",
            dynamic_ncols=True,
        )
        try:
            with _StopFlag() as stop:
                while self.step < total:
                    try:
                        # the method computes its costlier statistics only when they are read
                        next_step = self.step + 1
                        self.method.collect_stats = next_step % log_cfg.every == 0 or (
                            next_step == total
                        )
                        if self.lr_decay is not None:
                            factor = self.lr_decay.apply(self.step, self.lr_scale)
                        logs = self.method.train_step(self.step)
                        if self.lr_decay is not None and self.method.collect_stats:
                            logs["lr_factor"] = torch.tensor(factor, device=self.device)
                        self.step += 1
                        if self.ema is not None:
                            self.ema.update(self.method.generator, self.step)
                        for key, value in logs.items():
                            if key in sums:
                                sums[key] += value
                                counts[key] += 1
                            else:
                                sums[key], counts[key] = value.clone(), 1
                        bar.update(1)
                        if self.step % log_cfg.every == 0 or self.step == total:
                            now = time.perf_counter()
                            last_values = self._log(
                                log,
                                sums,
                                counts,
                                now - last_log_time,
                                self.step - last_log_step,
                                stop.requested,
                            )
                            sums, counts = {}, {}
                            last_log_time, last_log_step = now, self.step
                            bar.set_postfix(
                                {k: f"{last_values[k]:.3f}" for k in ("d_loss", "g_loss")}
                            )
                        ev = cfg.eval
                        # on every process, before samples or scores use the EMA (checkpoints
                        # ready it in checked_state)
                        if self.step == total or any(
                            every and self.step % every == 0
                            for every in (log_cfg.sample_every, ev.every)
                        ):
                            self._ready_ema()
                        if main and (self.step % log_cfg.sample_every == 0 or self.step == total):
                            self.write_samples(log)
                        if ev.every and (self.step % ev.every == 0 or self.step == total):
                            self._check_health()
                            self.evaluate(log)
                        if self.step % log_cfg.checkpoint_every == 0 or self.step == total:
                            self.save(sums)
                    except _Diverged as d:
                        self._rollback(d, log)
                        sums, counts = {}, {}
                        last_log_time, last_log_step = time.perf_counter(), self.step
                        bar.n = self.step
                        bar.refresh()
                        continue
                    # under torchrun a Ctrl-C is agreed on at the next logging step, so that
                    # every process stops after the same step
                    if stop.requested if not self.dist.enabled else self._stop_agreed:
                        status = "interrupted"
                        try:
                            self.save(sums)
                        except _Diverged as d:  # keep the last good checkpoint, stop anyway
                            self._warn(f"{d} non-finite at step {self.step}; not saved")
                        break
        except KeyboardInterrupt:
            status = "interrupted"  # a second signal: the last complete checkpoint stands
            self.dist.destroy()  # other processes may be gone: no more collectives
        except TrainingError:
            self._fail()
            self.dist.destroy()
            raise
        except OSError as exc:  # disk full, folder removed or made read-only mid-run
            self._fail()
            self.dist.destroy()
            found = list_checkpoints(self.checkpoint_dir)
            where = f"the last complete checkpoint is {found[-1]}" if found else "no checkpoint"
            error = TrainingError(
                f"cannot write to the run folder {self.run_dir} at step {self.step} "
                f"({exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}); "
                f"{where}. Free space or fix the folder, then `gankit train --resume "
                f"{self.run_dir}`."
            )
            if getattr(exc, "mirrored", False):
                mirrored(error)
            raise error from None
        finally:
            bar.close()
            log.close()
            self._initial = None
        # this process's signal, else the one the torchrun vote carried
        stopped_by = None
        if status == "interrupted":
            stopped_by = stop.requested or self._stop_agreed or "SIGINT"
        self._write_run_info(status, stopped_by)
        self._unlock()
        dump_rank_state(self.dist, self.state_dict)  # test-only, when its variable is set
        self.dist.barrier()  # rank 0's run.json is final before anyone returns
        self.dist.destroy()
        result = {"status": status, "step": self.step, "last": last_values}
        if stopped_by:
            result["signal"] = stopped_by
        return result

    def _fail(self) -> None:
        try:
            self._write_run_info("failed")
        except OSError:
            pass
        self._unlock()

    def evaluate(self, log: MetricsLog) -> dict:
        """Score the sampling generator; keep RUN_DIR/best when `eval.best` improved."""
        from gankit.metrics.evaluate import LOWER_IS_BETTER, compute_metrics

        ev, g_cfg = self.cfg.eval, self.cfg.generator
        n_fake = ev.n_fake or (N_POINTS_2D if self._is_2d else 2000)

        def score() -> dict:
            return compute_metrics(
                self.sample_generator(),
                (g_cfg["latent_dim"], g_cfg["latent_dist"]),
                self.cfg.data,
                ev.metrics,
                n_fake,
                ev.ref_split,
                ev.extractor,
                seed=self.cfg.seed,
                device=self.device,
                progress=False,
            )

        result = self._on_main(score)  # rank 0 evaluates, the others wait for its scores
        scores = {f"eval/{k}": float(v) for k, v in result["metrics"].items()}
        log.scalars(self.step, scores)
        if ev.best:
            value = result["metrics"][ev.best]
            lower = ev.best in LOWER_IS_BETTER
            if self.best is None or (value < self.best if lower else value > self.best):
                self.best = float(value)
                meta = {**self.checkpoint_meta(), "best": {ev.best: self.best}, "eval": result}
                state = self.checked_state()

                def write_best() -> None:
                    save_checkpoint(self.run_dir / "best", self.step, state, meta)
                    prune_checkpoints(self.run_dir / "best", keep=1)

                self._on_main(write_best)
        return result

    def _log(self, log, sums, counts, seconds, steps, stop_requested=None) -> dict[str, float]:
        """Log the window's mean losses and statistics; under torchrun they are means over the
        processes (one all_reduce), and so are the finite flags and the stop vote, which carries
        the signal (`stop_requested`: this process's signal name, or None): a process that got
        none learns which one stopped the run."""
        keys = list(sums)
        self._sync_buffers()  # eval-mode passes below read the running statistics
        flags = self._health_flags()  # parameters and gradients, checked in the same sync
        diversity = self._diversity()
        parts = (
            [sums[k].float() for k in keys]
            + [f.float() for f in flags.values()]
            + [diversity.float()]
        )
        if self.dist.enabled:  # one vote slot per signal _StopFlag handles
            parts += [
                torch.tensor(float(stop_requested == sig.name), device=self.device)
                for sig in _StopFlag.SIGNALS
            ]
        totals = self.dist.all_reduce_mean(torch.stack(parts)).tolist()  # the one host sync
        if self.dist.enabled:
            totals, votes = totals[: -len(_StopFlag.SIGNALS)], totals[-len(_StopFlag.SIGNALS) :]
            # any vote stops every process; SIGTERM (preemption) outranks SIGINT when both came
            voted = [sig.name for sig, v in zip(_StopFlag.SIGNALS, votes) if v > 0]
            self._stop_agreed = voted[-1] if voted else None
        values = {k: t / counts[k] for k, t in zip(keys, totals)}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        bad += [name for name, ok in zip(flags, totals[len(keys) : -1]) if ok != 1.0]
        if bad:
            raise _Diverged(bad, self.step, window=steps)
        if math.isfinite(totals[-1]):
            values["diversity"] = totals[-1]
        values["steps_per_sec"] = steps / max(seconds, 1e-9)
        values["samples_per_sec"] = values["steps_per_sec"] * self.cfg.schedule.batch_size
        log.scalars(self.step, values)
        for kind, message in self.watchdog.check(self.step, values):
            log.event(self.step, {"event": "warning", "kind": kind, "message": message})
            self._warn(message)
        return values

    @torch.no_grad()
    def _diversity(self) -> torch.Tensor:
        """Mean pairwise distance of fixed-noise samples of the trained generator (eval mode,
        as for sample grids) over that of real data: near 0 when the samples collapsed."""
        G = self.method.generator
        was_training = G.training
        G.eval()
        fake = G(self.diversity_noise)
        G.train(was_training)
        return _mean_distance(fake) / self.real_spread


def _mean_distance(x: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance over all pairs of distinct samples (flattened), on the device."""
    return torch.pdist(x.detach().flatten(1).float()).mean()


def _tensors(value):
    """Every tensor in a nested state (dicts, lists, tuples)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def _all_finite(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor | None:
    """A 0-d bool tensor on `device` (no host sync): are all floating tensors free of NaN/inf?
    The max-abs norm of each tensor is finite exactly when the tensor is, and _foreach_norm
    takes a whole group of tensors per kernel. None when there is nothing to check."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        if t.is_floating_point() and t.numel():
            groups.setdefault((t.device, t.dtype), []).append(t.detach())
    flags = []
    for group in groups.values():
        norms = torch._foreach_norm(group, float("inf"))
        flags.append(torch.stack(norms).isfinite().all().to(device))
    if not flags:
        return None
    return flags[0] if len(flags) == 1 else torch.stack(flags).all()
