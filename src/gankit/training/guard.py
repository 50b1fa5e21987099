"""The divergence guard: NaN/inf in losses, weights, gradients or optimizer state roll the run
back to its last good checkpoint (or its initial state) with lower learning rates and reseeded
random streams; after `guard.rollbacks` rollbacks the run stops with a TrainingError.

Checks are device-side flags read in the host syncs the loop makes anyway (the log step's, a
checkpoint's); under torchrun they are reduced over the processes, so every process takes the
same rollback and stop decisions.
"""

from __future__ import annotations

import torch

from gankit.errors import TrainingError
from gankit.training.distributed import mirrored
from gankit.training.events import Part
from gankit.training.rng import mix_seed, seed_everything


class Diverged(Exception):
    """Something became non-finite; the loop rolls back or stops."""

    def __init__(self, what: list[str], step: int, window: int | None = None):
        super().__init__(", ".join(what))
        self.what = what
        self.step = step
        self.window = window  # steps the checked losses were summed over (None: a state check)


class DivergenceGuard(Part):
    """Checks and rollbacks; its counters (rollbacks, lr_scale) are in every checkpoint."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.rollbacks = 0  # rollbacks so far
        self.lr_scale = 1.0  # product of the lr_factor of every rollback so far
        self.initial: tuple[int, dict] | None = None  # rollback target before any checkpoint

    def state_dict(self) -> dict:
        return {"rollbacks": self.rollbacks, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict) -> None:
        self.rollbacks = int(state.get("rollbacks", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))

    def on_eval_step(self) -> None:
        self.check()  # scores of a broken generator would be kept as "best"

    # -- checks ---------------------------------------------------------------------------
    def health_flags(self) -> dict[str, torch.Tensor]:
        """0-d bool tensors (on the device, no sync): are the parameters and the last
        gradients of each network finite?"""
        t = self.trainer
        flags = {}
        for name, module in t.method.modules().items():
            params = list(module.parameters())
            for what, tensors in (
                ("parameters", params),
                ("gradients", [p.grad for p in params if p.grad is not None]),
            ):
                flag = all_finite(tensors, t.device)
                if flag is not None:
                    flags[f"{name} {what}"] = flag
        return flags

    def check(self) -> None:
        bad = self.trainer.dist.failing(self.health_flags())
        if bad:
            raise Diverged(bad, self.trainer.step)

    # -- rollback -------------------------------------------------------------------------
    def message(self, d: Diverged) -> str:
        t = self.trainer
        newest = t.checkpoints.newest_local()
        where = f"the last good checkpoint is {newest}" if newest else "no checkpoint was saved"
        when = (
            f"in the {d.window} steps up to step {d.step}"
            if d.window is not None
            else f"at step {d.step}"
        )
        guard = t.cfg.guard
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

    def rollback(self, d: Diverged) -> None:
        """Restore the last good state, scale the learning rates and reseed, or stop."""
        t = self.trainer
        guard = t.cfg.guard
        if self.rollbacks >= guard.rollbacks:
            error = TrainingError(self.message(d))
            raise error if t.dist.is_main else mirrored(error)
        newest = t.checkpoints.newest()
        count, scale = self.rollbacks + 1, self.lr_scale * guard.lr_factor
        if newest is not None:
            t.checkpoints.load(newest)
            origin = str(newest)
        elif self.initial is not None:
            step, state = self.initial
            t.checkpoints.apply(state, step, "the initial state")
            origin = f"the initial state (step {step})"
        else:  # pragma: no cover - fit() always keeps one of the two
            raise TrainingError(self.message(d))
        ratio = scale / self.lr_scale  # the restored optimizers carry the restored scale
        for opt in t.method.optimizers().values():
            for group in opt.param_groups:
                group["lr"] = group["lr"] * ratio
        self.rollbacks, self.lr_scale = count, scale
        # a retry with other data batches and other global random draws, not a replay of the
        # diverging trajectory (which with lr_factor 1 would diverge again, identically)
        salt = mix_seed(t.cfg.seed, count)
        seed_everything(t.dist.rank_seed(salt))
        t.data.reseed(salt)  # the data stream is global: the same salt on every process
        t.folder.trim_metrics(t.step, self.rollbacks)
        event = {
            "event": "rollback",
            "rollback": count,
            "of": guard.rollbacks,
            "detected_at": d.step,
            "non_finite": d.what,
            "restored": origin,
            "lr_scale": scale,
        }
        t.log.event(t.step, event)
        t.warn(
            f"{', '.join(d.what)} became non-finite at step {d.step}; rolled back to "
            f"{origin} (rollback {count} of {guard.rollbacks}), learning rates now "
            f"{scale:g} x the recipe's"
        )


def tensors_in(value):
    """Every tensor in a nested state (dicts, lists, tuples)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from tensors_in(v)


def all_finite(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor | None:
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
