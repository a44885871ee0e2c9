"""Pascal VOC XML annotations (e.g. Oxford-IIIT Pet ``annotations/xmls/Abyssinian_1.xml``).

Each ``<object>`` becomes a region named by its ``<name>`` (Oxford-IIIT Pet head boxes are named
by species, ``cat`` or ``dog``); each ``<part>`` of an object (VOC person layout: ``head``,
``hand``...) becomes a region named by the part's ``<name>``. Each object and each part is also
kept as an :class:`~pytest_camcheck.data.annotations.AnnotatedObject` whose class is the
object's ``<name>`` (a part's class is its object's), flagged ``difficult`` by
``<difficult>1</difficult>`` (parts inherit their object's flag). VOC boxes are 1-based and
inclusive: ``<bndbox>`` (xmin, ymin, xmax, ymax) becomes ``Box(xmin - 1, ymin - 1, xmax, ymax)``.

An XML file is matched to its image by ``<filename>`` (searched in every sub-folder of the
dataset), else by the XML file's stem (``Abyssinian_1.xml`` -> ``Abyssinian_1.jpg``).

The ``<size>`` (``<width>``, ``<height>``) the file declares is recorded; loading the sample
fails, naming the XML file, the image and both sizes, when the image file has another size.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from ...errors import DataError
from ...regions import Box, Region
from ..annotations import AnnotatedObject, ImageAnnotation, annotation_map
from ..images import ImageIndex
from .common import holds_file

__all__ = ["detect_voc", "read_voc", "voc_box"]


def voc_box(xmin: float, ymin: float, xmax: float, ymax: float) -> Box:
    """The :class:`Box` of a VOC ``<bndbox>`` (1-based inclusive pixel indices)."""
    return Box(xmin - 1.0, ymin - 1.0, xmax, ymax)


def _text(elem: ET.Element, tag: str) -> str | None:
    child = elem.find(tag)
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None


def _flag(elem: ET.Element, tag: str) -> bool:
    """Whether a VOC flag (``<difficult>1</difficult>``) is set; anything but a nonzero
    number is unset."""
    text = _text(elem, tag)
    try:
        return text is not None and float(text) != 0
    except ValueError:
        return False


def _parse_box(elem: ET.Element, where: str) -> Box:
    bnd = elem.find("bndbox")
    if bnd is None:
        raise DataError(f"{where} has no <bndbox>; every object and part needs one")
    values: list[float] = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(bnd, tag)
        if text is None:
            raise DataError(f"{where}: <bndbox> lacks <{tag}>")
        try:
            values.append(float(text))
        except ValueError:
            raise DataError(f"{where}: <{tag}> is {text!r}, not a number") from None
    xmin, ymin, xmax, ymax = values
    if xmax < xmin or ymax < ymin:
        raise DataError(
            f"{where}: inverted box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g}; "
            "VOC boxes need xmin <= xmax and ymin <= ymax"
        )
    try:
        return voc_box(xmin, ymin, xmax, ymax)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None


def _declared_size(root: ET.Element) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    try:
        w = int(float(_text(size, "width") or 0))
        h = int(float(_text(size, "height") or 0))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


def read_voc_file(xml_path: Path) -> tuple[str | None, ImageAnnotation]:
    """Parse one VOC XML file.

    Returns:
        the ``<filename>`` it names (or None) and its annotation.

    Raises:
        DataError: the XML is malformed or an object lacks a name or a valid box.
    """
    where_file = str(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DataError(f"cannot parse VOC annotation {where_file!r}: {exc}") from exc
    ann = ImageAnnotation(sources=[where_file])
    ann.declare_size(_declared_size(root), where_file)
    for i, obj in enumerate(root.iter("object"), start=1):
        name = _text(obj, "name")
        where = f"{where_file}: <object> #{i}"
        if name is None:
            raise DataError(f"{where} has no <name>; it is the region name")
        where = f"{where} ({name!r})"
        difficult = _flag(obj, "difficult")
        box = _parse_box(obj, where)
        ann.add_object(AnnotatedObject(name, name, Region(name, (box,)), where, difficult))
        for j, part in enumerate(obj.findall("part"), start=1):
            pname = _text(part, "name")
            pwhere = f"{where} <part> #{j}"
            if pname is None:
                raise DataError(f"{pwhere} has no <name>; it is the region name")
            pwhere = f"{pwhere} ({pname!r})"
            pbox = _parse_box(part, pwhere)
            ann.add_object(AnnotatedObject(name, pname, Region(pname, (pbox,)), pwhere, difficult))
    return _text(root, "filename"), ann


def detect_voc(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``*.xml`` files (in it or in a sub-folder)."""
    return path.is_dir() and holds_file(path, ".xml")


def read_voc(
    folder: str | os.PathLike[str], images: ImageIndex | Iterable[str]
) -> dict[str, ImageAnnotation]:
    """Read every ``*.xml`` under ``folder`` (sub-folders included).

    Args:
        folder: the folder of VOC XML files.
        images: the dataset's images (an :class:`ImageIndex` or relative paths).

    Returns:
        relative image path -> annotation, sorted by path.

    Raises:
        DataError: a file is malformed, or names an image that is not in the dataset.
    """
    index = ImageIndex.coerce(images)
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() == ".xml" and not p.name.startswith(".") and p.is_file()
    )
    found: dict[str, ImageAnnotation] = {}
    for xml_path in files:
        filename, ann = read_voc_file(xml_path)
        try:
            rel = index.find(filename, by_stem=False) if filename else None
            if rel is None:
                rel = index.find(xml_path.stem)
        except DataError as exc:
            raise DataError(f"VOC annotation {str(xml_path)!r}: {exc}") from None
        if rel is None:
            shown = repr(filename) if filename else f"<filename> missing, stem {xml_path.stem!r}"
            raise DataError(
                f"VOC annotation {str(xml_path)!r} names image {shown}, which is not in the "
                f"dataset folder{' ' + repr(index.root) if index.root else ''}; add the image "
                "or remove the XML file"
            )
        if rel in found:
            found[rel].update(ann)
        else:
            found[rel] = ann
    return annotation_map(found)
