"""The input pipeline from the settings: mean/std, resize + crop, weights presets, and the
boxes following them exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from pytest_camcheck.constants import IMAGENET_MEAN, IMAGENET_STD
from pytest_camcheck.data.transforms import to_display
from pytest_camcheck.errors import ConfigError
from pytest_camcheck.inputs import build_input_transform, input_plan, weights_preset
from pytest_camcheck.regions import Box, Region
from pytest_camcheck.settings import Settings, settings_from


def resolve(**ini: str) -> Settings:
    return settings_from(lambda k: None, lambda k: ini.get(k))


def photo(width: int = 400, height: int = 300) -> Image.Image:
    """A photo whose pixel (x, y) has red = x // 2 and green = y // 2 (so crops can be read)."""
    xs = torch.arange(width).div(2, rounding_mode="floor").clamp(max=255)
    ys = torch.arange(height).div(2, rounding_mode="floor").clamp(max=255)
    arr = torch.zeros(height, width, 3, dtype=torch.uint8)
    arr[..., 0] = xs[None, :]
    arr[..., 1] = ys[:, None]
    return Image.fromarray(arr.numpy())


def centre_crop_box(box: Box, size: tuple[int, int], resize: int, crop: int) -> Box:
    """Where torchvision's Resize(resize) + CenterCrop(crop) puts a box of a (w, h) image."""
    w, h = size
    if w <= h:
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_w, new_h = int(resize * w / h), resize
    left = round((new_w - crop) / 2.0)
    top = round((new_h - crop) / 2.0)
    sx, sy = new_w / w, new_h / h
    return Box(box.x0 * sx - left, box.y0 * sy - top, box.x1 * sx - left, box.y1 * sy - top)


def seen_colour(
    col: int, row: int, size: tuple[int, int], resize: int, crop: int
) -> tuple[float, float]:
    """The (red, green) that output pixel (row, col) of Resize(resize) + CenterCrop(crop)
    shows of :func:`photo`: half the original x and y under its centre."""
    w, h = size
    new_w, new_h = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    left, top = round((new_w - crop) / 2.0), round((new_h - crop) / 2.0)
    x = (col + left + 0.5) * w / new_w
    y = (row + top + 0.5) * h / new_h
    return x / 2, y / 2


def test_mean_std_resize_and_crop_parse() -> None:
    s = resolve(
        camcheck_mean="0.5, 0.4, 0.3",
        camcheck_std="[0.2, 0.2, 0.2]",
        camcheck_resize="256",
        camcheck_crop="224",
    )
    assert (s.mean, s.std, s.resize, s.crop) == ((0.5, 0.4, 0.3), (0.2, 0.2, 0.2), 256, 224)
    with pytest.raises(ConfigError, match="camcheck_mean: expected per-channel numbers"):
        resolve(camcheck_mean="red")
    with pytest.raises(ConfigError, match="camcheck_crop: expected an integer >= 8, got 4"):
        resolve(camcheck_crop="4")


def test_the_plan_takes_the_settings_then_the_model_then_imagenet(tmp_path: Path) -> None:
    plan = input_plan(Settings())
    assert (plan.mean, plan.std, plan.input_size) == (IMAGENET_MEAN, IMAGENET_STD, 224)
    folder = tmp_path / "vit"
    folder.mkdir()
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {"image_mean": [0.5] * 3, "image_std": [0.25] * 3, "size": {"height": 64, "width": 64}}
        )
    )
    hf = Settings(model="hf:vit")
    plan = input_plan(hf, tmp_path, size_given=False)
    assert (plan.mean, plan.std, plan.size) == ((0.5,) * 3, (0.25,) * 3, 64)
    assert plan.sources == (
        "normalisation from hf:vit preprocessor_config.json",
        "size from hf:vit preprocessor_config.json",
    )
    assert input_plan(hf, tmp_path, size_given=True).size == 224  # camcheck_image_size wins
    own = Settings(model="hf:vit", mean=(0.1,), std=(0.3, 0.3, 0.3))
    assert input_plan(own, tmp_path).mean == (0.1, 0.1, 0.1)  # one number for every channel
    with pytest.raises(ConfigError, match="camcheck_std: a standard deviation of 0"):
        input_plan(Settings(std=(0.0, 1.0, 1.0)))
    with pytest.raises(ConfigError, match="camcheck_mean: expected 1 or 3 per-channel numbers"):
        input_plan(Settings(mean=(0.1, 0.2)))


def test_the_default_pipeline_resizes_crops_and_moves_the_boxes_exactly() -> None:
    s = Settings(resize=256, crop=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    paired = build_input_transform(s)
    assert not isinstance(paired, str) and paired is not None
    assert paired.normalization == ((0.5,) * 3, (0.5,) * 3)
    assert "Resize(256) + CenterCrop(224)" in paired.name
    box = Box(100, 50, 220, 170)
    image, regions = paired(photo(), {"obj": Region("obj", (box,))})
    assert tuple(image.shape) == (3, 224, 224)
    (got,) = regions["obj"].boxes
    want = centre_crop_box(box, (400, 300), 256, 224)  # torchvision's box maths is float32
    assert got.as_tuple() == pytest.approx(want.as_tuple(), abs=1e-4)
    # the pixels moved as the box did: just inside its corner lies the photo's corner pixel
    shown = to_display(image, paired.normalization)
    col, row = int(got.x0) + 1, int(got.y0) + 1
    red, green = seen_colour(col, row, (400, 300), 256, 224)
    assert abs(int(shown[row, col, 0]) - red) <= 2 and abs(int(shown[row, col, 1]) - green) <= 2
    assert abs(red - (box.x0 / 2)) <= 2 and abs(green - (box.y0 / 2)) <= 2


def test_a_weights_preset_uses_its_resize_crop_and_normalisation() -> None:
    paired = build_input_transform(Settings(transform="torchvision:ResNet50_Weights.IMAGENET1K_V2"))
    assert not isinstance(paired, str) and paired is not None
    assert paired.name == (
        "torchvision:ResNet50_Weights.IMAGENET1K_V2 (Resize(232) + CenterCrop(224))"
    )
    assert paired.normalization == (IMAGENET_MEAN, IMAGENET_STD)
    box = Box(30, 20, 390, 280)  # reaches into the parts the crop cuts away
    image, regions = paired(photo(), {"obj": Region("obj", (box,))})
    assert tuple(image.shape) == (3, 224, 224)
    want = centre_crop_box(box, (400, 300), 232, 224)
    clipped = (max(want.x0, 0), max(want.y0, 0), min(want.x1, 224), min(want.y1, 224))
    assert regions["obj"].boxes[0].as_tuple() == pytest.approx(clipped, abs=1e-4)
    # its display image inverts the preset's normalisation and shows the cropped pixels
    shown = to_display(image, paired.normalization)
    for col, row in ((0, 0), (223, 223), (100, 50)):
        red, green = seen_colour(col, row, (400, 300), 232, 224)
        assert abs(int(shown[row, col, 0]) - red) <= 2
        assert abs(int(shown[row, col, 1]) - green) <= 2


def test_presets_and_default_keys_that_cannot_apply_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"torchvision has no weights 'ResNet50_Weights\.V9'"):
        weights_preset("torchvision:ResNet50_Weights.V9")
    with pytest.raises(ConfigError, match="camcheck_mean: shapes the default transform only"):
        build_input_transform(Settings(transform="mymod:fn", mean=(0.5, 0.5, 0.5)))
    assert build_input_transform(Settings(transform="mymod:fn")) == "mymod:fn"
