"""The `gankit` command line: train, sample, eval, report, classifier, data, presets."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import yaml

import gankit
from gankit.api import evaluate, fit, prepare
from gankit.bench.cases import CASES
from gankit.bench.report import markdown
from gankit.bench.run import run_bench
from gankit.config import load_recipe, parse_override, preset_names
from gankit.data import fetch as data_fetch
from gankit.demos import DEMOS
from gankit.errors import ConfigError, GankitError, Terminated
from gankit.metrics.classifier import save_classifier, train_classifier
from gankit.metrics.registry import EXTRACTORS, metric_names
from gankit.report import write_report
from gankit.sweep import run_sweep
from gankit.training.distributed import wait_for_sibling_workers
from gankit.version import __version__


def _overrides(groups: list[list[str]] | None) -> list[str]:
    return [item for group in groups or [] for item in group]


def _process_place() -> tuple[int, int]:
    """(RANK, LOCAL_RANK) under torchrun (WORLD_SIZE > 1), else (0, 0); never raises."""

    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            rank = int(os.environ.get("RANK", "0"))
            return rank, int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        pass
    return 0, 0


def _print_run(run, result: dict) -> None:
    status = result["status"]
    last = result.get("last") or {}
    print()
    if status == "interrupted":
        by = result.get("signal", "SIGINT")
        print(f"Interrupted ({by}) at step {result['step']}; saved a checkpoint.")
        print(f"  continue:    gankit train --resume {run.path}")
    else:
        print(f"Finished {result['step']} steps.")
    if last:
        print(
            f"  last losses: d_loss {last.get('d_loss', float('nan')):.4f}, "
            f"g_loss {last.get('g_loss', float('nan')):.4f}"
        )
    samples = run.samples()
    if samples:
        print(f"  samples:     {samples[-1]}")
    print(f"  metrics:     {run.path / 'metrics.jsonl'}")
    if (run.path / "tensorboard").is_dir():
        print(f"  tensorboard: tensorboard --logdir {run.path / 'tensorboard'}")
    checkpoints = run.checkpoints()
    if checkpoints:
        print(f"  checkpoint:  {checkpoints[-1]}")
    print(f"  config:      {run.path / 'config.yaml'}")
    print(f"  sample more: gankit sample {run.path} --n 64 --out grid.png")


def cmd_train(args: argparse.Namespace) -> int:
    overrides = _overrides(args.set)
    if args.resume and args.seed is not None:
        raise GankitError(
            "--seed: a resumed run keeps its seed (and the rest of its recipe); start a new run "
            "to train with another seed"
        )
    # the shortcuts, after --set: they win where both name the key
    if args.steps is not None:
        overrides.append(f"schedule.steps={args.steps}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    main = _process_place()[0] == 0  # under torchrun only rank 0 prints
    if args.resume:
        if args.recipe is not None or args.out is not None:
            raise GankitError(
                "--resume continues a run with its own recipe and folder; "
                "drop the RECIPE and --out arguments"
            )
        run = gankit.resume(args.resume, overrides)
    else:
        trainer = prepare(args.recipe, overrides, args.out)
        cfg, dist = trainer.cfg, trainer.dist
        where = str(trainer.device)
        if dist.enabled:
            where = f"{dist.world_size} processes ({dist.backend}, {trainer.device.type})"
        fast = getattr(trainer.method, "fast", None)
        if fast is not None:
            where += f"; fast mode: {fast.describe()}"
        if main:
            print(
                f"gankit {__version__}: training {cfg.name!r} ({trainer.data.describe()}) for "
                f"{cfg.schedule.steps} steps on {where} -> {trainer.run_dir}"
            )
        run = fit(trainer)
    # under torchrun a worker that exits non-zero makes torchrun SIGTERM the others, which
    # could cut rank 0's summary short or kill a rank still exiting: the other ranks exit 0,
    # and rank 0 carries the code and exits last
    if main:
        _print_run(run, run.result)
        code = _exit_code(run.result)
        if code:
            wait_for_sibling_workers()
        return code
    return 0


def _exit_code(result: dict) -> int:
    """0 for a finished run; 128 + the signal's number for one stopped by a signal (130 for
    Ctrl-C, 143 for SIGTERM), the shell's convention, so schedulers see why it ended."""
    if result["status"] != "interrupted":
        return 0
    return _signal_exit(result.get("signal", "SIGINT"))


def _signal_exit(name: str) -> int:
    return 128 + int(getattr(signal, name))


