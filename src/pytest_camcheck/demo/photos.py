"""Real photos for a real ImageNet model: scikit-image's sample photos, alone and in scenes.

Five photos that ship inside scikit-image (``skimage.data``, no download) show objects an
ImageNet classifier knows: the cat (``chelsea``), the espresso (``coffee``), the rocket on its
pad (``rocket``, ImageNet's "missile"), the cameraman's tripod (``camera``) and a motorcycle
(``stereo_motorcycle``, ImageNet's "moped"). Each has a hand-drawn box around its object.

A *scene* puts four of them, centre-cropped to squares, on a 2 x 2 grid. :func:`write_dataset`
writes a scene once per object, labelled with that object's class (a single-label dataset);
:func:`write_voc_scenes` writes it once, with VOC annotations naming its four classes (a
multi-object dataset: one check per (scene, class)). Either way the map of each class must land
on its own photo. Its boxes are exact: region ``"photo"`` is the tile (the whole photo of the
class) and region ``"object"`` is the photo's hand-drawn box carried into the scene (cropped
and scaled with the pixels). A single photo has region ``"object"``, and ``"photo"`` is the
whole image.

:data:`CLASSES` maps the class folders to EfficientNet-Lite0's (ImageNet's) output indices, as
``camcheck_classes`` takes it.

Imports numpy, PIL and scikit-image only.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..regions import Box

__all__ = [
    "CLASSES",
    "PHOTOS",
    "SCENES",
    "Photo",
    "load_photo",
    "make_scene",
    "write_dataset",
    "write_voc_scenes",
]


@dataclass(frozen=True)
class Photo:
    """One of scikit-image's photos.

    Attributes:
        name: the dataset class (folder) name.
        loader: the ``skimage.data`` function that returns it.
        index: its ImageNet output index.
        imagenet: ImageNet's name of that output.
        box: ``(x0, y0, x1, y1)`` around the object, in the photo's pixels.
    """

    name: str
    loader: str
    index: int
    imagenet: str
    box: tuple[float, float, float, float]


PHOTOS: tuple[Photo, ...] = (
    Photo("cat", "chelsea", 285, "Egyptian cat", (0, 0, 390, 300)),
    Photo("espresso", "coffee", 967, "espresso", (75, 15, 480, 390)),
    Photo("rocket", "rocket", 657, "missile", (298, 125, 347, 405)),
    Photo("tripod", "camera", 872, "tripod", (225, 135, 410, 512)),
    Photo("motorcycle", "stereo_motorcycle", 665, "moped", (90, 95, 690, 450)),
)
_BY_NAME = {p.name: p for p in PHOTOS}

#: The dataset's class names -> EfficientNet-Lite0's (ImageNet's) output indices.
CLASSES: dict[str, int] = {p.name: p.index for p in PHOTOS}

#: The scenes: four photos each, left to right, top to bottom.
SCENES: tuple[tuple[str, str, str, str], ...] = (
    ("cat", "espresso", "rocket", "tripod"),
    ("motorcycle", "cat", "tripod", "espresso"),
    ("espresso", "rocket", "motorcycle", "cat"),
)

#: Side of one scene tile, in pixels (a scene is twice that).
TILE = 224


def load_photo(name: str) -> Image.Image:
    """The RGB photo of class ``name`` (one of :data:`PHOTOS`).

    Raises:
        KeyError: no photo of that class (the message lists them).
    """
    if name not in _BY_NAME:
        raise KeyError(f"no photo {name!r}; photos: {', '.join(_BY_NAME)}")
    import skimage.data

    array = getattr(skimage.data, _BY_NAME[name].loader)()
    if isinstance(array, tuple):  # stereo_motorcycle: (left, right, disparity)
        array = array[0]
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(array[..., :3]).astype(np.uint8))


def make_scene(names: Sequence[str], tile: int = TILE) -> tuple[Image.Image, dict[str, dict]]:
    """A 2 x 2 scene of four photos and, per photo, its exact regions in the scene.

    Each photo is centre-cropped to a square and resized to ``tile`` pixels.

    Returns:
        ``(image, {name: {"photo": Box, "object": Box}})``.
    """
    if len(names) != 4:
        raise ValueError(f"a scene holds 4 photos, got {len(names)}")
    canvas = Image.new("RGB", (2 * tile, 2 * tile), (0, 0, 0))
    regions: dict[str, dict] = {}
    for k, name in enumerate(names):
        photo = load_photo(name)
        w, h = photo.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        square = photo.crop((left, top, left + side, top + side))
        square = square.resize((tile, tile), Image.Resampling.BICUBIC)
        ox, oy = (k % 2) * tile, (k // 2) * tile
        canvas.paste(square, (ox, oy))
        scale = tile / side
        x0, y0, x1, y1 = _BY_NAME[name].box
        obj = Box(
            ox + min(max(x0 - left, 0), side) * scale,
            oy + min(max(y0 - top, 0), side) * scale,
            ox + min(max(x1 - left, 0), side) * scale,
            oy + min(max(y1 - top, 0), side) * scale,
        )
        regions[name] = {"photo": Box(ox, oy, ox + tile, oy + tile), "object": obj}
    return canvas, regions


def _row(rel: str, label: str, region: str, box: Box) -> tuple[str, ...]:
    return (rel, label, region, *(f"{v:.2f}".rstrip("0").rstrip(".") for v in box.as_tuple()))


def write_dataset(root: str | Path, scenes: bool = True, singles: bool = True) -> Path:
    """Write the photos (and scenes) as an ImageFolder dataset with a CSV of their boxes.

    Layout: ``root/<class>/<photo>.png`` for the single photos and
    ``root/<class>/scene_<k>.png`` for scene ``k`` labelled with that class (the same scene is
    written once per class it shows), and ``root/annotations.csv``
    (``image,label,region,x0,y0,x1,y1``). Writing again gives the same files.

    Args:
        root: the folder (created if needed).
        scenes: write the scenes.
        singles: write the single photos.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    root = Path(root)
    rows: list[tuple[str, ...]] = []
    for photo in PHOTOS:
        (root / photo.name).mkdir(parents=True, exist_ok=True)
    if singles:
        for photo in PHOTOS:
            image = load_photo(photo.name)
            rel = f"{photo.name}/{photo.loader}.png"
            image.save(root / rel, format="PNG")
            rows.append(_row(rel, photo.name, "object", Box(*photo.box)))
            rows.append(_row(rel, photo.name, "photo", Box(0, 0, image.width, image.height)))
    if scenes:
        for k, names in enumerate(SCENES, start=1):
            image, regions = make_scene(names)
            for name in names:
                rel = f"{name}/scene_{k}.png"
                image.save(root / rel, format="PNG")
                rows.append(_row(rel, name, "object", regions[name]["object"]))
                rows.append(_row(rel, name, "photo", regions[name]["photo"]))
    with open(root / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("image", "label", "region", "x0", "y0", "x1", "y1"))
        writer.writerows(rows)
    return root


