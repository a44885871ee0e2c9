"""Transforms: boxes and masks must still frame the same pixels after the image is transformed.

Each synthetic image has a red rectangle drawn exactly where its annotated box is and a green
disc drawn exactly where its mask is, on a grey background. After a transform, the red pixels of
the transformed image must lie in the transformed box and nearly fill it; likewise green and the
transformed mask.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from pytest_camcheck.data import build_dataset, to_display
from pytest_camcheck.data.transforms import IMAGENET_MEAN, IMAGENET_STD, resize_mask
from pytest_camcheck.errors import ConfigError
from pytest_camcheck.regions import Box

W, H = 96, 64
BOXES = {"red": Box(10, 8, 41, 30), "edge": Box(70, 40, 96, 64)}
RED = (230, 20, 20)
GREEN = (20, 220, 20)
GREY = (120, 120, 120)


def disc_mask() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx + 0.5 - 60) ** 2 + (yy + 0.5 - 20) ** 2 <= 12**2


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A flat dataset of one image with a red box, a red corner box and a green disc mask."""
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[:] = GREY
    for box in BOXES.values():
        pixels[box.mask(H, W)] = RED
    pixels[disc_mask()] = GREEN
    root = tmp_path / "images"
    root.mkdir()
    Image.fromarray(pixels).save(root / "scene.png")
    csv = tmp_path / "boxes.csv"
    rows = [f"scene.png,,{name},{b.x0:g},{b.y0:g},{b.x1:g},{b.y1:g}" for name, b in BOXES.items()]
    csv.write_text("image,label,region,x0,y0,x1,y1\n" + "\n".join(rows) + "\n")
    masks = tmp_path / "masks" / "disc"
    masks.mkdir(parents=True)
    Image.fromarray(disc_mask().astype(np.uint8) * 255).save(masks / "scene.png")
    return root, csv, masks


def colour_pixels(rgb: np.ndarray, colour: str) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    if colour == "red":
        return (r > g + 80) & (r > b + 80)
    return (g > r + 80) & (g > b + 80)


def dilate(mask: np.ndarray, px: int = 1) -> np.ndarray:
    out = mask.copy()
    for dy in range(-px, px + 1):
        for dx in range(-px, px + 1):
            out |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def check_geometry(ds, min_iou: float = 0.85) -> None:
    """Red pixels lie in the union of the red boxes; green pixels match the disc mask."""
    sample = ds[0]
    rgb = ds.display_image(0)
    h, w = rgb.shape[:2]
    assert tuple(sample.image.shape[-2:]) == (h, w)
    assert sample.meta["size"] == (w, h)
    red = colour_pixels(rgb, "red")
    assert red.any(), "the red box vanished from the transformed image"
    boxes = np.zeros((h, w), bool)
    for name in BOXES:
        for b in sample.regions[name].boxes:
            assert b.inside(w, h, slack=0.0)
            boxes |= b.mask(h, w)
    # every red pixel is inside a transformed box (1 px for interpolated edges), and the boxes
    # are filled with red (little else)
    assert not (red & ~dilate(boxes)).any()
    assert iou(red, boxes) >= min_iou
    green = colour_pixels(rgb, "green")
    disc = sample.regions["disc"].mask
    assert disc.shape == (h, w)
    assert not (green & ~dilate(disc)).any()
    assert iou(green, disc) >= min_iou


def test_default_transform_keeps_boxes_and_masks_on_their_pixels(scene):
    root, csv, masks = scene
    ds = build_dataset(root, annotations=[csv, masks.parent], image_size=48)
    sample = ds[0]
    assert tuple(sample.image.shape) == (3, 48, 48)
    assert sample.regions["red"].boxes[0].as_tuple() == pytest.approx(
        (10 * 0.5, 8 * 0.75, 41 * 0.5, 30 * 0.75), abs=1e-4
    )
    check_geometry(ds, min_iou=0.8)


