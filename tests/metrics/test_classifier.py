"""gankit's shipped CNN classifiers: shapes, training, the shipped files and their recorded
accuracies, save/load, corrupt files, and stacked-digit predictions."""

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gankit.data import DATASETS, InMemoryData, build_dataset
from gankit.errors import GankitError
from gankit.metrics.classifier import (
    ImageClassifier,
    load_classifier,
    save_classifier,
    stacked_digit_predictions,
    train_classifier,
)
from gankit.metrics.features import FeatureExtractor

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions run far faster on one thread than on two contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits_test():
    data = build_dataset({"name": "digits", "split": "test"}, 0)
    return data.x, data.labels


@pytest.fixture(scope="module")
def digits_model():
    return load_classifier("digits")


def independent_accuracy(model, x, labels):
    """Correct arg-max predictions / count, in chunks (one 10k-image batch needs ~1 GB)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            _, logits = model(x[i : i + 1000])
            correct += (logits.argmax(dim=1) == labels[i : i + 1000]).sum().item()
    return correct / len(labels)


def test_forward_shapes_and_resize():
    torch.manual_seed(0)
    model = ImageClassifier((1, 28, 28), 10, "test-cnn").eval()
    assert isinstance(model, FeatureExtractor)
    assert model.num_features == 128 and model.num_classes == 10
    features, logits = model(torch.rand(5, 1, 28, 28) * 2 - 1)
    assert features.shape == (5, 128) and logits.shape == (5, 10)
    features, logits = model(torch.rand(3, 1, 32, 32) * 2 - 1)  # resized to 28x28
    assert features.shape == (3, 128) and logits.shape == (3, 10)
    with pytest.raises(GankitError, match=r"\(N, 1, H, W\)"):
        model(torch.rand(2, 3, 28, 28))
    rgb = ImageClassifier((3, 8, 8), 4, "rgb").eval()
    assert rgb(torch.zeros(2, 3, 8, 8))[1].shape == (2, 4)


def test_quick_training_on_digits(digits_test):
    model, report = train_classifier({"name": "digits"}, epochs=4, lr=2e-3, progress=False)
    assert not model.training
    assert report["n_train"] == 1437 and report["n_test"] == 360 and report["epochs"] == 4
    acc = independent_accuracy(model, *digits_test)
    assert acc > 0.8
    assert acc == pytest.approx(report["test_accuracy"], abs=1e-9)
    # Same seed, same weights.
    again, _ = train_classifier({"name": "digits"}, epochs=1, lr=2e-3, progress=False)
    once, _ = train_classifier({"name": "digits"}, epochs=1, lr=2e-3, progress=False)
    for a, b in zip(again.state_dict().values(), once.state_dict().values()):
        assert torch.equal(a, b)


if "unlabelled_test_images" not in DATASETS:

    @DATASETS.register("unlabelled_test_images")
    def unlabelled_test_images(seed: int, split: str = "train") -> InMemoryData:
        return InMemoryData(torch.zeros(16, 1, 8, 8), seed=seed)


def test_training_needs_labelled_splits():
    with pytest.raises(GankitError, match="no train/test split"):
        train_classifier({"name": "toy2d"}, epochs=1, progress=False)
    with pytest.raises(GankitError, match="has no labels"):
        train_classifier({"name": "unlabelled_test_images"}, epochs=1, progress=False)


def check_shipped(model, name, file_name, x, labels):
    path = resources.files("gankit.weights") / file_name
    assert model.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.protocol()["weights_sha256"] == model.weights_sha256
    assert model.name == f"gankit-{name}-cnn"
    recorded = model.report["test_accuracy"]
    assert independent_accuracy(model, x, labels) == pytest.approx(recorded, abs=1e-9)
    assert model.report["n_test"] == len(labels)
    return recorded


def test_shipped_digits_classifier(digits_model, digits_test):
    recorded = check_shipped(digits_model, "digits", "digits-cnn.safetensors", *digits_test)
    assert recorded >= 0.97
    assert digits_model.input_shape == (1, 8, 8)
    assert (resources.files("gankit.weights") / "digits-cnn.safetensors").stat().st_size < 2**20


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST not installed at {FASHION}")
def test_shipped_fashion_mnist_classifier():
    model = load_classifier("fashion-mnist")
    data = build_dataset({"name": "idx", "path": str(FASHION), "split": "test"}, 0)
    recorded = check_shipped(
        model, "fashion-mnist", "fashion-mnist-cnn.safetensors", data.x, data.labels
    )
    assert recorded >= 0.9
    assert model.input_shape == (1, 28, 28)


def test_save_load_round_trip(tmp_path, digits_model, digits_test):
    x = digits_test[0][:64]
    path = tmp_path / "copy.safetensors"
    sha = save_classifier(digits_model, path, digits_model.report)
    loaded = load_classifier(str(path))
    assert sha == loaded.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.input_shape == digits_model.input_shape and loaded.name == digits_model.name
    assert loaded.report == digits_model.report
    with torch.no_grad():
        for a, b in zip(digits_model(x), loaded(x)):
            assert torch.equal(a, b)


def test_bad_files_raise_gankit_errors(tmp_path, digits_model):
    with pytest.raises(GankitError, match="no such file"):
        load_classifier(tmp_path / "absent.safetensors")

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all" * 10)
    with pytest.raises(GankitError, match="garbage.safetensors.*not a safetensors file"):
        load_classifier(garbage)

    good = tmp_path / "good.safetensors"
    save_classifier(digits_model, good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(GankitError, match="truncated.safetensors"):
        load_classifier(truncated)

    state = {k: v.clone() for k, v in digits_model.state_dict().items()}
    no_meta = tmp_path / "no_meta.safetensors"
    save_file(state, no_meta)
    with pytest.raises(GankitError, match="no_meta.safetensors.*metadata"):
        load_classifier(no_meta)

    meta = {
        "gankit_classifier": json.dumps(
            {"name": "x", "input_shape": [1, 8, 8], "num_classes": 10, "report": {}}
        )
    }
    wrong_keys = tmp_path / "wrong_keys.safetensors"
    renamed = {("renamed." + k if k.startswith("head") else k): v for k, v in state.items()}
    save_file(renamed, wrong_keys, metadata=meta)
    with pytest.raises(GankitError, match=r"wrong_keys.safetensors.*missing: .*head\.weight"):
        load_classifier(wrong_keys)

    wrong_shape = tmp_path / "wrong_shape.safetensors"
    save_file({**state, "head.bias": torch.zeros(7)}, wrong_shape, metadata=meta)
    with pytest.raises(GankitError, match="wrong_shape.safetensors.*wrong shape"):
        load_classifier(wrong_shape)


def test_stacked_digit_predictions(digits_model, digits_test):
    x, labels = digits_test
    g = torch.Generator().manual_seed(0)
    idx = torch.stack([torch.randperm(len(x), generator=g)[:200] for _ in range(3)], dim=1)
    stacked = torch.cat([x[idx[:, c]] for c in range(3)], dim=1)  # (200, 3, 8, 8)
    predicted = stacked_digit_predictions(digits_model, stacked)
    assert predicted.shape == (200, 3) and predicted.dtype == torch.long
    with torch.no_grad():
        single = digits_model(x)[1].argmax(1)
    assert torch.equal(predicted, single[idx])
    assert (predicted == labels[idx]).double().mean() >= 0.97
    with pytest.raises(GankitError, match="3, H, W"):
        stacked_digit_predictions(digits_model, x[:4])
