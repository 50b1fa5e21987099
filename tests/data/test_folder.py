"""Image folders: resizing, cropping, class subfolders and unreadable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit.data.streamed as streamed_module
from gankit.data import build_dataset
from gankit.data.folder import folder
from gankit.errors import ConfigError, DataError


def solid(path: Path, size: tuple[int, int], color, mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_mixed_sizes_values_and_registry(tmp_path):
    solid(tmp_path / "a.png", (40, 30), (0, 255, 51))
    solid(tmp_path / "b.PNG", (7, 9), (255, 255, 255))
    solid(tmp_path / "sub" / "c.jpeg", (100, 64), (0, 0, 0))
    (tmp_path / "notes.txt").write_text("not an image")
    solid(tmp_path / ".hidden" / "d.png", (8, 8), (1, 2, 3))  # e.g. .ipynb_checkpoints
    ds = build_dataset({"name": "folder", "path": str(tmp_path), "size": 16}, seed=0)
    assert len(ds) == 3 and ds.shape == (3, 16, 16) and ds.labels is None and ds.is_image
    a = ds.x[0]  # sorted paths: a.png, b.PNG, sub/c.jpeg
    assert a[0].eq(-1).all() and a[1].eq(1).all()
    torch.testing.assert_close(a[2], torch.full((16, 16), -0.6))
    assert ds.x[1].eq(1).all()
    assert ds.x[2].abs().add(-1).abs().max() < 0.05  # black JPEG, near -1
    x, y = ds.batch(4)
    assert x.shape == (4, 3, 16, 16) and y is None


def test_grayscale_and_limit(tmp_path):
    for i in range(5):
        solid(tmp_path / f"{i}.jpg", (20 + i, 12), (51, 51, 51))
    ds = folder(seed=0, path=str(tmp_path), size=8, channels=1, limit=3)
    assert ds.x.shape == (3, 1, 8, 8)
    assert (ds.x + 0.6).abs().max() < 0.05  # JPEG may be off by a level or two


def test_center_crop_versus_plain_resize(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)
    pixels[:, 10:30] = (0, 255, 0)
    pixels[:, 30:] = (0, 0, 255)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    cropped = folder(seed=0, path=str(tmp_path), size=10, crop="center").x[0]
    assert cropped[1].eq(1).all() and cropped[0].eq(-1).all() and cropped[2].eq(-1).all()
    squashed = folder(seed=0, path=str(tmp_path), size=10, crop="none").x[0]
    assert squashed[0, :, 0].gt(0.9).all() and squashed[2, :, -1].gt(0.9).all()


def test_class_subfolders_give_labels(tmp_path):
    solid(tmp_path / "cat" / "1.png", (8, 8), (10, 10, 10))
    solid(tmp_path / "cat" / "deep" / "2.png", (8, 8), (10, 10, 10))
    solid(tmp_path / "dog" / "1.png", (8, 8), (20, 20, 20))
    solid(tmp_path / "emu" / "1.png", (8, 8), (30, 30, 30))
    ds = folder(seed=0, path=str(tmp_path), size=4)
    assert ds.labels.tolist() == [0, 0, 1, 2] and ds.num_classes == 3
    _, y = ds.batch(2)
    assert y.shape == (2,)
    solid(tmp_path / "loose.png", (8, 8), (0, 0, 0))  # an image beside the class folders
    assert folder(seed=0, path=str(tmp_path), size=4).labels is None


def test_single_subfolder_is_not_a_class(tmp_path):
    solid(tmp_path / "img_align_celeba" / "1.png", (8, 8), (0, 0, 0))
    ds = folder(seed=0, path=str(tmp_path), size=4)
    assert ds.labels is None and ds.num_classes is None


def test_missing_unset_and_empty(tmp_path):
    with pytest.raises(ConfigError, match="data.path="):
        build_dataset({"name": "folder"}, seed=0)
    with pytest.raises(DataError, match="does not exist"):
        folder(seed=0, path=str(tmp_path / "nope"))
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images found.*\.png, \.jpg, \.jpeg"):
        folder(seed=0, path=str(tmp_path))


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_jpg_names_the_file(tmp_path, kind):
    solid(tmp_path / "good.png", (8, 8), (0, 0, 0))
    bad = tmp_path / "bad.jpg"
    if kind == "garbage":
        bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    else:
        noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(bad)
        bad.write_bytes(bad.read_bytes()[:600])
    with pytest.raises(DataError) as err:
        folder(seed=0, path=str(tmp_path), size=8)
    assert str(bad) in str(err.value)


def test_progress_bar_only_for_many_images(tmp_path, monkeypatch):
    seen = {}

    real_tqdm = streamed_module.tqdm

    def fake_tqdm(*args, **kwargs):
        seen.update(kwargs)
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(streamed_module, "tqdm", fake_tqdm)
    solid(tmp_path / "a.png", (4, 4), (0, 0, 0))
    folder(seed=0, path=str(tmp_path), size=4)
    assert seen["disable"] is True