def _parse_labels(text: str, n: int) -> list[int]:
    """--labels 3 (every sample class 3) or 0,1,2 (repeated to n samples)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GankitError(
            f"--labels {text!r}: expected a class number or comma-separated class numbers, "
            "e.g. --labels 3 or --labels 0,1,2"
        ) from None
    if not values:
        raise GankitError("--labels: give at least one class number")
    return [values[i % len(values)] for i in range(n)]


def cmd_sample(args: argparse.Namespace) -> int:

    run = gankit.open_run(args.run_dir)
    ema = False if args.no_ema else None
    labels = _parse_labels(args.labels, args.n) if args.labels is not None else None
    path = run.save_samples(
        args.out, n=args.n, seed=args.seed, ema=ema, labels=labels, checkpoint=args.checkpoint
    )
    print(f"wrote {args.n} samples to {path}")
    return 0


def _metric_list(text: str | None) -> list[str] | None:
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def cmd_eval(args: argparse.Namespace) -> int:

    result = evaluate(
        args.run_dir,
        metrics=_metric_list(args.metrics),
        n_fake=args.n_fake,
        ref_split=args.ref,
        extractor=args.extractor,
        seed=args.seed,
        ema=False if args.no_ema else None,
        checkpoint=args.checkpoint,
        batch_size=args.batch_size,
        device=args.device,
        write=not args.no_write,
    )
    protocol = result["protocol"]
    counts = "".join(f", {k}={protocol[k]}" for k in ("n_fake", "n_real") if k in protocol)
    print(f"{result['run']} @ {result['checkpoint']} ({result['generator']} generator){counts}")
    if "extractor" in protocol:
        sha = protocol["weights_sha256"] or "none"
        print(
            f"features: {protocol['extractor']} (sha256 {sha[:16]}), "
            f"reference split: {protocol['reference']['split']}"
        )
    for key, value in result["metrics"].items():
        print(f"  {key:20s} {value:.6g}" if isinstance(value, float) else f"  {key:20s} {value}")
    took = f" ({result['seconds']} s)" if "seconds" in result else ""
    print(f"{'scored' if args.no_write else f'wrote {args.run_dir}/eval.json'}{took}")
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def cmd_classifier_train(args: argparse.Namespace) -> int:

    shortcuts = {
        "digits": {"name": "digits"},
        "fashion-mnist": {"name": "idx", "dataset": "fashion-mnist"},
    }
    data = shortcuts.get(args.data)
    if data is None:
        try:
            data = yaml.safe_load(args.data)
        except yaml.YAMLError:
            data = None
        if not isinstance(data, dict) or "name" not in data:
            raise GankitError(
                f"--data {args.data!r}: give 'digits', 'fashion-mnist' or a YAML mapping such "
                "as '{name: idx, path: /data/mnist}'"
            )
    model, report = train_classifier(data, epochs=args.epochs, seed=args.seed)
    save_classifier(model, args.out, report)
    print(
        f"test accuracy {report['test_accuracy']:.4f} on {report['n_test']} images; "
        f"wrote {args.out}"
    )
    print(f"use it: gankit eval RUN_DIR --extractor {args.out}")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:

    root = Path(args.dir).expanduser() if args.dir else None
    for name in dict.fromkeys(args.names):  # each once, in the order given
        data_fetch.fetch(name, root)
    cache = data_fetch.cache_root()
    if root is not None and root.resolve() != cache.resolve():
        print(f"note: presets look in {cache}; set GANKIT_DATA={root} (or data.path) to use these")
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:

    print(f"cache: {data_fetch.cache_root()} (${data_fetch.CACHE_ENV} to move it)")
    for name, spec in data_fetch.CATALOGUE.items():
        folder = data_fetch.find(name)
        if folder is not None:
            print(f"  {name:14s} present  {folder}")
        else:
            mb = sum(f.size for f in spec.files) / 1e6
            print(f"  {name:14s} missing  gankit data fetch {name}  ({mb:.0f} MB)")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:

    names = preset_names()
    width = max(len(name) for name in names)
    for name in names:
        cfg = load_recipe(name)  # data paths are only opened when training starts
        print(f"{name:{width}s}  {cfg.description}")
        if args.verbose:
            print("  " + cfg.to_yaml().replace("\n", "\n  "))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:

    out = Path(args.out or f"{args.name}.png")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GankitError(f"--out: cannot create {out.parent}: {exc.strerror}") from None
    demo = importlib.import_module(DEMOS[args.name])
    summary = demo.figure(out)
    for key, value in summary.items():
        print(f"  {key:34s} {value:.6g}")
    print(f"wrote {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:

    out = write_report([Path(p) for p in args.run_dirs], Path(args.out))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB); open it in a browser")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:

    overrides = _overrides(args.set)
    command = ["gankit", "sweep", args.recipe]
    for item in args.grid:
        command += ["--grid", item]
    command += ["--seeds", str(args.seeds), "--jobs", str(args.jobs)]
    for flag, value in (("--out", args.out), ("--steps", args.steps), ("--metrics", args.metrics),
                        ("--n-fake", args.n_fake)):  # fmt: skip
        if value is not None:
            command += [flag, str(value)]
    if overrides:
        command += ["--set", *overrides]
    result = run_sweep(
        args.recipe,
        args.grid,
        seeds=args.seeds,
        jobs=args.jobs,
        out=args.out,
        steps=args.steps,
        overrides=overrides,
        metrics=_metric_list(args.metrics),
        command=shlex.join(command),
        n_fake=args.n_fake,
    )
    if result["failed"]:
        print(f"gankit: error: {len(result['failed'])} run(s) did not finish:", file=sys.stderr)
        for run in result["failed"]:
            print(f"  {run['path']}: {run.get('error', run['status'])}", file=sys.stderr)
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:

    overrides = dict(parse_override(item) for item in _overrides(args.set))
    cases = [c.strip() for c in args.cases.split(",")] if args.cases else None
    command = ["gankit", "bench"]
    for flag in ("cases", "device", "rounds", "steps", "warmup", "out"):
        value = getattr(args, flag)
        if value is not None:
            command += [f"--{flag}", str(value)]
    command += ["--quick"] if args.quick else []
    command += ["--no-memory"] if args.no_memory else []
    if args.set:
        command += ["--set", *_overrides(args.set)]
    result = run_bench(
        cases,
        device=args.device or "auto",
        rounds=args.rounds,
        steps=args.steps,
        warmup=args.warmup,
        out=Path(args.out) if args.out else None,
        quick=args.quick,
        memory=not args.no_memory,
        overrides=overrides,
        command=shlex.join(command),
    )

    print(markdown(result))
    if args.out:
        print(f"wrote {Path(args.out) / 'bench.md'} and {Path(args.out) / 'bench.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit", description="Train, stabilize and evaluate GANs."
    )
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a recipe (default: the quickstart preset)")
    p.add_argument("recipe", nargs="?", help="a recipe YAML file or a preset name (gankit presets)")
    p.add_argument(
        "--set",
        nargs="+",
        action="append",
        metavar="KEY=VALUE",
        help="override recipe values, e.g. --set schedule.steps=500 seed=1",
    )
    p.add_argument("--out", help="run folder (default: runs/NAME-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest checkpoint")
    p.add_argument(
        "--steps", type=int, help="training steps: --set schedule.steps=N (also with --resume)"
    )
    p.add_argument("--seed", type=int, help="the run's seed: --set seed=S (new runs only)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained run's generator")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", default="samples.png", help=".png picture or .npy raw values")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent noise")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    p.add_argument(
        "--checkpoint", help="a step (e.g. 2000) or a checkpoint folder (default: the newest)"
    )
    p.add_argument(
        "--labels",
        help="classes to draw (cgan, acgan runs): one class, e.g. 3, or a comma-separated list "
        "repeated to --n samples, e.g. 0,1,2 (default: sample i has class i mod K)",
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="score a run: FID, KID, IS, precision/recall, modes, ...")
    p.add_argument("run_dir")
    p.add_argument(
        "--metrics",
        help=f"comma-separated: {','.join(metric_names('images'))} (images), "
        f"{','.join(metric_names('points'))} (2D points), {','.join(metric_names('run'))} "
        "(a run's own classifier or conditional generator); default: all that apply",
    )
    p.add_argument("--n-fake", type=int, help="generated samples (default 10,000; 2,500 for 2D)")
    p.add_argument("--ref", default="test", help="reference split (default test)")
    p.add_argument(
        "--extractor",
        default="auto",
        help=f"auto, {', '.join(EXTRACTORS.names())} or a classifier .safetensors",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--checkpoint", help="a step (e.g. 2000) or a checkpoint folder (default: the newest)"
    )
    p.add_argument("--no-ema", action="store_true", help="score the raw generator, not its EMA")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="also print eval.json")
    p.add_argument(
        "--no-write",
        action="store_true",
        help="print the scores only; keep RUN_DIR/eval.json (a sweep skips runs that have one)",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("report", help="write one self-contained HTML page about runs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="one or more run folders")
    p.add_argument("--out", default="report.html", help="the HTML file (default report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "sweep", help="train and evaluate a grid of recipe variants x seeds, tabulate mean ± std"
    )
    p.add_argument("recipe", help="a recipe YAML file or a preset name")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a recipe key and its values (YAML, as for --set); repeat for more axes",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 per cell (default 3)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--out", help="sweep folder (default sweeps/NAME-TIMESTAMP); rerun to resume")
    p.add_argument("--steps", type=int, help="schedule.steps of every run")
    p.add_argument(
        "--set", nargs="+", action="append", metavar="KEY=VALUE", help="overrides for every run"
    )
    p.add_argument("--metrics", help="gankit eval's --metrics (default: all that apply)")
    p.add_argument("--n-fake", type=int, help="gankit eval's --n-fake (default: its default)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "bench",
        help="time training steps: gankit fp32 and fast mode against a plain PyTorch loop",
    )
    p.add_argument(
        "--cases",
        help=f"comma-separated: {','.join(CASES)} (default: all)",
    )
    p.add_argument("--device", help="auto (default: CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--rounds", type=int, help="timed rounds per mode (default 5)")
    p.add_argument(
        "--steps", type=int, help="steps per mode and round (default: ~1 s of the reference)"
    )
    p.add_argument("--warmup", type=int, help="untimed steps per mode (default 3)")
    p.add_argument("--out", help="folder for bench.md and bench.json")
    p.add_argument(
        "--quick", action="store_true", help="a smoke run: 2 rounds of 2 steps, 1 warm-up step"
    )
    p.add_argument(
        "--no-memory", action="store_true", help="skip the per-mode peak-memory processes"
    )
    p.add_argument(
        "--set", nargs="+", action="append", metavar="KEY=VALUE", help="overrides for every case"
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("classifier", help="train a classifier to use as a metric's features")
    csub = p.add_subparsers(dest="classifier_command", metavar="COMMAND", required=True)
    c = csub.add_parser("train", help="train on a labeled data set and save it")
    c.add_argument(
        "--data",
        required=True,
        help="digits, fashion-mnist, or a YAML data spec '{name: idx, path: ...}'",
    )
    c.add_argument("--out", required=True, help="output .safetensors file")
    c.add_argument("--epochs", type=int, default=10)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=cmd_classifier_train)

    p = sub.add_parser("data", help="download the standard data sets, list where they are")
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    d = dsub.add_parser(
        "fetch",
        help="download data sets from their official locations, sha256-checked, into the cache",
    )
    d.add_argument("names", nargs="+", metavar="NAME", choices=data_fetch.names(),
                   help=f"{', '.join(data_fetch.names())}")  # fmt: skip
    d.add_argument(
        "--dir",
        help=f"download into DIR/NAME (default: the cache, ${data_fetch.CACHE_ENV} or "
        "~/.cache/gankit/data)",
    )
    d.set_defaults(func=cmd_data_fetch)
    d = dsub.add_parser("list", help="each standard data set: present (where) or missing")
    d.set_defaults(func=cmd_data_list)

    p = sub.add_parser("demo", help="draw a figure of a classic GAN training phenomenon")
    p.add_argument(
        "name",
        choices=list(DEMOS),
        help="xy-game: gradient play circles the equilibrium; divergences: JS vs W1; "
        "optimal-d: a trained D against p_data / (p_data + p_g)",
    )
    p.add_argument("--out", help="the PNG to write (default NAME.png)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("presets", help="list the built-in recipes")
    p.add_argument("-v", "--verbose", action="store_true", help="print each resolved recipe")
    p.set_defaults(func=cmd_presets)
    return parser


def _print_error(exc: GankitError) -> None:
    """Under torchrun, rank 0 prints every error. Another process prints its own errors
    (prefixed with its rank) but not those rank 0 reports too: errors it mirrors from rank 0,
    and recipe errors, which are the same on every process of a machine (the first process
    of each other machine prints those)."""

    rank, local_rank = _process_place()
    prefix = ""
    if rank != 0:
        if getattr(exc, "mirrored", False):
            return
        if isinstance(exc, ConfigError) and local_rank != 0:
            return
        prefix = f"rank {rank}: "
    print(f"gankit: error: {prefix}{exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `gankit train`-less call: show help
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except GankitError as exc:
        _print_error(exc)
        return 2
    except BrokenPipeError:  # `gankit presets | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no 2nd error at exit
        return 141  # 128 + SIGPIPE, what a shell tool killed by the closed pipe reports
    except KeyboardInterrupt as exc:
        if _process_place()[0] == 0:
            print("gankit: interrupted", file=sys.stderr)
        return _signal_exit("SIGTERM" if isinstance(exc, Terminated) else "SIGINT")


if __name__ == "__main__":
    sys.exit(main())
