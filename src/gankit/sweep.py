"""`gankit sweep`: a grid of recipe variants x seeds, each trained and evaluated in its own
process, summarized as mean ± std over seeds per grid cell.

    gankit sweep ring8 --grid objective.name=non_saturating,least_squares --seeds 3 --jobs 2

DIR/
  sweep.json          the grid, the command, every run's path, status and scores
  summary.csv         one row per cell: its grid values, n runs, <metric>_mean, <metric>_std
  summary.md          the same as a Markdown table (mean ± std)
  report.html         `gankit report` of all runs
  CELL/seedK/         a run folder (`gankit train ... --set seed=K`, then `gankit eval`)
  CELL/seedK.log      that run's output (beside it: a new run folder must start empty)

Every cell's recipe is resolved before anything runs, so a typo in a key or value fails at once.
Runs are separate processes so that parallel jobs share nothing and a crash stays in its run.
Rerunning the same command resumes: a run with eval.json is skipped, a run with a checkpoint
continues (`gankit train --resume`), anything else starts again.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gankit.config import load_recipe, parse_override
from gankit.errors import ConfigError, GankitError, Terminated
from gankit.metrics.evaluate import check_run_metrics
from gankit.report import write_report
from gankit.training.checkpoint import list_checkpoints
from gankit.training.outputs import write_text_atomic

QUIET = ["logging.progress=false"]  # runs log to files: no progress bars there


@dataclass
class RunSpec:
    cell: dict[str, str]  # grid key -> value as typed on the command line
    slug: str  # the cell's folder name
    seed: int
    path: Path
    overrides: list[str]  # --set items of its `gankit train`

    @property
    def log(self) -> Path:
        return self.path.with_suffix(".log")


def split_values(text: str) -> list[str]:
    """'a,b,[1,2]' -> ['a', 'b', '[1,2]']: commas inside brackets or braces belong to a value."""
    values, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "[{") - (ch in "]}")
        if ch == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return values


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """['key=v1,v2', ...] -> {key: [v1, v2]}; each value must parse as YAML (parse_override)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: expected key=v1,v2,...")
        key, text = (part.strip() for part in item.split("=", 1))
        values = split_values(text)
        if not key or not all(values):
            raise ConfigError(f"--grid {item!r}: needs a key and non-empty values")
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        if key == "seed":
            raise ConfigError("--grid seed: use --seeds N (seeds 0 .. N-1)")
        for value in values:
            parse_override(f"{key}={value}")
        grid[key] = values
    return grid


def slugify(cell: dict[str, str]) -> str:
    """A folder name that says what the cell sets: 'objective.name-hinge+generator.hidden-32'."""
    if not cell:
        return "default"
    parts = [f"{key}-{value}" for key, value in cell.items()]
    return re.sub(r"[^A-Za-z0-9._+-]", "_", "+".join(parts))


def plan(
    recipe: str,
    grid: dict[str, list[str]],
    seeds: int,
    out: Path,
    steps: int | None = None,
    overrides: list[str] | None = None,
    metrics: list[str] | None = None,
) -> list[RunSpec]:
    """Every run of the sweep, after resolving each cell's recipe (errors before any run)."""

    base = [*QUIET, *(overrides or [])]
    if any(parse_override(item)[0] == "seed" for item in base):
        raise ConfigError("--set seed: use --seeds N (seeds 0 .. N-1)")
    if steps is not None:
        base.append(f"schedule.steps={steps}")
    specs, slugs = [], set()
    for combo in itertools.product(*grid.values()):
        cell = dict(zip(grid, combo))
        slug = slugify(cell)
        while slug in slugs:  # two values that differ only in characters a folder name drops
            slug += "_"
        slugs.add(slug)
        cell_overrides = [*base, *(f"{k}={v}" for k, v in cell.items())]
        try:
            cfg = load_recipe(recipe, cell_overrides)
            if metrics:
                check_run_metrics(metrics, cfg)
        except ConfigError as exc:
            where = ", ".join(f"{k}={v}" for k, v in cell.items()) or "the recipe"
            raise ConfigError(f"sweep cell {where}: {exc}") from None
        for seed in range(seeds):
            path = out / slug / f"seed{seed}"
            specs.append(RunSpec(cell, slug, seed, path, [*cell_overrides, f"seed={seed}"]))
    return specs


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "gankit", *args]


