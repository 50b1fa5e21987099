"""benchmarks/tables.py: a table built from several invocations names every command behind it."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tables  # noqa: E402


def write_sweep(folder: Path, command: str | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"command": command, "runs": []}))
    return folder


def test_sweep_commands_are_distinct_in_order_with_the_interpreter_as_python(tmp_path):
    a = write_sweep(tmp_path / "a", "/work/.venv/bin/python3 benchmarks/x.py --methods 'A B'")
    b = write_sweep(tmp_path / "b", "python benchmarks/x.py --methods 'A B'")  # same as a
    c = write_sweep(tmp_path / "c", "OMP_NUM_THREADS=1 python benchmarks/x.py --methods C")
    d = write_sweep(tmp_path / "d", None)  # an old sweep without a command
    missing = tmp_path / "never-ran"
    assert tables.sweep_commands([a, b, c, d, missing]) == [
        "python benchmarks/x.py --methods 'A B'",
        "OMP_NUM_THREADS=1 python benchmarks/x.py --methods C",
    ]


def test_commands_md_lists_each_command_and_is_empty_without_any():
    assert tables.commands_md([]) == ""
    md = tables.commands_md(["python x.py", "python y.py --a 1"])
    assert md.splitlines()[-2:] == ["- `python x.py`", "- `python y.py --a 1`"]


def test_invocation_leads_with_the_thread_count_only_when_it_was_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert tables.invocation("benchmarks/x.py", ["--methods", "A B"]) == (
        "python benchmarks/x.py --methods 'A B'"
    )
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert tables.invocation("benchmarks/x.py", []) == "OMP_NUM_THREADS=1 python benchmarks/x.py"


def test_2d_benchmark_init_overrides_build_every_method_from_normal_weights():
    # --init normal must reach every MLP and name no key a method's networks lack
    import mode_coverage_2d as bench
    from torch import nn

    import gankit
    from gankit.models import build_discriminator, build_generator

    assert bench.init_overrides("GAN", "default") == []
    for name in bench.LABELLED:
        preset, extra = bench.METHODS[name]
        overrides = [*bench.PROTOCOL, *bench.init_overrides(name, "normal"), *extra]
        cfg = gankit.load_recipe(preset, overrides)
        G = build_generator(cfg.generator, (2,))
        first = next(m for m in G.modules() if isinstance(m, nn.Linear))
        assert abs(first.weight.std().item() - 0.02) < 0.002, name
        d = cfg.discriminator
        assert (d.get("init") == "normal") == (d["name"] == "mlp"), name
        if d["name"] == "mlp":
            D = build_discriminator(d, (2,))
            biases = [m.bias for m in D.modules() if isinstance(m, nn.Linear)]
            assert biases and all(bool((b == 0).all()) for b in biases), name


def test_2d_benchmark_step_overrides_reach_only_the_methods_that_have_them():
    import mode_coverage_2d as bench

    import gankit

    assert tables.step_overrides("GAN", "alternating", False) == []
    for name in bench.LABELLED:
        preset, extra = bench.METHODS[name]
        overrides = [*bench.PROTOCOL, *extra, *tables.step_overrides(name, "simultaneous", True)]
        options = gankit.load_recipe(preset, overrides).method_options  # unknown keys raise
        assert (options.get("updates") == "simultaneous") == (name in tables.GAN_STEP), name
        assert options.get("split_generator", False) == name.startswith("PacGAN"), name


def test_stacked_benchmark_step_overrides_reach_only_the_methods_that_have_them():
    import mode_coverage_stacked as bench

    import gankit

    for name in bench.LABELLED:
        overrides = [*bench.METHODS[name], *tables.step_overrides(name, "simultaneous", True)]
        cfg = gankit.load_recipe("stacked-digits", overrides)  # unknown keys raise
        options = cfg.method_options
        assert (options.get("updates") == "simultaneous") == (name in tables.GAN_STEP), name
        assert options.get("split_generator", False) == name.startswith("PacGAN"), name
        if name.startswith("PacGAN"):  # the method's own options survive the added keys
            assert options["pack"] == int(name[-1]), name


def test_stacked_benchmark_folders_name_every_deviation_and_the_protocol_none():
    import mode_coverage_stacked as bench

    assert bench.variant_suffix("quarter", "batch") == ""
    assert bench.variant_suffix("quarter", "batch", "alternating", False) == ""
    assert bench.variant_suffix("half", "none", "simultaneous", True) == (
        "-d-half-d-norm-none-simultaneous-split-g"
    )
    assert bench.variant_suffix("quarter", "batch", "simultaneous", False) == "-simultaneous"


def test_cell_gives_mean_and_std_and_inf_alone():
    assert tables.cell({"kl": (0.456, 0.0123)}, "kl") == "0.46 ± 0.01"
    assert tables.cell({"hq": (0.5, None)}, "hq", 100, 1) == "50.0 ± 0.0"
    assert tables.cell({"kl": (float("inf"), float("nan"))}, "kl") == "inf"
    assert tables.cell({}, "kl") == "-"


def test_the_mode_coverage_benchmarks_take_any_registered_method(tmp_path, capsys):
    """A method registered in gankit is a --methods choice of both scripts by its own name,
    without a row in their tables (here: rebuilding an empty table for it)."""
    import mode_coverage_2d
    import mode_coverage_stacked

    from gankit.methods import METHODS

    for bench in (mode_coverage_2d, mode_coverage_stacked):
        assert set(METHODS) <= set(bench.METHODS)
    assert mode_coverage_2d.METHODS["gmmn"] == ("ring8", ["method=gmmn"])
    assert mode_coverage_stacked.METHODS["gmmn"] == ["method=gmmn"]
    mode_coverage_2d.main(["--methods", "gmmn", "--table-only", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        mode_coverage_2d.main(["--methods", "gmn", "--table-only", "--out", str(tmp_path)])
    assert "unknown methods ['gmn']" in capsys.readouterr().err
