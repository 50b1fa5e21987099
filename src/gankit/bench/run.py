"""`gankit bench`: measure peaks, then per case warm up, count FLOPs, time alternating rounds;
then measure each mode's peak memory in its own process; write bench.md and bench.json."""

from __future__ import annotations

import datetime
import gc
import importlib.util
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from gankit.bench.cases import CASES, build_runner, check_cases, describe_runner, modes_for
from gankit.bench.measure import (
    count_flops,
    matmul_peak,
    steps_per_round,
    summarize,
    time_rounds,
    warm_up,
)
from gankit.bench.memory import run_probe
from gankit.bench.report import write_results
from gankit.config import FastConfig
from gankit.errors import ConfigError
from gankit.machine import describe_machine, machine_info
from gankit.methods.fast import resolve_precision

PEAK_REPS = 5


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device: gankit bench runs on cpu or cuda, got {name!r}")
    return device


def fast_mode_state(device: torch.device) -> str:
    """What fast mode's `precision: auto` resolves to here (methods/fast.py decides)."""
    if importlib.util.find_spec("gankit.methods.fast") is None:
        return "not in this checkout (gankit-fast rows run gankit's plain fp32 step)."

    return f"`precision: auto` resolves to {resolve_precision(FastConfig(), device)} on {device}."


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_bench(
    cases: list[str] | None = None,
    device: str = "auto",
    rounds: int | None = None,
    steps: int | None = None,
    warmup: int | None = None,
    out: Path | None = None,
    quick: bool = False,
    memory: bool = True,
    overrides: dict[str, Any] | None = None,
    command: str = "gankit bench",
    progress: bool = True,
) -> dict:
    """Run the benchmark; return the results (and write bench.md / bench.json into `out`).

    Defaults: 5 rounds, 3 warm-up steps, steps None: as many steps per round as make a
    reference round last about 1 s. quick: a smoke run with defaults 2 rounds of 2 steps,
    1 warm-up step, smaller peak matmuls, 2 steps per memory probe.
    """
    names = check_cases(cases or list(CASES))
    dev = resolve_device(device)
    if quick:
        rounds, steps, warmup = rounds or 2, steps or 2, 1 if warmup is None else warmup
        peak_n = 1024 if dev.type == "cpu" else 4096
        memory_steps = 2
    else:
        rounds, warmup = rounds or 5, 3 if warmup is None else warmup
        peak_n = 8192 if dev.type == "cuda" else 2048
        memory_steps = 3
    if rounds < 1 or warmup < 0 or (steps is not None and steps < 1):
        raise ConfigError("--rounds and --steps must be at least 1, --warmup at least 0")
    modes = modes_for(dev)
    info = machine_info(dev)
    peaks = {
        "fp32": matmul_peak(torch.float32, dev, peak_n, PEAK_REPS),
        "bf16": matmul_peak(torch.bfloat16, dev, peak_n, PEAK_REPS),
    }
    result: dict[str, Any] = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": str(dev),
        "machine": info,
        "machine_text": describe_machine(info),
        "settings": {
            "rounds": rounds,
            "steps": steps,
            "warmup": warmup,
            "quick": quick,
            "memory": memory,
            "memory_steps": memory_steps,
            "overrides": overrides or {},
            "peak_n": peak_n,
            "peak_reps": PEAK_REPS,
        },
        "peak_flops": peaks,
        "fast_mode": fast_mode_state(dev),
        "cases": [],
    }
    for name in names:
        result["cases"].append(
            _bench_case(name, modes, dev, rounds, steps, warmup, overrides, peaks, progress)
        )
        _free(dev)
    if memory:
        _measure_memory(result, dev, memory_steps, overrides, progress)
    if out is not None:
        write_results(result, Path(out))
    return result


def _bench_case(name, modes, dev, rounds, steps, warmup, overrides, peaks, progress) -> dict:
    """Time every mode of one case; utilisation = achieved FLOP/s / the matmul peak of the
    precision the mode computes in (fp32 or bf16; none for fp16)."""
    case = CASES[name]
    bar = tqdm(
        total=len(modes) * (1 + rounds),
        desc=f"{name}: build + warm-up",
        disable=not progress,
        file=sys.stderr,
    )
    runners = {}
    seconds = {}
    for mode in modes:
        runners[mode] = build_runner(case, mode, dev, overrides)
        seconds[mode] = warm_up(runners[mode], warmup, dev)
        bar.update()
    k = steps or steps_per_round(seconds["reference"])
    flops = count_flops(runners["reference"].step)
    flops_fp32 = count_flops(runners["gankit-fp32"].step)
    bar.set_description(f"{name}: {rounds} rounds x {k} steps")
    times = time_rounds(runners, rounds, k, dev, on_mode_done=bar.update)
    bar.close()
    stats = summarize(times)
    rows = []
    for mode, runner in runners.items():
        logs = runner.step()  # are the losses still finite after the timed steps?
        st = stats[mode]
        basis = runner.precision if runner.precision in ("fp32", "bf16") else None
        achieved = flops / st["seconds_per_step"]
        rows.append(
            {
                "mode": mode,
                "precision": runner.precision,
                "runs_as": describe_runner(runner),
                **st,
                "samples_per_second": runner.batch_size / st["seconds_per_step"],
                "flops_per_second": achieved,
                "peak_basis": basis,
                "utilisation": None if basis is None else achieved / peaks[basis],
                "round_seconds_per_step": times[mode],
                "finite": all(bool(torch.isfinite(v).all()) for v in logs.values()),
            }
        )
    note = ""
    if case.kind == "pix2pix":
        note = (
            "No pix2pix method exists yet: its gankit rows run bench/pix2pix.py's step "
            "(gankit's U-Net, PatchGAN, objective, optimizer builder and FastMode)."
        )
    return {
        "name": name,
        "title": case.title,
        "sample": case.sample,
        "batch_size": runners["reference"].batch_size,
        "flops_per_step": flops,
        "flops_per_step_gankit_fp32": flops_fp32,
        "steps_per_round": k,
        "rounds": rounds,
        "note": note,
        "modes": rows,
    }


def _measure_memory(result, dev, steps, overrides, progress) -> None:
    """One probe process per case and mode, a few at a time (they measure memory, not time,
    and run after all timing is done)."""
    rows = [(case["name"], row) for case in result["cases"] for row in case["modes"]]
    jobs = max(1, min(len(rows), os.cpu_count() or 1, 4))
    bar = tqdm(
        total=len(rows),
        desc="peak memory (one process per mode)",
        disable=not progress,
        file=sys.stderr,
    )
    with ThreadPoolExecutor(jobs) as pool:
        futures = {
            pool.submit(run_probe, name, row["mode"], dev, steps, overrides): row
            for name, row in rows
        }
        for future in as_completed(futures):
            futures[future]["memory"] = future.result()
            bar.update()
    bar.close()
