"""Synthetic "circle vs square" images whose right answer is known by construction.

Every image is ``IMAGE_SIZE`` x ``IMAGE_SIZE`` RGB: a smooth, noisy, low-saturation background
and one flat-coloured object (a filled circle or an axis-aligned filled square) of random size,
position and saturated colour. The object's region ``"object"`` is the exact bounding box of its
pixels. With the watermark on, every image of class ``CLASS_NAMES[WATERMARK_CLASS]`` also carries
a small bright "©"-like glyph at a fixed place in the bottom-right corner (region
``"watermark"``, again the exact box of its pixels): a cue perfectly correlated with the class,
the planted defect that the CAM checks must catch. Objects never overlap the watermark's corner,
with or without a watermark, so the watermark never hides the object.

Two more planted shortcuts, both off by default (with them off, every image is the same as
before they existed: they draw from the image's random stream only after everything else):

* ``class_background``: the background is tinted by class (:data:`BACKGROUND_TINTS`), a cue
  spread over the whole image, not in any box.
* ``distractor``: every image also holds a small "distractor" glyph (region ``"distractor"``)
  whose kind depends on the class (a "+" for ``CLASS_NAMES[0]``, an "x" for ``CLASS_NAMES[1]``),
  at a random place away from the object: a second, co-occurring object a model can look at.

Boxes follow :mod:`pytest_camcheck.regions`: a pixel ``(row, col)`` covers
``[col, col + 1) x [row, row + 1)``, so an object whose pixels span rows ``r0..r1`` and columns
``c0..c1`` has ``Box(c0, r0, c1 + 1, r1 + 1)``.

The module imports numpy and PIL only; :func:`generate` imports torch when called.
"""

from __future__ import annotations

import colorsys
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from PIL import Image

from ..errors import DataError
from ..regions import Box

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

__all__ = [
    "BACKGROUND_TINTS",
    "CLASS_NAMES",
    "CSV_HEADER",
    "DISTRACTOR_SIZE",
    "IMAGE_SIZE",
    "WATERMARK_BOX",
    "WATERMARK_CLASS",
    "Generated",
    "distractor_glyph",
    "generate",
    "make_sample",
    "sample_rng",
    "watermark_glyph",
    "write_dataset",
]

IMAGE_SIZE = 96
CLASS_NAMES = ["circle", "square"]
# The class whose images carry the watermark when the watermark is on.
WATERMARK_CLASS = 1
CSV_HEADER = ("image", "label", "region", "x0", "y0", "x1", "y1")

_GLYPH_SIZE = 12
_WATERMARK_MARGIN = 3
# Objects keep this many pixels away from the watermark's box (even when it is not drawn).
_WATERMARK_CLEARANCE = 4
_OBJECT_SIZES = (40, 56)  # inclusive range of the side / diameter, in pixels
_EDGE_MARGIN = 2
_WATERMARK_COLOUR = (255, 255, 255)
#: RGB offsets added to the background of each class when ``class_background`` is on.
BACKGROUND_TINTS = ((-30.0, -5.0, 35.0), (35.0, -5.0, -30.0))
#: Side of the distractor glyph, in pixels.
DISTRACTOR_SIZE = 15
_DISTRACTOR_STROKE = 4
_DISTRACTOR_CLEARANCE = 3


def watermark_glyph() -> np.ndarray:
    """The ``(12, 12)`` boolean mask of the "©"-like watermark glyph: a ring around a "C"."""
    n = _GLYPH_SIZE
    centre = n / 2.0
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    dx, dy = xx - centre, yy - centre
    r = np.hypot(dx, dy)
    ring = (r <= 6.0) & (r >= 4.6)
    angle = np.degrees(np.arctan2(dy, dx))  # 0 deg points right: the "C" opens to the right
    c_letter = (r <= 3.2) & (r >= 1.8) & (np.abs(angle) >= 50.0)
    return ring | c_letter


