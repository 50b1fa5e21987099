"""The numbers of `gankit bench`: matmul peak, FLOPs per step, step times in alternating rounds.

- Peak: the best of several timed square matmuls (n x n by n x n, 2 n^3 FLOPs each) in one
  dtype; fp32 on CUDA is true fp32 unless TF32 was switched on (torch's default is off).
- FLOPs per step: torch.utils.flop_counter.FlopCounterMode over one training step, forward and
  backward: matrix multiplies and convolutions (2 FLOPs per multiply-add), not elementwise
  ops, normalizations or the optimizer update.
- Step times: after warm-up, R rounds; in each round every mode runs K steps back to back
  (the order rotated each round, so drift in machine load hits all modes alike), timed with
  a device synchronize before and after. A mode's ms/step is the median over rounds; its
  ratio to the reference is computed per round (reference time / mode time) and the median
  of those is reported.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from gankit.bench.cases import Runner


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(
    dtype: torch.dtype, device: torch.device, n: int | None = None, reps: int = 5
) -> float:
    """FLOP/s of the fastest of `reps` n x n matmuls in `dtype` (after two warm-up ones)."""
    if n is None:
        n = 8192 if device.type == "cuda" else 2048
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=g).to(dtype)
    b = torch.randn(n, n, device=device, generator=g).to(dtype)
    for _ in range(2):
        torch.mm(a, b)
    synchronize(device)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def count_flops(step: Callable[[], object]) -> int:
    """Matmul and convolution FLOPs of one call of `step` (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def warm_up(runner: Runner, steps: int, device: torch.device) -> float:
    """Run `steps` steps; return the seconds per step of the last one (0 steps: 0.0)."""
    seconds = 0.0
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        runner.step()
        synchronize(device)
        seconds = time.perf_counter() - start
    return seconds


def steps_per_round(seconds_per_step: float, target: float = 1.0, cap: int = 500) -> int:
    """Steps that make a round of one mode last about `target` seconds (at least 2)."""
    if seconds_per_step <= 0:
        return 2
    return max(2, min(cap, math.ceil(target / seconds_per_step)))


def time_rounds(
    runners: dict[str, Runner],
    rounds: int,
    steps: int,
    device: torch.device,
    on_mode_done: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per step of every mode in every round, alternating the modes."""
    modes = list(runners)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        shift = r % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            runner = runners[mode]
            synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                runner.step()
            synchronize(device)
            times[mode].append((time.perf_counter() - start) / steps)
            if on_mode_done is not None:
                on_mode_done()
    return times


def summarize(times: dict[str, list[float]], reference: str = "reference") -> dict[str, dict]:
    """Per mode: median seconds per step, min and max over rounds, and the median over rounds
    of the per-round ratio reference time / mode time (> 1: faster than the reference)."""
    out = {}
    for mode, series in times.items():
        ratios = [r / t for r, t in zip(times[reference], series)] if reference in times else []
        out[mode] = {
            "seconds_per_step": statistics.median(series),
            "min_seconds_per_step": min(series),
            "max_seconds_per_step": max(series),
            "x_reference": statistics.median(ratios) if ratios else None,
        }
    return out
