"""Composite synthesis losses for paired image-to-image training (TP-GAN, Huang et al. 2017,
"Beyond Face Rotation"; perceptual loss, Johnson et al. 2016) and SimGAN's self-regularization
(Shrivastava et al. 2017).

Pure functions of images (N, C, H, W) in [-1, 1]; each returns a 0-d tensor, computed in fp32.
They never call backward(). "mean" below is the mean over every entry of its argument.

    pixel_l1(x, y)          = mean |x - y|
    pixel_l2(x, y)          = mean (x - y)^2
    symmetry_loss(x)        = mean |x - flip_lr(x)|     (TP-GAN's L_sym: its 1 / (W/2 H) sum
                                                         over the left half equals this mean)
    total_variation(x)      = mean |x[..., :, 1:] - x[..., :, :-1]|
                              + mean |x[..., 1:, :] - x[..., :-1, :]|
                              (anisotropic L1; each direction averaged over its own N C H (W-1)
                              or N C (H-1) W differences, so it does not grow with image size;
                              TP-GAN sums instead, hence its tiny weight 1e-4)
    identity_loss(f, x, y)  = mean over layers l of  mean |f_l(x) - f_l(y)|   (distance "l1")
                                                  or mean (f_l(x) - f_l(y))^2 (distance "l2")
    perceptual_loss(f, x, y) = sum over layers l of mean (f_l(x) - f_l(y))^2
                              (Johnson et al.'s feature reconstruction loss,
                              ||phi_l(x) - phi_l(y)||^2 / (C_l H_l W_l), averaged over the batch)

f is a `FixedFeatures`: a frozen network (eval mode, requires_grad False on every parameter) whose
chosen layers' outputs are read with forward hooks. Gradients flow through it to x; the target
y's features are computed without a graph. The defaults: the shipped classifier of the data
(metrics/classifier.py; its penultimate 128-d features are the module "body"), or a VGG16 whose
torchvision-format weights the user has (`vgg16_features`, `load_vgg16`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from gankit.errors import GankitError


# -- pixel-level terms ----------------------------------------------------------------------------
def pixel_l1(x: Tensor, y: Tensor) -> Tensor:
    """mean |x - y|."""
    return (x.float() - y.float()).abs().mean()


def pixel_l2(x: Tensor, y: Tensor) -> Tensor:
    """mean (x - y)^2."""
    return (x.float() - y.float()).pow(2).mean()


def symmetry_loss(x: Tensor) -> Tensor:
    """mean |x - flip_lr(x)| (0 for a left-right symmetric image)."""
    x = x.float()
    return (x - torch.flip(x, dims=(-1,))).abs().mean()


def total_variation(x: Tensor) -> Tensor:
    """mean |horizontal differences| + mean |vertical differences| (module docstring)."""
    x = x.float()
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    return dx + dy


# -- fixed networks -------------------------------------------------------------------------------
class FixedFeatures(nn.Module):
    """The outputs of `layers` (names from net.named_modules()) of a frozen `net`.

    `net` is frozen in place: eval mode and requires_grad False; `train()` keeps it in eval
    mode. forward(x) runs the net once and returns the hooked outputs in the order of `layers`
    (flattened to (N, -1) when flatten is True). `preprocess`, when given, maps [-1, 1] images to
    the net's input first (e.g. VGG's ImageNet normalization)."""

    def __init__(self, net: nn.Module, layers: Sequence[str], preprocess=None, flatten=False):
        super().__init__()
        if not layers:
            raise GankitError("FixedFeatures: name at least one layer")
        named = dict(net.named_modules())
        missing = [name for name in layers if name not in named]
        if missing:
            valid = ", ".join(n for n in named if n) or "(none)"
            raise GankitError(
                f"feature layers {missing} are not modules of the net; valid: {valid}"
            )
        self.net = net.eval().requires_grad_(False)
        self.layers = list(layers)
        self.preprocess = preprocess
        self.flatten = flatten
        self._outputs: dict[str, Tensor] = {}
        for name in self.layers:
            named[name].register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            self._outputs[name] = output

        return hook

    def train(self, mode: bool = True) -> FixedFeatures:
        super().train(mode)
        self.net.eval()  # always: batch norm statistics and dropout stay fixed
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        self._outputs = {}
        self.net(x if self.preprocess is None else self.preprocess(x))
        outs = [self._outputs[name] for name in self.layers]
        self._outputs = {}
        return [o.flatten(1) for o in outs] if self.flatten else outs


def identity_loss(f: FixedFeatures, x: Tensor, y: Tensor, distance: str = "l1") -> Tensor:
    """mean over f's layers of mean |f_l(x) - f_l(y)| ("l1") or mean squared ("l2")."""
    fx = f(x)
    with torch.no_grad():
        fy = f(y)
    terms = []
    for a, b in zip(fx, fy):
        d = a.float() - b.float()
        terms.append(d.abs().mean() if distance == "l1" else d.pow(2).mean())
    return torch.stack(terms).mean()


