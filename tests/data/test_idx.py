"""The IDX reader against hand-written files: values, shapes, filters and every corruption case."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data import build_dataset
from gankit.data.idx import idx, read_idx, write_idx
from gankit.errors import ConfigError, DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def make_split(folder: Path, images: np.ndarray, labels: np.ndarray, prefix="train", gz=False):
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


def sample_arrays(n=12, h=4, w=3):
    images = np.arange(n * h * w, dtype=np.int64).reshape(n, h, w) % 256
    return images.astype(np.uint8), (np.arange(n) % 4).astype(np.uint8)


def test_struct_written_file_is_read_exactly(tmp_path):
    # An independent writer: header and pixels packed byte by byte, not via write_idx.
    pixels = [0, 255, 51, 128, 1, 2]  # 2 images of 1x3
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">iii", 2, 1, 3) + bytes(pixels)
    )
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        struct.pack(">BBBBi", 0, 0, 0x08, 1, 2) + bytes([7, 2])
    )
    raw = read_idx(tmp_path / "train-images-idx3-ubyte")
    assert raw.dtype == np.uint8 and raw.shape == (2, 1, 3)
    assert raw.ravel().tolist() == pixels

    ds = build_dataset({"name": "idx", "path": str(tmp_path)}, seed=0)
    assert ds.shape == (1, 1, 3) and len(ds) == 2 and ds.num_classes == 8
    assert ds.labels.tolist() == [7, 2]
    expected = torch.tensor([[-1.0, 1.0, -0.6], [128 / 127.5 - 1, 1 / 127.5 - 1, 2 / 127.5 - 1]])
    torch.testing.assert_close(ds.x[:, 0, 0], expected)
    x, y = ds.batch(5)  # wraps around the epoch
    assert x.shape == (5, 1, 1, 3) and y.shape == (5,) and y.dtype == torch.long


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_raw_and_gzip(tmp_path, gz):
    images, labels = sample_arrays()
    make_split(tmp_path, images, labels, gz=gz)
    make_split(tmp_path, images[:5], labels[:5], prefix="t10k", gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    np.testing.assert_array_equal(read_idx(tmp_path / name), images)
    train = idx(seed=0, path=str(tmp_path))
    test = idx(seed=0, path=str(tmp_path), split="test")
    assert train.x.shape == (12, 1, 4, 3) and test.x.shape == (5, 1, 4, 3)
    torch.testing.assert_close(train.x[:, 0], torch.from_numpy(images).float() / 127.5 - 1)
    assert train.labels.tolist() == labels.tolist()
    assert float(train.x.min()) >= -1 and float(train.x.max()) <= 1


def test_gzip_file_is_really_gzipped(tmp_path):
    images, _ = sample_arrays()
    write_idx(tmp_path / "a.gz", images)
    with gzip.open(tmp_path / "a.gz", "rb") as f:
        assert f.read(4) == bytes([0, 0, 8, 3])


def test_write_read_other_dtypes(tmp_path):
    for array in (np.array([[1.5, -2.0]], np.float32), np.array([-3, 70000], np.int32)):
        write_idx(tmp_path / "x", array)
        np.testing.assert_array_equal(read_idx(tmp_path / "x"), array)


def test_classes_and_limit(tmp_path):
    images, labels = sample_arrays()  # labels 0,1,2,3,0,1,2,3,...
    make_split(tmp_path, images, labels)
    ds = idx(seed=0, path=str(tmp_path), classes=[1, 3])
    assert ds.labels.tolist() == [1, 3, 1, 3, 1, 3]
    assert ds.num_classes == 4  # original labels kept, class count of the full file
    torch.testing.assert_close(ds.x[0, 0], torch.from_numpy(images[1]).float() / 127.5 - 1)
    limited = build_dataset({"name": "idx", "path": str(tmp_path), "classes": [2], "limit": 2}, 0)
    assert limited.labels.tolist() == [2, 2] and len(limited) == 2
    torch.testing.assert_close(limited.x[1, 0], torch.from_numpy(images[6]).float() / 127.5 - 1)
    assert len(idx(seed=0, path=str(tmp_path), limit=100)) == 12


def test_unknown_class_and_bad_limit(tmp_path):
    images, labels = sample_arrays()
    make_split(tmp_path, images, labels)
    with pytest.raises(ConfigError, match="9"):
        idx(seed=0, path=str(tmp_path), classes=[9])
    with pytest.raises(ConfigError, match="limit"):
        idx(seed=0, path=str(tmp_path), limit=0)


def test_path_missing_or_unset(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.path=/folder/with/idx/files"):
        build_dataset({"name": "idx"}, seed=0)
    with pytest.raises(DataError, match="does not exist"):
        idx(seed=0, path=str(tmp_path / "nope"))
    with pytest.raises(DataError) as err:
        idx(seed=0, path=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path) in msg and "train-images-idx3-ubyte.gz" in msg


def test_truncated_and_oversized(tmp_path):
    images, labels = sample_arrays()
    make_split(tmp_path, images, labels)
    path = tmp_path / "train-images-idx3-ubyte"
    full = path.read_bytes()
    path.write_bytes(full[:-7])
    with pytest.raises(DataError) as err:
        idx(seed=0, path=str(tmp_path))
    msg = str(err.value)
    assert str(path) in msg and "truncated" in msg
    assert str(len(full)) in msg and str(len(full) - 7) in msg
    path.write_bytes(full + b"\0")
    with pytest.raises(DataError, match="trailing") as err:
        read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "header, match",
    [
        (bytes([1, 0, 8, 3]), "not an IDX file"),
        (bytes([0, 0, 0x42, 3]), "type code 0x42"),
        (bytes([0, 0, 0x0D, 3]), "unsigned bytes"),  # valid IDX, but floats, not MNIST pixels
        (bytes([0, 0, 8, 2]), "expected 3-D"),  # 2-D images
    ],
)
def test_bad_headers(tmp_path, header, match):
    images, labels = sample_arrays()
    make_split(tmp_path, images, labels)
    path = tmp_path / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[:4] = header
    if header[3] == 2:  # keep the size consistent so only the dimension count is wrong
        data = data[:4] + struct.pack(">ii", 12, 12) + bytes(144)
    if header[2] == 0x0D:
        data = data[:16] + bytes(12 * 4 * 3 * 4)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=match) as err:
        idx(seed=0, path=str(tmp_path))
    assert str(path) in str(err.value)


def test_garbage_gzip(tmp_path):
    images, labels = sample_arrays()
    make_split(tmp_path, images, labels, gz=True)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="gzip") as err:
        idx(seed=0, path=str(tmp_path))
    assert str(bad) in str(err.value)
    cut = tmp_path / "train-images-idx3-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:-10])  # gzip stream ends early
    with pytest.raises(DataError) as err:
        read_idx(cut)
    assert str(cut) in str(err.value)


def test_count_mismatch(tmp_path):
    images, labels = sample_arrays()
    make_split(tmp_path, images, labels[:-1])
    with pytest.raises(DataError, match="12 images but .* 11 labels"):
        idx(seed=0, path=str(tmp_path))


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"{FASHION} not installed (Debian fashion-mnist)")
def test_real_fashion_mnist():
    ds = build_dataset({"name": "idx", "path": str(FASHION)}, seed=0)
    assert len(ds) == 60000 and ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert float(ds.x.min()) == -1.0 and float(ds.x.max()) == 1.0
    assert ds.labels.bincount().tolist() == [6000] * 10
    x, y = ds.batch(64)
    assert x.shape == (64, 1, 28, 28) and y.shape == (64,)
    assert len(idx(seed=0, path=str(FASHION), split="test")) == 10000
