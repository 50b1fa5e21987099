"""Streamed image data: the order, the transforms, exact resume and bad input.

The images are solid grey levels (image i has value i), so a batch's pixels name the images it
holds and the expected order can be computed by hand from torch.randperm."""

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from gankit.data import as_data_source
from gankit.data.base import InMemoryData
from gankit.data.folder import folder
from gankit.data.streamed import StreamedData, from_dataset
from gankit.errors import DataError

N = 37
GANKIT = str(Path(sys.executable).parent / "gankit")


def grey_folder(root: Path, n: int = N, classes: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = root / (f"c{i % 3}" if classes else "")
        sub.mkdir(exist_ok=True)
        Image.fromarray(np.full((6, 6), i * 5, np.uint8)).save(sub / f"img_{i:03d}.png")
    return root


def indices(x: torch.Tensor) -> list[int]:
    """Which grey image each row of a batch is (value i * 5 in [0, 255] -> [-1, 1])."""
    values = ((x[:, 0, 0, 0] + 1) * 255 / 2).round().long()
    return (values // 5).tolist()


def hand_order(n: int, seed: int, epochs: int) -> list[int]:
    out = []
    for e in range(epochs):
        g = torch.Generator().manual_seed(seed * 1_000_003 + e)
        out += torch.randperm(n, generator=g).tolist()
    return out


def draw(source, sizes):
    return [source.batch(k) for k in sizes]


def test_streamed_order_is_the_seeded_permutation_and_equals_memory(tmp_path):
    root = grey_folder(tmp_path / "g")
    streamed = folder(seed=3, path=str(root), size=4, channels=1, stream="stream", workers=0)
    memory = folder(seed=3, path=str(root), size=4, channels=1, stream="memory")
    assert isinstance(streamed, StreamedData) and isinstance(memory, InMemoryData)
    sizes = [10, 7, 16, 30, 11]  # crosses three epoch ends
    got_s = draw(streamed, sizes)
    got_m = draw(memory, sizes)
    flat = [i for x, _ in got_s for i in indices(x)]
    assert flat == hand_order(N, 3, 3)[: sum(sizes)]
    for (xs, _), (xm, _) in zip(got_s, got_m):
        assert torch.equal(xs, xm)  # bit for bit: same decode, same conversion
        assert xs.dtype == torch.float32


def test_resume_continues_the_same_stream_with_any_worker_count(tmp_path):
    root = grey_folder(tmp_path / "g")
    opts = dict(seed=1, path=str(root), size=4, channels=1, flip=True, crop="random", load_size=5)
    whole = folder(**opts, workers=1)
    reference = [x for x, _ in draw(whole, [8] * 12)]
    first = folder(**opts, workers=0)
    draw(first, [8] * 5)
    state = first.state_dict()
    assert state == {"epoch": 1, "position": 3}  # 40 samples: one epoch of 37, then 3
    resumed = folder(**opts, workers=1)
    resumed.load_state_dict(state)
    for expected, (x, _) in zip(reference[5:], draw(resumed, [8] * 7)):
        assert torch.equal(expected, x)


def test_reading_leaves_the_training_random_state_alone(tmp_path):
    root = grey_folder(tmp_path / "g")
    source = folder(
        seed=0, path=str(root), size=4, channels=1, flip=True, crop="random", load_size=5, workers=0
    )
    torch.manual_seed(123)
    before = torch.get_rng_state()
    source.batch(20)
    assert torch.equal(before, torch.get_rng_state())


def test_flips_are_seeded_per_image_and_about_half(tmp_path):
    root = tmp_path / "lr"
    root.mkdir()
    for i in range(200):
        pixels = np.zeros((8, 8), np.uint8)
        pixels[:, :4] = 255  # bright left half: a flip puts it on the right
        Image.fromarray(pixels).save(root / f"{i:03d}.png")
    a = folder(seed=0, path=str(root), size=8, channels=1, flip=True, workers=0)
    x, _ = a.batch(200)
    flipped = (x[:, 0, 0, 0] < 0).float().mean().item()
    assert 0.35 < flipped < 0.65
    b = folder(seed=0, path=str(root), size=8, channels=1, flip=True, workers=0)
    assert torch.equal(x, b.batch(200)[0])
    ref = a.reference(5)  # reference samples are never flipped
    assert (ref[:, 0, 0, 0] > 0).all()


def test_archives_read_like_the_folder(tmp_path):
    root = grey_folder(tmp_path / "g", n=12, classes=True)
    zpath, tpath = tmp_path / "g.zip", tmp_path / "g.tar"
    with zipfile.ZipFile(zpath, "w") as z, tarfile.open(tpath, "w") as t:
        for p in sorted(root.rglob("*.png")):
            z.write(p, "g/" + p.relative_to(root).as_posix())  # one top folder: looked inside
            t.add(p, "g/" + p.relative_to(root).as_posix())
    want = folder(seed=0, path=str(root), size=4, channels=1, stream="stream", workers=0)
    x_want, y_want = want.batch(12)
    assert want.num_classes == 3
    for path in (zpath, tpath):
        got = folder(seed=0, path=str(path), size=4, channels=1, stream="stream", workers=1)
        x, y = got.batch(12)
        assert torch.equal(x, x_want) and torch.equal(y, y_want)
        assert [i % 3 for i in indices(x)] == y.tolist()  # label = subfolder c{i % 3}
    gz = tmp_path / "g.tar.gz"
    gz.write_bytes(b"")
    with pytest.raises(DataError, match="compressed tar"):
        folder(seed=0, path=str(gz))


def test_auto_streams_only_above_the_memory_budget(tmp_path):
    root = grey_folder(tmp_path / "g")
    small = folder(seed=0, path=str(root), size=4, channels=1)
    assert isinstance(small, InMemoryData)
    # 37 images of 1x4x4 float32 = 2,368 bytes
    big = folder(seed=0, path=str(root), size=4, channels=1, memory_budget_mb=2000 / 2**20)
    assert isinstance(big, StreamedData)


def test_unreadable_file_error_or_skip(tmp_path):
    root = grey_folder(tmp_path / "g", n=10)
    (root / "img_005.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="img_005.png: cannot read the image"):
        folder(seed=0, path=str(root), size=4, channels=1, stream="stream", workers=1).batch(10)
    source = folder(
        seed=0, path=str(root), size=4, channels=1, stream="stream", on_error="skip", workers=0
    )
    x, _ = source.batch(20)
    assert len(x) == 20 and 5 not in indices(x)
    assert source.skipped == 2  # two epochs read


class Shapes(Dataset):
    """Sample `bad` is wrong in the way `how` says."""

    def __init__(self, how: str, bad: int = 5, n: int = 9):
        self.how, self.bad, self.n = how, bad, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = torch.zeros(1, 4, 4)
        if i != self.bad:
            return x
        if self.how == "shape":
            return torch.zeros(1, 5, 4)
        if self.how == "range":
            return x + 3.0
        if self.how == "nan":
            return x + float("nan")
        if self.how == "type":
            return "an image"
        if self.how == "die":
            os._exit(3)
        return x


@pytest.mark.parametrize(
    "how, message",
    [
        ("shape", r"sample 5 has shape \(1, 5, 4\), but sample 0 has \(1, 4, 4\)"),
        ("range", r"sample 5 has values in \[3, 3\]"),
        ("nan", "sample 5 contains NaN"),
        ("type", "sample 5 is a str"),
    ],
)
@pytest.mark.parametrize("workers", [0, 1])
def test_bad_samples_name_their_index_in_one_line(how, message, workers):
    source = from_dataset(Shapes(how), seed=0, name="mine", stream="stream", workers=workers)
    with pytest.raises(DataError, match=message) as err:
        source.batch(9)
    assert "\n" not in str(err.value)


def test_a_dead_worker_is_one_clear_line():
    source = from_dataset(Shapes("die"), seed=0, name="mine", stream="stream", workers=1)
    with pytest.raises(DataError, match="a data loader worker failed.*data.workers=0"):
        source.batch(9)


def test_as_data_source_takes_tensors_pairs_datasets_and_loaders():
    x = torch.rand(10, 1, 4, 4) * 2 - 1
    y = torch.arange(10) % 2
    assert torch.equal(as_data_source(x, 0, "t").x, x)
    assert torch.equal(as_data_source((x, y), 0, "t").labels, y)
    loader = torch.utils.data.DataLoader(Shapes("none"), batch_size=3, num_workers=0)
    source = as_data_source(loader, 0, "t", stream="stream")
    assert source.shape == (1, 4, 4) and source.workers == 0
    with pytest.raises(Exception, match="returned a str"):
        as_data_source("nope", 0, "pkg.mod:data")


def test_training_from_a_stream_resumes_exactly(tmp_path):
    """Through the CLI: 10 steps at once == 6 steps, then resumed to 10 (workers, flips)."""
    root = grey_folder(tmp_path / "g")
    data = (
        f"data={{name: folder, path: {root}, size: 8, channels: 1, flip: true, crop: random, "
        "load_size: 9, stream: stream, workers: 1}"
    )
    common = [
        "--set",
        data,
        "--set",
        "logging.progress=false",
        "--set",
        "logging.tensorboard=false",
    ]

    # one training thread beside the worker: 2 threads and a worker on 2 cores can change the
    # last bits of the math between runs (training/rng.py, fix_thread_count)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train(out, steps, *extra):
        subprocess.run(
            [
                GANKIT,
                "train",
                "quickstart",
                *common,
                "--steps",
                str(steps),
                "--out",
                str(out),
                *extra,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )

    train(tmp_path / "whole", 10)
    train(tmp_path / "split", 6)
    subprocess.run(
        [GANKIT, "train", "--resume", str(tmp_path / "split"), "--steps", "10"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    last = "checkpoints/step_00000010/state.safetensors"
    assert (tmp_path / "whole" / last).read_bytes() == (tmp_path / "split" / last).read_bytes()


def test_metrics_read_a_streamed_reference_set_as_the_in_memory_one(tmp_path):
    from gankit.data.streamed import materialize
    from gankit.metrics.evaluate import reference_features
    from gankit.models.feature_extractor import FeatureExtractor

    root = grey_folder(tmp_path / "g", classes=True)
    opts = {"name": "folder", "path": str(root), "size": 8, "channels": 1}

    class Flat(FeatureExtractor):
        input_channels = 1

        def forward(self, images):
            return images.flatten(1) * 2, None  # the pixels are the features

    extractor = Flat()
    feats = {}
    for mode in ("memory", "stream"):
        feats[mode], _, n = reference_features(
            {**opts, "stream": mode, "workers": 0}, extractor, 10, "cpu", False, use_cache=False
        )
        assert n == N
    assert torch.equal(feats["memory"], feats["stream"])
    in_files = sorted(range(N), key=lambda i: (i % 3, i))  # c0/..., c1/..., c2/...
    got = [round((v / 2 + 1) * 255 / 2 / 5) for v in feats["memory"][:, 0].tolist()]
    assert got == in_files  # every image once, in file order
    streamed = folder(seed=0, path=str(root), size=8, channels=1, stream="stream", workers=0)
    x, y = materialize(streamed, 7)
    assert indices(x) == in_files[:7] and y.tolist() == [i % 3 for i in in_files[:7]]
    with pytest.raises(DataError, match="set data.stream=memory"):
        _ = streamed.x


FLAKY = '''
import os
import torch
from torch.utils.data import Dataset


class Flaky(Dataset):
    """Sample reads start failing after BREAK_AFTER of them (a disk going bad mid-run)."""

    def __init__(self):
        self.reads = 0

    def __len__(self):
        return 100

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > int(os.environ.get("BREAK_AFTER", 10**9)):
            raise OSError(f"I/O error reading sample {i}")
        return torch.full((1, 8, 8), (i % 10) / 10)
'''


def test_a_data_failure_mid_run_is_one_line_and_the_run_resumes(tmp_path):
    (tmp_path / "flaky_data.py").write_text(FLAKY)
    run = tmp_path / "run"
    args = [
        GANKIT, "train", "quickstart", "--steps", "8", "--out", str(run),
        "--set", "data={name: 'flaky_data:Flaky', stream: stream, workers: 0}",
        "--set", "schedule.batch_size=8", "--set", "logging.checkpoint_every=2",
        "--set", "logging.progress=false", "--set", "logging.tensorboard=false",
    ]  # fmt: skip
    # the probe reads 1 sample, the diversity reference all 100, each step 8: fails in step 5
    env = {**os.environ, "BREAK_AFTER": str(1 + 100 + 8 * 4 + 4)}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "reading the data failed (OSError: I/O error reading sample" in proc.stderr
    assert "gankit train --resume" in proc.stderr
    assert '"status": "failed"' in (run / "run.json").read_text()
    assert (run / "checkpoints" / "step_00000004").is_dir()
    subprocess.run(
        [GANKIT, "train", "--resume", str(run)], cwd=tmp_path, check=True, capture_output=True
    )
    assert (run / "checkpoints" / "step_00000008").is_dir()
