"""COCO JSON annotations.

``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations`` (``image_id``,
``category_id``, ``bbox`` = ``[x, y, w, h]``, optional ``segmentation``) and ``categories``
(``id``, ``name``). The region name is the category name; all annotations of one category in one
image form one region. ``bbox`` becomes ``Box(x, y, x + w, y + h)``. The ``width`` and
``height`` of ``images`` are recorded; loading the sample fails, naming the file's entry, the
image and both sizes, when the image file has another size.

Segmentations: polygons (a list of ``[x1, y1, x2, y2, ...]`` lists) and uncompressed RLE
(``{"counts": [...], "size": [h, w]}``) are rasterised at the image size the file declares; a
pixel belongs to a polygon when its centre does. When an annotation has a segmentation, the
region uses the mask and not the (coarser) bbox, so that masks stay precise: the region's pixels
are the union of each instance's most precise shape. Each annotation is also kept on its own as
an :class:`~pytest_camcheck.data.annotations.AnnotatedObject` (class = region name = category
name; its region is that instance's mask, or its box); ``iscrowd`` is ignored. Compressed RLE
(``counts`` as a string) is rejected with a :class:`~pytest_camcheck.errors.DataError`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...regions import Box, Region
from ..annotations import AnnotatedObject, ImageAnnotation, annotation_map
from ..images import ImageIndex

__all__ = ["coco_box", "detect_coco", "rasterise_polygons", "read_coco"]


def coco_box(x: float, y: float, w: float, h: float) -> Box:
    """The :class:`Box` of a COCO ``bbox`` ``[x, y, w, h]``."""
    return Box(x, y, x + w, y + h)


def rasterise_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask of the pixels whose centres lie in any polygon.

    Args:
        polygons: flat ``[x1, y1, x2, y2, ...]`` vertex lists in pixel coordinates.
        height: mask height.
        width: mask width.
    """
    from skimage.draw import polygon as draw_polygon  # imported on first use: it is slow

    out = np.zeros((height, width), dtype=bool)
    for poly in polygons:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        # skimage puts pixel centres at integer coordinates; ours are at +0.5
        rr, cc = draw_polygon(pts[:, 1] - 0.5, pts[:, 0] - 0.5, shape=(height, width))
        out[rr, cc] = True
    return out


def _decode_rle(counts: list[int], height: int, width: int) -> np.ndarray:
    flat = np.zeros(height * width, dtype=bool)
    pos, value = 0, False
    for n in counts:
        if value:
            flat[pos : pos + n] = True
        pos += n
        value = not value
    # COCO RLE runs over the image in column-major (Fortran) order
    return flat.reshape((width, height)).T


def _number_list(value: Any, length: int | None) -> list[float] | None:
    if not isinstance(value, (list, tuple)):
        return None
    if length is not None and len(value) != length:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _segmentation_mask(seg: Any, size: tuple[int, int] | None, where: str) -> np.ndarray:
    if size is None:
        raise DataError(
            f"{where}: a segmentation needs the image's width and height in `images`; add them"
        )
    width, height = size
    if isinstance(seg, dict):
        counts = seg.get("counts")
        if isinstance(counts, (str, bytes)):
            raise DataError(
                f"{where}: compressed RLE segmentations are not supported; convert them to "
                "polygons or uncompressed RLE (counts as a list), or drop `segmentation`"
            )
        rle_size = seg.get("size")
        if (
            not isinstance(counts, list)
            or not all(isinstance(c, int) and c >= 0 for c in counts)
            or list(rle_size or []) != [height, width]
            or sum(counts) != height * width
        ):
            raise DataError(
                f"{where}: malformed RLE segmentation; expected counts (a list of run lengths "
                f"summing to {height}*{width}) and size [{height}, {width}]"
            )
        return _decode_rle(counts, height, width)
    if isinstance(seg, list):
        polys = []
        for poly in seg:
            pts = _number_list(poly, None)
            if pts is None or len(pts) < 6 or len(pts) % 2:
                raise DataError(
                    f"{where}: each polygon must be a flat list [x1, y1, x2, y2, ...] of at "
                    f"least 3 points; got {str(poly)[:60]}"
                )
            polys.append(pts)
        return rasterise_polygons(polys, height, width)
    raise DataError(f"{where}: `segmentation` must be a list of polygons or an RLE dict")


