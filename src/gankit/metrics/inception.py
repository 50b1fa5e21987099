"""The standard FID Inception-v3 network in pure torch, for computing standard FID offline.

This is the network pytorch-fid, torchmetrics and clean-fid use: the TensorFlow FID graph
("inception-2015-12-05") ported to PyTorch and published as `pt_inception-2015-12-05-6726825d.pth`.
Its structure is torchvision's Inception-v3 (same module names, so the file's state-dict keys load
as they are) without the auxiliary classifier, with a 1008-way classifier and with the
differences pytorch-fid's `fid_inception_v3` patches in:

* the average pooling in the pool branch of Mixed_5b..5d, Mixed_6b..6e and Mixed_7b ignores the
  zero padding (`count_include_pad=False`), as TensorFlow's average pooling does;
* the pool branch of Mixed_7c uses 3x3 max pooling instead of average pooling (a quirk of the
  TensorFlow graph that the published FID numbers depend on).

Inputs are handled as pytorch-fid does with `resize_input=True, normalize_input=False` (gankit
images are already in [-1, 1]): grayscale images are repeated to 3 channels and every image is
resized to 299x299 with `F.interpolate(mode="bilinear", align_corners=False)`, without
antialiasing. The TensorFlow graph resizes differently (its own bilinear resize, on images it
receives as uint8), so FID computed with this extractor equals pytorch-fid's, not the original
TensorFlow implementation's, to within the effect of resizing. Images that are already 299x299
are not resized at all, and there the two agree up to floating point.

The weights are never downloaded: `load_fid_inception` looks for the file in a given path, in
`$GANKIT_INCEPTION_WEIGHTS` and in the torch hub cache, and says how to get it when it is missing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from gankit.errors import GankitError
from gankit.metrics.features import FeatureExtractor
from gankit.state_dicts import describe_mismatch

FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FILE_NAME}"
ENV_VAR = "GANKIT_INCEPTION_WEIGHTS"
INPUT_SIZE = 299
NUM_FEATURES = 2048
NUM_CLASSES = 1008
# BatchNorm's step counter: not used in eval mode and absent from files saved by old PyTorch.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


class BasicConv2d(nn.Module):
    """Conv2d without bias, BatchNorm2d (eps 0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: Tensor) -> Tensor:
    """TensorFlow's 3x3 stride-1 "SAME" average pooling: the padding is not averaged in."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1, 5x5, double 3x3 and pool branches."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (Mixed_6a)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b3d, bp], 1)


class FIDInceptionC(nn.Module):
    """17x17 block with factorized 7x7 convolutions (Mixed_6b..6e)."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        b7d = self.branch7x7dbl_3(self.branch7x7dbl_2(b7d))
        b7d = self.branch7x7dbl_5(self.branch7x7dbl_4(b7d))
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b7, b7d, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (Mixed_7a)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class FIDInceptionE(nn.Module):
    """8x8 block with expanded filter banks (Mixed_7b with average pooling, Mixed_7c with max
    pooling in the pool branch, as in the TensorFlow FID graph)."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_3x3(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, b3d, bp], 1)


class FIDInceptionV3(FeatureExtractor):
    """The FID Inception-v3: pool3 features (2048) and 1008-way logits of NCHW images in [-1, 1].

    Built with random weights; `load_fid_inception` loads the published FID weights. Module names
    follow torchvision's `inception_v3`, so the state-dict keys are those of
    `pt_inception-2015-12-05-6726825d.pth` ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch_pool.
    bn.running_var", ..., "fc.weight", "fc.bias").
    """

    name = "inception-v3-fid"
    num_features = NUM_FEATURES
    num_classes = NUM_CLASSES

    def __init__(self):
        super().__init__()
        self.weights_sha256 = None
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(NUM_FEATURES, NUM_CLASSES)

    def adapt(self, images: Tensor) -> Tensor:
        """(N, 1 or 3, H, W) in [-1, 1] -> (N, 3, 299, 299): grayscale repeated to RGB, then a
        bilinear resize (align_corners=False, no antialiasing) as in pytorch-fid."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise GankitError(
                f"{self.name}: expects NCHW images with 1 or 3 channels, got shape "
                f"{tuple(images.shape)}"
            )
        x = images.to(self.fc.weight.dtype)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(
                x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False
            )
        return x

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The network on already adapted RGB input (any size from 75x75 up): (pool3 features,
        logits)."""
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = self.maxpool1(x)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = self.maxpool2(x)
        x = self.Mixed_5b(x)
        x = self.Mixed_5c(x)
        x = self.Mixed_5d(x)
        x = self.Mixed_6a(x)
        x = self.Mixed_6b(x)
        x = self.Mixed_6c(x)
        x = self.Mixed_6d(x)
        x = self.Mixed_6e(x)
        x = self.Mixed_7a(x)
        x = self.Mixed_7b(x)
        x = self.Mixed_7c(x)
        features = torch.flatten(self.avgpool(x), 1)
        return features, self.fc(features)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (N, 1 or 3, H, W) in [-1, 1] -> (features (N, 2048), logits (N, 1008))."""
        return self.embed(self.adapt(images))