def perceptual_loss(f: FixedFeatures, x: Tensor, y: Tensor) -> Tensor:
    """sum over f's layers of mean (f_l(x) - f_l(y))^2."""
    fx = f(x)
    with torch.no_grad():
        fy = f(y)
    return torch.stack([(a.float() - b.float()).pow(2).mean() for a, b in zip(fx, fy)]).sum()


def classifier_features(classifier: nn.Module, layers: Sequence[str] = ("body",)) -> FixedFeatures:
    """A shipped gankit classifier (metrics/classifier.py) as fixed features: "body" is its
    penultimate 128-d feature vector, "body.0" .. "body.3" its four conv blocks."""
    return FixedFeatures(classifier, layers)


# -- VGG16 (torchvision's layout, defined here so gankit does not depend on torchvision) --------
VGG16_CONFIG = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"
)  # fmt: skip
# the ReLU after each named convolution, as indices into `features` (torchvision's numbering)
VGG16_LAYERS = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}  # fmt: skip
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """torchvision's vgg16().features: 13 3x3 convolutions (padding 1) with ReLU, 5 max pools,
    in one nn.Sequential named `features`, so its state dict keys are torchvision's
    ("features.0.weight", "features.0.bias", "features.2.weight", ...). `depth` keeps only
    features[:depth] (no work past the deepest layer a loss reads)."""

    def __init__(self, depth: int | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in VGG16_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*layers[: len(layers) if depth is None else depth])

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def vgg_preprocess(x: Tensor) -> Tensor:
    """[-1, 1] images (1 or 3 channels) -> ImageNet-normalized RGB, as VGG was trained."""
    x = (x.float() + 1) / 2
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def load_vgg16(path: str | Path, depth: int | None = None) -> VGG16Features:
    """VGG16 feature layers with the weights of a torchvision-format state dict at `path`
    (torch.save of vgg16().state_dict(), e.g. vgg16-397923af.pth, or a .safetensors file);
    the classifier's keys are ignored. Loaded with weights_only (nothing is unpickled)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GankitError(f"VGG16 weights {path}: no such file")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    net = VGG16Features(depth)
    wanted = net.state_dict()
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    missing = sorted(set(wanted) - set(features))
    if missing:
        raise GankitError(
            f"VGG16 weights {path}: not a torchvision-format VGG16 state dict; missing "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
        )
    for key, value in wanted.items():
        if features[key].shape != value.shape:
            raise GankitError(
                f"VGG16 weights {path}: {key} has shape {tuple(features[key].shape)}, "
                f"expected {tuple(value.shape)}"
            )
    net.load_state_dict({k: features[k] for k in wanted})
    return net


def vgg16_features(
    path: str | Path, layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3")
) -> FixedFeatures:
    """Fixed VGG16 features at Johnson et al.'s layer names (VGG16_LAYERS) from a weights file."""
    unknown = [name for name in layers if name not in VGG16_LAYERS]
    if unknown:
        raise GankitError(f"VGG16 layers {unknown}: valid: {', '.join(VGG16_LAYERS)}")
    depth = max(VGG16_LAYERS[name] for name in layers) + 1
    net = load_vgg16(path, depth)
    return FixedFeatures(
        net, [f"features.{VGG16_LAYERS[name]}" for name in layers], preprocess=vgg_preprocess
    )
