"""The demos' numbers against their closed forms (and the CLI that draws them)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.cli import main
from gankit.demos import divergences, optimal_d, xy_game


@pytest.mark.parametrize("eta", [0.05, 0.1, 0.3])
def test_simultaneous_steps_grow_the_radius_by_sqrt_1_plus_eta_squared(eta):
    path = xy_game.simultaneous(0.6, -0.8, eta, 50)
    radii = np.hypot(path[:, 0], path[:, 1])
    np.testing.assert_allclose(radii[1:] / radii[:-1], math.sqrt(1 + eta**2), rtol=1e-12)


def test_simultaneous_step_by_hand():
    # x' = x - eta y, y' = y + eta x from the same (x, y)
    path = xy_game.simultaneous(1.0, 2.0, 0.5, 1)
    assert path[1].tolist() == [1.0 - 0.5 * 2.0, 2.0 + 0.5 * 1.0]


def test_alternating_steps_stay_near_the_start_radius():
    path = xy_game.alternating(1.0, 0.0, 0.1, 2000)
    radii = np.hypot(path[:, 0], path[:, 1])
    assert radii.min() > 0.9 and radii.max() < 1.1  # an orbit, neither in nor out
    # the second player sees the first one's new value
    assert path[1].tolist() == [1.0, 0.1 * 1.0]


def test_historical_averaging_moves_toward_the_equilibrium():
    path = xy_game.with_historical_averaging(1.0, 0.0, 0.1, 400)
    radii = np.hypot(path[:, 0], path[:, 1])
    assert radii[-1] < 0.25 * radii[0]
    assert radii[200:].max() < radii[:50].max()


def test_historical_averaging_first_step_by_hand():
    # at step 0 the running means equal the start, so the penalties have zero gradient and
    # the first step is the plain simultaneous one
    path = xy_game.with_historical_averaging(1.0, 2.0, 0.5, 2, weight=0.5)
    np.testing.assert_allclose(path[1], [0.0, 2.5], atol=1e-12)
    # second step: means are (1 + 0)/2 = 0.5 and (2 + 2.5)/2 = 2.25;
    # x' = x - eta (y + 2 w (x - mx)), y' = y - eta (-x + 2 w (y - my))
    x, y, w, eta = 0.0, 2.5, 0.5, 0.5
    expected = [x - eta * (y + 2 * w * (x - 0.5)), y - eta * (-x + 2 * w * (y - 2.25))]
    np.testing.assert_allclose(path[2], expected, atol=1e-12)


def test_js_is_log2_for_disjoint_segments_and_zero_for_equal_ones():
    r = divergences.run(thetas=[-1.0, -0.1, 0.0, 0.05, 0.7], n=50)
    np.testing.assert_allclose(r["js"], [math.log(2)] * 2 + [0.0] + [math.log(2)] * 2, atol=1e-12)


def test_w1_is_the_distance():
    thetas = [-1.0, -0.25, 0.0, 0.3, 0.9]
    r = divergences.run(thetas=thetas, n=50)
    np.testing.assert_allclose(r["w1"], np.abs(thetas), atol=1e-9)


def test_js_of_overlapping_atoms_by_hand():
    # p = 1/2 on a, 1/2 on b; q = 1 on a: m = (3/4, 1/4)
    p = np.array([[0.0, 0.0], [1.0, 0.0]])
    q = np.array([[0.0, 0.0], [0.0, 0.0]])
    expected = 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)) + 0.5 * (
        1.0 * math.log(1.0 / 0.75)
    )
    assert divergences.js_divergence(p, q) == pytest.approx(expected, abs=1e-12)


def test_optimal_d_formula_by_hand():
    x = np.array([0.0, 1.5])
    phi = lambda v, m, s: math.exp(-0.5 * ((v - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    for v, got in zip(x, optimal_d.optimal_d(x)):
        data = 0.5 * phi(v, -1.5, 0.5) + 0.5 * phi(v, 1.5, 0.5)
        fake = phi(v, 0.0, 1.0)
        assert got == pytest.approx(data / (data + fake), rel=1e-12)


def test_trained_discriminator_approaches_the_optimal_one():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: threads cost more than they save
    try:
        r = optimal_d.run(steps=1500)
    finally:
        torch.set_num_threads(threads)
    inside = np.abs(r["x"]) <= 2.5
    assert np.abs(r["trained"] - r["optimal"])[inside].max() < 0.1


@pytest.mark.parametrize("name", ["xy-game", "divergences"])
def test_cli_writes_the_figure(name, tmp_path, capsys):
    out = tmp_path / "figs" / f"{name}.png"
    assert main(["demo", name, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
