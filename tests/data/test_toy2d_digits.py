"""toy2d mixtures, scikit-learn digits and InMemoryData's epoch/resume semantics.

Expected values are stated by hand: ring means from math.cos/sin, grid means from
itertools.product, digit counts from the 80/20 stratified split of 1,797 images.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from gankit.data import build_dataset
from gankit.data.base import InMemoryData, to_unit_range
from gankit.errors import ConfigError, DataError

# ---------------------------------------------------------------------------------------------
# toy2d


def toy(seed: int = 0, **options):
    return build_dataset({"name": "toy2d", **options}, seed=seed)


def as_points(means: torch.Tensor) -> set[tuple[float, float]]:
    return {(round(float(x), 6), round(float(y), 6)) for x, y in means.tolist()}


def std_estimate(source, n: int = 20_000) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Per-coordinate std from the RMS distance of each sample to its labelled mean."""
    x, labels = source.batch(n)
    dist = (x - source.means[labels]).norm(dim=1)
    return float(dist.pow(2).mean().sqrt() / math.sqrt(2)), x, labels


def test_ring_means_by_hand():
    source = toy(mode="ring")
    expected = torch.tensor(
        [[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)]
    )
    assert source.means.shape == (8, 2)
    torch.testing.assert_close(source.means, expected, atol=1e-6, rtol=0)
    assert source.means[0].tolist() == pytest.approx([1.0, 0.0])
    assert source.means[2].tolist() == pytest.approx([0.0, 1.0], abs=1e-6)
    assert source.num_classes == 8
    assert source.shape == (2,)


def test_ring_samples_std_and_labels():
    source = toy(mode="ring")
    std, x, labels = std_estimate(source)
    assert x.shape == (20_000, 2) and labels.shape == (20_000,)
    assert std == pytest.approx(0.01, rel=0.03)
    # every sample is far nearer its own mode than any other (modes are 0.765 apart)
    nearest = torch.cdist(x, source.means).argmin(dim=1)
    assert torch.equal(nearest, labels)
    counts = torch.bincount(labels, minlength=8)
    assert counts.sum() == 20_000
    # 2,500 expected per mode, binomial sd ~47
    assert int(counts.min()) > 2300 and int(counts.max()) < 2700


