"""`gankit report`: one self-contained HTML page about one or more runs.

Everything is embedded (plots and sample grids as base64 PNG data URIs, CSS inline, no
scripts), so the file opens offline and can be mailed or archived as it is. Sections: the
metrics table (eval.json, one row per run), training curves (losses, gradient norms, D's
outputs, eval scores over time; several runs overlaid, one color each), warnings and
rollbacks, sample grids over time, for 2D data the discriminator's decision surface under the
generator's and the real samples, and the resolved configs.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from gankit.data import build_dataset
from gankit.errors import GankitError
from gankit.methods import METHODS
from gankit.models import build_discriminator
from gankit.run import Run
from gankit.training.checkpoint import load_checkpoint, load_module_state
from gankit.training.outputs import read_metrics
from gankit.tricks import build_tricks, wrap_discriminator
from gankit.version import __version__

# (section title, keys): a figure per group, one panel per key that some run logged
CURVE_GROUPS = [
    ("Losses", ["d_loss", "g_loss"]),
    ("Gradient norms", ["grad_norm/generator", "grad_norm/discriminator"]),
    ("Discriminator outputs", ["p_real", "p_fake", "d_real", "d_fake"]),
    ("Sample diversity", ["diversity"]),
]
MAX_SAMPLE_GRIDS = 12  # per run, evenly spaced, the first and the last included
PROBABILISTIC = {"minimax", "non_saturating"}  # objectives whose D score is a logit
GRID_POINTS = 160  # decision surface resolution per axis


@dataclass
class RunData:
    """What the report shows of one run folder."""

    path: Path
    label: str
    config_text: str
    info: dict
    scalars: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    eval: dict | None = None
    samples: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------- loading


def load_run(path: Path, label: str | None = None) -> RunData:
    path = Path(path)
    if not path.is_dir():
        raise GankitError(f"{path}: no such run folder")
    if not (path / "config.yaml").is_file():
        raise GankitError(
            f"{path} is not a gankit run folder (no config.yaml); "
            "point to the folder `gankit train` printed"
        )
    lines = read_metrics(path)
    return RunData(
        path=path,
        label=label or path.name,
        config_text=(path / "config.yaml").read_text(errors="replace"),
        info=_read_json(path / "run.json") or {},
        scalars=[line for line in lines if "event" not in line],
        events=[line for line in lines if "event" in line],
        eval=_read_json(path / "eval.json"),
        samples=sorted((path / "samples").glob("step_*.png")),
    )


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GankitError(f"{path}: not valid JSON ({exc})") from None
    return value if isinstance(value, dict) else None


def _labels(paths: list[Path]) -> list[str]:
    """Folder names, or the paths as given where two runs share a folder name."""
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]


def series(run: RunData, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one scalar key; lines without it, or with a value that is not a
    finite number (inf reverse KL, NaN), are skipped."""
    points = [
        (line["step"], float(line[key]))
        for line in run.scalars
        if isinstance(line.get(key), (int, float)) and math.isfinite(line[key]) and "step" in line
    ]
    return [s for s, _ in points], [v for _, v in points]


# ---------------------------------------------------------------- figures


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    return Figure(figsize=(width, height), dpi=100)


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_curves(runs: list[RunData], keys: list[str]) -> bytes | None:
    """One panel per key that some run logged, every run overlaid in its own color."""
    present = [k for k in keys if any(series(run, k)[0] for run in runs)]
    if not present:
        return None
    cols = min(len(present), 3)
    rows = math.ceil(len(present) / cols)
    fig = _new_figure(4.2 * cols, 3.0 * rows)
    for i, key in enumerate(present):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j, run in enumerate(runs):
            steps, values = series(run, key)
            if steps:
                marker = "o" if len(steps) < 30 else None  # a lone point stays visible
                ax.plot(
                    steps, values, color=f"C{j % 10}", lw=1.2, ms=3, marker=marker, label=run.label
                )
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    return figure_png(fig)


def eval_keys(runs: list[RunData]) -> list[str]:
    keys: dict[str, None] = {}
    for run in runs:
        for line in run.scalars:
            keys.update((k, None) for k in line if k.startswith("eval/"))
    return list(keys)


def surface_figure(run: RunData) -> bytes | None:
    """For 2D data: D's decision surface (filled contours) under the real and generated
    samples of the newest checkpoint; None for other data or a run without a checkpoint."""
    if list(run.info.get("data_shape") or []) != [2]:
        return None

    opened = Run(run.path)
    checkpoints = opened.checkpoints()
    if not checkpoints:
        return None
    D, meta = load_discriminator(opened, checkpoints[-1])
    fake = opened.sample(1000, seed=0, ema=False).numpy()
    real = _real_points(opened.config, 2000)
    xs, ys = _grid_axes(fake, real)
    probabilistic = opened.config.objective["name"] in PROBABILISTIC
    zz = _score_grid(D, xs, ys, probabilistic)
    return _draw_surface(xs, ys, zz, real, fake, probabilistic, meta.get("step"))