def detect_coco(path: Path) -> bool:
    """Whether ``path`` is a ``*.json`` file."""
    return path.is_file() and path.suffix.lower() == ".json"


def read_coco(
    path: str | os.PathLike[str],
    images: ImageIndex | Iterable[str],
    *,
    use_segmentation: bool = True,
) -> dict[str, ImageAnnotation]:
    """Read a COCO JSON file.

    Args:
        path: the ``.json`` file.
        images: the dataset's images (an :class:`ImageIndex` or relative paths).
        use_segmentation: rasterise segmentations into masks (else use the bboxes only).

    Returns:
        relative image path -> annotation, sorted by path. Every image listed in ``images``
        of the file appears, with no regions when it has no annotation.

    Raises:
        DataError: malformed JSON or entries, unknown image or category ids, inverted boxes,
            compressed RLE, or an image the dataset folder lacks (the message names the entry).
    """
    index = ImageIndex.coerce(images)
    path = Path(path)
    src = str(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read COCO annotation {src!r}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataError(f"COCO annotation {src!r} has no `images` list; is it a COCO file?")
    categories: dict[Any, str] = {}
    for i, cat in enumerate(doc.get("categories") or []):
        if not isinstance(cat, dict) or "id" not in cat or not cat.get("name"):
            raise DataError(f"{src}: categories[{i}] needs an `id` and a `name`")
        categories[cat["id"]] = str(cat["name"])

    found: dict[str, ImageAnnotation] = {}
    by_id: dict[Any, tuple[str, tuple[int, int] | None]] = {}
    for i, entry in enumerate(doc["images"]):
        where = f"{src}: images[{i}]"
        if not isinstance(entry, dict) or "id" not in entry or not entry.get("file_name"):
            raise DataError(f"{where} needs an `id` and a `file_name`")
        if entry["id"] in by_id:
            raise DataError(f"{where}: image id {entry['id']!r} appears twice")
        rel = index.resolve(str(entry["file_name"]), where, by_stem=False)
        size = None
        w, h = entry.get("width"), entry.get("height")
        if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
            size = (int(w), int(h))
        by_id[entry["id"]] = (rel, size)
        ann = found.setdefault(rel, ImageAnnotation())
        ann.declare_size(size, where)
        ann.add_source(src)

    for i, entry in enumerate(doc.get("annotations") or []):
        where = f"{src}: annotations[{i}]"
        if not isinstance(entry, dict):
            raise DataError(f"{where} is not an object")
        if "id" in entry:
            where = f"{where} (id {entry['id']!r})"
        if entry.get("image_id") not in by_id:
            raise DataError(
                f"{where}: image_id {entry.get('image_id')!r} is not in `images`; add the image "
                "entry or remove the annotation"
            )
        if entry.get("category_id") not in categories:
            raise DataError(
                f"{where}: category_id {entry.get('category_id')!r} is not in `categories`"
            )
        rel, size = by_id[entry["image_id"]]
        name = categories[entry["category_id"]]
        seg = entry.get("segmentation")
        if use_segmentation and seg not in (None, [], {}):
            region = Region(name, mask=_segmentation_mask(seg, size, where))
            found[rel].add_object(AnnotatedObject(name, name, region, where))
            continue
        if "bbox" not in entry:
            raise DataError(f"{where} has neither `bbox` nor `segmentation`")
        bbox = _number_list(entry["bbox"], 4)
        if bbox is None:
            raise DataError(f"{where}: bbox must be [x, y, w, h] numbers, got {entry['bbox']!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise DataError(
                f"{where}: inverted bbox {entry['bbox']!r} (negative width or height); COCO "
                "boxes are [x, y, width, height]"
            )
        region = Region(name, (coco_box(*bbox),))
        found[rel].add_object(AnnotatedObject(name, name, region, where))
    return annotation_map(found)
