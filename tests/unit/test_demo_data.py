"""The synthetic demo data: deterministic, boxes exact, CSV right, watermark on one class only."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.measure import label as connected_components

from pytest_camcheck.demo import synthetic as syn
from pytest_camcheck.demo.models import transform
from pytest_camcheck.errors import DataError
from pytest_camcheck.regions import Box

SIZE = syn.IMAGE_SIZE
WM = syn.WATERMARK_CLASS
PLAIN = 1 - WM


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.uint8)


def _component_box(pixels: np.ndarray, row: int, col: int) -> tuple[Box, np.ndarray]:
    """Tight box of the 4-connected region of pixels with exactly the colour at (row, col)."""
    same = np.all(pixels == pixels[row, col], axis=-1)
    labels = connected_components(same, connectivity=1)
    comp = labels == labels[row, col]
    rows = np.flatnonzero(comp.any(axis=1))
    cols = np.flatnonzero(comp.any(axis=0))
    return Box(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1), comp


def _glyph_window(pixels: np.ndarray) -> np.ndarray:
    b = syn.WATERMARK_BOX
    return pixels[int(b.y0) : int(b.y1), int(b.x0) : int(b.x1)]


def _has_watermark(pixels: np.ndarray) -> bool:
    return bool(np.all(_glyph_window(pixels)[syn.watermark_glyph()] == 255))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------------------------
# determinism


def test_same_seed_same_pixels_and_boxes() -> None:
    a_img, a_reg = syn.make_sample(syn.sample_rng(7, 1, 3), 1, True)
    b_img, b_reg = syn.make_sample(syn.sample_rng(7, 1, 3), 1, True)
    assert np.array_equal(_pixels(a_img), _pixels(b_img))
    assert a_reg == b_reg
    c_img, _ = syn.make_sample(syn.sample_rng(8, 1, 3), 1, True)
    assert not np.array_equal(_pixels(a_img), _pixels(c_img))


def test_write_dataset_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    a = syn.write_dataset(tmp_path / "a", n_per_class=3, seed=5)
    b = syn.write_dataset(tmp_path / "b", n_per_class=3, seed=5)
    c = syn.write_dataset(tmp_path / "c", n_per_class=3, seed=6)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 2 * 3 + 1
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "annotations.csv").read_bytes() != (c / "annotations.csv").read_bytes()


def test_generate_matches_the_written_files_and_is_a_prefix(tmp_path: Path) -> None:
    root = syn.write_dataset(tmp_path, n_per_class=2, seed=11)
    gen = syn.generate(3, seed=11, watermark=True)
    assert gen.images.shape == (6, 3, SIZE, SIZE) and gen.images.dtype == torch.float32
    assert gen.labels.tolist() == [0, 0, 0, 1, 1, 1]
    rows = _read_csv(root / "annotations.csv")
    for label, name in enumerate(syn.CLASS_NAMES):
        for i in range(2):
            rel = f"{name}/{name}_{i:04d}.png"
            k = label * 3 + i  # generate(3) holds generate(2)'s images as a prefix per class
            with Image.open(root / rel) as img:
                assert torch.equal(transform(img), gen.images[k]), rel
            boxes = {r["region"]: r for r in rows if r["image"] == rel}
            assert set(boxes) == set(gen.regions[k]), rel
            for region, box in gen.regions[k].items():
                got = tuple(float(boxes[region][c]) for c in ("x0", "y0", "x1", "y1"))
                assert got == box.as_tuple(), (rel, region)


# --------------------------------------------------------------------------------------------
# geometry: the boxes frame the drawn pixels exactly


@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.parametrize("index", range(6))
def test_object_box_frames_the_object_exactly(label: int, index: int) -> None:
    image, regions = syn.make_sample(syn.sample_rng(3, label, index), label, label == WM)
    px = _pixels(image)
    box = regions["object"]
    assert box.inside(SIZE, SIZE, slack=0)
    side = syn._OBJECT_SIZES
    assert side[0] - 1 <= box.width <= side[1] and side[0] - 1 <= box.height <= side[1]
    cy, cx = int((box.y0 + box.y1) // 2), int((box.x0 + box.x1) // 2)
    found, comp = _component_box(px, cy, cx)
    assert found == box, f"object pixels span {found}, annotation says {box}"
    inside = comp[int(box.y0) : int(box.y1), int(box.x0) : int(box.x1)]
    if syn.CLASS_NAMES[label] == "square":
        assert inside.all(), "a square fills its box"
    else:
        corners = inside[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert not corners.any(), "a circle leaves the box corners empty"
        assert 0.70 < inside.mean() < 0.85, "a disc covers about pi/4 of its box"


def test_watermark_box_frames_the_glyph_exactly() -> None:
    image, regions = syn.make_sample(syn.sample_rng(0, WM, 0), WM, True)
    px = _pixels(image)
    box = regions["watermark"]
    assert box == syn.WATERMARK_BOX
    assert box.width == box.height == 12
    assert box.x1 == box.y1 == SIZE - 3, "bottom-right corner, 3 px margin"
    white = np.all(px == 255, axis=-1)
    glyph = syn.watermark_glyph()
    window = white[int(box.y0) : int(box.y1), int(box.x0) : int(box.x1)]
    assert window[glyph].all()
    assert glyph.any(axis=0).all() and glyph.any(axis=1).all(), "glyph touches every box edge"


def test_objects_never_touch_the_watermark_corner() -> None:
    grown = syn.WATERMARK_BOX
    grown = Box(grown.x0 - 4, grown.y0 - 4, grown.x1, grown.y1)
    for i in range(60):
        _, regions = syn.make_sample(syn.sample_rng(1, i % 2, i), i % 2, False)
        assert regions["object"].iou(grown) == 0.0, regions["object"]


# --------------------------------------------------------------------------------------------
# the CSV and the class-correlated watermark


def test_csv_content(tmp_path: Path) -> None:
    root = syn.write_dataset(tmp_path, n_per_class=4, seed=2)
    text = (root / "annotations.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "image,label,region,x0,y0,x1,y1"
    rows = _read_csv(root / "annotations.csv")
    images = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert images == sorted(f"{n}/{n}_{i:04d}.png" for n in syn.CLASS_NAMES for i in range(4))
    assert sorted({r["image"] for r in rows}) == images
    for r in rows:
        assert r["label"] == r["image"].split("/")[0]
        assert r["region"] in {"object", "watermark"}
        coords = [r[c] for c in ("x0", "y0", "x1", "y1")]
        assert all(c.isdigit() for c in coords), r
        box = Box(*map(float, coords))
        assert box.area > 0 and box.inside(SIZE, SIZE, slack=0)
        with Image.open(root / r["image"]) as img:
            assert img.size == (SIZE, SIZE) and img.mode == "RGB"
    by_image: dict[str, list[str]] = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r["region"])
    wm_name = syn.CLASS_NAMES[WM]
    for image, regions in by_image.items():
        expected = ["object", "watermark"] if image.startswith(f"{wm_name}/") else ["object"]
        assert regions == expected, image


def test_watermark_only_on_one_class(tmp_path: Path) -> None:
    root = syn.write_dataset(tmp_path, n_per_class=5, seed=4)
    for label, name in enumerate(syn.CLASS_NAMES):
        for path in sorted((root / name).glob("*.png")):
            with Image.open(path) as img:
                assert _has_watermark(_pixels(img)) == (label == WM), path


def test_no_watermark_anywhere_when_switched_off(tmp_path: Path) -> None:
    root = syn.write_dataset(tmp_path, n_per_class=3, seed=4, watermark=False)
    assert all(r["region"] == "object" for r in _read_csv(root / "annotations.csv"))
    for path in root.rglob("*.png"):
        with Image.open(path) as img:
            assert not _has_watermark(_pixels(img)), path


def test_shape_noise_flips_an_exact_fraction_and_the_watermark_follows_the_label() -> None:
    gen = syn.generate(10, seed=3, watermark=True, shape_noise=0.4)
    flipped = gen.shapes != gen.labels
    for label in (0, 1):
        assert int(flipped[gen.labels == label].sum()) == 4
    for k in range(len(gen.labels)):
        box = gen.regions[k]["object"]
        img = gen.images[k]
        # a square's box corner has the object's colour; a circle's has the background's
        corner = img[:, int(box.y0), int(box.x0)]
        centre = img[:, int((box.y0 + box.y1) // 2), int((box.x0 + box.x1) // 2)]
        drawn_square = torch.equal(corner, centre)
        assert drawn_square == (syn.CLASS_NAMES[int(gen.shapes[k])] == "square"), k
        assert ("watermark" in gen.regions[k]) == (int(gen.labels[k]) == WM), k
    clean = syn.generate(10, seed=3, watermark=False)
    assert torch.equal(clean.shapes, clean.labels)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: syn.make_sample(syn.sample_rng(0, 0, 0), 2, False), "label 2 is not a class"),
        (lambda: syn.make_sample(syn.sample_rng(0, 0, 0), 0, False, shape=-1), "shape -1"),
        (lambda: syn.generate(2, seed=0, watermark=True, shape_noise=1.5), "shape_noise"),
        (lambda: syn.generate(0, seed=0, watermark=True), "n_per_class"),
    ],
)
def test_bad_arguments_raise_data_errors(call, match: str) -> None:
    with pytest.raises(DataError, match=match):
        call()


def test_bad_count_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="n_per_class"):
        syn.write_dataset(tmp_path / "out", n_per_class=0)
    assert not (tmp_path / "out").exists()