def load_discriminator(run, checkpoint: Path):
    """The discriminator of a checkpoint, built the way the training method builds it."""

    state, meta = load_checkpoint(checkpoint)
    cfg = run.config

    shape = tuple(meta["data_shape"])
    custom = getattr(METHODS[cfg.method], "checkpoint_discriminator", None)
    if custom is not None:  # a method that reshapes D (MAD-GAN's k + 1 classes)
        D, score = custom(cfg, shape)
    else:
        D = build_discriminator(cfg.discriminator, shape)
        D = score = wrap_discriminator(build_tricks(cfg), D, cfg)
    load_module_state(D, state["modules"]["discriminator"], "discriminator", checkpoint)
    return score.eval(), meta


def _real_points(cfg, n: int):
    """n samples of the real data (its seeded reference set), or None if it cannot be read."""

    try:
        data = build_dataset(cfg.data, cfg.seed)
    except GankitError:
        return None
    reference = getattr(data, "reference", None)
    points = reference(n) if reference is not None else data.batch(n)[0]
    return points.cpu().numpy()


def _grid_axes(fake, real):

    clouds = [np.percentile(fake, [1, 99], axis=0)]  # a few far-off fakes do not set the zoom
    if real is not None:
        clouds.append(np.stack([real.min(axis=0), real.max(axis=0)]))
    bounds = np.concatenate(clouds)
    lo, hi = bounds.min(axis=0), bounds.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 0.5) * 1.2
    xs = np.linspace(centre[0] - half, centre[0] + half, GRID_POINTS)
    ys = np.linspace(centre[1] - half, centre[1] + half, GRID_POINTS)
    return xs, ys


@torch.no_grad()
def _score_grid(D, xs, ys, probabilistic: bool):

    gx, gy = np.meshgrid(xs, ys)
    points = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1)).float()
    scores = torch.cat([D(chunk).reshape(len(chunk), -1).mean(1) for chunk in points.split(8192)])
    if probabilistic:
        scores = torch.sigmoid(scores)
    return scores.numpy().reshape(gx.shape)


def _draw_surface(xs, ys, zz, real, fake, probabilistic: bool, step):
    fig = _new_figure(5.6, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    levels = 20
    filled = ax.contourf(xs, ys, zz, levels=levels, cmap="RdBu_r", alpha=0.75)
    if probabilistic:
        ax.contour(xs, ys, zz, levels=[0.5], colors="k", linewidths=1.0)
    fig.colorbar(filled, ax=ax, label="D(x) = sigmoid(score)" if probabilistic else "D score")
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="k", alpha=0.35, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="gold", edgecolors="none", label="generated")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    ax.set_title(f"decision surface at step {step}", fontsize=10)
    fig.tight_layout()
    return figure_png(fig)


