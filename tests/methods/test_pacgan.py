"""PacGAN: pack shapes and contents, and that real and fake samples never share a pack."""

import pytest
import torch

from gankit.config import load_recipe
from gankit.data import build_dataset
from gankit.errors import ConfigError
from gankit.methods.pacgan import PacGANMethod, pack

SMALL = {
    "generator.hidden": 16,
    "generator.depth": 2,
    "discriminator.hidden": 16,
    "discriminator.depth": 2,
    "schedule.batch_size": 12,
}


def by_hand(x, m):
    """Pack i: samples i*m .. i*m+m-1 concatenated along the first feature axis."""
    n = x.shape[0] // m
    return torch.stack([torch.cat([x[i * m + j] for j in range(m)], dim=0) for i in range(n)])


@pytest.mark.parametrize("shape", [(2,), (3, 8, 8), (1, 4, 4)])
@pytest.mark.parametrize("m", [1, 2, 3])
def test_pack_shapes_and_contents(shape, m):
    x = torch.randn(6, *shape)
    packed = pack(x, m)
    assert packed.shape == (6 // m, m * shape[0], *shape[1:])
    assert torch.equal(packed, by_hand(x, m))


def test_indivisible_batch_is_a_clear_error():
    with pytest.raises(ConfigError, match="packs of 4"):
        pack(torch.randn(6, 2), 4)
    with pytest.raises(ConfigError, match="not divisible by the pack size 4"):
        load_recipe("ring8-pacgan4", {"schedule.batch_size": 10})


def build(overrides):
    cfg = load_recipe("ring8-pacgan4", {**SMALL, **overrides})
    torch.manual_seed(0)
    data = build_dataset(cfg.data, seed=cfg.seed)
    return PacGANMethod(cfg, data, torch.device("cpu")), data


@pytest.mark.parametrize("m", [2, 3, 4])
def test_discriminator_sees_only_pure_packs(m):
    method, data = build({"method_options.pack": m})
    assert method.discriminator.body[0].linear.in_features == 2 * m  # a maxout input layer
    reals, fakes, seen = [], [], []
    batch = data.batch

    def recording_batch(n):
        x, y = batch(n)
        reals.append(x.detach().clone())
        return x, y

    data.batch = recording_batch
    method.generator.register_forward_hook(lambda mod, i, out: fakes.append(out.detach().clone()))
    method.discriminator.register_forward_pre_hook(lambda mod, i: seen.append(i[0].detach()))
    for step in range(3):
        method.train_step(step)
    assert len(reals) == len(fakes) == 3
    assert len(seen) == 9  # per step: D(real), D(fake) in D's step, D(fake) in G's step
    for step in range(3):
        d_real, d_fake, g_fake = seen[3 * step : 3 * step + 3]
        assert d_real.shape == (12 // m, 2 * m)
        assert torch.equal(d_real, by_hand(reals[step], m))
        assert torch.equal(d_fake, by_hand(fakes[step], m))
        assert torch.equal(g_fake, by_hand(fakes[step], m))
        # no pack holds a real sample and a fake one: every real pack is made only of real
        # samples of this step and every fake pack only of fake ones
        real_rows = {tuple(r.tolist()) for r in reals[step]}
        fake_rows = {tuple(r.tolist()) for r in fakes[step]}
        for p in d_real:
            assert all(tuple(s.tolist()) in real_rows for s in p.view(m, 2))
        for p in d_fake:
            assert all(tuple(s.tolist()) in fake_rows for s in p.view(m, 2))


def test_gradient_penalty_runs_per_pack():
    method, _ = build({"objective": {"name": "wgan_gp"}, "method_options.pack": 2})
    logs = method.train_step(0)
    assert torch.isfinite(logs["reg/GradientPenalty"]) and torch.isfinite(logs["d_loss"])


def test_report_scores_points_with_packs_of_copies(tmp_path):
    """The 2D report's decision surface of a PacGAN run: D's score of a point x is its score of
    the pack (x, x, ..., x), computed here by hand from the checkpoint's packed D."""
    import gankit
    from gankit.models import build_discriminator
    from gankit.report import load_discriminator, load_run, surface_figure
    from gankit.training.checkpoint import load_checkpoint

    overrides = {
        "schedule.steps": 4,
        "schedule.batch_size": 20,
        "generator.hidden": 16,
        "discriminator.hidden": 16,
        "logging.progress": False,
        "logging.tensorboard": False,
    }
    run = gankit.train("ring8-pacgan4", overrides, out=tmp_path / "run")
    checkpoint = run.checkpoints()[-1]
    score, _ = load_discriminator(run, checkpoint)
    D = build_discriminator(run.config.discriminator, (8,))
    D.load_state_dict(load_checkpoint(checkpoint)[0]["modules"]["discriminator"])
    D.eval()
    x = torch.randn(5, 2)
    with torch.no_grad():
        want = D(torch.cat([x, x, x, x], dim=1))
        assert torch.allclose(score(x), want)
    assert surface_figure(load_run(run.path)) is not None
