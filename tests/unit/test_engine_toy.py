"""Known answers on toy models: hand-computed maps, targets, model outputs, reused modules."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck.cam import compute_cams
from pytest_camcheck.errors import EngineError


def captum_toy(inplace: bool) -> nn.Sequential:
    """Captum's LayerGradCam toy: conv 1->2 (all-ones 3x3, biases -50/-75), ReLU, linear.

    On ``arange(16)`` as a 4x4 image the conv windows sum to 45, 54, 81, 90, so the conv output is
    ``[[-5, 4], [31, 40]]`` (channel 0) and ``[[-30, -21], [6, 15]]`` (channel 1). With weights
    ``[1, 1, 1, 1, 1, -1, -1, -1]`` the gradient of output 0 at the conv is ``[[0, 1], [1, 1]]``
    (channel 0) and ``[[0, 0], [-1, -1]]`` (channel 1), hence the answers below.
    """
    conv = nn.Conv2d(1, 2, 3)
    linear = nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.copy_(torch.tensor([-50.0, -75.0]))
        linear.weight.copy_(torch.tensor([[1.0, 1, 1, 1, 1, -1, -1, -1]]))
    return nn.Sequential(conv, nn.ReLU(inplace=inplace), nn.Flatten(), linear).eval()


TOY_INPUT = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
CONV0 = torch.tensor([[-5.0, 4.0], [31.0, 40.0]])
CONV1 = torch.tensor([[-30.0, -21.0], [6.0, 15.0]])

# method -> raw map at the conv for target 0 (hand-derived from the gradients in the docstring)
TOY_ANSWERS = {
    # weights = spatial mean of the gradient: 3/4 and -2/4
    "gradcam": [[11.25, 13.5], [20.25, 22.5]],
    # element-wise gradient x activation, summed over channels
    "hirescam": [[0.0, 4.0], [25.0, 25.0]],
    # positive gradient x activation: only channel 0 counts
    "layercam": [[0.0, 4.0], [31.0, 40.0]],
    # weights = sum(g * A) / sum(A): 75 / 70 and -21 / -30
    "xgradcam": (75 / 70 * CONV0 + 0.7 * CONV1).tolist(),
    # alpha = 1 / (2 + sum(A) g) = 1/72 on channel 0's three active pixels, channel 1 has g <= 0
    "gradcam++": (CONV0 * 3 / 72).tolist(),
}


@pytest.mark.parametrize("inplace", [False, True], ids=["relu", "relu_inplace"])
def test_captum_toy_gradcam(inplace: bool) -> None:
    model = captum_toy(inplace)
    result = compute_cams(model, TOY_INPUT, layers="0", method="gradcam", targets=0)
    torch.testing.assert_close(
        result.raw["0"][0], torch.tensor([[11.25, 13.5], [20.25, 22.5]]), rtol=0, atol=1e-5
    )
    assert result.targets.tolist() == [0]
    assert result.maps["0"].shape == (1, 4, 4)


@pytest.mark.parametrize("inplace", [False, True], ids=["relu", "relu_inplace"])
@pytest.mark.parametrize("method", sorted(TOY_ANSWERS))
def test_captum_toy_all_gradient_methods(method: str, inplace: bool) -> None:
    model = captum_toy(inplace)
    result = compute_cams(model, TOY_INPUT, layers=model[0], method=method, targets=0)
    expected = torch.tensor(TOY_ANSWERS[method])
    torch.testing.assert_close(result.raw["0"][0], expected, rtol=1e-5, atol=1e-5)


def test_captum_toy_inplace_relu_does_not_corrupt_the_model_output() -> None:
    # The engine hands the network a copy of the hooked activation: the in-place ReLU must still
    # produce the model's normal output.
    model = captum_toy(True)
    expected = captum_toy(False)(TOY_INPUT)
    result = compute_cams(model, TOY_INPUT, layers="0", targets=0)
    torch.testing.assert_close(result.logits, expected.detach())
    assert float(result.logits[0, 0]) == pytest.approx(0 + 4 + 31 + 40 + 0 - 0 - 6 - 15)


def test_cam_method_rejects_a_head_without_global_pooling() -> None:
    # The toy flattens the conv output instead of pooling it: CAM is undefined there.
    with pytest.raises(EngineError, match="global average pooling") as info:
        compute_cams(captum_toy(False), TOY_INPUT, layers="0", method="cam", targets=0)
    assert "gradcam" in str(info.value)


# -- a module that runs more than once ---------------------------------------------------------


class TwiceConv(nn.Module):
    """Calls the same conv twice in one forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.conv(torch.relu(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


def test_module_that_runs_twice_is_refused(images, assert_no_hooks) -> None:
    model = TwiceConv().eval()
    with pytest.raises(EngineError, match="more than once") as info:
        compute_cams(model, images(1, 3, 8, 8), layers="conv")
    assert "'conv'" in str(info.value)
    assert_no_hooks(model)


def test_auto_layer_skips_a_module_that_runs_twice(images) -> None:
    result = compute_cams(TwiceConv().eval(), images(1, 3, 8, 8))
    assert result.layers == ("stem",)
    assert result.auto_layer


def test_resnet_shared_relu_is_refused(tv_zoo, images) -> None:
    # torchvision's BasicBlock applies its single `relu` twice.
    model = tv_zoo("resnet18", num_classes=10)
    with pytest.raises(EngineError, match="more than once"):
        compute_cams(model, images(1, 3, 32, 32), layers="layer4.1.relu")
    result = compute_cams(model, images(1, 3, 32, 32), layers="layer4.1")  # its block is fine
    assert result.raw["layer4.1"].shape == (1, 1, 1)


# -- targets -----------------------------------------------------------------------------------


def test_target_none_is_the_argmax(tiny_model, images) -> None:
    x = images(4, 3, 16, 16, seed=2)
    result = compute_cams(tiny_model, x, layers="features")
    logits = tiny_model(x).detach()
    assert result.targets.tolist() == logits.argmax(dim=1).tolist()
    torch.testing.assert_close(result.logits, logits)
    explicit = compute_cams(tiny_model, x, layers="features", targets=logits.argmax(dim=1))
    torch.testing.assert_close(result.raw["features"], explicit.raw["features"])


@pytest.mark.parametrize(
    "spec",
    [3, [3, 3], (3, 3), torch.tensor([3, 3]), torch.tensor(3), np.int64(3), np.array([3, 3])],
    ids=["int", "list", "tuple", "tensor", "tensor0d", "numpy_int", "numpy_array"],
)
def test_target_forms_agree(spec, tiny_model, images) -> None:
    x = images(2, 3, 16, 16)
    reference = compute_cams(tiny_model, x, layers="features", targets=3)
    result = compute_cams(tiny_model, x, layers="features", targets=spec)
    assert result.targets.tolist() == [3, 3]
    torch.testing.assert_close(result.raw["features"], reference.raw["features"])


def test_per_image_targets_explain_each_image_separately(tiny_model, images) -> None:
    x = images(2, 3, 16, 16)
    both = compute_cams(tiny_model, x, layers="features", targets=[1, 4])
    first = compute_cams(tiny_model, x[:1], layers="features", targets=1)
    second = compute_cams(tiny_model, x[1:], layers="features", targets=4)
    torch.testing.assert_close(both.raw["features"][0], first.raw["features"][0])
    torch.testing.assert_close(both.raw["features"][1], second.raw["features"][0])
    assert not torch.allclose(both.raw["features"][0], both.raw["features"][1])


def test_callable_target(tiny_model, images) -> None:
    x = images(2, 3, 16, 16)
    by_index = compute_cams(tiny_model, x, layers="features", targets=2)
    by_callable = compute_cams(tiny_model, x, layers="features", targets=lambda z: z[:, 2])
    torch.testing.assert_close(by_callable.raw["features"], by_index.raw["features"])
    assert by_callable.targets.tolist() == [-1, -1]
    contrast = compute_cams(tiny_model, x, layers="features", targets=lambda z: z[:, 2] - z[:, 0])
    assert torch.isfinite(contrast.raw["features"]).all()
    assert not torch.allclose(contrast.raw["features"], by_index.raw["features"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([1, 2, 3], "3 entries but there are 2 images"),
        (torch.tensor([1]), "1 entries but there are 2 images"),
        (5, "out of range"),
        (-1, "out of range"),
        ([0, 7], r"\[7\] out of range: the model has 5 classes"),
        (torch.tensor([0.0, 1.0]), "integer"),
        (True, "class index"),
        (lambda z: z, r"\(B,\) = \(2,\)"),
        (lambda z: z[:, 0].sum(), r"\(B,\) = \(2,\)"),
        (lambda z: [1.0, 2.0], "score tensor"),
        (lambda z: z[:, 0].detach(), "does not depend on the layer"),
    ],
    ids=[
        "too_many",
        "too_few",
        "int_out_of_range",
        "negative",
        "list_out_of_range",
        "float",
        "bool",
        "callable_2d",
        "callable_scalar",
        "callable_list",
        "callable_detached",
    ],
)
def test_bad_targets_raise(spec, message: str, tiny_model, images, assert_no_hooks) -> None:
    with pytest.raises(EngineError, match=message):
        compute_cams(tiny_model, images(2, 3, 16, 16), layers="features", targets=spec)
    assert_no_hooks(tiny_model)


def test_wrong_length_is_caught_before_chunking(tiny_model, images) -> None:
    with pytest.raises(EngineError, match="4 entries but there are 3 images"):
        compute_cams(
            tiny_model, images(3, 3, 16, 16), layers="features", targets=[0, 1, 2, 3], batch_size=2
        )


# -- model outputs ---------------------------------------------------------------------------


class Pair(NamedTuple):
    logits: Tensor
    features: Tensor


class MultiOutput(nn.Module):
    """Wraps a classifier and returns its logits inside a tuple, dict or named tuple."""

    def __init__(self, net: nn.Module, kind: str) -> None:
        super().__init__()
        self.net = net
        self.kind = kind

    def forward(self, x: Tensor):
        feats = self.net.features(x)
        logits = self.net.fc(self.net.pool(feats).flatten(1))
        aux = -logits  # a second tensor with the same shape, so picking the wrong one shows
        if self.kind == "tuple":
            return logits, aux
        if self.kind == "aux_first":
            return (aux, logits)
        if self.kind == "dict":
            return {"aux": aux, "logits": logits}
        if self.kind == "named":
            return Pair(logits, feats)
        raise AssertionError(self.kind)


@pytest.mark.parametrize(
    ("kind", "output"),
    [
        ("tuple", None),
        ("tuple", 0),
        ("aux_first", 1),
        ("aux_first", lambda out: out[1]),
        ("dict", "logits"),
        ("dict", lambda out: out["logits"]),
        ("named", None),
        ("named", "logits"),
    ],
    ids=["tuple", "tuple_index", "index", "callable", "dict_key", "dict_callable", "named", "attr"],
)
def test_output_selection(kind: str, output, make_tiny_model, images) -> None:
    x = images(2, 3, 16, 16)
    plain = compute_cams(make_tiny_model(), x, layers="features", targets=[0, 1])
    model = MultiOutput(make_tiny_model(), kind).eval()
    if kind == "named" and output == "logits":
        output = lambda out: out.logits  # noqa: E731 - named tuples are indexed by position
    result = compute_cams(model, x, layers="net.features", targets=[0, 1], output=output)
    torch.testing.assert_close(result.raw["net.features"], plain.raw["features"])
    torch.testing.assert_close(result.logits, plain.logits)


def test_default_output_is_the_first_tensor(make_tiny_model, images) -> None:
    x = images(2, 3, 16, 16)
    plain = compute_cams(make_tiny_model(), x, layers="features", targets=[0, 1])
    model = MultiOutput(make_tiny_model(), "dict").eval()
    result = compute_cams(model, x, layers="net.features", targets=[0, 1])
    torch.testing.assert_close(result.logits, -plain.logits)  # "aux" comes first
    torch.testing.assert_close(result.raw["net.features"], -plain.raw["features"])


@pytest.mark.parametrize(("kind", "output"), [("dict", "scores"), ("tuple", 5), ("tuple", "x")])
def test_bad_output_selector(kind: str, output, make_tiny_model, images) -> None:
    model = MultiOutput(make_tiny_model(), kind).eval()
    with pytest.raises(EngineError, match="is not in the model's output") as info:
        compute_cams(model, images(1, 3, 16, 16), layers="net.features", output=output)
    if kind == "dict":
        assert "'aux', 'logits'" in str(info.value)


def test_output_index_on_a_plain_tensor_is_an_error() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    with pytest.raises(EngineError, match=r"plain .* tensor; leave output=None"):
        compute_cams(model, torch.randn(3, 3, 8, 8), layers="0", output=0)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_model_gets_a_clear_error() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    scripted = torch.jit.script(model)
    with pytest.raises(EngineError, match="TorchScript model runs no Python hooks"):
        compute_cams(scripted, torch.randn(1, 3, 8, 8), layers="0")


def test_targets_made_under_inference_mode_work() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    ).eval()
    x = torch.randn(3, 3, 8, 8)
    with torch.inference_mode():
        predicted = model(x).argmax(1)
    got = compute_cams(model, x, layers="0", targets=predicted)
    ref = compute_cams(model, x, layers="0", targets=predicted.tolist())
    assert torch.equal(got.targets, ref.targets)
    assert torch.allclose(got.raw_map, ref.raw_map)
