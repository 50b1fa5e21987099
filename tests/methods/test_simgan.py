"""SimGAN: the history buffer against a seeded hand simulation, the rendered digits, and end to
end training with an exact resume."""

import math

import torch
from state_equality import assert_same, final_state

import gankit
from gankit.data.rendered import font_path, render_digits
from gankit.methods.simgan import HistoryBuffer, discriminator_fakes


def test_history_buffer_against_hand_simulation():
    buf = HistoryBuffer(4, seed=7)
    g = torch.Generator().manual_seed(7)  # the buffer's draws, replayed by hand
    img = lambda v: torch.full((1, 1, 1), float(v))  # noqa: E731
    assert buf.sample(2) is None
    buf.push(torch.stack([img(1), img(2), img(3)]))  # room for all: appended, no draw
    assert len(buf) == 3
    expected = [1.0, 2.0, 3.0]
    idx = torch.randperm(3, generator=g)[:2]
    out = buf.sample(2)
    assert out.flatten().tolist() == [expected[i] for i in idx]
    buf.push(torch.stack([img(4), img(5), img(6)]))  # 4 fills the last slot, 5, 6 replace
    expected.append(4.0)
    slots = torch.randperm(4, generator=g)[:2]
    for v, s in zip((5.0, 6.0), slots.tolist()):
        expected[s] = v
    assert buf.images.flatten().tolist() == expected
    state = buf.state_dict()
    copy = HistoryBuffer(4, seed=0)
    copy.load_state_dict(state)
    assert torch.equal(copy.sample(3), buf.sample(3))


def test_discriminator_batch_is_half_current_half_history():
    buf = HistoryBuffer(8, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    out = discriminator_fakes(first, buf)  # empty buffer: all current, half pushed
    assert torch.equal(out, first) and len(buf) == 2
    second = 10 + torch.arange(4.0).view(4, 1, 1, 1)
    out = discriminator_fakes(second, buf)
    assert torch.equal(out[:2], second[:2])
    assert set(out[2:].flatten().tolist()) == {0.0, 1.0}  # from the history
    assert len(buf) == 4


def test_rendered_digits_shapes_labels_and_determinism():
    assert font_path() is not None, "DejaVu fonts expected on this machine"
    x, y = render_digits(30, seed=3)
    assert x.shape == (30, 1, 8, 8) and y.shape == (30,)
    assert x.min() >= -1 and x.max() == 1 and set(y.tolist()) <= set(range(10))
    x2, y2 = render_digits(30, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    # the shipped classifier reads most rendered digits as their labels
    from gankit.metrics.classifier import accuracy, load_classifier

    xs, ys = render_digits(200, seed=0)
    assert accuracy(load_classifier("digits"), xs, ys) > 0.6


TINY = {
    "logging.progress": False,
    "logging.tensorboard": False,
    "logging.every": 1,
    "logging.sample_every": 1000,
    "logging.checkpoint_every": 1000,
    "generator.base_channels": 8,
    "generator.n_blocks": 1,
    "discriminator.base_channels": 8,
    "schedule.batch_size": 8,
    "data.n": 100,
    "method_options.pretrain_refiner": 1,
    "method_options.pretrain_discriminator": 1,
    "method_options.buffer_size": 6,
}


def test_simgan_trains_resumes_and_evaluates(tmp_path):
    full = gankit.train("simgan-digits", {**TINY, "schedule.steps": 6}, out=tmp_path / "full")
    lines = full.metrics()
    assert [m["phase"] for m in lines] == [0, 1, 2, 2, 2, 2]
    for m in lines:
        assert all(math.isfinite(m[k]) for k in ("d_loss", "g_loss", "self_reg"))
    gankit.train("simgan-digits", {**TINY, "schedule.steps": 3}, out=tmp_path / "half")
    resumed = gankit.resume(tmp_path / "half", {"schedule.steps": 6})
    a, b = final_state(full), final_state(resumed)
    assert a["step"] == b["step"] == 6
    for key in ("modules", "optimizers", "method", "data"):
        assert_same(a[key], b[key], key)
    assert a["method"]["buffer"]["count"] == 6
    result = gankit.evaluate(tmp_path / "full")
    m = result["metrics"]
    for key in ("acc_synthetic", "acc_refined", "fid_synthetic", "fid_refined", "acc_real"):
        assert math.isfinite(m[key])
    assert result["protocol"]["split"] == "test"
