"""Every CAM method: shapes, closed forms on global-pooling heads, degenerate maps, the registry."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck.cam import METHODS, compute_cams, register_method
from pytest_camcheck.cam.methods import MethodInput, get_method
from pytest_camcheck.errors import ConfigError, EngineError


class GapNet(nn.Module):
    """conv-ReLU (``features``), global average pooling, linear ``fc``: every closed form holds."""

    def __init__(self, channels: int = 6, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def seeded(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def layer_output(model: GapNet, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model.features(x)


@pytest.fixture(scope="module")
def gapnet() -> GapNet:
    return GapNet()


@pytest.fixture(scope="module")
def x8() -> Tensor:
    return seeded(3, 3, 8, 8, seed=4)


# -- every method ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_finite_maps(method: str, gapnet, x8) -> None:
    result = compute_cams(gapnet, x8, layers="features", method=method, targets=[0, 1, 2])
    raw, maps = result.raw["features"], result.maps["features"]
    assert result.method == method
    assert raw.shape == (3, 8, 8) and raw.dtype == torch.float32
    assert maps.shape == (3, 8, 8) and maps.dtype == torch.float32
    assert torch.isfinite(raw).all() and torch.isfinite(maps).all()
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    for i in range(3):
        if not result.degenerate["features"][i]:
            assert float(maps[i].max()) == pytest.approx(1.0)
            assert float(maps[i].min()) == pytest.approx(0.0)


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"scorecam"}))
def test_every_method_on_resnet18(method: str, tv_zoo) -> None:
    # (Score-CAM needs one forward per channel, 512 here: it is covered on small models.)
    model = tv_zoo("resnet18", num_classes=10)
    x = seeded(2, 3, 64, 64)
    result = compute_cams(model, x, layers="layer4", method=method, targets=[3, 7])
    assert result.raw["layer4"].shape == (2, 2, 2)
    assert result.maps["layer4"].shape == (2, 64, 64)
    assert torch.isfinite(result.raw["layer4"]).all()


# -- closed forms on a GAP + linear head ---------------------------------------------------------


def test_gradcam_equals_cam_over_area(gapnet, x8) -> None:
    # d score / dA[c, i, j] = w[c] / (h w), so Grad-CAM's weights are CAM's divided by h w.
    cam = compute_cams(gapnet, x8, layers="features", method="cam", targets=[0, 1, 2])
    grad = compute_cams(gapnet, x8, layers="features", method="gradcam", targets=[0, 1, 2])
    h, w = cam.raw["features"].shape[-2:]
    torch.testing.assert_close(
        grad.raw["features"], cam.raw["features"] / (h * w), rtol=1e-5, atol=1e-7
    )
    torch.testing.assert_close(grad.maps["features"], cam.maps["features"], rtol=1e-4, atol=1e-5)


def test_gradcam_equals_cam_over_area_on_resnet(tv_zoo) -> None:
    model = tv_zoo("resnet18", num_classes=10)
    x = seeded(2, 3, 96, 96)
    cam = compute_cams(model, x, layers="layer4", method="cam", targets=[1, 2]).raw["layer4"]
    grad = compute_cams(model, x, layers="layer4", method="gradcam", targets=[1, 2]).raw["layer4"]
    area = cam.shape[-1] * cam.shape[-2]
    torch.testing.assert_close(grad, cam / area, rtol=1e-5, atol=1e-5 * float(grad.abs().max()))


def test_cam_matches_the_head_weights(gapnet, x8) -> None:
    result = compute_cams(gapnet, x8, layers="features", method="cam", targets=[0, 1, 2])
    acts = layer_output(gapnet, x8)
    w = gapnet.fc.weight.detach()[[0, 1, 2]]
    expected = torch.einsum("bc,bchw->bhw", w, acts)
    torch.testing.assert_close(result.raw["features"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["hirescam", "xgradcam"])
def test_spatially_constant_gradients_make_methods_agree(method: str, gapnet, x8) -> None:
    # With a constant gradient per channel HiResCAM and XGradCAM reduce to Grad-CAM.
    grad = compute_cams(gapnet, x8, layers="features", method="gradcam", targets=[0, 1, 2])
    other = compute_cams(gapnet, x8, layers="features", method=method, targets=[0, 1, 2])
    torch.testing.assert_close(other.raw["features"], grad.raw["features"], rtol=1e-4, atol=1e-6)


def test_layercam_keeps_positive_weights_only(gapnet, x8) -> None:
    result = compute_cams(gapnet, x8, layers="features", method="layercam", targets=[0, 1, 2])
    acts = layer_output(gapnet, x8)
    h, w = acts.shape[-2:]
    weights = gapnet.fc.weight.detach()[[0, 1, 2]].clamp(min=0) / (h * w)
    expected = torch.einsum("bc,bchw->bhw", weights, acts)
    torch.testing.assert_close(result.raw["features"], expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("scale", [1.0, 1e-4, 1e-8], ids=["scale1", "scale1e-4", "scale1e-8"])
def test_gradcam_pp_closed_form_at_any_gradient_scale(scale: float, x8) -> None:
    # Constant gradient g = w / (h w) per channel: alpha = 1 / (2 + sum(A) g), and the weight of
    # channel c is relu(w_c) / (2 + mean(A_c) w_c). Small gradients (a head scaled down) must not
    # underflow to an all-zero map.
    model = GapNet()
    with torch.no_grad():
        model.fc.weight.mul_(scale)
        model.fc.bias.mul_(scale)
    result = compute_cams(model, x8, layers="features", method="gradcam++", targets=[0, 1, 2])
    acts = layer_output(model, x8)
    w = model.fc.weight.detach()[[0, 1, 2]]
    weights = w.clamp(min=0) / (2 + acts.mean(dim=(2, 3)) * w)
    expected = torch.einsum("bc,bchw->bhw", weights, acts)
    torch.testing.assert_close(
        result.raw["features"], expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max())
    )
    assert not result.degenerate["features"].any()


def test_scorecam_of_a_single_channel_is_the_channel() -> None:
    # Score-CAM's weights are a softmax over channels: with one channel the map IS the activation.
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 1, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(1, 3),
    ).eval()
    x = seeded(2, 3, 8, 8)
    result = compute_cams(model, x, layers="1", method="scorecam", targets=[0, 2])
    with torch.no_grad():
        expected = model[1](model[0](x))[:, 0]
    torch.testing.assert_close(result.raw["1"], expected)


def test_scorecam_weighs_channels_by_masked_scores() -> None:
    # Input channel 0 holds a bump on the left, channel 1 one on the right; an identity 1x1 conv
    # copies them to the layer, and class 0 reads channel 0 only. Masking the input with the
    # (min-max normalised) channel 0 keeps class 0's evidence, masking with channel 1 removes it,
    # so the softmax puts nearly all weight on channel 0.
    side = 8
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    left = torch.exp(-((yy - 4.0) ** 2 + (xx - 1.0) ** 2) / 3.0)
    right = torch.exp(-((yy - 4.0) ** 2 + (xx - 6.0) ** 2) / 3.0)
    x = torch.stack([left, right])[None]
    conv = nn.Conv2d(2, 2, 1, bias=False)
    fc = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        fc.weight.copy_(torch.tensor([[50.0, 0.0], [0.0, 50.0]]))
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()
    result = compute_cams(model, x, layers="0", method="scorecam", targets=0)

    def norm(a: Tensor) -> Tensor:
        return (a - a.min()) / (a.max() - a.min())

    with torch.no_grad():
        scores = torch.stack([model(x * norm(a))[0, 0] for a in (left, right)])
    w = torch.softmax(scores, dim=0)
    assert float(w[0]) > 0.9
    torch.testing.assert_close(result.raw["0"][0], w[0] * left + w[1] * right)
    assert int(result.maps["0"][0].argmax()) == 4 * side + 1


def test_eigencam_is_the_first_principal_component() -> None:
    # Rank-one activations A[c] = u[c] * v: the first principal component is v (centred), signed
    # so that strong features are high.
    side = 8
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    v = torch.exp(-((yy - 2.0) ** 2 + (xx - 5.0) ** 2) / 4.0)
    u = torch.tensor([1.0, 2.0, 0.5])
    x = (u.view(3, 1, 1) * v)[None]
    model = nn.Sequential(nn.Identity(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    result = compute_cams(model.eval(), x, layers="0", method="eigencam", targets=0)
    raw = result.raw["0"][0]
    centred = v - v.mean()
    scale = float((raw * centred).sum() / (centred * centred).sum())
    assert scale > 0  # the sign follows the activation
    torch.testing.assert_close(raw, scale * centred, rtol=1e-4, atol=1e-5)
    assert scale == pytest.approx(float(u.norm()), rel=1e-4)
    assert int(result.maps["0"][0].argmax()) == 2 * side + 5  # the peak is the bump's centre


# -- cam needs GAP + linear -----------------------------------------------------------------------


def test_cam_refuses_mobilenet_v3_head(tv_zoo) -> None:
    # classifier = Linear(576, 1024) - Hardswish - Dropout - Linear(1024, 1000)
    model = tv_zoo("mobilenet_v3_small")
    with pytest.raises(EngineError, match="global average pooling") as info:
        compute_cams(model, seeded(1, 3, 64, 64), layers="features", method="cam")
    message = str(info.value)
    assert "1024 features" in message and "576 channels" in message and "gradcam" in message


class ConvHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).mean(dim=(2, 3))


def test_cam_refuses_a_conv_head() -> None:
    with pytest.raises(EngineError, match=r"no nn\.Linear producing its 3 outputs"):
        compute_cams(ConvHead().eval(), seeded(1, 3, 8, 8), layers="features", method="cam")
    # Grad-CAM explains the same model fine
    result = compute_cams(ConvHead().eval(), seeded(1, 3, 8, 8), layers="features")
    assert torch.isfinite(result.raw["features"]).all()


def test_cam_refuses_a_nonlinear_path(tv_zoo) -> None:
    # densenet applies a ReLU between `features` and the pooling: not a linear function.
    with pytest.raises(EngineError, match="not a linear function"):
        compute_cams(tv_zoo("densenet121"), seeded(1, 3, 64, 64), layers="features", method="cam")


@pytest.mark.parametrize("method", ["cam", "scorecam"])
def test_class_methods_refuse_a_callable_target(method: str, gapnet, x8) -> None:
    with pytest.raises(EngineError, match="callable target"):
        compute_cams(gapnet, x8, layers="features", method=method, targets=lambda z: z[:, 0])


# -- degenerate maps ------------------------------------------------------------------------------


def assert_degenerate_and_zero(result, layer: str, index: int) -> None:
    assert bool(result.degenerate[layer][index])
    m = result.maps[layer][index]
    assert not torch.isnan(m).any()
    assert float(m.abs().max()) == 0.0


def test_all_negative_map_is_degenerate(x8) -> None:
    model = GapNet()
    with torch.no_grad():
        model.fc.weight[0] = (
            -model.fc.weight[0].abs() - 0.1
        )  # class 0: every channel counts against
    result = compute_cams(model, x8, layers="features", targets=[0, 1, 2])
    raw = result.raw["features"]
    assert (raw[0] <= 0).all()
    assert_degenerate_and_zero(result, "features", 0)
    assert not result.degenerate["features"][1:].all()


@pytest.mark.parametrize("method", ["gradcam", "cam", "eigencam", "layercam"])
def test_constant_map_is_degenerate(method: str) -> None:
    # A constant image through a conv without padding gives spatially constant activations.
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    ).eval()
    x = torch.full((1, 3, 8, 8), 0.7)
    result = compute_cams(model, x, layers="1", method=method, targets=0)
    assert_degenerate_and_zero(result, "1", 0)


def test_zero_gradient_map_is_degenerate() -> None:
    # The target does not depend on the layer at all: zero gradients, zero map.
    model = GapNet()
    with torch.no_grad():
        model.fc.weight[1].zero_()
    result = compute_cams(model, seeded(1, 3, 8, 8), layers="features", targets=1)
    assert float(result.raw["features"].abs().max()) == 0.0
    assert_degenerate_and_zero(result, "features", 0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_nan_weights_give_degenerate_maps(method: str, x8) -> None:
    model = GapNet()
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] = float("nan")
    result = compute_cams(model, x8, layers="features", method=method, targets=[0, 1, 2])
    for i in range(3):
        assert_degenerate_and_zero(result, "features", i)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_one_nan_image_spoils_only_itself(method: str, gapnet, x8) -> None:
    x = x8.clone()
    x[1, 0, 3, 3] = float("nan")
    result = compute_cams(gapnet, x, layers="features", method=method, targets=[0, 1, 2])
    clean = compute_cams(gapnet, x8[[0, 2]], layers="features", method=method, targets=[0, 2])
    assert_degenerate_and_zero(result, "features", 1)
    torch.testing.assert_close(
        result.raw["features"][[0, 2]], clean.raw["features"], rtol=1e-4, atol=1e-6
    )


# -- the registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("GradCAM", "gradcam"),
        ("Grad-CAM++", "gradcam++"),
        ("gradcam_pp", "gradcam++"),
        ("gradcamplusplus", "gradcam++"),
        ("Score-CAM", "scorecam"),
        ("EIGENCAM", "eigencam"),
    ],
)
def test_method_aliases(alias: str, name: str) -> None:
    assert get_method(alias).name == name


def test_unknown_method_lists_the_valid_ones(gapnet, x8) -> None:
    with pytest.raises(ConfigError, match="unknown CAM method 'gradkam'") as info:
        compute_cams(gapnet, x8, layers="features", method="gradkam")
    for name in METHODS:
        assert name in str(info.value)


def test_register_a_custom_method(gapnet, x8) -> None:
    def abs_gradcam(inp: MethodInput) -> Tensor:
        assert inp.gradients is not None
        return (inp.gradients.mean(dim=(2, 3))[:, :, None, None] * inp.activations).sum(1).abs()

    method = register_method("absgradcam", abs_gradcam, needs_gradients=True, summary="|Grad-CAM|")
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_method("absgradcam", abs_gradcam, needs_gradients=True)
        by_name = compute_cams(gapnet, x8, layers="features", method="absgradcam", targets=0)
        by_object = compute_cams(gapnet, x8, layers="features", method=method, targets=0)
        plain = compute_cams(gapnet, x8, layers="features", method="gradcam", targets=0)
        torch.testing.assert_close(by_name.raw["features"], plain.raw["features"].abs())
        torch.testing.assert_close(by_object.raw["features"], by_name.raw["features"])
        assert by_name.method == "absgradcam"
    finally:
        METHODS.pop("absgradcam", None)
