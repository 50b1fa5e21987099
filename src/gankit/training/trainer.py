"""The generic training loop: build a run from its config, train, log, sample, checkpoint.

The loop knows nothing about the method's players. Losses stay on the device and are summed
there; the host reads them only every `logging.every` steps, so the hot loop never waits.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gankit import __version__
from gankit.config import RunConfig
from gankit.data import build_dataset
from gankit.errors import CheckpointError, ConfigError, TrainingError
from gankit.methods import METHODS
from gankit.methods.base import sample_latent
from gankit.training.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    load_module_state,
    prune_checkpoints,
    save_checkpoint,
)
from gankit.training.ema import EMA
from gankit.training.outputs import MetricsLog, save_samples
from gankit.training.rng import rng_state, seed_everything, set_rng_state

N_POINTS_2D = 2500  # PacGAN's sample count for the 2D mixtures


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device: {name!r} asked for, but this machine has no CUDA GPU; use device=cpu"
        )
    return device


def write_json_atomic(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


class _StopFlag:
    """First Ctrl-C asks the loop to stop after the current step (and checkpoint); a second
    one interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: Path, resume: bool = False):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.data = build_dataset(cfg.data, seed=cfg.seed).to(self.device)
        self.method = METHODS[cfg.method](cfg, self.data, self.device)
        self.ema = (
            EMA(self.method.generator, cfg.ema.decay, cfg.ema.start) if cfg.ema.enabled else None
        )
        self.step = 0
        self.best: float | None = None  # best eval score so far (eval.best)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.samples_dir = self.run_dir / "samples"
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

    @property
    def _is_2d(self) -> bool:
        return tuple(self.data.shape) == (2,)

    # -- run folder -------------------------------------------------------------------------
    def _start(self) -> None:
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise ConfigError(
                f"{self.run_dir} already holds files; continue that run with "
                f"`gankit train --resume {self.run_dir}` or choose another --out"
            )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(self.cfg.to_yaml())
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run folder {self.run_dir}: {exc.strerror}"
            ) from None
        self._write_run_info("running")

    def _write_run_info(self, status: str) -> None:
        write_json_atomic(
            self.run_dir / "run.json",
            {
                "gankit_version": __version__,
                "name": self.cfg.name,
                "status": status,
                "step": self.step,
                "steps": self.cfg.schedule.steps,
                "data_shape": list(self.data.shape),
                "num_classes": self.data.num_classes,
                "device": str(self.device),
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )

    def _resume(self) -> None:
        found = list_checkpoints(self.checkpoint_dir)
        if not found:
            raise CheckpointError(
                f"{self.run_dir} has no complete checkpoint to resume from "
                f"(looked in {self.checkpoint_dir})"
            )
        self.load(found[-1])
        self._trim_metrics()
        self._write_run_info("running")

    def _trim_metrics(self) -> None:
        """Drop log lines written after the checkpoint, which the resumed run writes again."""
        path = self.run_dir / "metrics.jsonl"
        if path.exists():
            keep = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= self.step
            ]
            path.write_text("".join(line + "\n" for line in keep))

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
            "trainer": {"best": self.best},
        }

    def checkpoint_meta(self) -> dict:
        """What `load` checks a checkpoint against, plus when and by what it was written."""
        return {
            "gankit_version": __version__,
            "name": self.cfg.name,
            "method": self.cfg.method,
            "data_shape": list(self.data.shape),
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def save(self) -> Path:
        path = save_checkpoint(
            self.checkpoint_dir, self.step, self.state_dict(), self.checkpoint_meta()
        )
        prune_checkpoints(self.checkpoint_dir, self.cfg.logging.keep_checkpoints)
        return path

    def load(self, path: Path) -> None:
        state, meta = load_checkpoint(path)
        if meta.get("method") != self.cfg.method or meta.get("data_shape") != list(self.data.shape):
            raise CheckpointError(
                f"{path}: written for method {meta.get('method')!r} on data of shape "
                f"{meta.get('data_shape')}, but the recipe trains {self.cfg.method!r} on "
                f"{list(self.data.shape)}; was it written by another recipe?"
            )
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
        self.method.load_extra_state(state["method"])
        self.data.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        self.best = state.get("trainer", {}).get("best")
        self.step = int(meta["step"])

    # -- the loop ---------------------------------------------------------------------------
    def sample_generator(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.method.generator

    @torch.no_grad()
    def write_samples(self, log: MetricsLog) -> Path:
        G = self.sample_generator()
        was_training = G.training
        G.eval()
        samples = G(self.fixed_noise)
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
        log = MetricsLog(self.run_dir, log_cfg.tensorboard)
        total = cfg.schedule.steps
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        last_log_time, last_log_step = time.perf_counter(), self.step
        last_values: dict[str, float] = {}
        status = "finished"
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not log_cfg.progress,
            desc=cfg.name,
            unit="step",
            dynamic_ncols=True,
        )
        try:
            with _StopFlag() as stop:
                while self.step < total:
                    logs = self.method.train_step(self.step)
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
                            log, sums, counts, now - last_log_time, self.step - last_log_step
                        )
                        sums, counts = {}, {}
                        last_log_time, last_log_step = now, self.step
                        bar.set_postfix({k: f"{last_values[k]:.3f}" for k in ("d_loss", "g_loss")})
                    if self.step % log_cfg.sample_every == 0 or self.step == total:
                        self.write_samples(log)
                    ev = cfg.eval
                    if ev.every and (self.step % ev.every == 0 or self.step == total):
                        self.evaluate(log)
                    if self.step % log_cfg.checkpoint_every == 0 or self.step == total:
                        self.save()
                    if stop.requested:
                        status = "interrupted"
                        self.save()
                        break
        except KeyboardInterrupt:
            status = "interrupted"  # second Ctrl-C: the last complete checkpoint stands
        except TrainingError:
            self._write_run_info("failed")
            raise
        finally:
            bar.close()
            log.close()
        self._write_run_info(status)
        return {"status": status, "step": self.step, "last": last_values}

    def evaluate(self, log: MetricsLog) -> dict:
        """Score the sampling generator; keep RUN_DIR/best when `eval.best` improved."""
        from gankit.metrics.evaluate import LOWER_IS_BETTER, compute_metrics

        ev, g_cfg = self.cfg.eval, self.cfg.generator
        n_fake = ev.n_fake or (N_POINTS_2D if self._is_2d else 2000)
        result = compute_metrics(
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
        scores = {f"eval/{k}": float(v) for k, v in result["metrics"].items()}
        log.scalars(self.step, scores)
        if ev.best:
            value = result["metrics"][ev.best]
            lower = ev.best in LOWER_IS_BETTER
            if self.best is None or (value < self.best if lower else value > self.best):
                self.best = float(value)
                meta = {**self.checkpoint_meta(), "best": {ev.best: self.best}, "eval": result}
                save_checkpoint(self.run_dir / "best", self.step, self.state_dict(), meta)
                prune_checkpoints(self.run_dir / "best", keep=1)
        return result

    def _log(self, log, sums, counts, seconds, steps) -> dict[str, float]:
        keys = list(sums)
        totals = torch.stack([sums[k].float() for k in keys]).tolist()  # the one host sync
        values = {k: t / counts[k] for k, t in zip(keys, totals)}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            found = list_checkpoints(self.checkpoint_dir)
            where = (
                f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was saved"
            )
            raise TrainingError(
                f"training diverged: {', '.join(bad)} became non-finite (NaN or inf) in the "
                f"{steps} steps up to step {self.step}; {where}. Lower the learning rates "
                "(optim.*.lr) or add a regularizer, then resume or start again."
            )
        values["steps_per_sec"] = steps / max(seconds, 1e-9)
        values["samples_per_sec"] = values["steps_per_sec"] * self.cfg.schedule.batch_size
        log.scalars(self.step, values)
        return values
