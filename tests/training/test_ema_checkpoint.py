"""EMA against its formula; checkpoint encoding and atomic folders; the GAN step's bookkeeping."""

import numpy as np
import pytest
import torch
from torch import nn

import gankit
from gankit.methods.ema import EMA
from gankit.training.checkpoint import (
    flatten_state,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    unflatten_state,
)


def test_ema_follows_the_recursive_average_written_out():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9, start=2)
    expected = [p.detach().clone() for p in model.parameters()]
    history = []
    for step in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.full_like(p, float(step)))
        model(torch.randn(4, 3))  # moves the BatchNorm running statistics
        history.append([p.detach().clone() for p in model.parameters()])
        ema.update(model, step)
        for i, p in enumerate(model.parameters()):
            if step < 2:
                expected[i] = p.detach().clone()  # before `start`, the EMA copies the model
            else:
                expected[i] = 0.9 * expected[i] + 0.1 * p.detach()
    for mine, want in zip(ema.model.parameters(), expected):
        torch.testing.assert_close(mine, want)
    # buffers are copied, not averaged
    torch.testing.assert_close(ema.model[1].running_mean, model[1].running_mean)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_state_round_trip_keeps_types_and_values():
    rng = np.random.default_rng(0)
    state = {
        "w": torch.arange(6.0).view(2, 3),
        "opt": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}, 1: {}},
        "groups": [{"lr": 0.1, "betas": (0.5, 0.999), "params": [0, 1]}],
        "np": rng.integers(0, 2**32, size=5, dtype=np.uint32),
        "none": None,
        "flag": True,
    }
    skeleton, tensors = flatten_state(state)
    back = unflatten_state(skeleton, tensors)
    assert torch.equal(back["w"], state["w"])
    assert set(back["opt"]) == {0, 1} and torch.equal(back["opt"][0]["exp_avg"], torch.ones(2))
    assert back["groups"][0]["betas"] == (0.5, 0.999)
    assert back["np"].dtype == np.uint32 and (back["np"] == state["np"]).all()
    assert back["none"] is None and back["flag"] is True


def test_only_complete_checkpoints_count(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"x": torch.tensor([float(step)])}, {"name": "t"})
    (tmp_path / ".tmp-step_00000004-999999").mkdir()  # a write cut short by a kill
    (tmp_path / "step_00000005").mkdir()  # no meta.json: never renamed into place by gankit
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_00000001",
        "step_00000002",
        "step_00000003",
    ]
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000003"]
    assert not (tmp_path / ".tmp-step_00000004-999999").exists()
    state, meta = load_checkpoint(tmp_path / "step_00000003")
    assert meta["step"] == 3 and meta["name"] == "t" and state["x"].item() == 3.0


@pytest.mark.parametrize("n_critic", [1, 3])
def test_each_discriminator_pass_sees_one_pure_batch(tmp_path, fast_overrides, n_critic):
    """n_critic D steps per G step, and BatchNorm in D never sees real and fake mixed."""
    from gankit.api import prepare

    batch = 8
    trainer = prepare(
        "ring8",
        {
            **fast_overrides,
            "schedule.steps": 2,
            "schedule.batch_size": batch,
            "schedule.n_critic": n_critic,
        },
        tmp_path / "r",
    )
    seen = []
    trainer.method.discriminator.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    trainer.fit()
    assert all(x.shape[0] == batch for x in seen)
    # per step: (real, fake) for each critic step, then fake for the generator step
    assert len(seen) == 2 * (2 * n_critic + 1)
    means = trainer.data.means
    for i, x in enumerate(seen):
        j = i % (2 * n_critic + 1)  # position within the step
        is_real_pass = j < 2 * n_critic and j % 2 == 0
        nearest = torch.cdist(x.detach(), means).min(dim=1).values
        # real ring points lie within a few std (0.01) of a mode; the untrained G's do not
        assert (nearest.max() < 0.1) == is_real_pass