_GLYPH = watermark_glyph()
_WM_X0 = IMAGE_SIZE - _WATERMARK_MARGIN - _GLYPH_SIZE
_WM_Y0 = IMAGE_SIZE - _WATERMARK_MARGIN - _GLYPH_SIZE


def _mask_box(mask: np.ndarray, x_off: int = 0, y_off: int = 0) -> Box:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(
        float(cols[0] + x_off),
        float(rows[0] + y_off),
        float(cols[-1] + 1 + x_off),
        float(rows[-1] + 1 + y_off),
    )


WATERMARK_BOX = _mask_box(_GLYPH, _WM_X0, _WM_Y0)


def sample_rng(seed: int, label: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` of class ``label`` in a dataset drawn with ``seed``.

    Each image has its own stream, so a dataset of ``n`` images per class is a prefix of one of
    ``n + k`` images with the same seed.
    """
    return np.random.default_rng([int(seed), int(label), int(index)])


def _background(rng: np.random.Generator) -> np.ndarray:
    """Smooth grey-ish colour field plus pixel noise, float ``(H, W, 3)``."""
    grey = rng.uniform(70.0, 170.0, size=(4, 4, 1))
    tint = rng.uniform(-18.0, 18.0, size=(4, 4, 3))
    coarse = np.clip(grey + tint, 0, 255).astype(np.uint8)
    smooth = np.asarray(
        Image.fromarray(coarse, "RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC),
        dtype=np.float64,
    )
    noise = rng.normal(0.0, 14.0, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    return smooth + noise


def _object_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    h = float(rng.uniform(0.0, 1.0))
    s = float(rng.uniform(0.7, 1.0))
    v = float(rng.uniform(0.75, 1.0))
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def _place_object(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """Top-left corner of a ``size`` x ``size`` object clear of the watermark's corner."""
    keep_out = WATERMARK_BOX
    hi = IMAGE_SIZE - _EDGE_MARGIN - size
    while True:
        x0 = int(rng.integers(_EDGE_MARGIN, hi + 1))
        y0 = int(rng.integers(_EDGE_MARGIN, hi + 1))
        clear = (
            x0 + size + _WATERMARK_CLEARANCE <= keep_out.x0
            or y0 + size + _WATERMARK_CLEARANCE <= keep_out.y0
        )
        if clear:
            return x0, y0


def _shape_mask(shape: int, size: int) -> np.ndarray:
    if CLASS_NAMES[shape] == "square":
        return np.ones((size, size), dtype=bool)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    radius = size / 2.0
    return np.hypot(xx - radius, yy - radius) <= radius


def distractor_glyph(label: int) -> np.ndarray:
    """The ``(15, 15)`` boolean mask of class ``label``'s distractor: "+" (0) or "x" (1)."""
    n, half = DISTRACTOR_SIZE, _DISTRACTOR_STROKE / 2.0
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    c = n / 2.0
    if int(label) == 0:
        return (np.abs(xx - c) <= half) | (np.abs(yy - c) <= half)
    return (np.abs(xx - yy) <= half * 1.3) | (np.abs(xx + yy - n) <= half * 1.3)


def _place_distractor(rng: np.random.Generator, obj: Box) -> tuple[int, int]:
    """Top-left corner of the distractor, clear of the object and of the watermark's corner."""
    n, gap = DISTRACTOR_SIZE, _DISTRACTOR_CLEARANCE
    hi = IMAGE_SIZE - _EDGE_MARGIN - n
    for _ in range(1000):
        x0 = int(rng.integers(_EDGE_MARGIN, hi + 1))
        y0 = int(rng.integers(_EDGE_MARGIN, hi + 1))
        box = Box(float(x0 - gap), float(y0 - gap), float(x0 + n + gap), float(y0 + n + gap))
        if box.iou(obj) == 0.0 and box.iou(WATERMARK_BOX) == 0.0:
            return x0, y0
    raise DataError("no room for the distractor next to the object")  # pragma: no cover


def make_sample(
    rng: np.random.Generator,
    label: int,
    watermark: bool,
    *,
    shape: int | None = None,
    class_background: bool = False,
    distractor: bool = False,
) -> tuple[Image.Image, dict[str, Box]]:
    """Draw one image.

    Args:
        rng: the random generator (see :func:`sample_rng` for a per-image stream).
        label: the class index into :data:`CLASS_NAMES`.
        watermark: stamp the watermark glyph into the bottom-right corner.
        shape: the class whose shape is drawn (default: ``label``); datasets with shape noise
            draw the other class's shape.
        class_background: tint the background with the class's :data:`BACKGROUND_TINTS`.
        distractor: add the class's distractor glyph (see :func:`distractor_glyph`) at a random
            place away from the object (drawn after everything else, from the same stream).

    Returns:
        The RGB image and its regions: ``"object"``, and ``"watermark"`` / ``"distractor"``
        when drawn.

    Raises:
        DataError: ``label`` or ``shape`` is not a class index.
    """
    shape = label if shape is None else shape
    for name, value in (("label", label), ("shape", shape)):
        if not 0 <= int(value) < len(CLASS_NAMES):
            raise DataError(
                f"{name} {value!r} is not a class index: use 0..{len(CLASS_NAMES) - 1} "
                f"for {CLASS_NAMES}"
            )
    pixels = _background(rng)
    if class_background:
        pixels += np.asarray(BACKGROUND_TINTS[int(label)], dtype=np.float64)
    size = int(rng.integers(_OBJECT_SIZES[0], _OBJECT_SIZES[1] + 1))
    x0, y0 = _place_object(rng, size)
    colour = _object_colour(rng)
    mask = _shape_mask(int(shape), size)
    pixels[y0 : y0 + size, x0 : x0 + size][mask] = colour
    regions = {"object": _mask_box(mask, x0, y0)}
    if watermark:
        window = pixels[_WM_Y0 : _WM_Y0 + _GLYPH_SIZE, _WM_X0 : _WM_X0 + _GLYPH_SIZE]
        window[_GLYPH] = _WATERMARK_COLOUR
        regions["watermark"] = WATERMARK_BOX
    if distractor:
        dx, dy = _place_distractor(rng, regions["object"])
        glyph = distractor_glyph(int(label))
        n = DISTRACTOR_SIZE
        pixels[dy : dy + n, dx : dx + n][glyph] = _object_colour(rng)
        regions["distractor"] = _mask_box(glyph, dx, dy)
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
    return image, regions


def _check_counts(n_per_class: int, shape_noise: float) -> None:
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise DataError(f"n_per_class must be a positive int (e.g. 20), got {n_per_class!r}")
    if not 0.0 <= float(shape_noise) <= 1.0:
        raise DataError(f"shape_noise must be a fraction in [0, 1] (e.g. 0.4), got {shape_noise!r}")


def _noisy_indices(n_per_class: int, shape_noise: float, seed: int, label: int) -> set[int]:
    """The indices of class ``label`` that show the other shape (an exact, seeded subset)."""
    k = round(shape_noise * n_per_class)
    order = np.random.default_rng([int(seed), int(label), 1_000_003]).permutation(n_per_class)
    return {int(i) for i in order[:k]}


def _samples(
    n_per_class: int,
    seed: int,
    watermark: bool,
    shape_noise: float = 0.0,
    *,
    class_background: bool = False,
    distractor: bool = False,
) -> Iterator[tuple[int, int, int, Image.Image, dict[str, Box]]]:
    """Yield ``(label, index, shape, image, regions)`` for every image, class by class."""
    for label in range(len(CLASS_NAMES)):
        noisy = _noisy_indices(n_per_class, shape_noise, seed, label)
        stamp = watermark and label == WATERMARK_CLASS
        for i in range(n_per_class):
            shape = (1 - label) if i in noisy else label
            image, regions = make_sample(
                sample_rng(seed, label, i),
                label,
                stamp,
                shape=shape,
                class_background=class_background,
                distractor=distractor,
            )
            yield label, i, shape, image, regions


def write_dataset(
    root: str | Path, n_per_class: int = 20, seed: int = 0, watermark: bool = True
) -> Path:
    """Write an ImageFolder dataset with a CSV of its boxes; the same seed gives the same bytes.

    Layout: ``root/<class>/<class>_<i:04d>.png`` and ``root/annotations.csv`` with the header
    ``image,label,region,x0,y0,x1,y1`` (image path relative to ``root``, label = class name, one
    row per region: ``"object"`` and, on watermarked images, ``"watermark"``).

    Args:
        root: the folder to write into (created if needed).
        n_per_class: images per class.
        seed: the dataset's seed.
        watermark: stamp the watermark on every image of class ``CLASS_NAMES[WATERMARK_CLASS]``.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: ``n_per_class`` is not a positive int.
    """
    _check_counts(n_per_class, 0.0)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, ...]] = []
    for label, i, _shape, image, regions in _samples(n_per_class, seed, watermark):
        name = CLASS_NAMES[label]
        rel = f"{name}/{name}_{i:04d}.png"
        (root / name).mkdir(exist_ok=True)
        image.save(root / rel, format="PNG")
        for region, box in regions.items():
            coords = (str(int(v)) for v in box.as_tuple())
            rows.append((rel, name, region, *coords))
    with open(root / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)
    return root


class Generated(NamedTuple):
    """An in-memory synthetic dataset.

    Attributes:
        images: ``(N, 3, IMAGE_SIZE, IMAGE_SIZE)`` float32, normalised with
            :func:`pytest_camcheck.demo.models.transform`.
        labels: ``(N,)`` int64 class indices.
        regions: per image, region name -> :class:`~pytest_camcheck.regions.Box`.
        shapes: ``(N,)`` int64 class of the shape actually drawn (differs from ``labels`` on
            the shape-noise images).
    """

    images: Tensor
    labels: Tensor
    regions: list[dict[str, Box]]
    shapes: Tensor


def generate(
    n_per_class: int,
    seed: int,
    watermark: bool,
    shape_noise: float = 0.0,
    *,
    class_background: bool = False,
    distractor: bool = False,
) -> Generated:
    """Draw a dataset in memory (class by class, same images as :func:`write_dataset`).

    Args:
        n_per_class: images per class.
        seed: the dataset's seed.
        watermark: stamp the watermark on every image of class ``CLASS_NAMES[WATERMARK_CLASS]``.
        shape_noise: the fraction of each class's images (rounded to a count) that show the
            OTHER class's shape; with the watermark on, the watermark then is the only cue that
            matches the label on every image.
        class_background: tint each class's backgrounds (:data:`BACKGROUND_TINTS`).
        distractor: add each class's distractor glyph (region ``"distractor"``).

    Returns:
        A :class:`Generated` tuple ``(images, labels, regions, shapes)``.

    Raises:
        DataError: ``n_per_class`` is not a positive int or ``shape_noise`` not in [0, 1].
    """
    _check_counts(n_per_class, shape_noise)
    import torch

    from .models import transform

    images, labels, shapes, regions = [], [], [], []
    for label, _i, shape, image, regs in _samples(
        n_per_class,
        seed,
        watermark,
        shape_noise,
        class_background=class_background,
        distractor=distractor,
    ):
        images.append(transform(image))
        labels.append(label)
        shapes.append(shape)
        regions.append(regs)
    return Generated(
        images=torch.stack(images),
        labels=torch.tensor(labels, dtype=torch.long),
        regions=regions,
        shapes=torch.tensor(shapes, dtype=torch.long),
    )
