"""Fuzzed data files: IDX, CIFAR batches and image folders that are truncated, corrupt or of the
wrong shape give a DataError naming the file and what is wrong (or, for damage that leaves a
well-formed file, a valid data set) - never another exception.

Derandomized for CI; GANKIT_FUZZ_EXAMPLES=5000 GANKIT_FUZZ_RANDOM=1 searches further."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gankit.data import build_dataset
from gankit.data.base import InMemoryData
from gankit.data.cifar import cifar10, write_cifar_batch
from gankit.data.folder import folder
from gankit.data.idx import idx, write_idx
from gankit.errors import DataError, GankitError

FUZZ = settings(
    max_examples=int(os.environ.get("GANKIT_FUZZ_EXAMPLES", 60)),
    deadline=None,
    derandomize=not os.environ.get("GANKIT_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

IMAGES = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
LABELS = np.array([0, 1, 2, 3, 4], np.uint8)


def write_split(folder_path: Path, images=IMAGES, labels=LABELS, gz=False) -> tuple[Path, Path]:
    suffix = ".gz" if gz else ""
    img = folder_path / f"train-images-idx3-ubyte{suffix}"
    lab = folder_path / f"train-labels-idx1-ubyte{suffix}"
    write_idx(img, images)
    write_idx(lab, labels)
    return img, lab


def loads_or_data_error(load, path: Path):
    """The property: a valid data set, or a DataError whose message names `path`."""
    try:
        ds = load()
    except DataError as exc:
        assert str(path) in str(exc), f"the error does not name {path}: {exc}"
        return None
    except GankitError:  # e.g. ConfigError for an option: still a clear, handled error
        return None
    assert isinstance(ds, InMemoryData) and len(ds) > 0
    assert np.isfinite(ds.x.numpy()).all() and ds.x.abs().max() <= 1
    return ds


# -- IDX ------------------------------------------------------------------------------------------


@FUZZ
@given(which=st.sampled_from(["images", "labels"]), gz=st.booleans(), data=st.data())
def test_idx_truncated_anywhere(tmp_path_factory, which, gz, data):
    folder_path = tmp_path_factory.mktemp("idx")
    img, lab = write_split(folder_path, gz=gz)
    path = img if which == "images" else lab
    full = path.read_bytes()
    cut = data.draw(st.integers(0, len(full) - 1))
    path.write_bytes(full[:cut])
    with pytest.raises(DataError) as err:
        idx(seed=0, path=str(folder_path))
    assert str(path) in str(err.value)


@FUZZ
@given(
    which=st.sampled_from(["images", "labels"]),
    edits=st.lists(st.tuples(st.integers(0, 15), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_idx_header_bytes_overwritten(tmp_path_factory, which, edits):
    """Any header damage: wrong magic, type code, number of dimensions, sizes (huge, zero)."""
    folder_path = tmp_path_factory.mktemp("idx")
    img, lab = write_split(folder_path)
    path = img if which == "images" else lab
    raw = bytearray(path.read_bytes())
    for pos, value in edits:
        if pos < len(raw):
            raw[pos] = value
    path.write_bytes(bytes(raw))
    try:
        ds = idx(seed=0, path=str(folder_path))
    except DataError as exc:
        assert str(path) in str(exc) or str(folder_path) in str(exc)
        return
    assert len(ds) > 0 and ds.x.ndim == 4 and min(ds.shape) > 0


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (IMAGES, LABELS[:4], "holds 5 images but .* holds 4 labels"),
        (IMAGES[:0], LABELS[:0], "holds no pixels"),
        (np.zeros((5, 0, 3), np.uint8), LABELS, "holds no pixels"),
        (IMAGES.reshape(5, 12), LABELS, "expected 3-D"),
        (IMAGES, LABELS.reshape(5, 1), "expected 1-D"),
        (IMAGES.astype(np.int32), LABELS, "unsigned bytes"),
    ],
    ids=["count-mismatch", "no-images", "zero-height", "2d-images", "2d-labels", "int32"],
)
def test_idx_wrong_shapes(tmp_path, images, labels, match):
    write_split(tmp_path, images, labels)
    with pytest.raises(DataError, match=match) as err:
        idx(seed=0, path=str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_idx_wrong_magic_and_huge_sizes(tmp_path):
    img, _ = write_split(tmp_path)
    raw = bytearray(img.read_bytes())
    img.write_bytes(b"\x1f\x8b" + bytes(raw[2:]))  # gzip magic in a raw file
    with pytest.raises(DataError, match="not an IDX file"):
        idx(seed=0, path=str(tmp_path))
    raw[4:16] = struct.pack(">iii", 2**31 - 1, 2**31 - 1, 2**31 - 1)
    img.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="truncated") as err:
        idx(seed=0, path=str(tmp_path))
    # the expected size is computed without overflow: (2**31 - 1)**3 bytes plus the header
    assert str(16 + (2**31 - 1) ** 3) in str(err.value)


# -- CIFAR ----------------------------------------------------------------------------------------


def cifar_bytes(n=2, protocol=2) -> bytes:
    data = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072).astype(np.uint8)
    batch = {b"data": data, b"labels": list(range(n))}
    return pickle.dumps(batch, protocol=protocol)


@FUZZ
@given(protocol=st.integers(0, 5), data=st.data())
def test_cifar_truncated_pickle(tmp_path_factory, protocol, data):
    path = tmp_path_factory.mktemp("cifar") / "test_batch"
    full = cifar_bytes(protocol=protocol)
    path.write_bytes(full[: data.draw(st.integers(0, len(full) - 1))])
    with pytest.raises(DataError) as err:
        cifar10(seed=0, path=str(path.parent), split="test")
    assert str(path) in str(err.value)


@FUZZ
@given(
    protocol=st.integers(0, 5),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_cifar_corrupted_pickle(tmp_path_factory, protocol, edits):
    path = tmp_path_factory.mktemp("cifar") / "test_batch"
    raw = bytearray(cifar_bytes(protocol=protocol))
    for pos, value in edits:
        raw[pos % len(raw)] = value
    path.write_bytes(bytes(raw))
    loads_or_data_error(lambda: cifar10(seed=0, path=str(path.parent), split="test"), path)


@FUZZ
@given(payload=st.binary(max_size=300))
def test_cifar_file_that_is_not_a_pickle(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("cifar") / "test_batch"
    path.write_bytes(payload)
    loads_or_data_error(lambda: cifar10(seed=0, path=str(path.parent), split="test"), path)


@pytest.mark.parametrize(
    "batch, match",
    [
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, r"N >= 1"),
        ({b"data": np.zeros((2, 3, 32, 32), np.uint8), b"labels": [0, 1]}, "uint8 array of shape"),
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, "expected \\(N, 3072\\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}, "2 images but labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}, "list of integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 0]}, "0..9"),
        ({b"data": [[0] * 3072], b"labels": [0]}, "uint8 array"),
        ({b"labels": [0]}, "keys"),
        ("a string", "keys"),
    ],
)
def test_cifar_wrong_contents(tmp_path, batch, match):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=match) as err:
        cifar10(seed=0, path=str(tmp_path), split="test")
    assert str(path) in str(err.value)


def py2_batch(dtype_state: bytes) -> bytes:
    """A batch as Python 2 + numpy 1 pickled it, with the given state for the u1 dtype."""
    data = bytes(range(256)) * 12
    return (
        b"\x80\x02}q\x00(U\x04datacnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"K\x00\x85U\x01b\x87R(K\x01K\x01M\x00\x0c\x86cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
        + dtype_state
        + b"\x89T"
        + struct.pack("<i", len(data))
        + data
        + b"tbU\x06labels]K\x07au."
    )


def test_cifar_crafted_dtypes_are_refused(tmp_path):
    """dtype states or kinds that would make numpy treat pixels as Python object pointers."""
    path = tmp_path / "test_batch"
    state = b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK%stb"
    path.write_bytes(py2_batch(state % b"\x00"))  # flags 0: a plain byte, as in the archive
    assert len(cifar10(seed=0, path=str(tmp_path), split="test")) == 1
    path.write_bytes(py2_batch(state % b"?"))  # flags 63: "the items are Python objects"
    with pytest.raises(DataError, match="malformed state") as err:
        cifar10(seed=0, path=str(tmp_path), split="test")
    assert str(path) in str(err.value)
    objects = {b"data": np.array([[None] * 3072], dtype=object), b"labels": [0]}
    path.write_bytes(pickle.dumps(objects, protocol=2))
    with pytest.raises(DataError, match="not a plain numeric type"):
        cifar10(seed=0, path=str(tmp_path), split="test")


def test_cifar_batches_of_every_protocol_load(tmp_path):
    for protocol in range(6):
        (tmp_path / "test_batch").write_bytes(cifar_bytes(n=3, protocol=protocol))
        assert len(cifar10(seed=0, path=str(tmp_path), split="test")) == 3
    write_cifar_batch(tmp_path / "test_batch", np.zeros((1, 3072), np.uint8), [9])
    assert cifar10(seed=0, path=str(tmp_path), split="test").labels.tolist() == [9]


# -- image folders --------------------------------------------------------------------------------


def png_bytes(size=(12, 10), mode="RGB", seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(buf, "PNG")
    return buf.getvalue()


@FUZZ
@given(fmt=st.sampled_from(["PNG", "JPEG"]), data=st.data())
def test_truncated_image_names_the_file(tmp_path_factory, fmt, data):
    root = tmp_path_factory.mktemp("imgs")
    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes())).save(buf, fmt)
    full = buf.getvalue()
    bad = root / f"bad.{fmt.lower()}"
    bad.write_bytes(full)
    complete = folder(seed=0, path=str(root), size=8).x
    bad.write_bytes(full[: data.draw(st.integers(0, len(full) - 1))])
    try:
        ds = folder(seed=0, path=str(root), size=8)
    except DataError as err:
        assert str(bad) in str(err) and "cannot read the image" in str(err)
        return
    # PIL reads a PNG cut only in its trailing checksums or end marker: every pixel is there
    assert fmt == "PNG" and len(full) - bad.stat().st_size <= 20
    assert (ds.x == complete).all()


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_corrupted_png_bytes(tmp_path_factory, edits):
    root = tmp_path_factory.mktemp("imgs")
    raw = bytearray(png_bytes())
    for pos, value in edits:
        raw[pos % len(raw)] = value
    path = root / "x.png"
    path.write_bytes(bytes(raw))
    loads_or_data_error(lambda: folder(seed=0, path=str(root), size=8), path)


def test_folder_edge_cases(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"{empty}: no images found"):
        folder(seed=0, path=str(empty))
    others = tmp_path / "others"
    others.mkdir()
    (others / "notes.txt").write_text("x")
    (others / "data.npy").write_bytes(b"\x93NUMPY")
    (others / "dir.png").mkdir()  # a folder named like an image
    with pytest.raises(DataError, match="no images found"):
        folder(seed=0, path=str(others))
    (others / "fake.png").write_text("not a png at all")
    with pytest.raises(DataError, match="fake.png: cannot read the image"):
        folder(seed=0, path=str(others))
    a_file = tmp_path / "file.png"
    a_file.write_bytes(png_bytes())
    with pytest.raises(DataError, match="is a file; give a folder of images, a .zip or a .tar"):
        folder(seed=0, path=str(a_file))


def test_mixed_sizes_and_modes_are_resized_to_one_shape(tmp_path):
    """Mixed sizes are not an error for the folder data set: every image is center-cropped and
    resized to data.size (documented); odd modes (palette, alpha, 16-bit, 1-bit, CMYK) load."""
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGBA", (3, 7), (0, 255, 0, 128)).save(tmp_path / "b.png")
    Image.new("P", (9, 9)).save(tmp_path / "c.png")
    Image.new("1", (5, 5), 1).save(tmp_path / "d.png")
    Image.new("CMYK", (6, 6)).save(tmp_path / "e.jpg")
    Image.fromarray(np.full((6, 6), 65535, np.uint16)).save(tmp_path / "f.png")  # 16-bit gray
    Image.fromarray(np.full((6, 6), 32896, np.uint16)).save(tmp_path / "g.png")
    ds = build_dataset({"name": "folder", "path": str(tmp_path), "size": 8}, seed=0)
    assert ds.x.shape == (7, 3, 8, 8)
    assert ds.x[5].eq(1).all()  # 16-bit white is white, not clipped garbage
    assert ds.x[6].sub(128 / 127.5 - 1).abs().max() < 1e-6  # 16-bit mid-gray scaled to 8 bits
