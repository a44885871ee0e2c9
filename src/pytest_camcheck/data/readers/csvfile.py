"""CSV annotations with the header ``image,label,region,x0,y0,x1,y1``.

- ``image``: the image path relative to the dataset folder (a bare file name also works when it
  is unique in the dataset).
- ``label``: a class of the image, as a class name or an integer index; may be empty. Rows of
  one image may give different labels: the image holds objects of several classes (its
  annotation's ``label`` is then None and ``classes`` lists them). A row with a label and a
  region is an object of that class
  (:class:`~pytest_camcheck.data.annotations.AnnotatedObject`); a row with a region and no
  label is a region of no class.
- ``region``, ``x0``, ``y0``, ``x1``, ``y1``: a region name and a box in the original image's
  pixel coordinates, ``x1``/``y1`` being exclusive edges: the row gives ``Box(x0, y0, x1, y1)``.
  A row may leave all five empty to give only the image's label.

Rows of the same image and region name are merged into one region with several boxes. Extra
columns are ignored. Every bad row raises a :class:`~pytest_camcheck.errors.DataError` naming the
file and the line.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path

from ...errors import DataError
from ...regions import Box, Region
from ..annotations import AnnotatedObject, ImageAnnotation, annotation_map
from ..images import ImageIndex

__all__ = ["CSV_COLUMNS", "detect_csv", "parse_label", "read_csv"]

CSV_COLUMNS: tuple[str, ...] = ("image", "label", "region", "x0", "y0", "x1", "y1")
_COORDS = ("x0", "y0", "x1", "y1")


def parse_label(text: str) -> str | int | None:
    """An empty label is None, an integer (``"3"``, ``"-1"``) an index, anything else a name."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def detect_csv(path: Path) -> bool:
    """Whether ``path`` is a ``*.csv`` file."""
    return path.is_file() and path.suffix.lower() == ".csv"


def read_csv(
    path: str | os.PathLike[str], images: ImageIndex | Iterable[str]
) -> dict[str, ImageAnnotation]:
    """Read a CSV annotation file.

    Args:
        path: the ``.csv`` file.
        images: the dataset's images (an :class:`ImageIndex` or relative paths).

    Returns:
        relative image path -> annotation, sorted by path.

    Raises:
        DataError: a missing column, or a bad row (missing image, unparsable or inverted box,
            labels of one image that mix names and indices); the message names ``file:line``.
    """
    index = ImageIndex.coerce(images)
    path = Path(path)
    src = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(_rows(csv.DictReader(fh), src))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read CSV annotation {src!r}: {exc}") from exc

    found: dict[str, ImageAnnotation] = {}
    for line, row in rows:
        where = f"{src}:{line}"
        image = (row.get("image") or "").strip()
        if not image:
            raise DataError(f"{where}: the `image` column is empty; give the image's path")
        rel = index.resolve(image, where, by_stem=False)
        ann = found.setdefault(rel, ImageAnnotation())
        label = parse_label(row.get("label") or "")
        ann.set_label(label, where)
        ann.add_source(where)
        region = (row.get("region") or "").strip()
        coords = [(row.get(c) or "").strip() for c in _COORDS]
        if not region and not any(coords):
            continue
        if not region:
            raise DataError(f"{where}: a box without a region name; fill the `region` column")
        if not all(coords):
            missing = [c for c, v in zip(_COORDS, coords) if not v]
            raise DataError(f"{where}: region {region!r} lacks {', '.join(missing)}")
        try:
            x0, y0, x1, y1 = (float(v) for v in coords)
        except ValueError:
            raise DataError(
                f"{where}: region {region!r}: coordinates {coords} are not all numbers"
            ) from None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise DataError(f"{where}: region {region!r}: coordinates {coords} are not finite")
        if x1 < x0 or y1 < y0:
            raise DataError(
                f"{where}: region {region!r} has an inverted box x0={x0:g} y0={y0:g} x1={x1:g} "
                f"y1={y1:g}; expected x0 <= x1 and y0 <= y1 (x1, y1 are exclusive edges)"
            )
        box = Region(region, (Box(x0, y0, x1, y1),))
        if label is None:
            ann.add_region(box, where)  # a region of no class: no object
        else:
            ann.add_object(AnnotatedObject(label, region, box, where))
    return annotation_map(found)


def _rows(reader: csv.DictReader, src: str) -> Iterable[tuple[int, dict[str, str]]]:
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"CSV annotation {src!r} lacks the column(s) {', '.join(missing)}; the header must "
            f"be {','.join(CSV_COLUMNS)}"
        )
    reader.fieldnames = header
    for row in reader:
        if row.get(None):  # more cells than header columns
            raise DataError(f"{src}:{reader.line_num}: more cells than header columns")
        yield reader.line_num, {k: v for k, v in row.items() if k is not None}
