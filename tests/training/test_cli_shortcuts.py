"""`gankit train --steps N --seed S`: the same run as --set schedule.steps=N seed=S; --steps
also extends a resumed run, --seed is refused there."""

from __future__ import annotations

import json

import yaml

from gankit.cli import main

QUIET = ["--set", "logging.progress=false", "logging.tensorboard=false", "logging.every=2"]


def test_steps_and_seed_are_the_recipe_keys(tmp_path, capsys):
    assert main(["train", "ring8", "--steps", "4", "--seed", "7", "--out", str(tmp_path / "a"),
                 *QUIET]) == 0  # fmt: skip
    assert main(["train", "ring8", "--out", str(tmp_path / "b"), *QUIET, "schedule.steps=4",
                 "seed=7"]) == 0  # fmt: skip
    cfg = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert cfg["seed"] == 7 and cfg["schedule"]["steps"] == 4
    same = [(tmp_path / r / "metrics.jsonl").read_text().splitlines() for r in ("a", "b")]
    strip = [[{k: v for k, v in json.loads(x).items() if not k.endswith("per_sec")} for x in s]
             for s in same]  # fmt: skip
    assert strip[0] == strip[1]  # the same run, line for line
    # --steps extends a run on resume; --seed is refused there, in one line
    assert main(["train", "--resume", str(tmp_path / "a"), "--steps", "6"]) == 0
    assert json.loads((tmp_path / "a" / "run.json").read_text())["step"] == 6
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "a"), "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit: error: --seed: a resumed run keeps its seed")
    assert err.count("\n") == 1
