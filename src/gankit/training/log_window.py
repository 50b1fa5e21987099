"""Logged values: the losses of every step summed on the device, read by the host once per
`logging.every` steps together with the finite checks, the sample diversity and (under
torchrun) the stop vote, in one host sync; then written to metrics.jsonl / TensorBoard and
judged by the Watchdog (training/diagnostics.py)."""

from __future__ import annotations

import math
import time

import torch

from gankit.models.latent import sample_latent
from gankit.training.diagnostics import Watchdog
from gankit.training.events import Part
from gankit.training.guard import Diverged
from gankit.training.stop import StopFlag

DIVERSITY_N = 64  # generated samples whose spread is compared with real data's at log steps
DIVERSITY_N_REAL = 256  # real samples for the reference spread (computed once)


class LogWindow(Part):
    """The steps since the last log step. The method computes its costlier statistics
    (gradient norms) only on the steps whose values are read (`collect_stats`)."""

    def __init__(self, trainer):
        self.trainer = trainer
        cfg = trainer.cfg
        self.every = cfg.logging.every
        self.watchdog = Watchdog(self.every)
        g_cfg = cfg.generator
        self.diversity_noise = sample_latent(
            DIVERSITY_N,
            g_cfg["latent_dim"],
            g_cfg["latent_dist"],
            trainer.device,
            torch.Generator(device=trainer.device).manual_seed(cfg.seed + 3),
        )
        self.real_spread = mean_distance(trainer.data.reference(DIVERSITY_N_REAL))
        self.last_values: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.started, self.start_step = time.perf_counter(), self.trainer.step

    def pending(self) -> dict[str, torch.Tensor]:
        """The sums not logged yet (a checkpoint checks them finite before it is written)."""
        return self.sums

    def state_dict(self) -> dict:
        return {"watchdog": self.watchdog.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.watchdog.load_state_dict(state.get("watchdog", {}))

    def on_step_begin(self) -> None:
        t = self.trainer
        next_step = t.step + 1
        t.method.collect_stats = next_step % self.every == 0 or next_step == t.cfg.schedule.steps

    def on_step_end(self, logs: dict) -> None:
        for key, value in logs.items():
            if key in self.sums:
                self.sums[key] += value
                self.counts[key] += 1
            else:
                self.sums[key], self.counts[key] = value.clone(), 1

    def on_log_step(self) -> None:
        t = self.trainer
        now = time.perf_counter()
        self.last_values = self.flush(now - self.started, t.step - self.start_step)
        self.sums, self.counts = {}, {}
        self.started, self.start_step = now, t.step

    def on_rollback(self) -> None:
        self.reset()

    def flush(self, seconds: float, steps: int) -> dict[str, float]:
        """Log the window's mean losses and statistics; under torchrun they are means over the
        processes (one all_reduce), and so are the finite flags and the stop vote, which carries
        the signal (this process's signal name, or None): a process that got none learns which
        one stopped the run."""
        t = self.trainer
        dist, sums, counts = t.dist, self.sums, self.counts
        keys = list(sums)
        t.sync_buffers()  # eval-mode passes below read the running statistics
        flags = t.guard.health_flags()  # parameters and gradients, checked in the same sync
        diversity = self.diversity()
        parts = (
            [sums[k].float() for k in keys]
            + [f.float() for f in flags.values()]
            + [diversity.float()]
        )
        if dist.enabled:  # one vote slot per signal StopFlag handles
            parts += [
                torch.tensor(float(t.stop.requested == sig.name), device=t.device)
                for sig in StopFlag.SIGNALS
            ]
        totals = dist.all_reduce_mean(torch.stack(parts)).tolist()  # the one host sync
        if dist.enabled:
            totals, votes = totals[: -len(StopFlag.SIGNALS)], totals[-len(StopFlag.SIGNALS) :]
            # any vote stops every process; SIGTERM (preemption) outranks SIGINT when both came
            voted = [sig.name for sig, v in zip(StopFlag.SIGNALS, votes) if v > 0]
            t.stop_agreed = voted[-1] if voted else None
        values = {k: v / counts[k] for k, v in zip(keys, totals)}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        bad += [name for name, ok in zip(flags, totals[len(keys) : -1]) if ok != 1.0]
        if bad:
            raise Diverged(bad, t.step, window=steps)
        if math.isfinite(totals[-1]):
            values["diversity"] = totals[-1]
        values["steps_per_sec"] = steps / max(seconds, 1e-9)
        values["samples_per_sec"] = values["steps_per_sec"] * t.cfg.schedule.batch_size
        t.log.scalars(t.step, values)
        for kind, message in self.watchdog.check(t.step, values):
            t.log.event(t.step, {"event": "warning", "kind": kind, "message": message})
            t.warn(message)
        return values

    @torch.no_grad()
    def diversity(self) -> torch.Tensor:
        """Mean pairwise distance of fixed-noise samples of the trained generator (eval mode,
        as for sample grids) over that of real data: near 0 when the samples collapsed."""
        G = self.trainer.method.generator
        was_training = G.training
        G.eval()
        fake = G(self.diversity_noise)
        G.train(was_training)
        return mean_distance(fake) / self.real_spread


def mean_distance(x: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance over all pairs of distinct samples (flattened), on the device."""
    return torch.pdist(x.detach().flatten(1).float()).mean()
