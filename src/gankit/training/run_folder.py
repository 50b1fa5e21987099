"""The run folder: created or reopened under a lock, its recipe and run.json, and the cleanup
a resume needs after a kill."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from gankit.errors import ConfigError
from gankit.machine import machine_info
from gankit.training.checkpoint import clean_partial
from gankit.training.outputs import read_metrics_lines, write_text_atomic
from gankit.version import __version__

LOCK_FILE = ".lock"


def write_json_atomic(path: Path, value: dict) -> None:
    write_text_atomic(path, json.dumps(value, indent=2))


class RunFolder:
    """RUN_DIR of one trainer (rank 0 alone writes in it; the trainer calls these methods
    through `Distributed.on_main`)."""

    _lock_fd: int | None = None  # set while this object holds the folder's lock

    def __init__(self, trainer, path: Path):
        self.trainer = trainer
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.samples = self.path / "samples"
        self.best = self.path / "best"

    def start(self) -> None:
        """A new run: the folder must be empty (or absent); write the resolved recipe."""
        if self.path.is_dir() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            raise ConfigError(
                f"{self.path} already holds files; continue that run with "
                f"`gankit train --resume {self.path}` or choose another --out"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.lock()
            # written atomically: a kill never leaves a truncated recipe that resume would read
            write_text_atomic(self.path / "config.yaml", self.trainer.cfg.to_yaml())
            self.write_info("running")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run folder {self.path}: {exc.strerror or exc}; "
                "choose a writable --out"
            ) from None

    def reopen(self) -> None:
        """A resumed run: lock, and drop the temporary files of writes a kill cut short."""
        try:
            self.lock()
        except OSError as exc:
            raise ConfigError(f"cannot write the run folder {self.path}: {exc}") from None
        for folder in (self.checkpoints, self.best):
            clean_partial(folder)
        for tmp in self.path.glob(".*.tmp-*"):  # ... and of write_text_atomic
            tmp.unlink(missing_ok=True)

    def lock(self) -> None:
        """One process trains a run folder at a time; the lock dies with the process (even on
        SIGKILL), so a killed run can be resumed at once."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"{self.path} is being trained by another process right now; wait for it "
                "to finish or stop it (a killed process releases the folder at once)"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self):
        self.unlock()

    def write_info(self, status: str, stopped_by: str | None = None) -> None:
        t = self.trainer
        if not t.dist.is_main:
            return
        write_json_atomic(
            self.path / "run.json",
            {
                "gankit_version": __version__,
                "name": t.cfg.name,
                "status": status,
                **({"signal": stopped_by} if stopped_by else {}),
                "step": t.step,
                "steps": t.cfg.schedule.steps,
                "data_shape": list(t.data.shape),
                "num_classes": t.data.num_classes,
                "device": str(t.device),
                **self.hardware(),
                "world_size": t.dist.world_size,
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )

    def hardware(self) -> dict:
        """The processor and the precision fast mode resolved to: a result read later (a
        sweep's table) says which machine and number format made it, since `precision: auto`
        picks bf16 on some CPUs and fp32 on others."""
        if not hasattr(self, "_hardware_info"):
            t = self.trainer
            info = machine_info(t.device)
            fast = getattr(getattr(t, "method", None), "fast", None)  # none yet on early failure
            self._hardware_info = {
                "processor": info.get("gpu") or info["cpu"],
                **({"precision": fast.precision, "fast": fast.describe()} if fast else {}),
            }
        return self._hardware_info

    def trim_metrics(self, step: int, rollbacks: int) -> None:
        """Drop log lines the restored state does not include (written after its step, or a
        rollback event it does not know of): the resumed run writes them again. A line cut
        short by a kill is dropped too."""
        path = self.path / "metrics.jsonl"
        if not self.trainer.dist.is_main or not path.exists():
            return
        keep = []
        for line, value in read_metrics_lines(path):
            if value is None or value.get("step", math.inf) > step:
                continue
            if value.get("event") == "rollback" and value.get("rollback", 0) > rollbacks:
                continue
            keep.append(line)
        write_text_atomic(path, "".join(line + "\n" for line in keep))
