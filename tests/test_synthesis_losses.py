"""Composite synthesis losses against their formulas, the fixed networks, VGG16 loading, and the
warp transform (synthesis_losses.py, data/domains.py)."""

import math

import pytest
import torch
from torch import nn

from gankit.data.domains import affine_warp, apply_transform, invert_transform
from gankit.synthesis_losses import (
    VGG16_LAYERS,
    FixedFeatures,
    VGG16Features,
    identity_loss,
    load_vgg16,
    perceptual_loss,
    pixel_l1,
    pixel_l2,
    symmetry_loss,
    total_variation,
    vgg16_features,
)


def test_pixel_losses_against_sums():
    x = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]]])
    y = torch.zeros_like(x)
    assert pixel_l1(x, y).item() == pytest.approx((1 + 2 + 0.5) / 4)
    assert pixel_l2(x, y).item() == pytest.approx((1 + 4 + 0.25) / 4)


def test_symmetry_zero_for_symmetric_and_formula_otherwise():
    half = torch.randn(2, 1, 3, 2)
    sym = torch.cat([half, half.flip(-1)], -1)
    assert symmetry_loss(sym).item() == 0.0
    x = torch.randn(2, 3, 4, 5)
    n, c, h, w = x.shape
    total = sum(
        abs(x[i, j, r, col] - x[i, j, r, w - 1 - col])
        for i in range(n)
        for j in range(c)
        for r in range(h)
        for col in range(w)
    )
    assert symmetry_loss(x).item() == pytest.approx(float(total) / x.numel(), rel=1e-5)


def test_total_variation_by_explicit_loop():
    x = torch.randn(2, 2, 3, 4)
    n, c, h, w = x.shape
    dx = sum(
        abs(float(x[i, j, r, k + 1] - x[i, j, r, k]))
        for i in range(n)
        for j in range(c)
        for r in range(h)
        for k in range(w - 1)
    )
    dy = sum(
        abs(float(x[i, j, r + 1, k] - x[i, j, r, k]))
        for i in range(n)
        for j in range(c)
        for r in range(h - 1)
        for k in range(w)
    )
    expected = dx / (n * c * h * (w - 1)) + dy / (n * c * (h - 1) * w)
    assert total_variation(x).item() == pytest.approx(expected, rel=1e-5)
    assert total_variation(torch.ones(1, 1, 3, 3)).item() == 0.0


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 3, 3, padding=1, stride=2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_identity_and_perceptual_against_hand_features_and_gradients():
    net = TinyNet()
    f = FixedFeatures(net, ["a", "b"])
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.randn(2, 1, 6, 6, requires_grad=True)
    y = torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        ax, ay = net.a(x), net.a(y)
        bx, by = net.b(torch.relu(ax)), net.b(torch.relu(ay))
    ip = identity_loss(f, x, y, "l1")
    assert ip.item() == pytest.approx(
        0.5 * ((ax - ay).abs().mean() + (bx - by).abs().mean()).item(), rel=1e-5
    )
    ip2 = identity_loss(f, x, y, "l2")
    assert ip2.item() == pytest.approx(
        0.5 * ((ax - ay).pow(2).mean() + (bx - by).pow(2).mean()).item(), rel=1e-5
    )
    perc = perceptual_loss(f, x, y)
    assert perc.item() == pytest.approx(
        ((ax - ay).pow(2).mean() + (bx - by).pow(2).mean()).item(), rel=1e-5
    )
    (ip + perc).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    f.train()
    assert not net.training


def test_shipped_classifier_penultimate_features():
    from gankit.metrics.classifier import load_classifier

    clf = load_classifier("digits")
    f = FixedFeatures(clf, ["body"])
    x, y = torch.rand(3, 1, 8, 8) * 2 - 1, torch.rand(3, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        fx, fy = clf(x)[0], clf(y)[0]
    assert identity_loss(f, x, y).item() == pytest.approx((fx - fy).abs().mean().item(), rel=1e-5)


TORCHVISION_VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def test_vgg16_loads_torchvision_format_state_dict(tmp_path):
    torch.manual_seed(1)
    src = VGG16Features()
    state = dict(src.state_dict())
    expected = {f"features.{i}.{p}" for i in TORCHVISION_VGG16_CONVS for p in ("weight", "bias")}
    assert set(state) == expected
    state["classifier.0.weight"] = torch.randn(4, 3)  # torchvision's head: ignored
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = load_vgg16(path)
    for key, value in src.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)
    assert net.features[0].weight.shape == (64, 3, 3, 3)
    assert net.features[28].weight.shape == (512, 512, 3, 3)
    f = vgg16_features(path, ["relu1_2", "relu2_2"])
    assert len(f.net.features) == VGG16_LAYERS["relu2_2"] + 1
    x = torch.rand(1, 1, 16, 16, requires_grad=True) * 2 - 1
    x.retain_grad()
    feats = f(x)
    assert [t.shape[1:] for t in feats] == [(64, 16, 16), (128, 8, 8)]
    perceptual_loss(f, x, torch.zeros(1, 1, 16, 16)).backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in f.net.parameters())
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(Exception, match="torchvision-format"):
        load_vgg16(tmp_path / "bad.pth")


def test_warp_is_rotation_plus_shear_and_inverts():
    # a single bright pixel moves to where the affine map sends its centre
    x = -torch.ones(1, 1, 33, 33)
    x[0, 0, 16, 22] = 1.0  # centre row, 6 px right of the centre
    y = apply_transform("warp", x)
    assert y.shape == x.shape and y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    # forward map: shear (x + 0.25 y, y = 0) then rotation by 20 degrees counter-clockwise
    # in the sampling grid's coordinates (x right, y down)
    t = math.radians(20)
    px, py = 6 * math.cos(t), 6 * math.sin(t)
    w = (y[0, 0] + 1).clamp_min(0)
    rows, cols = torch.meshgrid(torch.arange(33.0), torch.arange(33.0), indexing="ij")
    cy, cx = (w * rows).sum() / w.sum() - 16, (w * cols).sum() / w.sum() - 16
    assert cx.item() == pytest.approx(px, abs=0.5) and cy.item() == pytest.approx(py, abs=0.5)
    # the inverse brings a smooth image back (interior; bilinear resampling blurs a little)
    g = torch.linspace(-1, 1, 33)
    img = (-(g[None, :] ** 2 + g[:, None] ** 2) * 4).exp()[None, None] * 2 - 1
    back = invert_transform("warp", apply_transform("warp", img))
    assert (back - img)[..., 8:-8, 8:-8].abs().max() < 0.05
    assert torch.allclose(affine_warp(img, inverse=True), invert_transform("warp", img))
    assert torch.equal(apply_transform("warp", img), apply_transform("warp", img))
