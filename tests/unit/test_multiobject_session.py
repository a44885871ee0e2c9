"""Images with objects of several classes: one case per (image, class), the pointing game of the
literature (TorchRay's protocol) on a synthetic set whose right answers are known."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pytest_camcheck.data.dataset import build_dataset
from pytest_camcheck.demo.multiobject import (
    CLASSES,
    centre_model,
    colour_model,
    plain_transform,
    write_multiobject_set,
)
from pytest_camcheck.errors import ConfigError, DataError
from pytest_camcheck.session import CamCheck, is_difficult_pair
from pytest_camcheck.settings import Settings


def _check(root: Path, fmt: str, model=None, **settings) -> tuple[CamCheck, object]:
    written = write_multiobject_set(root, fmt=fmt, swap=settings.pop("swap", None))
    ann = written.annotations
    ds = build_dataset(root, annotations=ann, transform=plain_transform)
    settings.setdefault("layer", ("features",))
    settings.setdefault("num_workers", 0)
    settings.setdefault("batch_size", 4)
    check = CamCheck(model or colour_model(), ds, Settings(**settings), "cpu")
    return check, written


@pytest.mark.parametrize("fmt", ["voc", "coco", "csv"])
def test_every_pair_hits_its_own_class(tmp_path: Path, fmt: str) -> None:
    check, written = _check(tmp_path, fmt)
    assert check.dataset.multi_object
    assert check.dataset.class_names == list(CLASSES)
    assert check.pairs
    assert check.item_ids() == written.pairs()
    result = check.pointing_game()  # region=None: each pair against its own class's boxes
    assert result.count == len(written.pairs())
    assert result.passed == result.count, result.failures
    assert result.threshold == 15.0
    assert set(result.per_class) == set(CLASSES)
    assert result.extra["class_mean_rate"] == pytest.approx(1.0)


def test_pair_cases_explain_their_class_with_their_boxes(tmp_path: Path) -> None:
    check, written = _check(tmp_path, "voc")
    repeated = [k for k, objs in written.objects.items() if len({c for c, _ in objs}) < len(objs)]
    assert repeated  # the set has an image with two squares of one class
    image = repeated[0]
    classes = [c for c, _ in written.objects[image]]
    for cls in dict.fromkeys(classes):
        case = check.case(f"{image}/{cls}")
        assert case.id == f"{image}/{cls}"
        assert case.image_id == image
        assert case.class_name == cls
        assert case.label == CLASSES.index(cls)
        assert case.target == CLASSES.index(cls)
        assert set(case.image_classes) == set(classes)
        boxes = sorted(b for c, b in written.objects[image] if c == cls)
        got = sorted(tuple(round(v) for v in b.as_tuple()) for b in case.regions[cls].boxes)
        assert got == boxes
        n = classes.count(cls)
        for k in range(1, n + 1):
            assert len(case.regions[f"{cls}#{k}"].boxes) == 1
        assert f"{cls}#{n + 1}" not in case.regions
        # the map of the pair is its class's squares: the peak lies in one of them
        peak = case.peak()
        assert any(x0 <= peak.col < x1 and y0 <= peak.row < y1 for x0, y0, x1, y1 in boxes)
        # and no other class's region is offered
        others = set(CLASSES) - {cls}
        assert not others & set(case.regions)


def test_one_forward_per_batch_for_all_classes(tmp_path: Path) -> None:
    model = colour_model()
    forwards = []
    model.register_forward_pre_hook(lambda m, a: forwards.append(a[0].shape[0]))
    check, written = _check(tmp_path, "voc", model=model, batch_size=8)
    list(check.cases())
    n_images = len(written.objects)
    assert sum(forwards) == n_images  # each image went through the model once
    assert len(list(check.cases())) == len(written.pairs())


def test_swapped_boxes_fail_exactly_the_swapped_pairs(tmp_path: Path) -> None:
    probe = write_multiobject_set(tmp_path / "probe")
    first = [c for c, _ in probe.objects["images/scene_001"]]
    second = [c for c, _ in probe.objects["images/scene_004"]]
    swap = {"scene_001": (first[0], first[1]), "scene_004": (second[1], second[2])}
    check, _written = _check(tmp_path / "set", "coco", swap=swap)
    result = check.pointing_game(tolerance=15)
    expected = {
        f"images/scene_001/{first[0]}",
        f"images/scene_001/{first[1]}",
        f"images/scene_004/{second[1]}",
        f"images/scene_004/{second[2]}",
    }
    assert set(result.failures) == expected
    assert result.count - result.passed == 4


def _hits_centre(boxes: list[tuple[int, int, int, int]], size: int, tol: float) -> bool:
    """Plain geometry: the centre pixel (its centre at size // 2 + 0.5) lies within ``tol``
    pixels of one of the boxes."""
    cx = cy = size // 2 + 0.5
    for x0, y0, x1, y1 in boxes:
        dx = max(x0 - cx, 0.0, cx - x1)
        dy = max(y0 - cy, 0.0, cy - y1)
        if math.hypot(dx, dy) <= tol:
            return True
    return False


@pytest.mark.parametrize("tol", [0, 15, 22, 30])
def test_centre_baseline_scores_what_the_geometry_says(tmp_path: Path, tol: float) -> None:
    check, written = _check(tmp_path, "voc", model=centre_model())
    result = check.pointing_game(tolerance=tol)
    expected = 0
    for _image, objs in written.annotated.items():
        for cls in dict.fromkeys(c for c, _ in objs):
            boxes = [b for c, b in objs if c == cls]
            expected += _hits_centre(boxes, written.size, tol)
    assert result.passed == expected
    assert result.count == len(written.pairs())
    if tol == 22:
        assert 0 < result.passed < result.count  # the geometry makes some hit, some miss


def test_difficult_subset_keeps_small_classes_among_others(tmp_path: Path) -> None:
    check, _written = _check(tmp_path, "voc")
    full = check.pointing_game()
    hard = check.pointing_game(difficult=True)
    # every synthetic square covers 1/36 of the image and has company: all pairs are difficult
    assert hard.count == full.count
    assert "difficult" in hard.name
    cases = list(check.cases())
    assert all(is_difficult_pair(c, c.regions[c.class_name]) for c in cases)


def test_difficult_leaves_out_large_or_lonely_classes(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (40, 40), (255, 0, 0)).save(root / "images" / "a.png")
    Image.new("RGB", (40, 40), (0, 0, 255)).save(root / "images" / "b.png")
    Image.new("RGB", (40, 40), (0, 0, 0)).save(root / "images" / "c.png")
    rows = [
        "image,label,region,x0,y0,x1,y1",
        "images/a.png,red,red,0,0,40,30",  # 3/4 of the image: not difficult
        "images/a.png,blue,blue,0,30,10,40",  # small, with red present: difficult
        "images/b.png,blue,blue,0,0,5,5",  # small but alone: not difficult
        "images/c.png,green,green,0,0,8,8",  # two small classes together: both difficult
        "images/c.png,yellow,yellow,30,30,38,38",
    ]
    (root / "ann.csv").write_text("\n".join(rows) + "\n")
    ds = build_dataset(root, annotations=root / "ann.csv", transform=plain_transform)
    assert ds.multi_object
    check = CamCheck(colour_model(), ds, Settings(layer=("features",), num_workers=0), "cpu")
    assert check.item_ids() == [
        "images/a/red",
        "images/a/blue",
        "images/b/blue",
        "images/c/green",
        "images/c/yellow",
    ]
    hard = check.pointing_game(difficult=True)
    assert hard.ids == ("images/a/blue", "images/c/green", "images/c/yellow")
    assert any("left out" in n for n in hard.notes)


def test_single_label_datasets_keep_their_ids(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "s"
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (16, 16), (0, 0, 0)).save(root / cls / "x.png")
    rows = ["image,label,region,x0,y0,x1,y1", "red/x.png,red,object,0,0,4,4"]
    (root / "a.csv").write_text("\n".join(rows) + "\n")
    ds = build_dataset(root, annotations=root / "a.csv", transform=plain_transform)
    assert not ds.multi_object
    check = CamCheck(colour_model(), ds, Settings(layer=("features",), num_workers=0), "cpu")
    assert not check.pairs
    assert check.item_ids() == list(ds.ids)
    case = check.case(ds.ids[2])
    assert case.image_id is None and case.id == ds.ids[2] == "red/x"
    assert case.label == 2 and case.class_name == "red"
    assert set(case.regions) == {"object"}


def test_an_image_id_of_a_multi_object_image_names_its_items(tmp_path: Path) -> None:
    check, _ = _check(tmp_path, "voc")
    with pytest.raises(DataError, match="images/scene_000/"):
        check.case("images/scene_000")


def test_other_targets_give_one_case_per_image(tmp_path: Path) -> None:
    check, written = _check(tmp_path, "voc", target="predicted")
    assert not check.pairs
    assert check.item_ids() == sorted(written.objects)
    case = check.case("images/scene_000")
    assert case.image_id is None


def test_baseline_of_a_pair_says_why_not(tmp_path: Path) -> None:
    check, _ = _check(tmp_path, "voc")
    case = check.case(check.item_ids()[0])
    with pytest.raises(ConfigError, match="several classes"):
        case.baseline_map  # noqa: B018


def test_energy_in_region_of_each_class(tmp_path: Path) -> None:
    check, written = _check(tmp_path, "voc")
    result = check.energy_in_region(min_fraction=0.9)
    assert result.count == len(written.pairs())
    assert result.passed == result.count
    assert torch.isfinite(torch.tensor(result.values)).all()


def test_regions_of_no_class_belong_to_every_pair(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "w"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (40, 40), (0, 0, 0)).save(root / "images" / "a.png")
    rows = [
        "image,label,region,x0,y0,x1,y1",
        "images/a.png,red,red,0,0,10,10",
        "images/a.png,blue,blue,20,20,30,30",
        "images/a.png,green,head,0,20,5,25",
        "images/a.png,,watermark,32,32,40,40",  # no label: the image's, for every class
        "images/a.png,yellow,,,,,",  # a class present without a box
    ]
    (root / "ann.csv").write_text("\n".join(rows) + "\n")
    ds = build_dataset(root, annotations=root / "ann.csv", transform=plain_transform)
    check = CamCheck(colour_model(), ds, Settings(layer=("features",), num_workers=0), "cpu")
    assert check.item_ids() == [f"images/a/{c}" for c in ("red", "blue", "green", "yellow")]
    red = check.case("images/a/red")
    assert set(red.regions) == {"red", "red#1", "watermark"}
    green = check.case("images/a/green")
    assert set(green.regions) == {"green", "head", "watermark"}  # "green" = its only region
    assert green.regions["green"].boxes == green.regions["head"].boxes
    yellow = check.case("images/a/yellow")
    assert set(yellow.regions) == {"watermark"}
    with pytest.raises(DataError, match=r"images/a/yellow.*has no region 'yellow'"):
        yellow.regions["yellow"]
    result = check.pointing_game(missing="skip")
    assert result.missing == ("images/a/yellow",)
    assert result.count == 3


def test_tiny_and_cropped_away_objects_do_not_sink_their_image(tmp_path: Path) -> None:
    """A 2 px object of a 400 px photo resized to 40 px grows to the pixel holding it; an
    object that a centre crop cuts away leaves its class without a region (said so), and the
    image's other classes are still checked."""
    from PIL import Image, ImageDraw
    from torchvision.transforms import v2

    root = tmp_path / "t"
    (root / "images").mkdir(parents=True)
    img = Image.new("RGB", (400, 400), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rectangle([160, 160, 239, 239], fill=(255, 0, 0))  # red, in the middle
    draw.rectangle([250, 200, 251, 201], fill=(0, 0, 255))  # blue, 2 x 2 px
    draw.rectangle([0, 0, 29, 29], fill=(0, 255, 0))  # green, in the corner
    img.save(root / "images" / "a.png")
    rows = [
        "image,label,region,x0,y0,x1,y1",
        "images/a.png,red,red,160,160,240,240",
        "images/a.png,blue,blue,250,200,252,202",
        "images/a.png,green,green,0,0,30,30",
        "images/a.png,yellow,yellow,300,300,310,310",  # a fourth class, so outputs match
    ]
    (root / "ann.csv").write_text("\n".join(rows) + "\n")
    crop = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((40, 40)),
            v2.CenterCrop(24),  # keeps pixels 8..31 of 40: the green corner is cut away
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    ds = build_dataset(root, annotations=root / "ann.csv", transform=crop)
    sample = ds[0]
    assert set(sample.meta["not_visible"]) == {"green", "green (object 1 of class green)"}
    check = CamCheck(colour_model(), ds, Settings(layer=("features",), num_workers=0), "cpu")
    blue = check.case("images/a/blue")
    # 250..252 x 200..202 of 400 px -> 25..25.2 x 20..20.2 of 40 -> 17..17.2 x 12..12.2 after
    # the crop: less than a pixel, grown to the pixel holding its centre
    mask = blue.regions["blue"].to_mask(24, 24)
    assert mask.sum() == 1 and mask[12, 17]
    green = check.case("images/a/green")
    with pytest.raises(DataError, match="cut away"):
        green.regions["green"]
    red = check.case("images/a/red")
    assert red.regions["red"].to_mask(24, 24).sum() > 0
    result = check.pointing_game(tolerance=0, missing="skip")
    assert result.missing == ("images/a/green",)
    assert "images/a/red" not in result.failures
