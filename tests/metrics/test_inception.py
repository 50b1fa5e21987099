"""The FID Inception-v3 (random weights: the real file is not available offline)."""

from __future__ import annotations

import argparse
import hashlib

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gankit.errors import GankitError
from gankit.metrics.features import FeatureExtractor
from gankit.metrics.inception import (
    ENV_VAR,
    FILE_NAME,
    WEIGHTS_URL,
    FIDInceptionV3,
    load_fid_inception,
)

# Parameters of pytorch-fid's FID InceptionV3 (torchvision layout, no AuxLogits, 1008-way fc),
# conv weights + BatchNorm weight/bias + fc; BatchNorm running stats are buffers, not parameters.
# Cross-check: torchvision's inception_v3 has 27,161,264 parameters with AuxLogits (3,326,696)
# and a 1000-way fc; 27,161,264 - 3,326,696 + 8 * (2048 + 1) = 23,850,960.
FID_INCEPTION_PARAMS = 23_850_960


def _expected_convs() -> dict[str, tuple[int, int, int, int]]:
    """Every BasicConv2d of the FID Inception as name -> (in, out, kh, kw), written out from the
    architecture independently of gankit.metrics.inception."""
    convs = {
        "Conv2d_1a_3x3": (3, 32, 3, 3),
        "Conv2d_2a_3x3": (32, 32, 3, 3),
        "Conv2d_2b_3x3": (32, 64, 3, 3),
        "Conv2d_3b_1x1": (64, 80, 1, 1),
        "Conv2d_4a_3x3": (80, 192, 3, 3),
    }

    def block_a(name, cin, pool):
        convs.update(
            {
                f"{name}.branch1x1": (cin, 64, 1, 1),
                f"{name}.branch5x5_1": (cin, 48, 1, 1),
                f"{name}.branch5x5_2": (48, 64, 5, 5),
                f"{name}.branch3x3dbl_1": (cin, 64, 1, 1),
                f"{name}.branch3x3dbl_2": (64, 96, 3, 3),
                f"{name}.branch3x3dbl_3": (96, 96, 3, 3),
                f"{name}.branch_pool": (cin, pool, 1, 1),
            }
        )
        return 64 + 64 + 96 + pool

    def block_b(name, cin):
        convs.update(
            {
                f"{name}.branch3x3": (cin, 384, 3, 3),
                f"{name}.branch3x3dbl_1": (cin, 64, 1, 1),
                f"{name}.branch3x3dbl_2": (64, 96, 3, 3),
                f"{name}.branch3x3dbl_3": (96, 96, 3, 3),
            }
        )
        return 384 + 96 + cin

    def block_c(name, cin, c7):
        convs.update(
            {
                f"{name}.branch1x1": (cin, 192, 1, 1),
                f"{name}.branch7x7_1": (cin, c7, 1, 1),
                f"{name}.branch7x7_2": (c7, c7, 1, 7),
                f"{name}.branch7x7_3": (c7, 192, 7, 1),
                f"{name}.branch7x7dbl_1": (cin, c7, 1, 1),
                f"{name}.branch7x7dbl_2": (c7, c7, 7, 1),
                f"{name}.branch7x7dbl_3": (c7, c7, 1, 7),
                f"{name}.branch7x7dbl_4": (c7, c7, 7, 1),
                f"{name}.branch7x7dbl_5": (c7, 192, 1, 7),
                f"{name}.branch_pool": (cin, 192, 1, 1),
            }
        )
        return 4 * 192

    def block_d(name, cin):
        convs.update(
            {
                f"{name}.branch3x3_1": (cin, 192, 1, 1),
                f"{name}.branch3x3_2": (192, 320, 3, 3),
                f"{name}.branch7x7x3_1": (cin, 192, 1, 1),
                f"{name}.branch7x7x3_2": (192, 192, 1, 7),
                f"{name}.branch7x7x3_3": (192, 192, 7, 1),
                f"{name}.branch7x7x3_4": (192, 192, 3, 3),
            }
        )
        return 320 + 192 + cin

    def block_e(name, cin):
        convs.update(
            {
                f"{name}.branch1x1": (cin, 320, 1, 1),
                f"{name}.branch3x3_1": (cin, 384, 1, 1),
                f"{name}.branch3x3_2a": (384, 384, 1, 3),
                f"{name}.branch3x3_2b": (384, 384, 3, 1),
                f"{name}.branch3x3dbl_1": (cin, 448, 1, 1),
                f"{name}.branch3x3dbl_2": (448, 384, 3, 3),
                f"{name}.branch3x3dbl_3a": (384, 384, 1, 3),
                f"{name}.branch3x3dbl_3b": (384, 384, 3, 1),
                f"{name}.branch_pool": (cin, 192, 1, 1),
            }
        )
        return 320 + 2 * 384 + 2 * 384 + 192

    c = block_a("Mixed_5b", 192, 32)
    assert c == 256
    c = block_a("Mixed_5c", c, 64)
    assert c == 288
    c = block_a("Mixed_5d", c, 64)
    c = block_b("Mixed_6a", c)
    assert c == 768
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        c = block_c(name, c, c7)
    c = block_d("Mixed_7a", c)
    assert c == 1280
    c = block_e("Mixed_7b", c)
    c = block_e("Mixed_7c", c)
    assert c == 2048
    return convs


