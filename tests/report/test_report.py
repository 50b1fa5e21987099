"""gankit report without a browser: self-contained HTML, embedded PNGs, tables, 2D figure."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser

import pytest
from PIL import Image

from gankit.cli import main
from gankit.errors import GankitError
from gankit.report import CURVE_GROUPS, write_report
from gankit.training.outputs import read_metrics

PNG_PREFIX = "data:image/png;base64,"


class Page(HTMLParser):
    """The parts of a report page the tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []  # every src= and href= value
        self.images: list[dict] = []
        self.tags: list[str] = []
        self.metric_rows: list[str] = []
        self._table: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs.items() if k in ("src", "href")]
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self._table = attrs.get("id")
        if tag == "tr" and self._table == "metrics" and "data-run" in attrs:
            self.metric_rows.append(attrs["data-run"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


def page_of(path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def decode_png(src: str) -> Image.Image:
    assert src.startswith(PNG_PREFIX), src[:40]
    raw = base64.b64decode(src[len(PNG_PREFIX) :], validate=True)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(raw))
    image.load()
    assert image.format == "PNG" and image.width > 0 and image.height > 0
    return image


def test_report_is_self_contained(single_report):
    page = page_of(single_report)
    assert not [link for link in page.links if link.lower().startswith(("http:", "https:"))]
    assert "script" not in page.tags  # no JS at all, so nothing to fetch
    remote = r"""(?:src|href)\s*=\s*["']?\s*https?:|url\(\s*["']?\s*https?:|@import"""
    assert not re.search(remote, single_report.read_text(), re.IGNORECASE)
    assert len(page.images) >= 4  # losses, D outputs, eval curves, 2 grids, surface
    for img in page.images:
        decode_png(img["src"])


def test_report_shows_config_curves_and_samples(single_report, ring_runs):
    text = single_report.read_text()
    assert "name: ring8" in text and "hidden: 16" in text  # config.yaml, escaped into <pre>
    logged = {key for line in read_metrics(ring_runs[0]) for key in line}
    for heading, keys in CURVE_GROUPS:  # a group nobody logged is skipped, not an empty plot
        assert (f"<h3>{heading}</h3>" in text) == bool(logged & set(keys)), heading
    assert "<h3>Losses</h3>" in text and "<h3>Evaluation scores during training</h3>" in text
    assert "step 00000030" in text and "step 00000060" in text  # both sample grids


def test_2d_report_has_decision_surface(single_report):
    page = page_of(single_report)
    surface = [img for img in page.images if img.get("alt") == "decision surface"]
    assert len(surface) == 1
    image = decode_png(surface[0]["src"])
    assert image.width >= 300 and image.height >= 300
    assert 'id="decision-surface-0"' in single_report.read_text().replace("'", '"')


def test_two_runs_one_table_two_rows(double_report, ring_runs):
    page = page_of(double_report)
    assert page.metric_rows == [p.name for p in ring_runs]
    text = double_report.read_text()
    assert text.count('id="metrics"') == 1
    for run_dir in ring_runs:
        w1 = json.loads((run_dir / "eval.json").read_text())["metrics"]["w1"]
        assert f'data-value="{w1!r}"' in text


def test_events_and_extra_statistics_are_listed(ring_runs, tmp_path):
    run_dir = shutil.copytree(ring_runs[1], tmp_path / "ring-events")
    lines = [
        {"step": 60, "grad_norm/generator": 0.5, "grad_norm/discriminator": 1.5},
        {"step": 60, "event": "warning", "kind": "d_wins", "message": "D wins outright <b>"},
        {"step": 60, "event": "rollback", "rollback": 1, "of": 3, "non_finite": ["g_loss"]},
        {"step": 60, "p_real": 0.9, "p_fake": 0.1},
    ]
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write("".join(json.dumps(line) + "\n" for line in lines))
    text = write_report([run_dir], tmp_path / "r.html").read_text()
    assert "<h3>Gradient norms</h3>" in text
    assert "d_wins" in text and "D wins outright &lt;b&gt;" in text  # escaped
    assert "rollback: 1" in text and "non_finite: [&#x27;g_loss&#x27;]" in text
    assert "No warnings or rollbacks" not in text


def test_not_a_run_folder(tmp_path):
    with pytest.raises(GankitError, match="not a gankit run folder"):
        write_report([tmp_path], tmp_path / "r.html")
    with pytest.raises(GankitError, match="no such run folder"):
        write_report([tmp_path / "missing"], tmp_path / "r.html")


def test_cli_report(ring_runs, tmp_path, capsys):
    out = tmp_path / "sub" / "cli.html"
    assert main(["report", str(ring_runs[1]), "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path), "--out", str(out)]) == 2
    assert "not a gankit run folder" in capsys.readouterr().err
