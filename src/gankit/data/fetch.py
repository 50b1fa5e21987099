"""Download the standard data sets (MNIST, Fashion-MNIST, CIFAR-10) into a user cache, verified.

`gankit data fetch NAME` fetches every file of a data set from its official location into
`<cache>/<name>/`: each file is written to `<file>.part`, its size and sha256 are checked against
the catalogue below, and only then is it renamed into place, so a file under its final name is
always complete and verified. A broken transfer is retried with backoff and resumed with an HTTP
Range request where the server allows it; a stalled server trips a socket timeout.

The cache folder is $GANKIT_DATA if set, else $XDG_CACHE_HOME/gankit/data, else
~/.cache/gankit/data. $GANKIT_DATA_MIRROR replaces the official locations by one base URL that
serves `<mirror>/<name>/<file>` (the cache's own layout, e.g. a copy of someone's cache folder).

Data sets that name a standard data set instead of a path (`data: {name: idx, dataset:
fashion-mnist}`) look in the cache first, then in /usr/share/datasets/<name> (where Debian's
`dataset-fashion-mnist` package puts Fashion-MNIST); see `locate`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from gankit.errors import DataError
from gankit.version import __version__

CACHE_ENV = "GANKIT_DATA"
MIRROR_ENV = "GANKIT_DATA_MIRROR"
SYSTEM_ROOT = Path("/usr/share/datasets")
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")

TIMEOUT = 30.0  # seconds a connect or a read may block before the try counts as failed
RETRIES = 4  # further tries after a failed one; a try that moved data resets the count
BACKOFF = 1.0  # seconds before the first retry, doubled each time
CHUNK = 1 << 16


@dataclass(frozen=True)
class Remote:
    """One published file: its name at the base URL, its size in bytes and sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Standard:
    """A standard data set: where it is published, its files, and how the cache holds it."""

    name: str
    base_url: str
    files: tuple[Remote, ...]
    layout: str  # "idx": the .gz IDX files as published; "cifar10": the extracted batches folder
    source: str  # where the checksums were taken from

    def urls(self) -> list[str]:
        mirror = os.environ.get(MIRROR_ENV, "").strip()
        base = f"{mirror.rstrip('/')}/{self.name}/" if mirror else self.base_url
        return [base + f.name for f in self.files]