def load_fid_inception(path: str | Path | None = None) -> FIDInceptionV3:
    """The FID Inception-v3 with the published FID weights, in eval mode with frozen parameters
    and `weights_sha256` set to the sha256 of the file. Never downloads.

    The weights file (`pt_inception-2015-12-05-6726825d.pth`, or a `.safetensors` file with the
    same keys) is looked for in this order:

    1. `path`, when given (a file, or a folder holding the file); then nothing else is tried;
    2. the file or folder named by the environment variable `GANKIT_INCEPTION_WEIGHTS`;
    3. the torch hub cache, `<torch.hub.get_dir()>/checkpoints/pt_inception-2015-12-05-6726825d.pth`
       (where pytorch-fid and torchvision put downloads; honours `$TORCH_HOME`).
    """
    candidates: list[tuple[str, Path]] = []
    if path is not None:
        candidates.append(("path argument", _resolve(Path(path))))
    else:
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            candidates.append((f"${ENV_VAR}", _resolve(Path(env))))
        hub = Path(torch.hub.get_dir()) / "checkpoints" / FILE_NAME
        candidates.append(("torch hub cache", hub))
    for _, candidate in candidates:
        if candidate.is_file():
            return _load_file(candidate)
    searched = "; ".join(f"{where}: {p}" for where, p in candidates)
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    raise GankitError(
        f"FID Inception weights not found (searched {searched}). gankit never downloads them: "
        f"get {FILE_NAME} from {WEIGHTS_URL} and either copy it into the torch hub cache folder "
        f"{hub_dir}, set ${ENV_VAR} to its path, or pass its path "
        f"(load_fid_inception(path))"
    )


def _resolve(p: Path) -> Path:
    p = p.expanduser()
    return p / FILE_NAME if p.is_dir() else p


def _load_file(path: Path) -> FIDInceptionV3:
    what = f"FID Inception weights {path}"
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types for bad files
            raise GankitError(f"{what}: not a valid safetensors file ({_short(e)})") from e
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError, RuntimeError (bad zip), EOFError, ...
            raise GankitError(
                f"{what}: cannot be loaded as a PyTorch state dict with weights_only=True (a "
                f"corrupt or truncated file, or one holding objects other than tensors; get the "
                f"original file from {WEIGHTS_URL}) ({_short(e)})"
            ) from e
    if not isinstance(state, Mapping) or not state:
        raise GankitError(
            f"{what}: expected a state dict (a mapping of names to tensors), got "
            f"{type(state).__name__}"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise GankitError(
            f"{what}: expected a state dict of tensors, but {len(bad)} entries are not tensors "
            f"(e.g. {', '.join(map(repr, bad[:5]))})"
        )

    model = FIDInceptionV3()
    expected = model.state_dict()
    mismatch = describe_mismatch(expected, state, optional=lambda k: k.endswith(_OPTIONAL_SUFFIX))
    if mismatch:
        raise GankitError(
            f"{what}: its tensors do not fit the FID Inception-v3 ({mismatch}); "
            f"use the file from {WEIGHTS_URL}"
        )
    full = {k: state[k].to(v.dtype) if k in state else v for k, v in expected.items()}
    model.load_state_dict(full)
    model.eval().requires_grad_(False)
    model.weights_sha256 = _sha256(path)
    return model


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
