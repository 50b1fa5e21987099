"""benchmarks/tables.py: a table built from several invocations names every command behind it."""

import json
import sys
from pathlib import Path

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