class Children:
    """The sweep's live `gankit` processes, so that a SIGTERM to the sweep reaches them: each
    run then checkpoints and stops (as on Ctrl-C, which the terminal sends to all of them)
    instead of training on, orphaned, or dying with its work since the last checkpoint."""

    def __init__(self):
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen] = set()
        self.terminated = False

    def run(self, cmd: list[str], **kwargs) -> int:
        with self._lock:
            if self.terminated:
                return 128 + signal.SIGTERM
            proc = subprocess.Popen(cmd, **kwargs)
            self._live.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._live.discard(proc)

    def terminate(self) -> None:
        with self._lock:
            self.terminated = True
            for proc in self._live:
                proc.send_signal(signal.SIGTERM)


def execute(
    spec: RunSpec,
    recipe: str,
    metrics: list[str] | None,
    env: dict,
    stop: threading.Event,
    n_fake: int | None = None,
    children: Children | None = None,
) -> dict:
    """Train (or resume) and evaluate one run unless its eval.json exists; output to spec.log."""
    started = time.perf_counter()
    children = children or Children()  # alone: nobody passes a signal on
    scores, status = _read_scores(spec.path), "skipped"
    if scores is None:
        if (spec.path / "config.yaml").is_file() and list_checkpoints(spec.path / "checkpoints"):
            train, status = ["train", "--resume", str(spec.path)], "resumed"
        else:
            shutil.rmtree(spec.path, ignore_errors=True)  # empty or broken: start again
            train = ["train", recipe, "--out", str(spec.path), "--set", *spec.overrides]
            status = "trained"
        evaluate = ["eval", str(spec.path)] + (["--metrics", ",".join(metrics)] if metrics else [])
        evaluate += ["--n-fake", str(n_fake)] if n_fake else []
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        with spec.log.open("a") as sink:
            for args in (train, evaluate):
                if stop.is_set():
                    return {"status": "interrupted"}
                cmd = _command(args)
                sink.write(f"$ {shlex.join(cmd)}\n")
                sink.flush()
                code = children.run(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
                if code != 0:
                    error = f"`gankit {args[0]}` exited with {code}; see {spec.log}"
                    return {"status": "failed", "error": error}
        scores = _read_scores(spec.path)
        if scores is None:
            return {"status": "failed", "error": f"no readable eval.json; see {spec.log}"}
    return {
        "status": status,
        "seconds": round(time.perf_counter() - started, 1),
        **_hardware(spec.path),
        "metrics": scalar_metrics(scores.get("metrics", {})),
    }


def _hardware(run_dir: Path) -> dict:
    """run.json's processor and precision, so a table can say what made each of its runs."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict):
        return {}
    return {k: info[k] for k in ("processor", "precision") if isinstance(info.get(k), str)}


def _read_scores(run_dir: Path) -> dict | None:
    try:
        scores = json.loads((run_dir / "eval.json").read_text())
    except (OSError, ValueError):
        return None
    return scores if isinstance(scores, dict) else None


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """The numbers of eval.json's "metrics" (booleans and structures left out)."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def summarize(runs: list[dict], keys: list[str]) -> list[dict]:
    """One row per cell, in order: its grid values, n runs with scores, and per metric the
    mean and sample standard deviation over seeds (std None for a single run)."""
    rows: dict[str, dict] = {}
    for run in runs:
        row = rows.setdefault(run["slug"], {"cell": run["slug"], **run["cell"], "n": 0,
                                            "values": {}})  # fmt: skip
        if "metrics" not in run:
            continue
        row["n"] += 1
        for metric, value in run["metrics"].items():
            row["values"].setdefault(metric, []).append(value)
    out = []
    for row in rows.values():
        values = row.pop("values")
        stats = {}
        for metric, xs in values.items():
            if all(math.isfinite(x) for x in xs):
                stats[metric] = (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else None)
            else:  # e.g. reverse KL = inf for a run with no mode: the mean says so, no std
                stats[metric] = (sum(xs) / len(xs), math.nan if len(xs) > 1 else None)
        out.append({**row, "stats": stats})
    return out


def metric_names(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(m for row in rows for m in row["stats"]))


def format_mean_std(mean: float, std: float | None) -> str:
    """'mean ± std'; the mean alone for one run, or when it is infinite (no std to give)."""
    if std is None or not math.isfinite(mean):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {std:.2g}"


def markdown_table(rows: list[dict], keys: list[str]) -> str:
    """| key ... | n | metric ... | with mean ± std per cell; '-' where a cell has no score."""
    metrics = metric_names(rows)
    header = [*(keys or ["cell"]), "n", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * (len(keys or [1]) + 1)
             + "---:|" * len(metrics)]  # fmt: skip
    for row in rows:
        cells = [str(row[k]) for k in keys] if keys else [row["cell"]]
        cells.append(str(row["n"]))
        cells += [format_mean_std(*row["stats"][m]) if m in row["stats"] else "-" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[dict], keys: list[str]) -> str:
    """cell, the grid keys, n, then <metric>_mean and <metric>_std at full precision."""
    metrics = metric_names(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["cell", *keys, "n", *(f"{m}_{s}" for m in metrics for s in ("mean", "std"))])
    for row in rows:
        stats = [row["stats"].get(m, (None, None)) for m in metrics]
        flat = ["" if x is None else repr(float(x)) for pair in stats for x in pair]
        writer.writerow([row["cell"], *(row[k] for k in keys), row["n"], *flat])
    return buffer.getvalue()


def _report(run_dirs: list[Path], out: Path) -> str:
    """The HTML report of every finished run."""
    try:
        write_report(run_dirs, out)
    except Exception as exc:  # the tables are written already; say what went wrong
        return f"no HTML report: {type(exc).__name__}: {exc}"
    return f"report:  {out}"


def _check_same_sweep(out: Path, spec: dict) -> None:
    """A folder holds one sweep: rerunning resumes it, a different one must go elsewhere."""
    path = out / "sweep.json"
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    for key in ("recipe", "overrides", "steps", "metrics"):
        if before.get(key) != spec[key]:
            raise GankitError(
                f"{out} holds a sweep with another {key} ({before.get(key)!r}, now "
                f"{spec[key]!r}); rerun it as it was to resume, or choose another --out"
            )
    # sweep.json lists the planned runs only: a smaller plan would drop the earlier ones
    old_grid, new_grid = before.get("grid") or {}, spec["grid"]
    kept = set(old_grid) == set(new_grid) and all(
        all(v in new_grid[k] for v in values) for k, values in old_grid.items()
    )
    if not kept or spec["seeds"] < before.get("seeds", 0):
        raise GankitError(
            f"{out} holds a sweep over {old_grid or 'no grid'} with {before.get('seeds')} seeds; "
            f"this one ({new_grid or 'no grid'}, {spec['seeds']} seeds) would drop some of its "
            "runs from sweep.json. Rerun with a grid and seeds that include them (more values "
            "or seeds are fine: finished runs are skipped), or choose another --out"
        )


@contextlib.contextmanager
def _passing_sigterm(stop: threading.Event, children: Children):
    """While the sweep runs, a SIGTERM starts nothing new, is passed on to the live runs and
    ends the sweep with `Terminated` once they have checkpointed (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        stop.set()
        children.terminate()
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(
    recipe: str,
    grid: list[str] | None = None,
    seeds: int = 3,
    jobs: int = 1,
    out: str | Path | None = None,
    steps: int | None = None,
    overrides: list[str] | None = None,
    metrics: list[str] | None = None,
    command: str | None = None,
    n_fake: int | None = None,
) -> dict:
    """Run a sweep (see the module docstring); returns what sweep.json holds."""
    if seeds < 1 or jobs < 1:
        raise ConfigError("--seeds and --jobs must be at least 1")
    if n_fake is not None and n_fake < 2:
        raise ConfigError(f"--n-fake: needs at least 2 samples, got {n_fake}")
    axes = parse_grid(grid or [])
    if out is None:
        name = load_recipe(recipe).name
        out = Path("sweeps") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out = Path(out)
    specs = plan(recipe, axes, seeds, out, steps, overrides, metrics)
    sweep = {"recipe": recipe, "overrides": list(overrides or []), "steps": steps,
             "metrics": metrics, "grid": axes, "seeds": seeds, "command": command,
             **({"n_fake": n_fake} if n_fake else {})}  # fmt: skip
    _check_same_sweep(out, sweep)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "sweep.json", json.dumps({**sweep, "runs": []}, indent=2))
    print(f"gankit sweep: {len(specs)} runs ({len(specs) // seeds} cells x {seeds} seeds), "
          f"{jobs} at a time -> {out}", flush=True)  # fmt: skip

    env = dict(os.environ)
    # parallel runs share the cores: one BLAS/OpenMP pool per run, sized to its share
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    stop = threading.Event()
    children = Children()
    results: dict[int, dict] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool, _passing_sigterm(stop, children):
        futures = {
            pool.submit(execute, spec, recipe, metrics, env, stop, n_fake, children): i
            for i, spec in enumerate(specs)
        }
        try:
            for done, future in enumerate(as_completed(futures), 1):
                i = futures[future]
                results[i] = future.result()
                _print_progress(done, len(specs), specs[i], results[i])
        except BaseException:  # Ctrl-C or SIGTERM: start nothing new; rerunning resumes
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)  # the runs checkpoint and exit
            raise

    runs = [
        {"cell": s.cell, "slug": s.slug, "seed": s.seed, "path": str(s.path),
         "log": str(s.log), **results[i]}
        for i, s in enumerate(specs)
    ]  # fmt: skip
    keys = list(axes)
    rows = summarize(runs, keys)
    write_text_atomic(out / "summary.csv", csv_table(rows, keys))
    write_text_atomic(out / "summary.md", markdown_table(rows, keys))
    finished = [Path(r["path"]) for r in runs if "metrics" in r]
    note = _report(finished, out / "report.html") if finished else "no finished run to report"
    result = {**sweep, "runs": runs, "failed": [r for r in runs if "metrics" not in r]}
    write_text_atomic(out / "sweep.json", json.dumps({**sweep, "runs": runs}, indent=2))
    print(f"\n{markdown_table(rows, keys)}\nsummary: {out / 'summary.md'}, "
          f"{out / 'summary.csv'}\n{note}", flush=True)  # fmt: skip
    return result


def _print_progress(done: int, total: int, spec: RunSpec, result: dict) -> None:
    what = " ".join(f"{k}={v}" for k, v in spec.cell.items()) or "default"
    head = f"[{done}/{total}] {what} seed {spec.seed}:"
    if "metrics" not in result:
        print(f"{head} {result['status'].upper()} {result.get('error', '')}", flush=True)
        return
    scores = ", ".join(f"{k} {v:.4g}" for k, v in list(result["metrics"].items())[:4])
    when = "skipped (eval.json present)" if result["status"] == "skipped" else (
        f"{result['status']} in {result['seconds']} s")  # fmt: skip
    print(f"{head} {when}; {scores}", flush=True)