def _formula_param_count() -> int:
    convs = _expected_convs()
    per_conv = sum(cin * cout * kh * kw + 2 * cout for cin, cout, kh, kw in convs.values())
    return per_conv + 2048 * 1008 + 1008


@pytest.fixture(scope="module")
def model() -> FIDInceptionV3:
    torch.manual_seed(0)
    m = FIDInceptionV3()
    # Random BatchNorm statistics so that loading them matters for the outputs.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    """The model's state dict as .pth (torch.save) and as .safetensors."""
    root = tmp_path_factory.mktemp("fid-weights")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pth = root / FILE_NAME
    torch.save(state, pth)
    st = root / "fid-inception.safetensors"
    save_file(state, str(st))
    return pth, st


@pytest.fixture
def no_search_paths(monkeypatch, tmp_path):
    """No env var and an empty hub cache."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    hub = tmp_path / "empty-hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def test_attributes(model):
    assert isinstance(model, FeatureExtractor)
    assert model.name == "inception-v3-fid"
    assert model.num_features == 2048 and model.num_classes == 1008
    assert model.weights_sha256 is None
    assert model.protocol() == {"extractor": "inception-v3-fid", "weights_sha256": None}


def test_parameter_count_matches_formula(model):
    by_formula = _formula_param_count()
    assert by_formula == FID_INCEPTION_PARAMS
    assert sum(p.numel() for p in model.parameters()) == by_formula


def test_state_dict_keys_and_shapes(model):
    sd = model.state_dict()
    convs = _expected_convs()
    for name, (cin, cout, kh, kw) in convs.items():
        assert tuple(sd[f"{name}.conv.weight"].shape) == (cout, cin, kh, kw), name
        for buf in ("weight", "bias", "running_mean", "running_var"):
            assert tuple(sd[f"{name}.bn.{buf}"].shape) == (cout,), f"{name}.bn.{buf}"
        assert f"{name}.conv.bias" not in sd
    assert tuple(sd["fc.weight"].shape) == (1008, 2048)
    assert tuple(sd["fc.bias"].shape) == (1008,)
    # Nothing else: 5 entries per BasicConv2d (with num_batches_tracked) plus fc; no AuxLogits.
    assert len(sd) == 6 * len(convs) + 2
    assert not any(k.startswith("AuxLogits") for k in sd)
    for key in (
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_1a_3x3.bn.running_mean",
        "Mixed_5b.branch1x1.conv.weight",
        "Mixed_5b.branch5x5_1.bn.bias",
        "Mixed_5b.branch3x3dbl_1.conv.weight",
        "Mixed_5b.branch_pool.bn.running_var",
        "Mixed_6a.branch3x3.conv.weight",
        "Mixed_6a.branch3x3dbl_3.bn.weight",
        "Mixed_6b.branch7x7_3.conv.weight",
        "Mixed_6e.branch7x7dbl_5.conv.weight",
        "Mixed_7a.branch3x3_2.conv.weight",
        "Mixed_7a.branch7x7x3_4.conv.weight",
        "Mixed_7b.branch3x3_2a.conv.weight",
        "Mixed_7c.branch3x3dbl_3b.bn.running_mean",
    ):
        assert key in sd, key
    for bn in [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
        assert bn.eps == 0.001


@torch.no_grad()
def test_forward_shapes(model):
    torch.manual_seed(1)
    f, lg = model(torch.rand(2, 3, 299, 299) * 2 - 1)
    assert f.shape == (2, 2048) and lg.shape == (2, 1008)
    assert torch.isfinite(f).all() and torch.isfinite(lg).all()
    assert (f >= 0).all()  # pooled ReLU outputs
    f, lg = model(torch.rand(3, 1, 28, 28) * 2 - 1)
    assert f.shape == (3, 2048) and lg.shape == (3, 1008)
    assert torch.isfinite(f).all() and torch.isfinite(lg).all()


def test_adapt(model):
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    a = model.adapt(x)
    assert a.shape == (2, 3, 299, 299)
    ref = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    # resizing 3 channels or 1 may take different vector paths: equal up to float rounding
    torch.testing.assert_close(a, ref.repeat(1, 3, 1, 1), rtol=0, atol=1e-6)
    x = torch.rand(1, 3, 299, 299)
    assert torch.equal(model.adapt(x), x)
    with pytest.raises(GankitError, match="1 or 3 channels"):
        model.adapt(torch.zeros(1, 4, 32, 32))
    with pytest.raises(GankitError, match="1 or 3 channels"):
        model.adapt(torch.zeros(3, 32, 32))


@torch.no_grad()
def test_fid_pooling_variants(model):
    """Pool branches average without the padding (TF), and Mixed_7c max-pools."""
    torch.manual_seed(2)

    def reference(block, x, pool):
        out = block(x)
        n = block.branch_pool.conv.out_channels
        return out[:, -n:], block.branch_pool(pool(x))

    tf_avg = lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)  # noqa: E731
    torch_avg = lambda x: F.avg_pool2d(x, 3, 1, 1)  # noqa: E731
    max_pool = lambda x: F.max_pool2d(x, 3, 1, 1)  # noqa: E731
    cases = [
        (model.Mixed_5b, 192, tf_avg, torch_avg),
        (model.Mixed_6b, 768, tf_avg, torch_avg),
        (model.Mixed_7b, 1280, tf_avg, torch_avg),
        (model.Mixed_7c, 2048, max_pool, tf_avg),
    ]
    for block, cin, pool, other in cases:
        x = torch.randn(1, cin, 5, 5)
        got, want = reference(block, x, pool)
        torch.testing.assert_close(got, want)
        _, not_want = reference(block, x, other)
        assert not torch.allclose(got, not_want)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip(model, saved, no_search_paths, monkeypatch):
    pth, st = saved
    x = torch.rand(1, 3, 75, 75) * 2 - 1  # the smallest input the network takes: fast
    with torch.no_grad():
        want = model.embed(x)

    loaded = {}
    loaded["pth"] = load_fid_inception(str(pth))
    loaded["folder"] = load_fid_inception(pth.parent)
    loaded["safetensors"] = load_fid_inception(st)
    monkeypatch.setenv(ENV_VAR, str(st))
    loaded["env"] = load_fid_inception()
    monkeypatch.delenv(ENV_VAR)
    hub = no_search_paths
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / FILE_NAME).write_bytes(pth.read_bytes())
    loaded["hub"] = load_fid_inception()
    # A set but missing env var falls through to the hub cache.
    monkeypatch.setenv(ENV_VAR, str(hub / "nowhere.pth"))
    loaded["env-missing"] = load_fid_inception()

    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (pth, st)}
    for how, m in loaded.items():
        assert isinstance(m, FIDInceptionV3)
        assert _same_weights(m, model), how
        assert not m.training, how
        assert not any(p.requires_grad for p in m.parameters()), how
        expected_sha = sha[st] if how in ("safetensors", "env") else sha[pth]
        assert m.weights_sha256 == expected_sha, how
        assert m.protocol() == {"extractor": "inception-v3-fid", "weights_sha256": expected_sha}
    # Identical weights imply identical outputs; run the network once to check that too.
    with torch.no_grad():
        got = loaded["safetensors"].embed(x)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_hub_cache_from_torch_home(saved, monkeypatch, tmp_path):
    pth, _ = saved
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.delenv("TORCH_HUB", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / FILE_NAME).write_bytes(pth.read_bytes())
    m = load_fid_inception()
    assert m.weights_sha256 == hashlib.sha256(pth.read_bytes()).hexdigest()


def test_file_without_num_batches_tracked(model, tmp_path, no_search_paths):
    """Files saved by old PyTorch versions have no BatchNorm step counters."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    assert _same_weights(load_fid_inception(path), model)


