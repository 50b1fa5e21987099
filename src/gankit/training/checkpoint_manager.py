"""Checkpoints of a training run: the full state (networks, EMA, optimizers, the method's and
the data's streams, global RNGs, the trainer parts' counters), checked finite before it is
written, and restored exactly on resume or rollback."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import torch

from gankit.errors import CheckpointError
from gankit.methods.fast import align_optimizer_state
from gankit.training.checkpoint import (
    flatten_state,
    list_checkpoints,
    load_checkpoint,
    load_module_state,
    prune_checkpoints,
    save_checkpoint,
    unflatten_state,
)
from gankit.training.events import Part
from gankit.training.guard import Diverged, all_finite, tensors_in
from gankit.training.outputs import warn_user
from gankit.training.rng import mix_seed, rng_state, seed_everything, set_rng_state
from gankit.version import __version__


class CheckpointManager(Part):
    """Writes RUN_DIR/checkpoints/step_N every logging.checkpoint_every steps and at the end;
    reads them back for resume and rollback."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.folder: Path = trainer.folder.checkpoints

    def on_checkpoint_step(self) -> None:
        self.save(self.trainer.window.pending())

    # -- the state --------------------------------------------------------------------------
    def full_state(self) -> dict:
        """The whole checkpoint; the parts' counters (their state_dict) are its "trainer"
        section."""
        t = self.trainer
        modules = {k: m.state_dict() for k, m in t.method.modules().items()}
        if t.ema is not None:
            modules["generator_ema"] = t.ema.model.state_dict()
        trainer_state: dict = {}
        for part in t.events.parts:
            trainer_state.update(part.state_dict())
        trainer_state["world_size"] = t.dist.world_size
        return {
            "modules": modules,
            "optimizers": {k: o.state_dict() for k, o in t.method.optimizers().items()},
            "method": t.method.extra_state(),
            "data": t.data.state_dict(),
            "rng": rng_state(),
            "trainer": trainer_state,
        }

    def meta(self) -> dict:
        """What `load` checks a checkpoint against, plus when and by what it was written."""
        t = self.trainer
        return {
            "gankit_version": __version__,
            "name": t.cfg.name,
            "method": t.cfg.method,
            "data_shape": list(t.data.shape),
            "world_size": t.dist.world_size,
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def checked_state(self, pending: dict[str, torch.Tensor] | None = None) -> dict:
        """full_state(), after checking (one host sync) that no parameter, buffer, optimizer
        moment or pending loss is NaN/inf: nothing non-finite is ever saved."""
        t = self.trainer
        t.ema_part.ready()
        state = self.full_state()
        flags: dict[str, torch.Tensor] = {}
        for group in ("modules", "optimizers"):
            for name, sub in state[group].items():
                flag = all_finite(list(tensors_in(sub)), t.device)
                if flag is not None:
                    what = "weights" if group == "modules" else "optimizer state"
                    flags[f"{name} {what}"] = flag
        for key, value in (pending or {}).items():
            flags[key] = torch.isfinite(value).all().to(t.device)
        bad = t.dist.failing(flags)  # the same decision on every process
        if bad:
            raise Diverged(bad, t.step)
        return state

    def save(self, pending: dict[str, torch.Tensor] | None = None) -> Path:
        """Check and write a checkpoint (rank 0 writes; every process takes part and returns
        once it is complete). It holds every process's global RNG states (rng_by_rank)."""
        t = self.trainer
        state = self.checked_state(pending)
        if t.dist.enabled:
            state["rng_by_rank"] = t.dist.gather_objects(state["rng"])

        def write() -> Path:
            path = save_checkpoint(self.folder, t.step, state, self.meta())
            prune_checkpoints(self.folder, t.cfg.logging.keep_checkpoints)
            return path

        return t.dist.on_main(write)

    def save_best(self, extra_meta: dict) -> None:
        """RUN_DIR/best: this state, with the score that made it the best."""
        t = self.trainer
        meta = {**self.meta(), **extra_meta}
        state = self.checked_state()

        def write_best() -> None:
            save_checkpoint(t.folder.best, t.step, state, meta)
            prune_checkpoints(t.folder.best, keep=1)

        t.dist.on_main(write_best)

    # -- reading back -------------------------------------------------------------------------
    def newest(self) -> Path | None:
        """The newest complete checkpoint, as rank 0 sees it (collective)."""
        t = self.trainer
        found = list_checkpoints(self.folder) if t.dist.is_main else None
        return t.dist.broadcast_object(found[-1] if found else None)

    def newest_local(self) -> Path | None:
        found = list_checkpoints(self.folder)
        return found[-1] if found else None

    def load(self, path: Path) -> None:
        t = self.trainer
        state, meta = load_checkpoint(path)
        if meta.get("method") != t.cfg.method or meta.get("data_shape") != list(t.data.shape):
            raise CheckpointError(
                f"{path}: written for method {meta.get('method')!r} on data of shape "
                f"{meta.get('data_shape')}, but the recipe trains {t.cfg.method!r} on "
                f"{list(t.data.shape)}; was it written by another recipe?"
            )
        self.apply(state, int(meta["step"]), path)

    def load_newest_readable(self, found: list[Path]) -> Path:
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
                warn_user(
                    f"{errors[0]}; resumed from the older checkpoint {path} instead (the "
                    "unreadable one is kept as damaged-step_...)"
                )
            return path
        raise errors[0]

    def snapshot(self) -> tuple[int, dict]:
        """A deep copy of the full state on the CPU, as a checkpoint would hold it."""
        return self.trainer.step, unflatten_state(*flatten_state(self.full_state()))

    def apply(self, state: dict, step: int, path: Path | str) -> None:
        t = self.trainer
        modules = dict(t.method.modules())
        if t.ema is not None:
            modules["generator_ema"] = t.ema.model
        for name, module in modules.items():
            if name not in state["modules"]:
                raise CheckpointError(
                    f"{path}: has no {name} (was EMA turned on after the run began?)"
                )
            load_module_state(module, state["modules"][name], name, path)
        for name, opt in t.method.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
            align_optimizer_state(opt)
        t.method.load_extra_state(state["method"])
        t.data.load_state_dict(state["data"])
        self.restore_rng(state, step)
        trainer_state = state.get("trainer", {})
        for part in t.events.parts:
            part.load_state_dict(trainer_state)
        t.step = step

    def restore_rng(self, state: dict, step: int) -> None:
        """This process's global RNG states; reseeded when the checkpoint was written by
        another number of processes (the data and noise streams are global and continue)."""
        t = self.trainer
        saved = int(state.get("trainer", {}).get("world_size", 1))
        world = t.dist.world_size
        if saved == world:
            by_rank = state.get("rng_by_rank")
            set_rng_state(by_rank[t.dist.rank] if by_rank is not None else state["rng"])
            return
        t.warn(
            f"the checkpoint was written by {saved} process(es), this run has {world}: the "
            "networks, optimizers, data order and latent noise continue exactly; the global "
            "RNGs (gradient-penalty coefficients, dropout) start from new seeds"
        )
        seed_everything(mix_seed(t.dist.rank_seed(t.cfg.seed), step))
