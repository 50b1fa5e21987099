"""CIFAR-10 batches: layout, values, and that a tampered pickle cannot run code."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data import build_dataset
from gankit.data.cifar import cifar10, read_cifar_batch, write_cifar_batch
from gankit.errors import DataError


def make_batches(folder: Path, n=4, test_n=3) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        count = test_n if name == "test_batch" else n
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = [(k + j) % 10 for j in range(count)]
        write_cifar_batch(folder / name, data, labels)
        written[name] = (data, labels)
    return written


def test_values_shapes_and_registry(tmp_path):
    written = make_batches(tmp_path / "cifar-10-batches-py")
    ds = build_dataset({"name": "cifar10", "path": str(tmp_path / "cifar-10-batches-py")}, seed=0)
    assert len(ds) == 20 and ds.shape == (3, 32, 32) and ds.num_classes == 10
    first, labels = written["data_batch_1"]
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32.
    torch.testing.assert_close(
        ds.x[0, 1, 0, 5], torch.tensor(float(first[0, 1024 + 5]) / 127.5 - 1)
    )
    torch.testing.assert_close(ds.x[0, 2, 31, 31], torch.tensor(float(first[0, 3071]) / 127.5 - 1))
    expected = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    torch.testing.assert_close(ds.x.reshape(20, -1), torch.from_numpy(expected).float() / 127.5 - 1)
    assert ds.labels[:4].tolist() == labels
    x, y = ds.batch(7)
    assert x.shape == (7, 3, 32, 32) and y.shape == (7,)


def test_pixel_values_exact(tmp_path):
    data = np.zeros((1, 3072), np.uint8)
    data[0, :3] = [0, 255, 51]
    write_cifar_batch(tmp_path / "test_batch", data, [4])
    ds = cifar10(seed=0, path=str(tmp_path), split="test")
    assert ds.x[0, 0, 0, :3].tolist() == pytest.approx([-1.0, 1.0, -0.6])
    assert ds.labels.tolist() == [4]


def test_parent_folder_split_and_limit(tmp_path):
    make_batches(tmp_path / "cifar-10-batches-py")
    test = cifar10(seed=0, path=str(tmp_path), split="test")  # parent of the batches folder
    assert len(test) == 3 and test.name == "cifar10-test"
    assert len(cifar10(seed=0, path=str(tmp_path), limit=6)) == 6


def test_missing_things(tmp_path):
    with pytest.raises(DataError, match="gankit data fetch cifar10.*data.path"):
        build_dataset({"name": "cifar10"}, seed=0)  # not in the (empty) test cache
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        cifar10(seed=0, path=str(tmp_path / "nope"))
    make_batches(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3.*cifar-10-python.tar.gz"):
        cifar10(seed=0, path=str(tmp_path))


class RunsCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": RunsCommand(marker)}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="refusing to load") as err:
        cifar10(seed=0, path=str(tmp_path), split="test")
    assert str(tmp_path / "test_batch") in str(err.value)
    assert "system" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.", b""])
def test_other_hostile_or_empty_pickles(tmp_path, payload):
    (tmp_path / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match="test_batch"):
        read_cifar_batch(tmp_path / "test_batch")


@pytest.mark.parametrize(
    "batch, match",
    [
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "3072"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "labels"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, "0..9"),
        ({b"pixels": 1}, "keys"),
        ([1, 2], "keys"),
    ],
)
def test_wrong_contents(tmp_path, batch, match):
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=match):
        read_cifar_batch(tmp_path / "test_batch")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_protocols_load(tmp_path, protocol):
    data = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    batch = {b"data": data, b"labels": [3, 5], b"batch_label": b"testing batch 1 of 1"}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = read_cifar_batch(tmp_path / "test_batch")
    np.testing.assert_array_equal(images.reshape(2, -1), data)
    assert labels.tolist() == [3, 5]


def test_truncated_pickle(tmp_path):
    make_batches(tmp_path)
    path = tmp_path / "data_batch_2"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="data_batch_2"):
        cifar10(seed=0, path=str(tmp_path))


def test_python2_numpy1_pickle_as_in_the_official_archive(tmp_path):
    # Hand-assembled the way Python 2 + numpy 1 wrote the real batches (str opcodes, numpy.core).
    data = bytes(range(256)) * 12
    dtype = (
        b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    payload = (
        b"\x80\x02}q\x00(U\x04datacnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"K\x00\x85U\x01b\x87R(K\x01K\x01M\x00\x0c\x86"
        + dtype
        + b"\x89T"
        + struct.pack("<i", len(data))
        + data
        + b"tbU\x06labels]K\x07aU\x0bbatch_labelU\x05helloU\tfilenames]U\x05a.pngau."
    )
    (tmp_path / "test_batch").write_bytes(payload)
    images, labels = read_cifar_batch(tmp_path / "test_batch")
    assert images.shape == (1, 3, 32, 32) and labels.tolist() == [7]
    assert images.ravel().tolist() == list(data)