def test_default_display_inverts_the_normalisation_exactly(scene):
    root, _, _ = scene
    ds = build_dataset(root, image_size=40)
    expected = v2.Compose([v2.ToImage(), v2.Resize((40, 40), antialias=True)])(
        Image.open(root / "scene.png").convert("RGB")
    )
    got = ds.display_image(0)
    assert got.dtype == np.uint8 and got.shape == (40, 40, 3)
    assert np.array_equal(got, expected.permute(1, 2, 0).numpy())
    x = ds[0].image
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    assert torch.allclose(x, (expected.float() / 255 - mean) / std, atol=1e-5)


@pytest.mark.parametrize(
    "steps",
    [
        [v2.RandomHorizontalFlip(p=1.0)],
        [v2.RandomHorizontalFlip(p=1.0), v2.CenterCrop((56, 80))],
        [v2.RandomVerticalFlip(p=1.0), v2.Resize((32, 64))],
        [v2.RandomRotation((90, 90), expand=True)],
    ],
    ids=["hflip", "hflip-centercrop", "vflip-resize", "rotate90"],
)
def test_v2_transforms_move_boxes_and_masks_with_the_pixels(scene, steps):
    root, csv, masks = scene
    transform = v2.Compose([*steps, v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    ds = build_dataset(root, annotations=[csv, masks.parent], transform=transform)
    assert ds.transform.kind == "v2"
    check_geometry(ds)


def test_hflip_mirrors_the_box_coordinates(scene):
    root, csv, _ = scene
    transform = v2.Compose(
        [v2.RandomHorizontalFlip(p=1.0), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    )
    sample = build_dataset(root, annotations=csv, transform=transform)[0]
    assert sample.regions["red"].boxes[0].as_tuple() == pytest.approx((W - 41, 8, W - 10, 30))
    assert sample.regions["edge"].boxes[0].as_tuple() == pytest.approx((0, 40, 26, 64))


def test_centercrop_clamps_a_cut_box(scene):
    root, csv, _ = scene
    transform = v2.Compose(
        [v2.CenterCrop((32, 48)), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    )
    sample = build_dataset(root, annotations=csv, transform=transform)[0]
    # crop window x in [24, 72), y in [16, 48): red (10..41, 8..30) -> (0..17, 0..14)
    assert sample.regions["red"].boxes[0].as_tuple() == pytest.approx((0, 0, 17, 14))
    assert sample.regions["edge"].boxes[0].as_tuple() == pytest.approx((46, 24, 48, 32))


def nearest_resize(img: Image.Image) -> torch.Tensor:
    """A plain (non-v2) transform: anisotropic nearest resize to a float tensor."""
    small = img.resize((144, 40), Image.Resampling.NEAREST)
    return torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1).float() / 255.0


def test_plain_callable_scales_boxes_and_masks(scene):
    root, csv, masks = scene
    ds = build_dataset(root, annotations=[csv, masks.parent], transform=nearest_resize)
    assert ds.transform.kind == "plain"
    sample = ds[0]
    assert tuple(sample.image.shape) == (3, 40, 144)
    assert sample.regions["red"].boxes[0].as_tuple() == pytest.approx(
        (10 * 1.5, 8 * 0.625, 41 * 1.5, 30 * 0.625)
    )
    assert "normalization" not in sample.meta
    check_geometry(ds)


def test_grey_custom_transform_displays_as_rgb(scene):
    root, _, _ = scene

    def grey(img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(img.convert("L")).copy()).float()[None] * 3.0 - 7.0

    ds = build_dataset(root, transform=grey)
    rgb = ds.display_image(0)
    assert rgb.shape == (H, W, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert rgb.min() == 0 and rgb.max() == 255  # min-max scaled


def test_to_display_minmax_per_channel_and_constant_channels():
    x = torch.stack([torch.linspace(-3, 5, 12).reshape(3, 4), torch.full((3, 4), 0.5)])
    x = torch.cat([x, torch.full((1, 3, 4), 9.0)])
    rgb = to_display(x)
    assert rgb[..., 0].min() == 0 and rgb[..., 0].max() == 255
    assert (rgb[..., 1] == 128).all()  # constant channel keeps its value (0.5 -> 128)
    assert (rgb[..., 2] == 255).all()  # constant channel, clipped to 1


def test_resize_mask_samples_pixel_centres():
    m = np.zeros((4, 4), bool)
    m[1:3, 1:3] = True
    up = resize_mask(m, 8, 8)
    assert np.array_equal(np.argwhere(up.any(axis=1)).ravel(), np.arange(2, 6))
    assert np.array_equal(resize_mask(up, 4, 4), m)


# ---------------------------------------------------------------------------- errors


def test_transform_must_return_a_float_chw_tensor(scene):
    root, _, _ = scene
    ds = build_dataset(root, transform=lambda img: img)
    with pytest.raises(
        ConfigError, match=r"transform .*<lambda> returned a PIL.*float \(C, H, W\)"
    ):
        ds[0]
    no_float = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.ToImage()])
    ds = build_dataset(root, transform=no_float)
    with pytest.raises(
        ConfigError, match=r"Compose\(RandomHorizontalFlip, ToImage\) returned a torch.uint8"
    ):
        ds[0]


def test_failing_transform_names_transform_and_sample(scene):
    root, _, _ = scene

    def boom(img):
        raise ValueError("bad pixels")

    ds = build_dataset(root, transform=boom)
    with pytest.raises(ConfigError, match=r"transform .*boom failed on sample 'scene'.*bad pixels"):
        ds[0]


class ImageOnlyCrop(v2.Transform):
    """A careless v2 transform: crops images, passes boxes through unchanged."""

    _transformed_types = (Image.Image, tv_tensors.Image)

    def transform(self, inpt, params):
        return v2.functional.crop(inpt, 0, 0, 20, 20)


def test_v2_transform_that_leaves_boxes_behind_is_rejected(scene):
    root, csv, _ = scene
    transform = v2.Compose([ImageOnlyCrop(), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    ds = build_dataset(root, annotations=csv, transform=transform)
    with pytest.raises(ConfigError, match=r"changed the image of sample 'scene' to 20x20 but"):
        ds[0]


TRANSFORM_MODULE = """
import torch
from torchvision.transforms import v2

def make():
    return v2.Compose([v2.Resize((16, 24)), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])

def to_tensor(img):
    return torch.zeros(3, 5, 7)

not_callable = 42
"""


@pytest.fixture
def transform_module(tmp_path: Path):
    name = f"camcheck_transforms_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(TRANSFORM_MODULE)
    yield name, tmp_path
    sys.modules.pop(name, None)


def test_transform_given_as_spec(scene, transform_module):
    root, csv, _ = scene
    name, where = transform_module
    ds = build_dataset(root, annotations=csv, transform=f"{name}:make", rootdir=where)
    assert ds.transform.kind == "v2" and ds.transform.name == f"{name}:make"
    sample = ds[0]
    assert tuple(sample.image.shape) == (3, 16, 24)
    assert sample.regions["red"].boxes[0].as_tuple() == pytest.approx(
        (10 / 4, 8 / 4, 41 / 4, 30 / 4), abs=1e-4
    )
    ds = build_dataset(root, transform=f"{name}:to_tensor", rootdir=where)
    assert ds.transform.kind == "plain"
    assert tuple(ds[0].image.shape) == (3, 5, 7)


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        ("not_callable", r"transform '.*:not_callable' is a int, not a callable"),
        ("nope", r"transform '.*:nope': module .* has no attribute 'nope'"),
    ],
)
def test_bad_transform_specs(scene, transform_module, attr, expected):
    root, _, _ = scene
    name, where = transform_module
    with pytest.raises(ConfigError, match=expected):
        build_dataset(root, transform=f"{name}:{attr}", rootdir=where)


def test_malformed_transform_spec(scene):
    root, _, _ = scene
    with pytest.raises(ConfigError, match=r"transform 'just-a-name' is not of the form"):
        build_dataset(root, transform="just-a-name")
