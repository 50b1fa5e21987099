"""Two image domains A and B for image-to-image translation (CycleGAN: unpaired; pix2pix: paired).

Every data set here is a `DomainData`: `batch_a(n)` and `batch_b(n)` give (images, labels or
None) of each domain, `batch_pairs(n)` gives aligned (a, b, labels) for paired data. Unpaired
domains are two InMemoryData streams with their own seeded permutations (seeds `seed` and
`seed + 1`); paired domains are one InMemoryData whose samples hold a and b stacked on the
channels, so a pair always stays together. The state (epoch and position of each stream) is
checkpointed, so resume is exact. `batch(n)` (the generic interface) is a batch of A,
`reference(n)` the first n images of B (the domain translations of A should look like).

Registered data sets (each a `data:` section):

    transformed     A = images of a source data set, B = a fixed transform of them
                    (invert, rotate90, flip, blur, edges, warp). paired: true keeps (x, T(x)) pairs;
                    paired: false (the default) splits the source in two halves with a fixed
                    seed, A from one and T(B) from the other, so no image appears in both
                    domains (a truly unpaired task whose labels are known, see
                    metrics/translation.py).
    class_domains   two class subsets of one labeled data set (e.g. Fashion-MNIST sandals vs.
                    sneakers), unpaired.
    unpaired        any two data sets (two IDX sets, two image folders), unpaired.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from gankit.data import DATASETS, build_dataset
from gankit.data.base import DataSource, InMemoryData
from gankit.data.rendered import render_digits
from gankit.errors import ConfigError, DataError

Transform = Literal["invert", "rotate90", "flip", "blur", "edges", "warp"]
# transforms with an exact inverse (for label preservation of A -> B translations)
INVERTIBLE = ("invert", "rotate90", "flip")
# the "pose" warp: a rotation by WARP_DEGREES (clockwise as displayed, rows down) after a shear
# x' = x + WARP_SHEAR y, in normalized coordinates about the image centre
WARP_DEGREES, WARP_SHEAR = 20.0, 0.25


def warp_matrix(inverse: bool = False) -> Tensor:
    """The 2x3 affine matrix that grid_sample reads the warped image through: output pixel p
    takes the input at M p (M = (R S)^-1 for the warp; R S itself for its inverse)."""
    t = torch.tensor(WARP_DEGREES, dtype=torch.float64).deg2rad()
    rot = torch.tensor([[t.cos(), -t.sin()], [t.sin(), t.cos()]], dtype=torch.float64)
    shear = torch.tensor([[1.0, WARP_SHEAR], [0.0, 1.0]], dtype=torch.float64)
    forward = rot @ shear
    m = forward if inverse else torch.linalg.inv(forward)
    return torch.cat([m, torch.zeros(2, 1, dtype=torch.float64)], 1).float()


def affine_warp(x: Tensor, inverse: bool = False) -> Tensor:
    """The warp (or its inverse) of [-1, 1] images: bilinear, align_corners False, the
    background value -1 outside the image (x + 1 is sampled with zero padding)."""
    m = warp_matrix(inverse).to(x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(m, list(x.shape), align_corners=False)
    out = F.grid_sample(
        x.float() + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out - 1


# -- transforms (images in [-1, 1], NCHW) ---------------------------------------------------------
def apply_transform(name: str, x: Tensor) -> Tensor:
    """T(x) for images in [-1, 1]; the result is in [-1, 1] too."""
    if name == "invert":
        return -x
    if name == "rotate90":  # a quarter turn counter-clockwise
        return torch.rot90(x, 1, dims=(2, 3))
    if name == "flip":  # left-right mirror
        return torch.flip(x, dims=(3,))
    if name == "blur":  # 3x3 binomial kernel [1 2 1]^T [1 2 1] / 16, replicate padding
        k1 = torch.tensor([1.0, 2.0, 1.0], device=x.device) / 4
        kernel = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])
    if name == "edges":  # Sobel gradient magnitude, scaled per image to [-1, 1]
        sx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device)
        kernels = torch.stack([sx, sx.t()]).unsqueeze(1)  # (2, 1, 3, 3)
        c = x.shape[1]
        g = F.conv2d(
            F.pad(x, (1, 1, 1, 1), mode="replicate").flatten(0, 1).unsqueeze(1), kernels
        )  # (N*C, 2, H, W)
        mag = g.pow(2).sum(1).sqrt().view(x.shape[0], c, *x.shape[2:])
        top = mag.flatten(1).amax(1).clamp_min(1e-8).view(-1, 1, 1, 1)
        return mag / top * 2 - 1
    if name == "warp":  # a fixed rotation + shear ("pose"), WARP_DEGREES and WARP_SHEAR
        return affine_warp(x)
    raise ValueError(f"unknown transform {name!r}")


def invert_transform(name: str, y: Tensor) -> Tensor:
    """T^-1(y) for the invertible transforms; for "warp" the inverse affine map (exact up to
    the bilinear resampling and what the warp moved outside the image)."""
    if name == "invert":
        return -y
    if name == "rotate90":
        return torch.rot90(y, -1, dims=(2, 3))
    if name == "flip":
        return torch.flip(y, dims=(3,))
    if name == "warp":
        return affine_warp(y, inverse=True)
    raise ValueError(f"transform {name!r} has no inverse; invertible: {', '.join(INVERTIBLE)}")


# -- the data source ------------------------------------------------------------------------------
class DomainData(DataSource):
    """Domains A and B. Unpaired: `a` and `b` are separate streams. Paired: `pairs` holds (a, b)
    on the channels (a's channels first)."""

    is_image = True

    def __init__(
        self,
        a: Tensor,
        b: Tensor,
        labels_a: Tensor | None = None,
        labels_b: Tensor | None = None,
        *,
        paired: bool,
        seed: int,
        name: str,
        num_classes: int | None = None,
        transform: str | None = None,
    ):
        if a.ndim != 4 or b.ndim != 4:
            raise DataError(f"{name}: both domains must hold images (N, C, H, W)")
        if a.shape[2:] != b.shape[2:]:
            raise DataError(
                f"{name}: domains A {tuple(a.shape[1:])} and B {tuple(b.shape[1:])} must have "
                "the same height and width"
            )
        self.paired = paired
        self.name = name
        self.transform = transform  # the B = T(A) transform, for the metrics
        self.num_classes = num_classes
        self.shape_a, self.shape_b = tuple(a.shape[1:]), tuple(b.shape[1:])
        self.shape = self.shape_a
        self.channels_a = a.shape[1]
        if paired:
            if len(a) != len(b):
                raise DataError(f"{name}: paired domains need as many A as B images")
            self.pairs = InMemoryData(
                torch.cat([a, b], 1), labels_a, seed=seed, name=name, num_classes=num_classes
            )
            self.streams = {"pairs": self.pairs}
        else:
            self.a = InMemoryData(a, labels_a, seed=seed, name=f"{name}-A", num_classes=num_classes)
            self.b = InMemoryData(
                b, labels_b, seed=seed + 1, name=f"{name}-B", num_classes=num_classes
            )
            self.streams = {"a": self.a, "b": self.b}

    # the images and labels of each domain, in their stored order
    def images(self, domain: str) -> tuple[Tensor, Tensor | None]:
        if self.paired:
            x, c = self.pairs.x, self.channels_a
            return (x[:, :c] if domain == "a" else x[:, c:]), self.pairs.labels
        stream = self.a if domain == "a" else self.b
        return stream.x, stream.labels

    def batch_pairs(self, n: int) -> tuple[Tensor, Tensor, Tensor | None]:
        if not self.paired:
            raise DataError(f"{self.name}: unpaired domains have no (a, b) pairs")
        x, y = self.pairs.batch(n)
        return x[:, : self.channels_a], x[:, self.channels_a :], y

    def batch_a(self, n: int) -> tuple[Tensor, Tensor | None]:
        if self.paired:
            a, _, y = self.batch_pairs(n)
            return a, y
        return self.a.batch(n)

    def batch_b(self, n: int) -> tuple[Tensor, Tensor | None]:
        if self.paired:
            _, b, y = self.batch_pairs(n)
            return b, y
        return self.b.batch(n)

    def batch(self, n: int) -> tuple[Tensor, Tensor | None]:
        return self.batch_a(n)

    def reference(self, n: int) -> Tensor:
        return self.images("b")[0][:n]

    def to(self, device: torch.device) -> DomainData:
        for stream in self.streams.values():
            stream.to(device)
        return self

    def state_dict(self) -> dict:
        return {k: s.state_dict() for k, s in self.streams.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, s in self.streams.items():
            s.load_state_dict(state[k])

    def reseed(self, salt: int) -> None:
        for i, stream in enumerate(self.streams.values()):
            stream.reseed(salt + i)

    def describe(self) -> str:
        na, nb = len(self.images("a")[0]), len(self.images("b")[0])
        kind = "paired" if self.paired else "unpaired"
        return f"{self.name}: {kind} domains, A {na} x {self.shape_a}, B {nb} x {self.shape_b}"


def _source(options: dict, seed: int, where: str, split: str | None = None) -> InMemoryData:
    options = dict(options)
    if split is not None:
        options["split"] = split
    data = build_dataset(options, seed, where)
    if not isinstance(data, InMemoryData) or not data.is_image:
        raise ConfigError(f"{where}: needs an image data set held in memory, got {data.describe()}")
    return data


@DATASETS.register("transformed")
def transformed(
    seed: int,
    source: dict = {"name": "digits"},  # noqa: B006 - read only
    transform: Transform = "invert",
    paired: bool = False,
    split: str | None = None,
) -> DomainData:
    """A = the source's images, B = transform(images). split: passed to the source (e.g. test)."""
    src = _source(source, seed, "data.source", split)
    x, y = src.x, src.labels
    if paired:
        return DomainData(
            x,
            apply_transform(transform, x),
            y,
            y,
            paired=True,
            seed=seed,
            name=f"{src.name}-{transform}-paired",
            num_classes=src.num_classes,
            transform=transform,
        )
    # two disjoint halves, fixed by the seed 0 (not the run's seed: the task stays the same)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    ia, ib = perm[: len(x) // 2], perm[len(x) // 2 :]
    return DomainData(
        x[ia],
        apply_transform(transform, x[ib]),
        None if y is None else y[ia],
        None if y is None else y[ib],
        paired=False,
        seed=seed,
        name=f"{src.name}-{transform}",
        num_classes=src.num_classes,
        transform=transform,
    )


@DATASETS.register("class_domains")
def class_domains(
    seed: int,
    source: dict,
    a_classes: list[int],
    b_classes: list[int],
    split: str | None = None,
) -> DomainData:
    """A = the source's images of a_classes, B = those of b_classes (unpaired)."""
    src = _source(source, seed, "data.source", split)
    if src.labels is None:
        raise ConfigError("data.source: class_domains needs a labeled data set")
    if set(a_classes) & set(b_classes):
        raise ConfigError("data.a_classes, data.b_classes: the domains must not share classes")
    picked = []
    for key, classes in (("a_classes", a_classes), ("b_classes", b_classes)):
        mask = torch.isin(src.labels, torch.tensor(classes, dtype=torch.long))
        if not mask.any():
            raise ConfigError(f"data.{key}: no image of classes {classes} in {src.name}")
        picked.append(mask)
    (ma, mb) = picked
    return DomainData(
        src.x[ma],
        src.x[mb],
        src.labels[ma],
        src.labels[mb],
        paired=False,
        seed=seed,
        name=f"{src.name}-{'+'.join(map(str, a_classes))}-vs-{'+'.join(map(str, b_classes))}",
        num_classes=src.num_classes,
    )


@DATASETS.register("unpaired")
def unpaired(seed: int, a: dict, b: dict, split: str | None = None) -> DomainData:
    """A and B from two data sets (e.g. two IDX sets or two image folders)."""
    da = _source(a, seed, "data.a", split)
    db = _source(b, seed, "data.b", split)
    return DomainData(
        da.x, db.x, da.labels, db.labels, paired=False, seed=seed, name=f"{da.name}-vs-{db.name}"
    )


@DATASETS.register("rendered_digits")
def rendered_digits(
    seed: int,
    n: int = 4000,
    real: dict = {"name": "digits"},  # noqa: B006 - read only
    split: str | None = None,
    font: str | None = None,
    render_seed: int = 0,
    scale: tuple[float, float] = (0.75, 0.95),
    max_rotation: float = 10.0,
    max_shift: float = 0.08,
) -> DomainData:
    """SimGAN's offline task: A = n digits rendered with a font (data/rendered.py; labels are
    the rendered digits), B = real digit images (default scikit-learn digits), unpaired.
    The synthetic set is fixed by render_seed (not the run's seed); split test renders another
    set (render_seed + 1) and takes the real test split."""

    if n < 2:
        raise ConfigError(f"data.n: needs at least 2 synthetic images, got {n}")
    src = _source(real, seed, "data.real", split)
    size = src.shape[-1]
    if src.shape[0] != 1 or src.shape[1] != size:
        raise ConfigError(f"data.real: needs square grayscale images, got {src.shape}")
    salt = 1 if split == "test" else 0
    x, y = render_digits(
        n, render_seed + salt, size, 4 * size, tuple(scale), max_rotation, max_shift, font
    )
    return DomainData(
        x,
        src.x,
        y,
        src.labels,
        paired=False,
        seed=seed,
        name=f"rendered-digits-vs-{src.name}",
        num_classes=10,
    )
