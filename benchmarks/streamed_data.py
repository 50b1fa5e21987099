"""Streamed image folders against in-memory data: is the data pipeline ever the bottleneck?

    python benchmarks/export_fashion_png.py --out /tmp/fashion-png --sizes 64 128
    python benchmarks/streamed_data.py --png /tmp/fashion-png --rounds 2

For 64 and 128 px PNG folders of Fashion-MNIST (60,000 images, or the first 10,000), each case
trains the same DCGAN step (base_channels 32, batch 64, 1 channel) in a fresh process:
  - streamed: data.stream=stream, DataLoader workers (data.workers, default min(4, cores - 1));
  - memory: the same folder decoded into one tensor first (10,000 images only: 60,000 at
    128 px would be 3.9 GB of float32).
Reported per case: seconds from process start to the end of the first step, training img/s
(steps 5..N), and peak resident memory of the main process and of its largest child process. The
streamed and in-memory runs of a size alternate, round by round, and the ratio is the median
of the per-round ratios, so machine noise hits both alike.
"""

from __future__ import annotations

import time

START = time.time()  # before any import: time to first step includes start-up

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

STEPS = 30


def child(spec: dict) -> dict:
    import gc

    import gankit
    from gankit.training.events import Part

    class Clock(Part):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, logs):
            self.ends.append(time.time())

    clock = Clock()
    data = {
        "name": "folder", "path": spec["path"], "size": spec["size"], "channels": 1,
        "limit": spec["n"], "stream": spec["stream"], "memory_budget_mb": 100_000,
        "workers": spec.get("workers"),
    }  # fmt: skip
    overrides = {
        "data": data,
        "generator": {"name": "dcgan", "latent_dim": 100, "base_channels": 32},
        "discriminator": {"name": "dcgan", "base_channels": 32},
        "schedule.steps": spec["steps"],
        "schedule.batch_size": 64,
        "ema.enabled": False,
        "logging.progress": False,
        "logging.tensorboard": False,
        "logging.sample_every": 10**6,
        "logging.checkpoint_every": 10**6,
        "logging.every": 10**6,
    }
    trainer = gankit.prepare("dcgan-fashion-mnist", overrides, spec["out"], parts=[clock])
    workers = getattr(trainer.data, "workers", 0)
    trainer.fit()
    del trainer
    gc.collect()  # stops the persistent workers, so their peak memory is counted
    ends = clock.ends
    return {
        **spec,
        "workers": workers,
        "first_step_s": ends[0] - START,
        "img_per_s": 64 * (len(ends) - 5) / (ends[-1] - ends[4]),
        "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def run_case(spec: dict) -> dict:
    shutil.rmtree(spec["out"], ignore_errors=True)  # scratch: a fresh run each time
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--png", type=Path, help="folder written by export_fashion_png.py")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/streamed_data"))
    p.add_argument("--work", type=Path, default=Path("/tmp/streamed-data-runs"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--summarize", action="store_true", help="rewrite summary.md from rows.json")
    args = p.parse_args()
    if args.summarize:
        saved = json.loads((args.out / "rows.json").read_text())
        (args.out / "summary.md").write_text(summary(saved["rows"], saved["meta"]))
        return
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    rows = []
    for size in args.sizes:
        path = str(args.png / str(size))
        cases = [("stream", 10_000), ("memory", 10_000), ("stream", 60_000)]
        for r in range(args.rounds):
            for stream, n in cases:
                spec = {
                    "path": path, "size": size, "n": n, "stream": stream, "round": r,
                    "steps": args.steps, "out": str(args.work / f"{size}-{stream}-{n}-{r}"),
                }  # fmt: skip
                row = run_case(spec)
                print(json.dumps(row), flush=True)
                rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "cpu": cpu_name(),
        "cores": len(__import__("os").sched_getaffinity(0)),
    }
    (args.out / "rows.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / "summary.md").write_text(summary(rows, meta))
    print(summary(rows, meta))


def summary(rows: list[dict], meta: dict) -> str:
    def pick(size, stream, n):
        return [r for r in rows if (r["size"], r["stream"], r["n"]) == (size, stream, n)]

    lines = [
        "# Streamed image folders against in-memory data",
        "",
        f"`{meta['command']}` on {meta['cpu']}, {meta['cores']} cores; DCGAN base_channels 32, "
        "batch 64, 1 channel; medians over rounds. The largest child is the DataLoader worker "
        "for streamed runs; its peak counts the pages it shares with the main process since the "
        "fork (for in-memory runs it is a short-lived helper forked from the main process).",
        "",
        "| size | data | images | workers | first step (s) | img/s | streamed / memory img/s "
        "| peak RSS main (MB) | peak RSS largest child (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sorted({r["size"] for r in rows}):
        memory = pick(size, "memory", 10_000)
        for stream, n in (("stream", 10_000), ("stream", 60_000), ("memory", 10_000)):
            got = pick(size, stream, n)
            if not got:
                continue
            ratio = ""
            if stream == "stream" and memory:
                per_round = [
                    s["img_per_s"] / m["img_per_s"]
                    for s in got
                    for m in memory
                    if m["round"] == s["round"]
                ]
                ratio = f"{statistics.median(per_round):.3f}"

            def med(key):
                return statistics.median(r[key] for r in got)  # noqa: B023

            lines.append(
                f"| {size} | {stream} | {n:,} | {got[0]['workers']} | {med('first_step_s'):.1f} "
                f"| {med('img_per_s'):.1f} | {ratio} | {med('rss_main_mb'):.0f} "
                f"| {med('rss_worker_mb'):.0f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
