"""Our maps against the peer libraries: pytorch-grad-cam (``grad-cam`` on PyPI) and torchcam.

What is compared, like with like:

* pytorch-grad-cam's final map is, per image, ``minmax(resize(minmax(relu(raw))))`` with
  ``cv2.resize`` (bilinear, half-pixel centres) and a final min-max (``aggregate_multi_layers``).
  Bilinear resizing is linear and preserves constants, so that equals
  ``minmax(resize(relu(raw)))``, which is exactly our display map (``F.interpolate``,
  ``align_corners=False``). So the FINAL maps at input resolution are compared directly, and also
  the maps at layer resolution (their resize switched off through ``get_target_width_height``)
  against ``minmax(relu(our raw))``.
* Their min-max adds 1e-7 to the divisor and Grad-CAM++ adds 1e-6 to its alpha denominator; the
  model's head is scaled so that the gradients are O(0.1) and these epsilons are negligible (with
  tiny gradients their Grad-CAM++ drifts from the closed form, which ours follows exactly: see
  test_engine_methods.py).
* Score-CAM upsamples the channels with ``align_corners=True`` there and ``False`` here: compared
  by correlation, as is Grad-CAM++.
* torchcam returns ``minmax(relu(raw))`` at layer resolution.

All models here have NO in-place ReLU after the CAM layer: both peers read the hooked activation
after the network has overwritten it (on Captum's toy, torch-grad-cam 1.5.7 gives
``[[0, 3], [20.25, 22.5]]`` and torchcam 0.5.0 ``[[0, 4], [28, 32.5]]`` instead of
``[[11.25, 13.5], [20.25, 22.5]]``); our handling of that case is tested in test_engine_toy.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_grad_cam  # the test extra "grad-cam"
import torch
import torchcam.methods  # the test extra "torchcam"
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from pytest_camcheck.cam import compute_cams
from pytest_camcheck.cam.engine import normalise_maps

EXACT_ATOL = 1e-4
MIN_PEARSON = 0.99
TARGETS = [0, 1, 2]


class PeerNet(nn.Module):
    """conv-ReLU-conv(stride 2)-ReLU (``features``), then a conv head that is NOT global pooling
    + linear, so gradients vary across space and the methods differ from one another."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, stride=2),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * width, 5),
        )
        with torch.no_grad():
            self.head[-1].weight.mul_(10.0)  # gradients O(0.1): the peers' epsilons vanish
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def x() -> Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def theirs(cls: type, x: Tensor, layer_resolution: bool = False) -> np.ndarray:
    """pytorch-grad-cam's maps for TARGETS at the model's ``features`` (a fresh model)."""
    model = PeerNet()
    if layer_resolution:

        class AtLayer(cls):  # type: ignore[misc, valid-type]
            def get_target_width_height(self, input_tensor: Tensor) -> None:
                return None  # scale_cam_image then skips the resize

        cls = AtLayer
    with cls(model=model, target_layers=[model.features]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in TARGETS])


def ours(method: str, x: Tensor):
    result = compute_cams(PeerNet(), x, layers="features", method=method, targets=TARGETS)
    assert not result.degenerate["features"].any()
    return result


def peer(name: str) -> type:
    return getattr(pytorch_grad_cam, name)


@pytest.mark.parametrize(
    ("method", "cls"), [("gradcam", "GradCAM"), ("layercam", "LayerCAM"), ("xgradcam", "XGradCAM")]
)
def test_exact_methods_match_pytorch_grad_cam(method: str, cls: str, x: Tensor) -> None:
    result = ours(method, x)
    final = theirs(peer(cls), x)
    assert final.shape == (3, 32, 32)
    np.testing.assert_allclose(result.maps["features"].numpy(), final, rtol=0, atol=EXACT_ATOL)
    at_layer = theirs(peer(cls), x, layer_resolution=True)
    mine = normalise_maps(result.raw["features"].clamp(min=0)).numpy()
    assert at_layer.shape == mine.shape == (3, 16, 16)
    np.testing.assert_allclose(mine, at_layer, rtol=0, atol=EXACT_ATOL)


@pytest.mark.parametrize(
    ("method", "cls"), [("gradcam++", "GradCAMPlusPlus"), ("scorecam", "ScoreCAM")]
)
def test_correlated_methods_match_pytorch_grad_cam(
    method: str, cls: str, x: Tensor, pearson
) -> None:
    result = ours(method, x)
    final = torch.from_numpy(theirs(peer(cls), x))
    for i in range(len(TARGETS)):
        r = pearson(result.maps["features"][i], final[i])
        assert r >= MIN_PEARSON, f"{method} image {i}: Pearson {r:.4f}"


def test_methods_really_differ_on_this_model(x: Tensor, pearson) -> None:
    # Guards the comparisons above: on this model the methods give different maps, so matching
    # the right peer method is not a coincidence.
    grad = ours("gradcam", x).maps["features"]
    layer = ours("layercam", x).maps["features"]
    assert (grad - layer).abs().max() > 0.05
    final = torch.from_numpy(theirs(peer("LayerCAM"), x))
    assert (grad - final).abs().max() > 0.05


def test_gradcam_matches_torchcam(x: Tensor) -> None:
    model = PeerNet()
    with torchcam.methods.GradCAM(model, target_layer="features") as extractor:
        scores = model(x)
        (cams,) = extractor(class_idx=TARGETS, scores=scores)
    result = ours("gradcam", x)
    mine = normalise_maps(result.raw["features"].clamp(min=0))
    torch.testing.assert_close(mine, cams.detach(), rtol=0, atol=EXACT_ATOL)
