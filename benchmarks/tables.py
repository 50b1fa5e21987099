"""Helpers the benchmark scripts share: read the sweeps they ran, format mean ± std cells, and
describe the machine, so every results table says what produced it."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from gankit.methods import METHODS as REGISTERED_METHODS
from gankit.sweep import summarize


def machine(threads: bool = True) -> str:
    """This machine; `threads` False leaves out the thread count (for tables rebuilt from runs
    made under other settings, whose commands say theirs)."""
    from gankit.machine import machine_info

    cores = f"{torch.get_num_threads()} torch threads, " if threads else ""
    return (
        f"{machine_info(torch.device('cpu'))['cpu']}, {cores}"
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def provenance(command: str, minutes: float, table_only: bool) -> str:
    """The summary's last sentence: what made the table (a rebuild, or a timed invocation)."""
    if table_only:
        return f"Table rebuilt by `{command}` from the sweeps' records."
    return (
        f"Wall time of the last invocation, `{command}`: {minutes:.1f} min (finished runs are "
        "skipped)."
    )


def seeds_footer(seeds: int, command: str, started: float) -> str:
    """The summary's closing sentence for tables of seeds 0..S-1 made by one timed invocation
    (`started`: its time.perf_counter() at the start)."""
    minutes = (time.perf_counter() - started) / 60
    return (
        f"\nMean ± sample std over seeds 0..{seeds - 1}. Command: `{command}`. "
        f"Machine: {machine()}. Wall time of this invocation: {minutes:.1f} min "
        "(finished runs are skipped).\n"
    )


def cell(stats: dict, metric: str, scale: float = 1.0, digits: int = 2) -> str:
    """'mean ± std' of a summarized metric (std 0 for one run), '-' when it is missing."""
    if metric not in stats:
        return "-"
    mean, std = stats[metric]
    if not math.isfinite(mean):  # e.g. reverse KL of a run with no mode: no std to give
        return f"{mean}"
    std = 0.0 if std is None else std
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def sweep_rows(folder: Path, steps: int | None, keys: list[str]) -> list[dict] | None:
    """The summarized rows of the sweep in `folder` (one per grid cell), or None when it has
    not run, ran at another step budget than `steps` (None: any) or has no finished run."""
    path = folder / "sweep.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if (steps is not None and record.get("steps") != steps) or not record.get("runs"):
        print(f"skipping {path}: another step budget or no runs", file=sys.stderr)
        return None
    return summarize(record["runs"], keys)


def sweep_steps(folder: Path) -> int | None:
    """The step budget the sweep in `folder` ran at (None before it has run)."""
    path = folder / "sweep.json"
    return json.loads(path.read_text()).get("steps") if path.is_file() else None


def invocation(script: str, argv: list[str]) -> str:
    """The command line that reruns this script, as the tables print it: `python SCRIPT ARGS`,
    led by OMP_NUM_THREADS when it was set (it sizes every run's thread pool)."""
    threads = os.environ.get("OMP_NUM_THREADS")
    lead = [f"OMP_NUM_THREADS={threads}"] if threads else []
    return shlex.join([*lead, "python", script, *argv])


def sweep_commands(folders: list[Path]) -> list[str]:
    """The distinct commands that made the sweeps in `folders`, in order: a table built from
    several invocations names each one. An interpreter path recorded as the first word of an
    older sweep's command is written as `python`."""
    commands: list[str] = []
    for folder in folders:
        path = folder / "sweep.json"
        command = json.loads(path.read_text()).get("command") if path.is_file() else None
        if not command:
            continue
        words = shlex.split(command)
        if words and Path(words[0]).name.startswith("python"):
            words[0] = "python"
        command = shlex.join(words)
        if command not in commands:
            commands.append(command)
    return commands


def commands_md(commands: list[str]) -> str:
    """A markdown list of the commands behind a table ('' when there are none)."""
    if not commands:
        return ""
    return "Commands that made the rows:\n\n" + "".join(f"- `{c}`\n" for c in commands)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def pick(
    parser: argparse.ArgumentParser, text: str | None, valid, what: str, default=None
) -> list[str]:
    """The names of a comma-separated option (`default`, else all of `valid`, when it is not
    given); an unknown name is a usage error that lists the valid ones."""
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(default or valid)
    unknown = [n for n in names if n not in valid]
    if unknown:
        parser.error(f"unknown {what} {unknown}; valid: {', '.join(valid)}")
    return names


def write_summary(out: Path, md: str, record: dict, stem: str = "summary") -> None:
    """OUT/summary.md (the table, as the README shows it) and OUT/summary.json; print the
    table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(md)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2))
    print(md)


# methods (by their table names, the same in both mode-coverage scripts) that take the GAN
# method's step (method gan or pacgan), which --updates reaches; and the packed ones, which
# --split-generator reaches
GAN_STEP = {"GAN", "PacGAN2", "PacGAN3", "PacGAN4", "WGAN-GP"}
PACKED = {"PacGAN2", "PacGAN3", "PacGAN4"}
UPDATES_NOTE = {
    "alternating": "alternating updates",
    "simultaneous": "simultaneous updates (GAN, PacGANm, WGAN-GP)",
}


def step_overrides(name: str, updates: str, split_generator: bool) -> list[str]:
    """The --updates and --split-generator choices as overrides for method `name`."""
    out = []
    if updates != "alternating" and name in GAN_STEP:
        out.append(f"method_options.updates={updates}")
    if split_generator and name in PACKED:
        out.append("method_options.split_generator=true")
    return out


def add_step_options(parser: argparse.ArgumentParser, pack_batch: int) -> None:
    """--updates and --split-generator, PacGAN's reference training loop, for either script."""
    parser.add_argument(
        "--updates",
        choices=list(UPDATES_NOTE),
        default="alternating",
        help="the GAN step's update order (GAN, PacGANm, WGAN-GP)",
    )
    parser.add_argument(
        "--split-generator",
        action="store_true",
        help=f"PacGANm: m generator calls of {pack_batch} samples (the reference code's BN "
        "statistics)",
    )


def with_registered_methods(rows: dict, row_of_method) -> dict:
    """A script's labelled rows, then every method of gankit's registry under its own name (as
    `row_of_method(name)`) that is not a row already: `--methods NAME` benchmarks a method
    registered today without editing the script."""
    out = dict(rows)
    for name in REGISTERED_METHODS:
        out.setdefault(name, row_of_method(name))
    return out
