"""pix2pix: the conditional discriminator sees (input, output) pairs, G's loss is the
adversarial term plus lambda L1 (checked against a recomputation), and training runs end to
end with an exact resume."""

import math

import pytest
import torch
from state_equality import assert_same, final_state

import gankit
from gankit.config import load_recipe
from gankit.data import build_dataset
from gankit.errors import ConfigError
from gankit.methods.pix2pix import Pix2PixMethod

TINY = {
    "generator.base_channels": 4,
    "generator.depth": 2,
    "discriminator.base_channels": 4,
    "schedule.batch_size": 4,
}


def build(direction="BtoA"):
    over = {**TINY, "method_options.direction": direction, "fast.enabled": False}
    cfg = load_recipe("pix2pix-digits-edges", over)
    torch.manual_seed(0)
    data = build_dataset(cfg.data, seed=cfg.seed)
    return Pix2PixMethod(cfg, data, torch.device("cpu")), cfg


def test_discriminator_scores_pairs_and_generator_loss_is_adv_plus_l1():
    method, cfg = build("BtoA")
    assert method.discriminator.in_shape == (2, 8, 8)  # input and output on the channels
    # the sampler's bank holds the inputs of the direction (edges, domain B, for BtoA)
    edges = method.data.images("b")[0]
    assert torch.equal(method.generator.bank, edges[:64])
    G, D = method.generator.net, method.discriminator
    state = method.data.state_dict()
    a, b, _ = method.data.batch_pairs(4)
    method.data.load_state_dict(state)
    g_before = {k: v.clone() for k, v in G.state_dict().items()}
    rng = torch.get_rng_state()
    logs = method.train_step(0)
    # recompute: G's output at the step's start (same dropout draws), D as updated by the step
    # (G's loss is taken against the updated D), the non-saturating loss and 100 x L1 to a
    G_copy = type(G)(1, 1, 4, 2, "batch", 512, 0.5, 3)
    G_copy.load_state_dict(g_before)
    torch.set_rng_state(rng)
    with torch.no_grad():
        fake = G_copy(b)  # BtoA: edges (b) -> digit (a)
        l1 = (fake - a).abs().mean()
        adv = torch.nn.functional.softplus(-D(torch.cat([b, fake], 1))).mean()
    assert logs["l1"].item() == pytest.approx(l1.item(), rel=1e-5)
    assert logs["adv"].item() == pytest.approx(adv.item(), rel=1e-4)
    assert logs["g_loss"].item() == pytest.approx(adv.item() + 100 * l1.item(), rel=1e-4)


def test_sample_grid_pairs_input_and_output():
    method, _ = build("AtoB")
    s = method.generator.eval()
    with torch.no_grad():
        grid = s.sample_grid(torch.zeros(64, 1))
        assert grid.shape == (64, 1, 8, 8)
        assert torch.equal(grid[0::2], method.data.images("a")[0][:32])
        assert torch.allclose(grid[1::2], s.net(method.data.images("a")[0][:32]))


def test_needs_paired_data():
    with pytest.raises(ConfigError, match="paired"):
        gankit.train("pix2pix-digits-edges", {"data.paired": False, "schedule.steps": 1})


def test_trains_and_resumes_exactly(tmp_path, fast_overrides):
    n = 3
    base = {**fast_overrides, **TINY, "logging.every": 1}
    full = gankit.train("pix2pix-digits-edges", {**base, "schedule.steps": 2 * n}, tmp_path / "f")
    lines = full.metrics()
    for line in lines:
        for key in ("d_loss", "g_loss", "adv", "l1"):
            assert math.isfinite(line[key]), (key, line)
    gankit.train("pix2pix-digits-edges", {**base, "schedule.steps": n}, out=tmp_path / "h")
    resumed = gankit.resume(tmp_path / "h", {"schedule.steps": 2 * n})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 2 * n
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])  # dropout's draws continue
    assert [m["g_loss"] for m in lines] == [m["g_loss"] for m in resumed.metrics()]
    from gankit import evaluate

    result = evaluate(full.path)
    assert {"l1_ba", "label_acc_ba", "classifier_acc"} <= set(result["metrics"])
    assert result["protocol"]["split"] == "test"