CATALOGUE: dict[str, Standard] = {
    # MNIST from the S3 mirror torchvision downloads from: yann.lecun.com/exdb/mnist, the
    # original location, has been unreliable (HTTP 403s, long outages) since 2023. The files are
    # byte-identical to the originals (torchvision checks the original md5s against this mirror).
    # sha256 and sizes: tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt (its
    # copy at storage.googleapis.com/cvdf-datasets/mnist), also listed with the ossci URL and
    # the original md5 (train images f68b3c2dcbeaaa9fbdd348bbdeb94873) by other projects.
    "mnist": Standard(
        name="mnist",
        base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        files=(
            Remote(
                "train-images-idx3-ubyte.gz",
                9912422,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            ),
            Remote(
                "train-labels-idx1-ubyte.gz",
                28881,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            ),
            Remote(
                "t10k-images-idx3-ubyte.gz",
                1648877,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            ),
            Remote(
                "t10k-labels-idx1-ubyte.gz",
                4542,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
        ),
        layout="idx",
        source="tensorflow/datasets url_checksums/mnist.txt",
    ),
    # Fashion-MNIST from Zalando Research's own S3 site (the URL its README links).
    # sha256 and sizes: tensorflow/datasets, tensorflow_datasets/url_checksums/fashion_mnist.txt
    # (the same URLs). Debian's dataset-fashion-mnist holds the same images re-gzipped without
    # the original file name in the gzip header (24 bytes shorter), so its .gz checksums differ.
    "fashion-mnist": Standard(
        name="fashion-mnist",
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files=(
            Remote(
                "train-images-idx3-ubyte.gz",
                26421880,
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            ),
            Remote(
                "train-labels-idx1-ubyte.gz",
                29515,
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            ),
            Remote(
                "t10k-images-idx3-ubyte.gz",
                4422102,
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            ),
            Remote(
                "t10k-labels-idx1-ubyte.gz",
                5148,
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            ),
        ),
        layout="idx",
        source="tensorflow/datasets url_checksums/fashion_mnist.txt",
    ),
    # CIFAR-10, python version, from Alex Krizhevsky's page. sha256: keras-team/keras,
    # keras/datasets/cifar10.py (file_hash of this URL); size 170,498,071 bytes and md5
    # c58f30108f718f92721af3b95e74349a (torchvision's) as listed with it by other projects.
    # (tensorflow_datasets lists the binary version, cifar-10-binary.tar.gz, not this one.)
    "cifar10": Standard(
        name="cifar10",
        base_url="https://www.cs.toronto.edu/~kriz/",
        files=(
            Remote(
                "cifar-10-python.tar.gz",
                170498071,
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            ),
        ),
        layout="cifar10",
        source="keras-team/keras keras/datasets/cifar10.py",
    ),
}


def names() -> list[str]:
    return list(CATALOGUE)


def standard(name: str, where: str = "data.dataset") -> Standard:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise DataError(
            f"{where}: unknown data set {name!r}; standard data sets: {', '.join(CATALOGUE)}"
        ) from None


def cache_root() -> Path:
    """$GANKIT_DATA, else $XDG_CACHE_HOME/gankit/data, else ~/.cache/gankit/data."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gankit" / "data"


def is_complete(name: str, folder: Path) -> bool:
    """Whether `folder` holds everything data set `name` reads (IDX files raw or .gz)."""
    if standard(name).layout == "cifar10":
        batches = folder / CIFAR_FOLDER
        return all((batches / f).is_file() for f in CIFAR_FILES)
    return all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in IDX_NAMES)


def candidates(name: str) -> list[Path]:
    """Where a standard data set is looked for, in order: the cache, then the system folder."""
    return [cache_root() / name, SYSTEM_ROOT / name]


def find(name: str) -> Path | None:
    """The first complete copy of data set `name`, or None."""
    return next((f for f in candidates(name) if is_complete(name, f)), None)


def locate(name: str, where: str = "data.dataset") -> Path:
    """The folder of standard data set `name`, or a one-line error naming the fetch command."""
    folder = find(name)
    if folder is None:
        looked = " or ".join(str(f) for f in candidates(name))
        raise DataError(
            f"{where}: {name} is not in {looked}; download it with `gankit data fetch {name}` "
            "(or set data.path to a folder that holds it)"
        )
    return folder


# -- downloading ------------------------------------------------------------------------------


class _Retry(Exception):
    """A failed try worth repeating (connection error, timeout, 5xx, short read)."""

    def __init__(self, message: str, progressed: bool = False):
        super().__init__(message)
        self.progressed = progressed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    return int(match.group(1)) if match else None


def _try_once(url: str, part: Path, size: int, timeout: float, bar) -> None:
    """One HTTP request that appends to `part` (resuming from its length when the server
    honours Range) until `size` bytes are there; raises _Retry or DataError."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"gankit/{__version__}"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:  # the range lies beyond the file: the .part is bad
            part.unlink()
            raise _Retry(f"HTTP 416 resuming at byte {have}; starting again") from None
        if e.code >= 500 or e.code in (408, 429):
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        hint = ""
        if e.code == 404:
            hint = (
                f" (not on the mirror ${MIRROR_ENV})"
                if os.environ.get(MIRROR_ENV, "").strip()
                else f" (moved? ${MIRROR_ENV}=URL fetches URL/NAME/FILE instead)"
            )
        raise DataError(f"{url}: HTTP {e.code} {e.reason}{hint}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)  # refused, DNS, reset, no answer in time
        if isinstance(reason, TimeoutError):
            raise _Retry(f"no answer within {timeout:g} s") from None
        raise _Retry(f"cannot connect ({reason or type(e).__name__})") from None
    with response:
        if have and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _Retry(f"the server resumed at byte {start}, not {have}; starting again")
            mode = "ab"
        else:  # 200: the whole file (a server that ignores Range sends it from the start)
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != size:
                part.unlink(missing_ok=True)
                raise DataError(
                    f"{url}: the server sends {int(length)} bytes, expected {size}; "
                    "the file there is not the published one"
                )
        bar.reset(total=size)
        bar.update(have)
        got = 0
        try:
            f = open(part, mode)
        except OSError as e:
            raise DataError(f"{part}: cannot write ({e.strerror or e})") from None
        with f:
            while have + got < size:
                try:
                    block = response.read1(min(CHUNK, size - have - got))  # what came
                except (OSError, http.client.HTTPException) as e:  # a stall, a reset, ...
                    stalled = isinstance(e, TimeoutError)
                    what = f"stalled ({timeout:g} s without data)" if stalled else f"broke ({e!r})"
                    raise _Retry(
                        f"the transfer {what} after {have + got} of {size} bytes", got > 0
                    ) from None
                if not block:
                    break
                try:
                    f.write(block)
                except OSError as e:  # a full disk: retrying does not help
                    raise DataError(f"{part}: cannot write ({e.strerror or e})") from None
                got += len(block)
                bar.update(len(block))
        if have + got < size:
            raise _Retry(f"the connection closed after {have + got} of {size} bytes", got > 0)


def download(
    url: str,
    dest: Path,
    size: int,
    sha256: str,
    *,
    timeout: float = TIMEOUT,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    progress: bool | None = None,
) -> Path:
    """Download `url` to `dest` via `dest.part`, verified (size and sha256) before it is renamed
    into place. A failed try is retried after backoff, resuming the .part; after `retries`
    failed tries in a row the .part stays for the next call to resume. progress: None shows a
    bar when stderr is a terminal."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.exists() and part.stat().st_size > size:
        part.unlink()
    failures = 0
    disable = None if progress is None else not progress  # None: tqdm's "not a terminal"
    with tqdm(
        total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
        disable=disable, leave=False,
    ) as bar:  # fmt: skip
        while not (part.exists() and part.stat().st_size == size):
            try:
                _try_once(url, part, size, timeout, bar)
            except _Retry as e:
                failures = 1 if e.progressed else failures + 1
                if failures > retries:
                    again = "resume" if part.exists() else "try again"
                    raise DataError(
                        f"{url}: {e} ({failures} tries in a row failed); run the command again "
                        f"to {again}"
                    ) from None
                time.sleep(backoff * 2 ** (failures - 1))
    got = _sha256(part)
    if got != sha256:
        part.unlink()
        raise DataError(
            f"{url}: sha256 mismatch, expected {sha256}, got {got}; deleted the download "
            "(a damaged transfer or a changed file: run the command again)"
        )
    os.replace(part, dest)
    return dest


def _safe_members(archive: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's members if every one is a plain file or folder inside CIFAR_FOLDER."""
    members = tar.getmembers()
    for m in members:
        parts = Path(m.name).parts
        if (
            m.name.startswith(("/", "\\"))
            or ".." in parts
            or not parts
            or parts[0] != CIFAR_FOLDER
            or not (m.isfile() or m.isdir())
        ):
            raise DataError(f"{archive}: unexpected member {m.name!r}; not the CIFAR-10 archive")
    return members


def _extract_cifar(archive: Path, folder: Path) -> None:
    """Extract into a temporary folder, then rename the complete batches folder into place."""
    scratch = folder / f".{CIFAR_FOLDER}.extracting"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _safe_members(archive, tar)
            if hasattr(tarfile, "data_filter"):  # Python 3.12, 3.11.4, 3.10.12, ...
                tar.extractall(scratch, members=members, filter="data")
            else:  # pragma: no cover - older Pythons; the members were checked above
                tar.extractall(scratch, members=members)
        if not is_complete("cifar10", scratch):
            raise DataError(f"{archive}: does not hold {CIFAR_FOLDER}/{', '.join(CIFAR_FILES)}")
        shutil.rmtree(folder / CIFAR_FOLDER, ignore_errors=True)
        os.replace(scratch / CIFAR_FOLDER, folder / CIFAR_FOLDER)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive}: cannot extract ({e})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch(
    name: str,
    root: str | Path | None = None,
    *,
    timeout: float = TIMEOUT,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    progress: bool | None = None,
    log=print,
) -> Path:
    """Download data set `name` into `root/name` (root: the cache folder by default) unless it
    is there already; returns that folder. IDX data sets keep the published .gz files (each
    verified again when found). CIFAR-10's archive is deleted once the batches folder is
    extracted (it holds nothing else; a fresh fetch downloads it again)."""
    spec = standard(name, where="data fetch")
    folder = (Path(root).expanduser() if root is not None else cache_root()) / name
    if spec.layout == "cifar10" and is_complete(name, folder):
        log(f"{name}: already in {folder}")
        return folder
    for remote, url in zip(spec.files, spec.urls()):
        dest = folder / remote.name
        if dest.is_file():
            if dest.stat().st_size == remote.size and _sha256(dest) == remote.sha256:
                log(f"{name}: {remote.name} already in {folder}, sha256 ok")
                continue
            log(f"{name}: {dest} does not match its sha256; downloading it again")
            dest.unlink()
        log(f"{name}: {url}")
        download(
            url, dest, remote.size, remote.sha256,
            timeout=timeout, retries=retries, backoff=backoff, progress=progress,
        )  # fmt: skip
    if spec.layout == "cifar10":
        archive = folder / spec.files[0].name
        _extract_cifar(archive, folder)
        archive.unlink()
    log(f"{name}: {folder} (sha256 verified)")
    return folder
