"""What a bigger image costs: DCGAN at 64 px streamed from a PNG folder against 28 px in memory,
for the same wall-clock budget, side by side on the same machine.

    python benchmarks/export_fashion_png.py --out /tmp/fashion-png --sizes 64
    python benchmarks/streamed_quality.py --png /tmp/fashion-png/64 --minutes 50

Both runs are the dcgan-fashion-mnist preset (DCGAN, base_channels 64, batch 64, EMA 0.999);
the 64 px one reads the 60,000 exported PNGs through a DataLoader worker (data.stream=stream),
the 28 px one the IDX files in memory. They train at the same time, each with half the cores,
until the budget ends (SIGINT: a checkpoint at the step reached). Each is scored on its newest
checkpoint with the shipped Fashion-MNIST classifier's features (64 px samples are resized to
28 px by the classifier), 10,000 samples of the EMA generator against its own training images
(--ref train: the folder holds only those), and a grid of 64 samples of each is written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from streamed_data import cpu_name

FASHION = "/usr/share/datasets/fashion-mnist"


def commands(png: Path, out: Path) -> dict[str, list[str]]:
    common = [
        "train", "dcgan-fashion-mnist", "--steps", "1000000",
        "--set", "logging.checkpoint_every=250", "--set", "logging.sample_every=1000",
        "--set", "logging.progress=false",
    ]  # fmt: skip
    folder = f"data={{name: folder, path: {png}, size: 64, channels: 1, stream: stream}}"
    return {
        "folder-64px-streamed": [*common, "--set", folder, "--out", str(out / "folder64")],
        "idx-28px-in-memory": [*common, "--set", f"data.path={FASHION}", "--out",
                               str(out / "memory28")],
    }  # fmt: skip


def gankit(*args: str) -> list[str]:
    return [sys.executable, "-m", "gankit", *args]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--png", type=Path, required=True, help="the 64 px folder")
    p.add_argument("--minutes", type=float, default=50)
    p.add_argument("--work", type=Path, default=Path("/tmp/streamed-quality"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/streamed_quality"))
    args = p.parse_args()
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    runs = commands(args.png, args.work)
    procs = {}
    args.work.mkdir(parents=True, exist_ok=True)
    for name, cmd in runs.items():
        if (Path(cmd[-1]) / "run.json").is_file():
            continue  # trained already: scoring only
        with open(args.work / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen(gankit(*cmd), env=env, stdout=log, stderr=log)
    deadline = time.time() + args.minutes * 60
    while procs and time.time() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(5)
    for proc in procs.values():
        proc.send_signal(2)  # SIGINT: save a checkpoint and stop
    for proc in procs.values():
        proc.wait()
    rows = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, cmd in runs.items():
        run = cmd[-1]
        subprocess.run(
            gankit("eval", run, "--extractor", "fashion-mnist", "--ref", "train",
                   "--metrics", "fid,kid,pr"),
            check=True,
        )  # fmt: skip
        scores = json.loads((Path(run) / "eval.json").read_text())
        subprocess.run(
            gankit("sample", run, "--n", "64", "--out", str(args.out / f"{name}.png")),
            check=True,
        )
        step = int(scores["checkpoint"].rsplit("_", 1)[-1])  # "step_00001234"
        rows[name] = {"step": step, **scores["metrics"]}
    meta = {
        "command": " ".join(["benchmarks/streamed_quality.py", *sys.argv[1:]]),
        "cpu": cpu_name(),
        "threads_per_run": int(threads),
        "minutes": args.minutes,
    }
    (args.out / "rows.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        "# 64 px streamed from PNG files against 28 px in memory, same wall-clock budget",
        "",
        f"`{meta['command']}` on {meta['cpu']}, {threads} thread(s) per run, both runs at once, "
        f"{args.minutes:g} minutes each. Scores of the EMA generator on the shipped "
        "Fashion-MNIST classifier's features (10,000 samples; 64 px samples resized to 28 px) "
        "against the training images.",
        "",
        "| run | steps trained | FID | KID | precision | recall |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['step']:,} | {r['fid']:.2f} | {r['kid']:.4f} | {r['precision']:.3f} "
            f"| {r['recall']:.3f} |"
        )
    lines += ["", *(f"![{n}]({n}.png)" for n in rows)]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