def test_grid_means_and_std():
    source = toy(mode="grid")
    expected = set(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert source.means.shape == (25, 2)
    assert as_points(source.means) == expected
    assert source.num_classes == 25
    std, _, labels = std_estimate(source)
    assert std == pytest.approx(0.05, rel=0.03)
    counts = torch.bincount(labels, minlength=25)
    assert int(counts.min()) > 20_000 / 25 * 0.75


def test_configurable_ring():
    source = toy(mode="ring", n_modes=6, radius=2.5, std=0.1)
    expected = torch.tensor(
        [
            [2.5 * math.cos(2 * math.pi * i / 6), 2.5 * math.sin(2 * math.pi * i / 6)]
            for i in range(6)
        ]
    )
    torch.testing.assert_close(source.means, expected, atol=1e-6, rtol=0)
    assert source.num_classes == 6
    std, _, labels = std_estimate(source)
    assert std == pytest.approx(0.1, rel=0.03)
    assert set(labels.tolist()) == set(range(6))


def test_configurable_grid():
    source = toy(mode="grid", n_modes=9, spacing=1.0, std=0.2)
    assert as_points(source.means) == set(itertools.product([-1.0, 0.0, 1.0], repeat=2))
    std, _, _ = std_estimate(source)
    assert std == pytest.approx(0.2, rel=0.03)


@pytest.mark.parametrize("n_modes", [24, 2, 8])
def test_non_square_grid_is_a_config_error(n_modes):
    with pytest.raises(ConfigError, match="n_modes") as info:
        toy(mode="grid", n_modes=n_modes)
    assert str(n_modes) in str(info.value)


@pytest.mark.parametrize(
    "options, key",
    [
        ({"mode": "ring", "n_modes": 0}, "data.n_modes"),
        ({"mode": "ring", "std": 0.0}, "data.std"),
        ({"mode": "grid", "std": -0.1}, "data.std"),
        ({"mode": "circle"}, "data.mode"),
        ({"radiuss": 1.0}, "data.radiuss"),
    ],
)
def test_bad_toy2d_options(options, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        toy(**options)


def test_spiral_shape_and_range():
    source = toy(mode="spiral")
    x, labels = source.batch(500)
    assert x.shape == (500, 2)
    assert labels is None
    assert source.num_classes is None
    assert torch.isfinite(x).all()
    # t in [0, 1] is the radius before noise (std 0.02)
    assert float(x.norm(dim=1).max()) < 1.2


@pytest.mark.parametrize("mode", ["ring", "grid", "spiral"])
def test_fresh_samples_each_call(mode):
    source = toy(mode=mode)
    a, _ = source.batch(64)
    b, _ = source.batch(64)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("mode", ["ring", "grid", "spiral"])
def test_same_seed_same_stream_other_seed_other_stream(mode):
    a, b, c = toy(seed=7, mode=mode), toy(seed=7, mode=mode), toy(seed=8, mode=mode)
    for n in (5, 64, 100):
        xa, ya = a.batch(n)
        xb, yb = b.batch(n)
        xc, _ = c.batch(n)
        assert torch.equal(xa, xb)
        assert (ya is None and yb is None) or torch.equal(ya, yb)
        assert not torch.equal(xa, xc)


@pytest.mark.parametrize("mode", ["ring", "spiral"])
def test_state_dict_resumes_the_exact_stream(mode):
    source = toy(seed=3, mode=mode)
    source.batch(50)
    source.batch(17)
    state = source.state_dict()
    expected = [source.batch(n)[0] for n in (10, 33, 64)]

    other = toy(seed=99, mode=mode)  # a different seed: the state alone must decide the stream
    other.batch(5)
    other.load_state_dict(state)
    for n, want in zip((10, 33, 64), expected):
        assert torch.equal(other.batch(n)[0], want)

    # the saved state is a snapshot, not a live view of the generator
    source.load_state_dict(state)
    assert torch.equal(source.batch(10)[0], expected[0])


def test_reference_does_not_touch_the_training_stream():
    a, b = toy(seed=1), toy(seed=1)
    a.batch(10)
    b.batch(10)
    ref = a.reference(1000)
    assert ref.shape == (1000, 2)
    assert torch.equal(a.batch(32)[0], b.batch(32)[0])
    assert torch.equal(a.reference(1000), ref)  # and is itself deterministic
    assert torch.equal(a.batch(32)[0], b.batch(32)[0])


# ---------------------------------------------------------------------------------------------
# digits

N_DIGITS = 1797  # sklearn.datasets.load_digits()
N_TEST = 360  # ceil(0.2 * 1797)
N_TRAIN = 1437


@pytest.fixture(scope="module")
def sk():
    bunch = load_digits()
    return bunch.images.astype(np.int64), bunch.target.astype(np.int64)


@pytest.fixture(scope="module")
def splits():
    return {s: build_dataset({"name": "digits", "split": s}, seed=0) for s in ("train", "test")}


def rows(x: torch.Tensor) -> list[bytes]:
    return [r.tobytes() for r in x.reshape(len(x), -1).numpy().astype(np.float32)]


def test_digits_sizes_and_shape(splits, sk):
    train, test = splits["train"], splits["test"]
    default = build_dataset({"name": "digits"}, seed=0)
    assert len(default) == N_TRAIN and default.name == "digits-train"
    assert len(train) == N_TRAIN and len(test) == N_TEST
    assert len(train) + len(test) == N_DIGITS == len(sk[0])
    assert len(build_dataset({"name": "digits", "split": "all"}, seed=0)) == N_DIGITS
    for source in (train, test):
        assert source.shape == (1, 8, 8)
        assert source.x.shape[1:] == (1, 8, 8)
        assert source.is_image is True
        assert source.num_classes == 10
        assert source.x.dtype == torch.float32
        x, y = source.batch(16)
        assert x.shape == (16, 1, 8, 8) and y.shape == (16,)


def test_digits_range_is_exactly_minus_one_to_one(splits):
    x = torch.cat([splits["train"].x, splits["test"].x])
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    # pixel k in 0..16 maps to k/8 - 1, all exactly representable
    allowed = {k / 8 - 1 for k in range(17)}
    assert set(x.unique().tolist()) <= allowed


def test_one_digit_matches_sklearn_raw_values(splits, sk):
    images, targets = sk
    for i in (0, 1000, 1796):
        raw = images[i]
        expected = torch.from_numpy(raw * 2 / 16 - 1).float().reshape(1, 8, 8)
        found = []
        for split, source in splits.items():
            hits = (source.x == expected).reshape(len(source), -1).all(dim=1).nonzero().flatten()
            found += [(split, int(j)) for j in hits]
        assert len(found) == 1, found
        split, j = found[0]
        assert int(splits[split].labels[j]) == int(targets[i])
        assert (splits[split].x[j][expected == -1.0] == -1.0).all()
        if (raw == 16).any():
            assert float(splits[split].x[j].max()) == 1.0


def test_to_unit_range():
    x = torch.tensor([0, 4, 8, 12, 16])
    assert to_unit_range(x, 16.0).tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert to_unit_range(torch.tensor([0, 255]), 255.0).tolist() == [-1.0, 1.0]


def test_digits_test_split_is_stratified(splits, sk):
    _, targets = sk
    # class counts of load_digits, by hand
    assert np.bincount(targets).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    total = np.bincount(targets, minlength=10)
    test = np.bincount(splits["test"].labels.numpy(), minlength=10)
    train = np.bincount(splits["train"].labels.numpy(), minlength=10)
    assert test.sum() == N_TEST and train.sum() == N_TRAIN
    assert (train + test == total).all()
    assert (np.abs(test - 0.2 * total) <= 1).all(), test


def test_digits_train_and_test_are_disjoint(splits, sk):
    train, test = set(rows(splits["train"].x)), set(rows(splits["test"].x))
    assert len(train) == N_TRAIN and len(test) == N_TEST  # no duplicate images in load_digits
    assert train.isdisjoint(test)
    all_images = to_unit_range(torch.from_numpy(sk[0]).unsqueeze(1), 16.0)
    assert train | test == set(rows(all_images))


def test_digits_split_is_fixed_and_independent_of_seed():
    a = build_dataset({"name": "digits", "split": "test"}, seed=0)
    b = build_dataset({"name": "digits", "split": "test"}, seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.batch(32)[0], b.batch(32)[0])  # only the order depends on the seed


def test_digits_bad_split():
    with pytest.raises(ConfigError, match="data.split"):
        build_dataset({"name": "digits", "split": "valid"}, seed=0)


# ---------------------------------------------------------------------------------------------
# InMemoryData


def ten(seed: int = 0) -> InMemoryData:
    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)  # 10 distinct samples of shape (1,)
    return InMemoryData(x, (torch.arange(10) * 10), seed=seed, name="ten")


def draw(source: InMemoryData, sizes) -> list[int]:
    out = []
    for n in sizes:
        x, y = source.batch(n)
        assert x.shape == (n, 1)
        assert torch.equal(y, (x[:, 0] * 10).long())  # labels travel with their samples
        out += [int(v) for v in x[:, 0]]
    return out


def test_epoch_covers_every_sample_exactly_once():
    source = ten()
    drawn = draw(source, [3, 3, 3, 3])
    assert len(drawn) == 12
    assert sorted(drawn[:10]) == list(range(10))  # epoch 0, the 4th batch crossing into epoch 1
    assert (source.epoch, source.position) == (1, 2)
    more = draw(source, [3, 3, 2])  # the rest of epoch 1
    assert sorted(drawn[10:] + more) == list(range(10))
    assert (source.epoch, source.position) == (2, 0)


def test_batch_larger_than_the_data_spans_epochs():
    source = ten()
    drawn = draw(source, [25])
    assert sorted(drawn[:10]) == list(range(10))
    assert sorted(drawn[10:20]) == list(range(10))
    assert (source.epoch, source.position) == (2, 5)


def test_state_dict_mid_epoch_resumes_exactly():
    plain = ten(seed=4)
    expected = draw(plain, [3, 3, 3, 3, 3, 3, 3])

    first = ten(seed=4)
    head = draw(first, [3, 3])
    state = first.state_dict()
    assert state == {"epoch": 0, "position": 6}

    resumed = ten(seed=4)
    resumed.load_state_dict(state)
    assert head + draw(resumed, [3, 3, 3, 3, 3]) == expected


def test_different_seeds_give_different_orders():
    a, b = draw(ten(seed=0), [10]), draw(ten(seed=1), [10])
    assert sorted(a) == sorted(b) == list(range(10))
    assert a != b
    assert draw(ten(seed=0), [10]) == a  # and the same seed the same order


def test_epochs_are_reshuffled():
    source = ten(seed=2)
    epochs = [draw(source, [10]) for _ in range(4)]
    assert len({tuple(e) for e in epochs}) > 1


def test_reference_does_not_touch_the_stream():
    a, b = ten(seed=3), ten(seed=3)
    draw(a, [4])
    draw(b, [4])
    assert a.reference(5).shape == (5, 1)
    assert a.state_dict() == b.state_dict()
    assert draw(a, [3, 3]) == draw(b, [3, 3])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_data_is_a_data_error(bad):
    x = torch.zeros(5, 2)
    x[3, 1] = bad
    with pytest.raises(DataError, match="NaN or infinite"):
        InMemoryData(x, name="broken")


def test_label_length_mismatch_is_a_data_error():
    with pytest.raises(DataError, match="10 samples but 9 labels"):
        InMemoryData(torch.zeros(10, 2), torch.zeros(9), name="broken")


@pytest.mark.parametrize("shape", [(0, 2), (5,)])
def test_empty_or_flat_data_is_a_data_error(shape):
    with pytest.raises(DataError):
        InMemoryData(torch.zeros(shape))
