"""The user's own components: `package.module:callable` names, entry points, Python objects."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import gankit
from gankit.api import prepare
from gankit.config import load_recipe
from gankit.errors import ConfigError
from gankit.registry import OBJECT, Registry

GANKIT = str(Path(sys.executable).parent / "gankit")  # the console script: no cwd on sys.path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The README's own-components example: the code block after its marker."""
    text = README.read_text()
    block = text.split("<!-- own-components-example -->", 1)[1]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def cli(*args, cwd, check=True):
    proc = subprocess.run([GANKIT, *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(proc.stderr[-2000:])
    return proc


def test_own_dataset_and_generator_by_import_path_through_the_cli(tmp_path):
    example = readme_example()
    assert len(example.strip().splitlines()) <= 30
    (tmp_path / "my_gan.py").write_text(example)
    run = tmp_path / "run"
    quiet = ["--set", "logging.progress=false", "--set", "logging.tensorboard=false"]
    cli(
        "train",
        "quickstart",
        "--steps",
        "8",
        "--out",
        str(run),
        *quiet,
        "--set",
        "data={name: 'my_gan:Blobs', n: 300}",
        "--set",
        "generator={name: 'my_gan:generator', width: 32}",
        cwd=tmp_path,
    )
    saved = (run / "config.yaml").read_text()
    assert "name: my_gan:Blobs" in saved and "name: my_gan:generator" in saved
    assert "width: 32" in saved and "stream: auto" in saved  # every default written
    cli("sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png"), cwd=tmp_path)
    assert (tmp_path / "s.png").stat().st_size > 0
    cli("train", "--resume", str(run), "--steps", "10", cwd=tmp_path)
    assert (run / "checkpoints" / "step_00000010").is_dir()
    # elsewhere the module is not importable: one line that names it and why
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = cli("sample", str(run), "--n", "4", "--out", "x.png", cwd=elsewhere, check=False)
    assert proc.returncode != 0
    assert "cannot import module 'my_gan'" in proc.stderr
    assert "No module named 'my_gan'" in proc.stderr and "Traceback" not in proc.stderr


def test_import_path_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_mod.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / "plain_mod.py").write_text(
        "WIDTH = 3\n"
        "def gen(latent_dim, out_shape, width: int = 8):\n"
        "    import torch\n"
        "    return torch.nn.Linear(latent_dim, 2)\n"
        "def not_a_module(latent_dim):\n"
        "    return 'x'\n"
    )
    cases = [
        ("nowhere_mod:gen", "cannot import module 'nowhere_mod'.*ModuleNotFoundError"),
        ("broken_mod:gen", "cannot import module 'broken_mod'.*RuntimeError: no GPU here"),
        ("plain_mod:missing", "module 'plain_mod' has no attribute 'missing'"),
        ("plain_mod:WIDTH", r"'plain_mod:WIDTH' is not callable \(type int\)"),
    ]
    for name, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_recipe("ring8", {"generator": {"name": name}})
    with pytest.raises(ConfigError, match=r"generator.depth: unknown option.*valid options: width"):
        load_recipe("ring8", {"generator": {"name": "plain_mod:gen", "depth": 2}})
    with pytest.raises(ConfigError, match="generator.width: expected an integer"):
        load_recipe("ring8", {"generator": {"name": "plain_mod:gen", "width": "wide"}})
    cfg = load_recipe(
        "ring8", {"generator": {"name": "plain_mod:not_a_module"}, "schedule.steps": 2}
    )
    with pytest.raises(ConfigError, match="returned a str, not a torch.nn.Module"):
        prepare(cfg, out=tmp_path / "r")


def test_entry_points_register_components(tmp_path, monkeypatch):
    """An installed package's entry point (a dist-info on sys.path, as pip leaves it)."""
    (tmp_path / "widgets_pkg.py").write_text("def tiny(scale: float = 1.0):\n    return scale\n")
    info = tmp_path / "widgets_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: widgets-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[gankit.widgets]\ntiny = widgets_pkg:tiny\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    widgets = Registry("widget")
    assert widgets.entry_point_group == "gankit.widgets"
    assert "tiny" in widgets and widgets.names() == ["tiny"]
    assert widgets.get("tiny")(scale=2.0) == 2.0
    assert widgets.check_options("tiny", {"scale": 3}, "widget") == {"scale": 3.0}
    (info / "entry_points.txt").write_text("[gankit.gizmos]\nbad = widgets_pkg:nothing\n")
    with pytest.raises(ConfigError, match="gizmo 'bad' from entry point 'widgets_pkg:nothing'"):
        Registry("gizmo").names()


class TinyGenerator(nn.Module):
    latent_dim = 3

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 2)

    def forward(self, z):
        return self.net(z)


def test_python_objects_through_the_api(tmp_path, fast_overrides):
    points = torch.randn(512, 2)
    G = TinyGenerator()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    run = gankit.train(
        "ring8",
        {**fast_overrides, "schedule.steps": 6},
        out=tmp_path / "r",
        generator=G,
        data=points,
    )
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # a copy trained
    cfg = run.config
    assert cfg.generator["name"] == OBJECT and cfg.generator["latent_dim"] == 3
    assert cfg.generator["object"] == f"{__name__}:TinyGenerator"
    assert cfg.data == {"name": OBJECT, "object": "torch:Tensor"}
    assert run.sample(5).shape == (5, 2)
    # reopened without the objects: what is missing and what to pass
    reopened = gankit.open_run(tmp_path / "r")
    with pytest.raises(ConfigError, match=r"gankit.open_run\(path, generator=\.\.\.\)"):
        reopened.sample(2)
    again = gankit.open_run(tmp_path / "r", generator=TinyGenerator())
    assert torch.equal(again.sample(4, seed=1), run.sample(4, seed=1))
    resumed = gankit.resume(
        tmp_path / "r", {"schedule.steps": 9}, generator=TinyGenerator(), data=points
    )
    assert resumed.info["step"] == 9
    with pytest.raises(ConfigError, match="generator: expected a torch.nn.Module"):
        gankit.train("ring8", out=tmp_path / "x", generator="G")
