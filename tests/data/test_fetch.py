"""`gankit data fetch` against a local HTTP server: good files, a wrong checksum, a truncated
transfer (resumed with Range), a server that ignores Range, 404, 503, a stall; the cache layout,
the lookup presets use, and the CLI. Offline: everything is served from 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from gankit.cli import main
from gankit.config import load_recipe, preset_names
from gankit.data import build_dataset, fetch
from gankit.data.cifar import write_cifar_batch
from gankit.data.fetch import CATALOGUE, Remote, Standard
from gankit.data.idx import FILES, write_idx
from gankit.errors import DataError
from gankit.models.classifier import shipped_classifier_for, source_classifier

FAST = {"timeout": 0.3, "retries": 2, "backoff": 0.01, "progress": False}


class Server:
    """Serves `files` (URL path -> bytes) with Range support; `modes` (URL path -> set) adds
    faults: 'truncate' (the first answer stops halfway), 'norange' (Range ignored), 'stall'
    (every answer: headers, then silence), 'stall-once' (the first answer: half, then silence),
    '503' (the first answer is a 503). Every request is logged as (path, Range)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, set[str]] = {}
        self.log: list[tuple[str, str | None]] = []
        self.release = threading.Event()  # ends a stall at teardown
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                first = not any(p == self.path for p, _ in outer.log)
                outer.log.append((self.path, rng))
                body, modes = outer.files.get(self.path), outer.modes.get(self.path, set())
                if body is None:
                    return self.send_error(404)
                if "503" in modes and first:
                    return self.send_error(503)
                start = 0
                if rng and "norange" not in modes:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                if "stall" in modes:  # headers, then silence
                    self.wfile.flush()
                    outer.release.wait(5)
                    return
                if first and modes & {"truncate", "stall-once"}:
                    self.wfile.write(rest[: len(rest) // 2])
                    self.wfile.flush()
                    if "stall-once" in modes:
                        outer.release.wait(5)
                    return  # HTTP/1.0: the connection closes, short of Content-Length
                self.wfile.write(rest)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        serve = lambda: self.httpd.serve_forever(poll_interval=0.02)  # noqa: E731
        threading.Thread(target=serve, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("GANKIT_DATA", str(root))
    monkeypatch.delenv("GANKIT_DATA_MIRROR", raising=False)
    monkeypatch.setattr(fetch, "SYSTEM_ROOT", tmp_path / "system")  # not /usr/share/datasets
    return root


def gz_idx(array: np.ndarray, tmp_path: Path) -> bytes:
    path = tmp_path / "x.gz"
    write_idx(path, array)
    return path.read_bytes()


def tiny_idx_files(tmp_path: Path) -> dict[str, bytes]:
    """The four published file names as tiny valid gzipped IDX files (28x28, 10 classes)."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", 20), ("test", 10)):
        images, labels = FILES[split]
        out[f"{images}.gz"] = gz_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), tmp_path)
        out[f"{labels}.gz"] = gz_idx((np.arange(n) % 10).astype(np.uint8), tmp_path)
    return out


def tiny_cifar_archive(tmp_path: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """cifar-10-python.tar.gz in the official layout, two images a batch."""
    folder = tmp_path / "make-cifar"
    folder.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in fetch.CIFAR_FILES:
            write_cifar_batch(folder / name, np.full((2, 3072), 7, np.uint8), [1, 2])
            tar.add(folder / name, arcname=f"cifar-10-batches-py/{name}")
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def serve(server: Server, monkeypatch, name: str, files: dict[str, bytes], **sha_override):
    """Put `files` on the server under /name/ and point the catalogue entry `name` at them."""
    remotes = []
    for file, data in files.items():
        server.files[f"/{name}/{file}"] = data
        sha = sha_override.get(file, hashlib.sha256(data).hexdigest())
        remotes.append(Remote(file, len(data), sha))
    spec = Standard(name, f"{server.url}/{name}/", tuple(remotes), CATALOGUE[name].layout, "test")
    monkeypatch.setitem(CATALOGUE, name, spec)
    return spec


# -- the catalogue --------------------------------------------------------------------------------
def test_catalogue_is_complete_and_well_formed():
    from gankit.data.idx import idx

    assert set(CATALOGUE) == {"mnist", "fashion-mnist", "cifar10"}
    for name, spec in CATALOGUE.items():
        assert spec.name == name and spec.base_url.startswith(("http://", "https://"))
        assert spec.source and spec.files
        for f in spec.files:
            assert f.size > 0 and len(f.sha256) == 64 and int(f.sha256, 16) >= 0
    idx_sets = [n for n, s in CATALOGUE.items() if s.layout == "idx"]
    literal = typing.get_args(typing.get_type_hints(idx)["dataset"])[0]
    assert set(typing.get_args(literal)) == set(idx_sets)
    names = [f.name for f in CATALOGUE["fashion-mnist"].files]
    assert names == [f"{n}.gz" for n in fetch.IDX_NAMES]


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "g"))
    assert fetch.cache_root() == tmp_path / "g"
    monkeypatch.delenv("GANKIT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert fetch.cache_root() == tmp_path / "x" / "gankit" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert fetch.cache_root() == tmp_path / "h" / ".cache" / "gankit" / "data"


def test_mirror_replaces_the_official_base(monkeypatch):
    monkeypatch.setenv("GANKIT_DATA_MIRROR", "http://mirror.example/data/")
    assert (
        CATALOGUE["mnist"].urls()[0]
        == "http://mirror.example/data/mnist/train-images-idx3-ubyte.gz"
    )
    monkeypatch.delenv("GANKIT_DATA_MIRROR")
    assert CATALOGUE["mnist"].urls()[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")


# -- transfers ------------------------------------------------------------------------------------
def test_good_files_land_in_the_cache_and_load_by_name(server, cache, monkeypatch, tmp_path):
    files = tiny_idx_files(tmp_path)
    serve(server, monkeypatch, "mnist", files)
    folder = fetch.fetch("mnist", log=lambda *_: None, **FAST)
    assert folder == cache / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # no .part left
    for name, data in files.items():
        assert (folder / name).read_bytes() == data
    data = build_dataset({"name": "idx", "dataset": "mnist"}, seed=0)  # no path
    assert data.x.shape == (20, 1, 28, 28) and data.name == "mnist-train"
    test = build_dataset({"name": "idx", "dataset": "mnist", "split": "test"}, seed=0)
    assert len(test) == 10
    # a second fetch checks what is there and downloads nothing
    before = len(server.log)
    lines = []
    fetch.fetch("mnist", log=lines.append, **FAST)
    assert len(server.log) == before and sum("sha256 ok" in line for line in lines) == 4


def test_wrong_checksum_fails_and_leaves_nothing(server, cache, monkeypatch, tmp_path):
    files = tiny_idx_files(tmp_path)
    bad = "0" * 64
    serve(server, monkeypatch, "mnist", files, **{"train-images-idx3-ubyte.gz": bad})
    with pytest.raises(DataError) as err:
        fetch.fetch("mnist", log=lambda *_: None, **FAST)
    message = str(err.value)
    assert "\n" not in message and "sha256 mismatch" in message
    assert f"expected {bad}" in message
    assert hashlib.sha256(files["train-images-idx3-ubyte.gz"]).hexdigest() in message
    assert f"{server.url}/mnist/train-images-idx3-ubyte.gz" in message
    assert list((cache / "mnist").iterdir()) == []  # neither the file nor its .part


def test_truncated_transfer_is_resumed_with_range(server, cache, monkeypatch, tmp_path):
    data = os.urandom(200_000)
    server.files["/f.bin"] = data
    server.modes["/f.bin"] = {"truncate"}
    dest = tmp_path / "out" / "f.bin"
    fetch.download(f"{server.url}/f.bin", dest, len(data), hashlib.sha256(data).hexdigest(), **FAST)
    assert dest.read_bytes() == data and not dest.with_name("f.bin.part").exists()
    assert server.log == [("/f.bin", None), ("/f.bin", f"bytes={len(data) // 2}-")]


def test_a_server_without_range_restarts_the_transfer(server, cache, tmp_path):
    data = os.urandom(100_000)
    server.files["/f.bin"] = data
    server.modes["/f.bin"] = {"truncate", "norange"}
    dest = tmp_path / "f.bin"
    fetch.download(f"{server.url}/f.bin", dest, len(data), hashlib.sha256(data).hexdigest(), **FAST)
    assert dest.read_bytes() == data and len(server.log) == 2


def test_a_5xx_is_retried(server, cache, tmp_path):
    data = b"abc" * 1000
    server.files["/f.bin"] = data
    server.modes["/f.bin"] = {"503"}
    dest = tmp_path / "f.bin"
    fetch.download(f"{server.url}/f.bin", dest, len(data), hashlib.sha256(data).hexdigest(), **FAST)
    assert dest.read_bytes() == data and len(server.log) == 2


def test_404_fails_at_once(server, cache, tmp_path):
    dest = tmp_path / "f.bin"
    start = time.monotonic()
    with pytest.raises(DataError, match=r"/missing.bin: HTTP 404 .*GANKIT_DATA_MIRROR"):
        fetch.download(f"{server.url}/missing.bin", dest, 10, "0" * 64, **FAST)
    assert server.log == [("/missing.bin", None)] and time.monotonic() - start < 2
    assert list(tmp_path.iterdir()) == []


def test_a_stall_fails_within_a_bounded_time(server, cache, tmp_path):
    data = os.urandom(50_000)
    server.files["/f.bin"] = data
    server.modes["/f.bin"] = {"stall"}
    dest = tmp_path / "f.bin"
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        fetch.download(f"{server.url}/f.bin", dest, len(data), "0" * 64, **FAST)
    took = time.monotonic() - start
    message = str(err.value)
    assert "stalled" in message and "3 tries in a row failed" in message and "\n" not in message
    assert took < 3  # 3 tries of a 0.3 s timeout, not the server's 5 s silence
    assert len(server.log) == 3 and not dest.exists()


def test_a_stall_mid_transfer_is_resumed(server, cache, tmp_path):
    data = os.urandom(50_000)
    server.files["/f.bin"] = data
    server.modes["/f.bin"] = {"stall-once"}
    dest = tmp_path / "f.bin"
    start = time.monotonic()
    fetch.download(f"{server.url}/f.bin", dest, len(data), hashlib.sha256(data).hexdigest(), **FAST)
    assert dest.read_bytes() == data and time.monotonic() - start < 3
    assert server.log == [("/f.bin", None), ("/f.bin", f"bytes={len(data) // 2}-")]


def test_nothing_listening_is_retried_then_fails(cache, tmp_path):
    with pytest.raises(DataError, match="cannot connect.*3 tries in a row failed.*try again"):
        fetch.download("http://127.0.0.1:9/f.bin", tmp_path / "f.bin", 10, "0" * 64, **FAST)


# -- CIFAR-10 -------------------------------------------------------------------------------------
def test_cifar10_is_extracted_and_found_without_a_path(server, cache, monkeypatch, tmp_path):
    serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": tiny_cifar_archive(tmp_path)})
    folder = fetch.fetch("cifar10", log=lambda *_: None, **FAST)
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-batches-py"]  # archive removed
    data = build_dataset({"name": "cifar10"}, seed=0)
    assert data.x.shape == (10, 3, 32, 32) and data.labels.tolist()[:2] == [1, 2]
    before = len(server.log)
    fetch.fetch("cifar10", log=lambda *_: None, **FAST)
    assert len(server.log) == before


@pytest.mark.parametrize("evil", ["../escaped", "/tmp/absolute", "cifar-10-batches-py/../../up"])
def test_cifar10_archive_that_escapes_is_refused(server, cache, monkeypatch, tmp_path, evil):
    archive = tiny_cifar_archive(tmp_path, extra={evil: b"x"})
    serve(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    with pytest.raises(DataError, match="unexpected member"):
        fetch.fetch("cifar10", log=lambda *_: None, **FAST)
    assert (
        not (cache / "escaped").exists()
        and not (cache / "cifar10" / "cifar-10-batches-py").exists()
    )
    assert not (tmp_path / "up").exists()


# -- presets find the data -----------------------------------------------------------------------
def test_lookup_order_cache_then_system_folder(cache, tmp_path):
    system = tmp_path / "system" / "fashion-mnist"
    system.mkdir(parents=True)
    for split in ("train", "test"):
        images, labels = FILES[split]
        write_idx(system / f"{images}.gz", np.zeros((3, 28, 28), np.uint8))
        write_idx(system / f"{labels}.gz", np.array([0, 1, 2], np.uint8))
    assert fetch.locate("fashion-mnist") == system
    (cache / "fashion-mnist").mkdir(parents=True)
    assert fetch.locate("fashion-mnist") == system  # an incomplete cache folder is skipped
    for name in fetch.IDX_NAMES:
        (cache / "fashion-mnist" / name).write_bytes((system / f"{name}.gz").read_bytes())
    assert fetch.locate("fashion-mnist") == cache / "fashion-mnist"


def test_a_path_wins_over_a_dataset_name(cache, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((4, 5, 5), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    data = build_dataset({"name": "idx", "dataset": "mnist", "path": str(folder)}, seed=0)
    assert data.x.shape == (4, 1, 5, 5)


@pytest.mark.parametrize(
    "preset, name",
    [
        ("dcgan-mnist", "mnist"),
        ("dcgan-fashion-mnist", "fashion-mnist"),
        ("stacked-fashion-mnist", "fashion-mnist"),
    ],
)
def test_missing_data_names_the_fetch_command(cache, preset, name):
    cfg = load_recipe(preset)
    with pytest.raises(DataError) as err:
        build_dataset(cfg.data, seed=0)
    message = str(err.value)
    assert f"`gankit data fetch {name}`" in message and "data.path" in message
    assert str(cache / name) in message and "\n" not in message


def test_missing_cifar10_names_the_fetch_command(cache):
    with pytest.raises(
        DataError, match=r"data.path: cifar10 is not in .*gankit data fetch cifar10"
    ):
        build_dataset({"name": "cifar10"}, seed=0)


def test_train_prints_the_fetch_command(cache, tmp_path, capsys):
    assert main(["train", "dcgan-mnist", "--steps", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gankit: error: data.dataset: mnist is not in ")
    assert "`gankit data fetch mnist`" in err and "\n" not in err


def test_no_preset_hard_codes_the_debian_folder():
    """Presets of standard data name them (data.dataset); only a folder of the user's own
    images leaves data.path for the user to set."""
    for name in preset_names():
        text = yaml_text(name)
        assert "path: /usr/share/datasets" not in text, name
        if "name: folder" not in text:
            assert "path: null" not in text, name


def yaml_text(name: str) -> str:
    from importlib import resources

    return (resources.files("gankit.presets") / f"{name}.yaml").read_text()


def test_fashion_presets_keep_their_shipped_classifier():
    fashion = [n for n in preset_names() if "fashion-mnist" in n]
    assert len(fashion) == 12
    for name in fashion:
        data = load_recipe(name).data
        got = source_classifier(data) if data["name"] == "transformed" else None
        got = got or shipped_classifier_for(data)
        assert got == "fashion-mnist", name
    assert shipped_classifier_for(load_recipe("dcgan-mnist").data) is None
    # a folder given with --set data.path is what is read, whatever data.dataset says
    data = load_recipe("dcgan-fashion-mnist", ["data.path=/data/mnist"]).data
    assert shipped_classifier_for(data) is None


# -- the command line -----------------------------------------------------------------------------
def test_cli_list(cache, capsys, tmp_path):
    (cache / "mnist").mkdir(parents=True)
    for name in fetch.IDX_NAMES:
        (cache / "mnist" / f"{name}.gz").write_bytes(b"")
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert f"mnist          present  {cache / 'mnist'}" in out
    assert "fashion-mnist  missing  gankit data fetch fashion-mnist" in out


def _env(cache: Path, server: Server) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GANKIT_DATA", "GANKIT_DATA_MIRROR")}
    return {**env, "GANKIT_DATA": str(cache), "GANKIT_DATA_MIRROR": server.url}


def test_cli_fetch_in_a_subprocess(server, cache, tmp_path):
    """`gankit data fetch fashion-mnist mnist` in its own process, through the mirror variable:
    Fashion-MNIST's catalogue entry is given the test files' checksums; MNIST keeps the real
    one, and the mirror's file is the right size but not MNIST."""
    files = tiny_idx_files(tmp_path)
    sums = {name: [len(data), hashlib.sha256(data).hexdigest()] for name, data in files.items()}
    for name, data in files.items():
        server.files[f"/fashion-mnist/{name}"] = data
    mnist = CATALOGUE["mnist"].files[0]
    server.files[f"/mnist/{mnist.name}"] = bytes(mnist.size)
    script = (
        "import json, sys; from gankit.data import fetch; from gankit.cli import main\n"
        "spec = fetch.CATALOGUE['fashion-mnist']\n"
        "files = tuple(fetch.Remote(n, s, h) for n, (s, h) in json.loads(sys.argv[1]).items())\n"
        "fetch.CATALOGUE[spec.name] = fetch.Standard(spec.name, '-', files, 'idx', 'test')\n"
        "sys.exit(main(sys.argv[2:]))\n"
    )
    names = ["fashion-mnist", "fashion-mnist", "mnist"]  # named twice: fetched once
    run = subprocess.run(
        [sys.executable, "-c", script, json.dumps(sums), "data", "fetch", *names],
        env=_env(cache, server), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert f"fashion-mnist: {cache / 'fashion-mnist'} (sha256 verified)" in run.stdout
    assert sorted(p.name for p in (cache / "fashion-mnist").iterdir()) == sorted(files)
    labels = gzip.decompress((cache / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert labels[8:] == bytes(range(10))
    # MNIST: one line on stderr, exit code 2, nothing left in its folder
    assert run.returncode == 2
    err = run.stderr.strip()
    assert err.startswith(f"gankit: error: {server.url}/mnist/{mnist.name}: sha256 mismatch")
    assert f"expected {mnist.sha256}" in err and "\n" not in err
    assert list((cache / "mnist").iterdir()) == []
    assert [path for path, _ in server.log].count(f"/fashion-mnist/{mnist.name}") == 1