def test_weight_clipping_keeps_critic_weights_in_range(tmp_path, fast_overrides):
    run = gankit.train(
        "ring8-wgan-gp",
        {**fast_overrides, "schedule.steps": 5, "objective": {"name": "wasserstein", "clip": 0.02}},
        out=tmp_path / "w",
    )
    state, _ = load_checkpoint(run.checkpoints()[-1])
    d = state["modules"]["discriminator"]
    assert max(v.abs().max().item() for v in d.values()) <= 0.02 + 1e-7
    cfg = gankit.load_recipe(run.path / "config.yaml")
    assert cfg.optim.discriminator.name == "rmsprop" and cfg.optim.discriminator.lr == 5e-5


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_recalibrate_sets_the_average_of_the_batch_statistics_written_out():
    model = _bn_net()
    ema = EMA(model, decay=0.9)
    with torch.no_grad():  # weights the raw model's running statistics do not fit
        ema.model[0].weight.mul_(3.0).add_(1.0)
    weights = [p.clone() for p in ema.model.parameters()]
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 3, generator=g) for _ in range(5)]
    # by hand: BatchNorm sees W x + b; running mean = mean of the batch means, running var =
    # mean of the unbiased batch variances (a cumulative average over the 5 batches)
    W, b = ema.model[0].weight, ema.model[0].bias
    pre = [x @ W.T + b for x in batches]
    want_mean = torch.stack([h.mean(0) for h in pre]).mean(0)
    want_var = torch.stack([h.var(0, unbiased=True) for h in pre]).mean(0)
    stream = iter(batches)
    ema.recalibrate(lambda: next(stream), batches=5)
    bn = ema.model[1]
    torch.testing.assert_close(bn.running_mean, want_mean)
    torch.testing.assert_close(bn.running_var, want_var)
    assert int(bn.num_batches_tracked) == 5
    assert bn.momentum == 0.1 and not ema.model.training  # restored: momentum, eval mode
    for mine, before in zip(ema.model.parameters(), weights):
        assert torch.equal(mine, before)  # only statistics change
    # the copied statistics were the raw model's, far from these
    assert not torch.allclose(model[1].running_mean, want_mean, atol=0.1)


def test_recalibrate_leaves_a_network_without_batch_norm_alone():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    ema = EMA(model, decay=0.9)
    calls = []
    ema.recalibrate(lambda: calls.append(1) or torch.zeros(2, 3), batches=4)
    assert calls == []  # no forward pass at all


def test_a_run_saves_standing_statistics_that_fit_its_ema_weights(tmp_path, fast_overrides):
    """ema.bn_batches: the checkpoint's EMA statistics are those of the averaged weights on
    fresh noise (checked against 20,000 new samples), not the raw G's copied ones."""
    overrides = {
        **fast_overrides,
        "generator.hidden": 32,
        "generator.depth": 2,
        "discriminator.hidden": 16,
        "discriminator.depth": 2,
        "schedule.batch_size": 100,
        "schedule.steps": 40,
        "ema.enabled": True,
        "ema.decay": 0.8,
        "ema.bn_batches": 40,
    }
    run = gankit.train("ring8", overrides, out=tmp_path / "r")
    state, _ = load_checkpoint(run.checkpoints()[-1])
    G = run.generator(ema=True)
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm1d)]
    assert norms, "the ring8 generator has BatchNorm layers"
    first = norms[0]
    inputs = []
    handle = first.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    G.train()
    with torch.no_grad():
        G(torch.randn(20000, 2, generator=torch.Generator().manual_seed(5)))
    handle.remove()
    h = inputs[0]
    # 4,000 noise samples against 20,000: measured within 3% (mean, in units of the spread)
    # and 2% (variance); the raw G's copied variances are off by up to 64%
    assert (first.running_mean - h.mean(0)).abs().max() < 0.1 * h.std(0).mean()
    torch.testing.assert_close(first.running_var, h.var(0), rtol=0.1, atol=1e-6)
    raw = state["modules"]["generator"]
    raw_mean = next(v for k, v in raw.items() if k.endswith("running_mean"))
    assert not torch.equal(raw_mean, first.running_mean)


def test_standing_statistics_need_a_count_and_a_generator_fed_noise(tmp_path, fast_overrides):
    with pytest.raises(gankit.ConfigError, match="ema.bn_batches: must be >= 0"):
        gankit.train("ring8", {"ema.bn_batches": -1}, out=tmp_path / "r")
    bad = {**fast_overrides, "ema.enabled": True, "ema.bn_batches": 4, "schedule.steps": 1}
    with pytest.raises(gankit.ConfigError, match="feeds its generator images"):
        gankit.train("pix2pix-digits-edges", bad, out=tmp_path / "p")
