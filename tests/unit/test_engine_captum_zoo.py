"""Our Grad-CAM equals Captum's ``LayerGradCam`` on the torchvision zoo (random weights).

Random initialisation makes the activations of the inverted-residual networks (MobileNet-V3,
EfficientNet) vanish with depth: their Grad-CAM is ~1e-11, below any meaningful relative
comparison. For those the batch-norm statistics are first re-estimated on random images (a
"calibration" forward in train mode), which brings the activations back to order one without
touching any weight. Every comparison below is then on non-degenerate maps of visible scale.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck.cam import compute_cams
from pytest_camcheck.cam import crosscheck as crosscheck_module
from pytest_camcheck.cam.crosscheck import assert_matches_captum, crosscheck_captum
from pytest_camcheck.cam.methods import METHODS, CamMethod, MethodInput
from pytest_camcheck.errors import CamAssertionError, EngineError

# model -> (expected auto layer, re-estimate batch-norm statistics first)
ZOO = {
    "resnet18": ("layer4", False),
    "resnet50": ("layer4", False),
    "vgg16": ("features", False),
    "densenet121": ("features", False),
    "mobilenet_v3_small": ("features", True),
    "efficientnet_b0": ("features", True),
    "convnext_tiny": ("features", False),
    "regnet_y_400mf": ("trunk_output", False),
}
SIDE = 96
MIN_SCALE = 1e-4  # maps smaller than this would make the relative comparison meaningless


def calibrated(model: nn.Module) -> nn.Module:
    """A copy whose batch-norm running statistics are re-estimated on seeded random images."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(123)))
    return model.eval()


def seeded(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_gradcam_matches_captum_on_the_zoo(name: str, tv_zoo, monkeypatch) -> None:
    layer, calibrate = ZOO[name]
    model = calibrated(tv_zoo(name)) if calibrate else tv_zoo(name)
    x = seeded(2, 3, SIDE, SIDE, seed=1)
    # Keep the engine result the cross-check computes, to look at its maps too.
    ours = []

    def spy(*args, **kwargs):
        ours.append(compute_cams(*args, **kwargs))
        return ours[-1]

    monkeypatch.setattr(crosscheck_module, "compute_cams", spy)
    result = crosscheck_captum(model, x)  # the predicted classes
    (engine,) = ours
    assert engine.layers == (layer,) and result.layer == layer
    # the predicted class has positive evidence somewhere: the maps are worth comparing
    assert not engine.degenerate[layer].any(), f"{name}: degenerate map for the predicted class"
    assert result.scale > MIN_SCALE, f"{name}: map scale {result.scale:.3g} too small to compare"
    assert result.ok, str(result)
    assert result.raw_max_abs_diff <= 1e-5 * result.scale


def test_explicit_layer_and_targets(tv_zoo) -> None:
    model = tv_zoo("resnet18")
    x = seeded(2, 3, 64, 64, seed=2)
    result = assert_matches_captum(model, x, layer="layer3", targets=[10, 500])
    assert result.layer == "layer3" and result.ok
    assert "agrees with Captum" in str(result)


def test_inplace_relu_after_the_layer(make_tiny_model, images) -> None:
    # an in-place ReLU right after the hooked conv must not corrupt either side
    model = make_tiny_model(inplace=True)
    result = crosscheck_captum(model, images(2, 3, 16, 16), layer="features.2", targets=[0, 3])
    assert result.ok, str(result)


def test_a_wrong_gradcam_is_caught(monkeypatch, make_tiny_model, images) -> None:
    # Proves the cross-check can fail: swap in a Grad-CAM that forgets the spatial mean.
    def wrong(inp: MethodInput) -> Tensor:
        assert inp.gradients is not None
        return (inp.gradients.sum(dim=(2, 3))[:, :, None, None] * inp.activations).sum(dim=1)

    monkeypatch.setitem(METHODS, "gradcam", CamMethod("gradcam", True, wrong))
    model = make_tiny_model()
    result = crosscheck_captum(model, images(2, 3, 16, 16), layer="features", targets=[0, 1])
    assert not result.ok
    assert "DIFFERS" in str(result)
    with pytest.raises(CamAssertionError) as info:
        assert_matches_captum(model, images(2, 3, 16, 16), layer="features", targets=[0, 1])
    evidence = info.value.evidence
    assert evidence["layer"] == "features"
    assert evidence["raw_max_abs_diff"] > 1e-5 * evidence["scale"]


def test_crosscheck_rejects_what_it_cannot_compare(make_tiny_model, images) -> None:
    model = make_tiny_model()
    x = images(1, 3, 16, 16)
    with pytest.raises(EngineError, match="callable"):
        crosscheck_captum(model, x, layer="features", targets=lambda z: z[:, 0])
    with pytest.raises(EngineError, match="one layer at a time"):
        crosscheck_captum(model, x, layer=["features", "features.2"])  # type: ignore[arg-type]
