"""`gankit sweep`: the grid x seeds runs, their summary against each run's eval.json, resuming
an interrupted sweep, errors before any run, and the table formatting."""

from __future__ import annotations

import csv
import json
import math
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gankit.cli import main
from gankit.sweep import (
    _check_same_sweep,
    csv_table,
    markdown_table,
    parse_grid,
    slugify,
    split_values,
    summarize,
)

CELLS = {"non_saturating": "objective.name-non_saturating",
         "least_squares": "objective.name-least_squares"}  # fmt: skip


def sweep_args(out: Path) -> list[str]:
    return [
        "sweep", "ring8", "--grid", "objective.name=non_saturating,least_squares",
        "--seeds", "2", "--jobs", "2", "--steps", "200", "--out", str(out), "--metrics", "modes",
        "--n-fake", "2000",
        "--set", "generator.hidden=32", "discriminator.hidden=32", "logging.tensorboard=false",
    ]  # fmt: skip


def check_summary_against_runs(out: Path) -> None:
    """summary.csv/.md hold mean and stdev over seeds of each run's own eval.json."""
    rows = {r["objective.name"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert set(rows) == set(CELLS)
    table = (out / "summary.md").read_text()
    for name, slug in CELLS.items():
        evals = [json.loads((out / slug / f"seed{k}" / "eval.json").read_text()) for k in (0, 1)]
        assert int(rows[name]["n"]) == 2
        for metric in ("modes_captured", "high_quality", "reverse_kl"):
            values = [e["metrics"][metric] for e in evals]
            mean, std = statistics.mean(values), statistics.stdev(values)
            assert math.isclose(float(rows[name][f"{metric}_mean"]), mean, abs_tol=1e-12)
            assert math.isclose(float(rows[name][f"{metric}_std"]), std, abs_tol=1e-12)
            assert f"{mean:.4g} ± {std:.2g}" in table


@pytest.mark.slow
def test_sweep_runs_grid_times_seeds_summarizes_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(sweep_args(out)) == 0
    printed = capsys.readouterr().out
    assert printed.count(" trained in ") == 4
    check_summary_against_runs(out)
    record = json.loads((out / "sweep.json").read_text())
    assert record["grid"] == {"objective.name": ["non_saturating", "least_squares"]}
    assert record["command"].startswith("gankit sweep ring8 --grid objective.name=")
    assert len(record["runs"]) == 4
    for run in record["runs"]:
        cfg = (Path(run["path"]) / "config.yaml").read_text()
        assert f"seed: {run['seed']}" in cfg and f"name: {run['cell']['objective.name']}" in cfg
        scored = json.loads((Path(run["path"]) / "eval.json").read_text())
        assert run["metrics"] == scored["metrics"]
        info = json.loads((Path(run["path"]) / "run.json").read_text())
        assert run["precision"] == "fp32" and run["processor"] == info["processor"]
        assert scored["protocol"]["n_fake"] == 2000  # --n-fake reaches gankit eval
    assert (out / "report.html").is_file()

    # an interrupted sweep: one run trained but not evaluated, one run folder left broken
    unevaluated = out / CELLS["non_saturating"] / "seed0"
    broken = out / CELLS["least_squares"] / "seed1"
    (unevaluated / "eval.json").unlink()
    shutil.rmtree(broken / "checkpoints")
    (broken / "eval.json").unlink()
    finished = [out / CELLS["non_saturating"] / "seed1", out / CELLS["least_squares"] / "seed0"]
    mtimes = [(p / "eval.json").stat().st_mtime_ns for p in finished]
    assert main(sweep_args(out)) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped (eval.json present)") == 2
    assert "non_saturating seed 0: resumed in" in printed
    assert "least_squares seed 1: trained in" in printed
    assert [(p / "eval.json").stat().st_mtime_ns for p in finished] == mtimes
    assert "--resume" in (unevaluated.with_suffix(".log")).read_text()
    check_summary_against_runs(out)


def test_sigterm_reaches_the_runs_which_checkpoint_and_the_sweep_exits_143(tmp_path):
    """`timeout`, `kill` and schedulers signal the sweep's process only: it must pass SIGTERM on
    so that the run checkpoints where it stopped (its periodic checkpoint is far away) and no
    orphan trains on."""
    out = tmp_path / "sw"
    cmd = [
        sys.executable, "-m", "gankit", "sweep", "ring8", "--seeds", "2", "--jobs", "1",
        "--steps", "1000000", "--out", str(out), "--set", "generator.hidden=16",
        "discriminator.hidden=16", "logging.every=10", "logging.progress=false",
        "logging.tensorboard=false", "logging.checkpoint_every=100000",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = out / "default" / "seed0"  # a sweep without --grid has one cell, "default"
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted"  # the run's own handler ran: it was not killed
    assert (run / "checkpoints" / f"step_{info['step']:08d}").is_dir() and info["step"] >= 10
    assert "Interrupted (SIGTERM)" in (out / "default" / "seed0.log").read_text()
    assert not (out / "default" / "seed1").exists()  # nothing new started after the signal


def test_mistakes_fail_before_any_run(tmp_path, capsys):
    out = tmp_path / "sweep"
    cases = [
        (["--grid", "schedule.stepz=1,2"], "cell schedule.stepz=1: schedule.stepz: unknown key"),
        (["--grid", "objective.nme=a,b"], "objective.nme: unknown option"),
        (["--grid", "objective.name=hinge,wgan"], "unknown objective 'wgan'"),
        (["--grid", "seed=1,2"], "use --seeds"),
        (["--grid", "objective.name"], "expected key=v1,v2"),
        (["--metrics", "fid"], "metric 'fid' does not apply"),
        (["--set", "data.mode=ringg"], "data.mode"),
    ]
    for extra, message in cases:
        assert main(["sweep", "ring8", "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gankit: error: ") and message in err, err
        assert not out.exists()

    out.mkdir()  # a folder holding another sweep is not silently mixed with this one
    (out / "sweep.json").write_text(json.dumps({"recipe": "grid25", "overrides": []}))
    assert main(["sweep", "ring8", "--out", str(out), "--steps", "5"]) == 2
    assert "holds a sweep with another recipe" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["sweep.json"]

    # a plan that leaves out cells or seeds of the folder's sweep would drop their rows
    before = {"recipe": "ring8", "overrides": [], "steps": 5, "metrics": None, "seeds": 2,
              "grid": {"objective.name": ["hinge", "minimax"]}}  # fmt: skip
    (out / "sweep.json").write_text(json.dumps(before))
    smaller = [
        ["--grid", "objective.name=hinge", "--seeds", "2"],
        ["--grid", "objective.name=hinge,minimax", "--seeds", "1"],
        ["--seeds", "2"],
    ]
    for extra in smaller:
        assert main(["sweep", "ring8", "--out", str(out), "--steps", "5", *extra]) == 2
        assert "would drop some of its runs" in capsys.readouterr().err
        assert json.loads((out / "sweep.json").read_text()) == before
    # more values and more seeds extend it (finished runs are skipped)
    larger = {
        **before,
        "seeds": 3,
        "grid": {"objective.name": ["hinge", "minimax", "least_squares"]},
    }
    _check_same_sweep(out, larger)


def test_grid_values_and_folder_names():
    assert split_values("a, b,[0.0,0.9],{x: 1, y: 2}") == ["a", "b", "[0.0,0.9]", "{x: 1, y: 2}"]
    grid = parse_grid(["optim.generator.betas=[0.0,0.9],[0.5,0.999]", "seed_note=x"])
    assert grid == {"optim.generator.betas": ["[0.0,0.9]", "[0.5,0.999]"], "seed_note": ["x"]}
    assert slugify({"objective.name": "hinge", "generator.hidden": "32"}) == (
        "objective.name-hinge+generator.hidden-32"
    )
    assert slugify({"optim.generator.betas": "[0.0, 0.9]"}) == "optim.generator.betas-_0.0__0.9_"
    assert slugify({}) == "default"


def test_summary_table_formatting():
    def run(cell, seed, metrics=None):
        out = {"cell": {"obj": cell}, "slug": f"obj-{cell}", "seed": seed}
        return out if metrics is None else {**out, "metrics": metrics}

    runs = [
        run("a", 0, {"fid": 10.0, "modes": 8}),
        run("a", 1, {"fid": 12.0, "modes": 6}),
        run("a", 2),  # failed: no scores, not counted
        run("b", 0, {"fid": 3.14159}),
    ]
    rows = summarize(runs, ["obj"])
    assert rows[0]["n"] == 2 and rows[0]["stats"]["fid"] == (11.0, statistics.stdev([10, 12]))
    assert rows[1]["stats"] == {"fid": (3.14159, None)}
    assert markdown_table(rows, ["obj"]) == (
        "| obj | n | fid | modes |\n"
        "|---|---|---:|---:|\n"
        "| a | 2 | 11 ± 1.4 | 7 ± 1.4 |\n"
        "| b | 1 | 3.142 | - |\n"
    )
    assert csv_table(rows, ["obj"]).splitlines() == [
        "cell,obj,n,fid_mean,fid_std,modes_mean,modes_std",
        f"obj-a,a,2,11.0,{statistics.stdev([10, 12])!r},7.0,{statistics.stdev([8, 6])!r}",
        "obj-b,b,1,3.14159,,,",
    ]


def test_summary_of_a_non_finite_score():
    """A run that captures no mode has reverse KL = inf: the cell's mean is inf, its std nan,
    and the finite metrics of the same runs keep their mean and sample std."""
    runs = [
        {"slug": "c", "cell": {"k": "v"}, "metrics": {"reverse_kl": math.inf, "modes": 0.0}},
        {"slug": "c", "cell": {"k": "v"}, "metrics": {"reverse_kl": 0.5, "modes": 4.0}},
    ]
    (row,) = summarize(runs, ["k"])
    mean, std = row["stats"]["reverse_kl"]
    assert mean == math.inf and math.isnan(std)
    assert row["stats"]["modes"] == (2.0, statistics.stdev([0.0, 4.0]))
    assert "| v | 2 | inf | 2 ± 2.8 |" in markdown_table([row], ["k"])


def test_classifier_accuracy_is_a_sweep_metric_only_for_methods_with_a_classifier(tmp_path):
    from gankit.errors import ConfigError
    from gankit.sweep import plan

    specs = plan("ssl-digits", {"method_options.unlabeled_weight": ["1.0", "0.0"]}, 2,
                 tmp_path, steps=2, metrics=["accuracy"])  # fmt: skip
    assert len(specs) == 4
    with pytest.raises(ConfigError, match="trains no classifier"):
        plan("quickstart", {}, 1, tmp_path, metrics=["accuracy"])
    with pytest.raises(ConfigError, match="does not apply"):
        plan("ssl-digits", {}, 1, tmp_path, metrics=["accuracy", "modes"])