def test_missing_file(no_search_paths, monkeypatch, tmp_path):
    hub_file = no_search_paths / "checkpoints" / FILE_NAME
    env_file = tmp_path / "elsewhere" / FILE_NAME
    monkeypatch.setenv(ENV_VAR, str(env_file))
    with pytest.raises(GankitError) as info:
        load_fid_inception()
    msg = str(info.value)
    assert WEIGHTS_URL in msg and FILE_NAME in msg
    assert str(hub_file) in msg and str(env_file) in msg and ENV_VAR in msg
    assert "copy it into" in msg and str(no_search_paths / "checkpoints") in msg

    explicit = tmp_path / "nope.pth"
    with pytest.raises(GankitError) as info:
        load_fid_inception(explicit)
    msg = str(info.value)
    assert str(explicit) in msg and WEIGHTS_URL in msg
    assert str(hub_file) not in msg  # an explicit path is the only place looked at


def test_wrong_keys(model, tmp_path):
    state = dict(model.state_dict())
    state["Mixed_5b.branch_extra.conv.weight"] = torch.zeros(1)
    del state["Mixed_6c.branch1x1.conv.weight"]
    state["fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(GankitError) as info:
        load_fid_inception(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "Mixed_5b.branch_extra.conv.weight" in msg
    assert "Mixed_6c.branch1x1.conv.weight" in msg
    assert "fc.weight (1000, 2048) (expected (1008, 2048))" in msg

    many = {f"x{i}": torch.zeros(1) for i in range(20)}
    torch.save(many, path)
    with pytest.raises(GankitError, match=r"20 unexpected: x0, x1, .* and 15 more"):
        load_fid_inception(path)


def test_files_that_are_not_state_dicts(tmp_path):
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"conv.weight": torch.zeros(1), "config": argparse.Namespace(a=1)}, unsafe)
    with pytest.raises(GankitError, match="weights_only") as info:
        load_fid_inception(unsafe)
    assert str(unsafe) in str(info.value)

    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_dict)
    with pytest.raises(GankitError, match="expected a state dict") as info:
        load_fid_inception(not_dict)
    assert str(not_dict) in str(info.value)

    mixed = tmp_path / "mixed.pth"
    torch.save({"fc.weight": torch.zeros(1), "step": 3}, mixed)
    with pytest.raises(GankitError, match="not tensors"):
        load_fid_inception(mixed)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(GankitError, match="garbage.pth"):
        load_fid_inception(garbage)

    bad_st = tmp_path / "garbage.safetensors"
    bad_st.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(GankitError, match="not a valid safetensors file"):
        load_fid_inception(bad_st)