# ---------------------------------------------------------------- HTML pieces

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
thead th { background: #f2f2f2; }
img { max-width: 100%; }
.grids { display: flex; flex-wrap: wrap; gap: .8em; }
figure { margin: 0; text-align: center; font-size: .8em; }
.grids img { border: 1px solid #ddd; image-rendering: pixelated; max-width: 280px; }
pre { background: #f6f6f6; padding: .8em; overflow: auto; font-size: .85em; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .4em; }
.muted { color: #777; }
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def fmt(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return esc(value)
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return f"{value:.6g}"


def run_label(run: RunData, index: int) -> str:
    from matplotlib.colors import to_hex

    color = to_hex(f"C{index % 10}")  # the color of the run's curves
    return f'<span class="swatch" style="background:{color}"></span>{esc(run.label)}'


def metrics_table(runs: list[RunData]) -> str:
    """One row per run: status, step, the evaluated checkpoint and every eval.json score."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update((k, None) for k in ((run.eval or {}).get("metrics") or {}))
    head = "".join(f"<th>{esc(k)}</th>" for k in ["run", "status", "step", "evaluated", *keys])
    rows = [_metrics_row(run, i, list(keys)) for i, run in enumerate(runs)]
    return (
        f'<table id="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _metrics_row(run: RunData, index: int, keys: list[str]) -> str:
    scores = (run.eval or {}).get("metrics") or {}
    evaluated = (run.eval or {}).get("checkpoint", "not evaluated")
    cells = [
        f'<td class="run">{run_label(run, index)}</td>',
        f'<td class="text">{esc(run.info.get("status", "unknown"))}</td>',
        f"<td>{fmt(run.info.get('step', ''))}</td>",
        f'<td class="text">{esc(evaluated)}</td>',
    ]
    for key in keys:
        value = scores.get(key)
        cells.append(
            '<td class="muted">-</td>'
            if value is None
            else f'<td data-key="{esc(key)}" data-value="{esc(repr(value))}">{fmt(value)}</td>'
        )
    return f'<tr data-run="{esc(run.label)}">{"".join(cells)}</tr>'


def curves_section(runs: list[RunData]) -> str:
    parts = []
    groups = [*CURVE_GROUPS, ("Evaluation scores during training", eval_keys(runs))]
    for title, keys in groups:
        png = plot_curves(runs, keys) if keys else None
        if png is not None:
            parts.append(f"<h3>{esc(title)}</h3>{img_tag(png, title)}")
    if not parts:
        return "<p class='muted'>No metrics logged yet (metrics.jsonl is empty).</p>"
    return "".join(parts)


def describe_event(event: dict) -> str:
    if "message" in event:
        return str(event["message"])
    rest = {k: v for k, v in event.items() if k not in ("step", "event", "kind")}
    return ", ".join(f"{k}: {v}" for k, v in rest.items())


def events_section(runs: list[RunData]) -> str:
    rows = [
        f"<tr><td>{run_label(run, i)}</td><td>{fmt(ev.get('step', ''))}</td>"
        f'<td class="text">{esc(ev.get("kind") or ev["event"])}</td>'
        f'<td class="text">{esc(describe_event(ev))}</td></tr>'
        for i, run in enumerate(runs)
        for ev in run.events
    ]
    if not rows:
        return "<p class='muted'>No warnings or rollbacks.</p>"
    head = "<tr><th>run</th><th>step</th><th>event</th><th>details</th></tr>"
    return f'<table id="events"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def pick_evenly(items: list, k: int) -> list:
    if len(items) <= k:
        return list(items)
    picks = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in picks]


def samples_section(runs: list[RunData]) -> str:
    parts = []
    for i, run in enumerate(runs):
        figures = [
            f"<figure>{img_tag(png.read_bytes(), png.stem)}"
            f"<figcaption>{esc(png.stem.replace('_', ' '))}</figcaption></figure>"
            for png in pick_evenly(run.samples, MAX_SAMPLE_GRIDS)
        ]
        body = "".join(figures) or "<p class='muted'>No sample grids saved yet.</p>"
        parts.append(f"<h3>{run_label(run, i)}</h3><div class='grids'>{body}</div>")
    return "".join(parts)


def surface_section(runs: list[RunData]) -> str:
    parts = []
    for i, run in enumerate(runs):
        png = surface_figure(run)
        if png is not None:
            parts.append(
                f"<h3>{run_label(run, i)}</h3><figure id='decision-surface-{i}'>"
                f"{img_tag(png, 'decision surface')}<figcaption>the raw generator's samples "
                "(gold) and real samples (black) over the discriminator's output; the black "
                "line is D(x) = 0.5 where D is a probability</figcaption></figure>"
            )
    return "".join(parts)


def config_section(runs: list[RunData]) -> str:
    return "".join(
        f"<details{' open' if len(runs) == 1 else ''}><summary>{run_label(run, i)} "
        f"<span class='muted'>{esc(run.path)}/config.yaml</span></summary>"
        f"<pre>{esc(run.config_text)}</pre></details>"
        for i, run in enumerate(runs)
    )


def render(runs: list[RunData]) -> str:
    title = "gankit report: " + ", ".join(run.label for run in runs)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("Metrics", metrics_table(runs)),
        ("Training curves", curves_section(runs)),
        ("Warnings and rollbacks", events_section(runs)),
        ("Samples over time", samples_section(runs)),
        ("Decision surface (2D data)", surface_section(runs)),
        ("Resolved config", config_section(runs)),
    ]
    body = "".join(f"<h2>{esc(name)}</h2>{content}" for name, content in sections if content)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title>"
        '<link rel="icon" href="data:,">'  # no favicon request, no console error
        f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
        f"<p class='muted'>gankit {esc(__version__)}, written {stamp}</p>{body}</body></html>\n"
    )


def write_report(run_dirs: list[Path], out: Path) -> Path:
    """Write one self-contained HTML report about the run folders `run_dirs` to `out`."""
    if not run_dirs:
        raise GankitError("give at least one run folder")
    paths = [Path(p) for p in run_dirs]
    runs = [load_run(p, label) for p, label in zip(paths, _labels(paths))]
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(runs), encoding="utf-8")
    except OSError as exc:
        raise GankitError(f"--out {out}: cannot write the report: {exc.strerror}") from None
    return out