def write_voc_scenes(root: str | Path) -> Path:
    """Write each scene ONCE, with Pascal VOC annotations naming every photo's class.

    Layout: ``root/scenes/scene_<k>.png`` and ``root/annotations/scene_<k>.xml``. Each photo
    of a scene is one ``<object>`` named by its class, whose box is the photo's hand-drawn
    box carried into the scene, with a ``<part>`` named ``photo`` for its tile. The scenes hold
    four classes each: camcheck checks every (scene, class) pair. Writing again gives the same
    files.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    root = Path(root)
    (root / "scenes").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for k, names in enumerate(SCENES, start=1):
        image, regions = make_scene(names)
        image.save(root / "scenes" / f"scene_{k}.png", format="PNG")
        lines = [
            "<annotation>",
            f"  <filename>scene_{k}.png</filename>",
            f"  <size><width>{image.width}</width><height>{image.height}</height>"
            "<depth>3</depth></size>",
        ]
        for name in names:
            lines += [
                "  <object>",
                f"    <name>{name}</name>",
                "    <difficult>0</difficult>",
                f"    {_voc_box(regions[name]['object'])}",
                "    <part>",
                "      <name>photo</name>",
                f"      {_voc_box(regions[name]['photo'])}",
                "    </part>",
                "  </object>",
            ]
        lines.append("</annotation>")
        (root / "annotations" / f"scene_{k}.xml").write_text("\n".join(lines) + "\n")
    return root


def _voc_box(box: Box) -> str:
    """A ``<bndbox>`` (1-based, inclusive pixel indices) covering ``box``'s pixels."""
    x0, y0 = int(box.x0) + 1, int(box.y0) + 1
    x1, y1 = max(round(box.x1), x0), max(round(box.y1), y0)
    return f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>"
