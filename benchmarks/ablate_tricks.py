"""Ablation of the stabilization tricks: which one helps, measured over seeds.

    python benchmarks/ablate_tricks.py toy2d   [--steps 3000] [--seeds 3] [--jobs 2]
    python benchmarks/ablate_tricks.py fashion [--steps 2000] [--seeds 3] [--jobs 2]

toy2d: ring8 and grid25 (PacGAN's 2D protocol: 2,500 samples; a sample is high quality when its
Mahalanobis distance to the nearest mode is < 3 mode stds; a mode is captured when it holds at
least one high-quality sample; reverse KL of the high-quality histogram over modes to uniform),
the non-saturating baseline against each trick alone, with each trick at its default options.

fashion: DCGAN on Fashion-MNIST, the analogue of Salimans et al. 2016's CIFAR-10 ablation (their
Table 3): all of their tricks (minibatch discrimination, historical averaging, one-sided label
smoothing, virtual batch norm), then each one removed, and no tricks; FID and classifier score
(Inception Score with gankit's shipped Fashion-MNIST classifier) on 10,000 samples.

Each run is a `gankit train` subprocess followed by `gankit eval`; a finished run (eval.json
present) is skipped, so an interrupted ablation resumes where it stopped. Results: the tables
go to benchmarks/results/ablation_<task>.md, every run's scores to ablation_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"

TRICKS_2D = {
    "baseline (non-saturating)": {},
    "feature matching": {"tricks": [{"name": "feature_matching"}]},
    "minibatch discrimination": {"tricks": [{"name": "minibatch_discrimination"}]},
    "minibatch stddev": {"tricks": [{"name": "minibatch_stddev"}]},
    "historical averaging": {"tricks": [{"name": "historical_averaging"}]},
    "one-sided label smoothing": {"tricks": [{"name": "label_smoothing"}]},
    "virtual batch norm (G)": {"tricks": [{"name": "virtual_batch_norm"}]},
    "spectral norm (D)": {"tricks": [{"name": "spectral_norm"}]},
    "instance noise": {"tricks": [{"name": "instance_noise"}]},
    "DRAGAN": {"regularizers": [{"name": "dragan"}]},
    "R1": {"regularizers": [{"name": "r1"}]},
    "pull-away term": {"regularizers": [{"name": "pull_away"}]},
}

IMPROVED = ["minibatch_discrimination", "historical_averaging", "label_smoothing",
            "virtual_batch_norm"]  # fmt: skip


def _without(name: str) -> dict:
    return {"tricks": [{"name": t} for t in IMPROVED if t != name]}


TRICKS_FASHION = {
    "all four tricks": {"tricks": [{"name": t} for t in IMPROVED]},
    "- minibatch discrimination": _without("minibatch_discrimination"),
    "- historical averaging": _without("historical_averaging"),
    "- label smoothing": _without("label_smoothing"),
    "- virtual batch norm (BN)": _without("virtual_batch_norm"),
    "no tricks (DCGAN)": {"tricks": []},
}

QUIET = {"logging.progress": False, "logging.tensorboard": False}


def tasks(task: str, steps: int, seeds: int) -> list[dict]:
    """Every run of the ablation: its preset, overrides and the scores to read."""
    out = []
    if task == "toy2d":
        for preset in ("ring8", "grid25"):
            for label, extra in TRICKS_2D.items():
                for seed in range(seeds):
                    overrides = {**QUIET, "schedule.steps": steps, "seed": seed, **extra}
                    out.append({"preset": preset, "variant": label, "seed": seed,
                                "overrides": overrides, "metrics": ["modes"]})  # fmt: skip
    else:
        for label, extra in TRICKS_FASHION.items():
            for seed in range(seeds):
                overrides = {
                    **QUIET,
                    "schedule.steps": steps,
                    "seed": seed,
                    "generator.base_channels": 32,
                    "discriminator.base_channels": 32,
                    "logging.checkpoint_every": steps,
                    **extra,
                }
                out.append({"preset": "dcgan-fashion-mnist", "variant": label, "seed": seed,
                            "overrides": overrides, "metrics": ["fid", "is"]})  # fmt: skip
    return out


def run_dir(root: Path, t: dict) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in t["variant"]).strip("-").lower()
    return root / t["preset"] / f"{slug}-seed{t['seed']}"


def execute(root: Path, t: dict) -> dict:
    path = run_dir(root, t)
    result_file = path / "eval.json"
    if not result_file.exists():
        if path.exists():  # an unfinished run from an interrupted ablation: start it again
            shutil.rmtree(path)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        train = [sys.executable, "-m", "gankit", "train", t["preset"], "--out", str(path)]
        for key, value in t["overrides"].items():
            train += ["--set", f"{key}={json.dumps(value)}"]
        evaluate = [sys.executable, "-m", "gankit", "eval", str(path), "--metrics",
                    ",".join(t["metrics"])]  # fmt: skip
        log = path.with_suffix(".log")  # beside the run: a run folder must start empty
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as sink:
            for cmd in (train, evaluate):
                done = subprocess.run(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
                if done.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)} failed; see {log}")
    scores = json.loads(result_file.read_text())
    print(f"done {path}", flush=True)
    return {**t, "scores": scores}


def mean_std(values: list[float]) -> str:
    """mean ± std over seeds; seeds with an infinite score (reverse KL with no high-quality
    sample at all) are counted apart, not averaged."""
    finite = [v for v in values if math.isfinite(v)]
    extra = f" (+{len(values) - len(finite)} inf)" if len(finite) < len(values) else ""
    if not finite:
        return "inf"
    if len(finite) == 1:
        return f"{finite[0]:.2f}{extra}"
    return f"{statistics.mean(finite):.2f} ± {statistics.stdev(finite):.2f}{extra}"


def table(results: list[dict], task: str) -> str:
    if task == "toy2d":
        columns = [("modes", "modes_captured"), ("high quality %", "high_quality"),
                   ("reverse KL", "reverse_kl")]  # fmt: skip
    else:
        columns = [("FID", "fid"), ("classifier score", "is")]
    lines = []
    for preset in dict.fromkeys(r["preset"] for r in results):
        lines += [f"**{preset}**", "", "| variant | " + " | ".join(c for c, _ in columns) + " |"]
        lines.append("|---|" + "---:|" * len(columns))
        for variant in dict.fromkeys(r["variant"] for r in results if r["preset"] == preset):
            rows = [r for r in results if r["preset"] == preset and r["variant"] == variant]
            cells = []
            for _, key in columns:
                values = [_score(r["scores"], key) for r in rows]
                cells.append(mean_std(values))
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _score(scores: dict, key: str) -> float:
    value = scores["metrics"][key]
    if key == "high_quality":
        value = value * 100
    if isinstance(value, dict):  # IS: {"mean": ..., "std": ...}
        value = value["mean"]
    return float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["toy2d", "fashion"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--root", type=Path, default=Path("runs/ablation"))
    args = parser.parse_args()
    steps = args.steps or (3000 if args.task == "toy2d" else 2000)
    if args.task == "fashion" and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        sys.exit("Fashion-MNIST is absent: apt-get install -y dataset-fashion-mnist")
    todo = tasks(args.task, steps, args.seeds)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda t: execute(args.root, t), todo))
    RESULTS.mkdir(exist_ok=True)
    command = "python benchmarks/ablate_tricks.py " + " ".join(sys.argv[1:])
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, Python {platform.python_version()}; "
        f"{args.jobs} runs at a time, 1 thread each"
    )
    text = (
        f"# Trick ablation: {args.task}\n\n{args.seeds} seeds, {steps} steps, mean ± std over "
        f"seeds.\n\n{table(results, args.task)}\nMachine: {machine}.\nCommand: `{command}`\n"
    )
    (RESULTS / f"ablation_{args.task}.md").write_text(text)
    (RESULTS / f"ablation_{args.task}.json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()
