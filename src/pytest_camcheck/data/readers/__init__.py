"""Annotation readers, a registry of them keyed by format, and the dispatcher.

Every reader (:mod:`.voc`, :mod:`.coco`, :mod:`.csvfile`, :mod:`.masks`) returns a ``dict`` from
the image's path relative to the dataset folder (``/`` separators) to an
:class:`~pytest_camcheck.data.annotations.ImageAnnotation`, whose regions are in the ORIGINAL
image's pixel coordinates (see :mod:`pytest_camcheck.regions`).

:data:`READERS` maps a format name to its :class:`Reader`; :func:`detect_format` asks every
reader whether it recognises a path, and :func:`read_annotations` reads one path or several with
the readers so detected. New formats are added with :func:`register_reader`::

    def read_txt(path, images):
        ...  # -> {relative image path: ImageAnnotation}

    register_reader(
        "txt",
        read_txt,
        detect=lambda p: p.is_file() and p.suffix == ".txt",
        description="a *.txt file of boxes",
    )

This package imports numpy and PIL only (never torch); scikit-image is imported when a COCO
polygon is first rasterised.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError
from ..annotations import ImageAnnotation
from ..images import ImageIndex
from .coco import detect_coco, read_coco
from .csvfile import detect_csv, read_csv
from .masks import detect_masks, read_masks
from .voc import detect_voc, read_voc

__all__ = [
    "READERS",
    "Reader",
    "detect_format",
    "read_annotations",
    "read_coco",
    "read_csv",
    "read_masks",
    "read_voc",
    "register_reader",
]

#: ``read(path, images)``: the annotations found at ``path`` for the dataset's ``images``.
ReadFn = Callable[[Path, ImageIndex], dict[str, ImageAnnotation]]
#: ``detect(path)``: whether ``path`` (which exists) is in the reader's format.
DetectFn = Callable[[Path], bool]


@dataclass(frozen=True)
class Reader:
    """A registered annotation format.

    Attributes:
        name: the format's name (``"voc"``), the key in :data:`READERS`.
        description: how a path of this format looks, shown in error messages
            (``"a COCO *.json file"``).
        detect: ``path -> bool``, whether an existing path is in this format. It must be quick
            (look at names, not contents) and must not raise.
        read: ``(path, images) -> {relative image path: ImageAnnotation}``, ``images`` being
            the dataset's :class:`~pytest_camcheck.data.images.ImageIndex`. Raises
            :class:`~pytest_camcheck.errors.DataError` on bad annotations.
    """

    name: str
    description: str
    detect: DetectFn
    read: ReadFn


#: Format name -> reader, in detection order. Add formats with :func:`register_reader`.
READERS: dict[str, Reader] = {}


def register_reader(
    name: str,
    read: ReadFn,
    *,
    detect: DetectFn,
    description: str,
    replace: bool = False,
) -> Reader:
    """Register an annotation format and return its :class:`Reader`.

    Args:
        name: the format's name; stripped and lower-cased.
        read: ``(path, images) -> {relative image path: ImageAnnotation}``.
        detect: ``path -> bool``, whether an existing path is in this format.
        description: how a path of this format looks, for error messages.
        replace: replace a reader already registered under ``name``.

    Raises:
        ValueError: ``name`` is empty, or already registered and ``replace`` is False.
    """
    key = name.strip().lower()
    if not key:
        raise ValueError("an annotation format needs a name")
    if key in READERS and not replace:
        raise ValueError(f"annotation format {key!r} is already registered (pass replace=True)")
    reader = Reader(key, description, detect, read)
    READERS[key] = reader
    return reader


register_reader(
    "voc", read_voc, detect=detect_voc, description="a folder of Pascal VOC *.xml files"
)
register_reader("coco", read_coco, detect=detect_coco, description="a COCO *.json file")
register_reader(
    "csv",
    read_csv,
    detect=detect_csv,
    description="a *.csv file with header image,label,region,x0,y0,x1,y1",
)
register_reader(
    "masks",
    read_masks,
    detect=detect_masks,
    description="a folder of mask *.png files named like the images",
)


def _supported() -> str:
    return "; ".join(f"{r.name}: {r.description}" for r in READERS.values())


def detect_format(path: Path) -> str:
    """The annotation format of ``path``, a key of :data:`READERS` (e.g. ``"voc"``).

    Every registered reader's ``detect`` is asked; exactly one must recognise the path.

    Raises:
        DataError: the path is missing, or matches no format or several (the message lists
            the supported formats).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"annotation path {str(path)!r} does not exist")
    found = [r.name for r in READERS.values() if r.detect(path)]
    if len(found) == 1:
        return found[0]
    if found and set(found) == {"voc", "masks"}:
        raise DataError(
            f"annotation folder {str(path)!r} holds both *.xml and *.png files; point "
            "annotations at the sub-folder of one kind (e.g. annotations/xmls or "
            "annotations/trimaps)"
        )
    if found:
        raise DataError(
            f"annotation path {str(path)!r} matches several formats ({', '.join(found)}); "
            f"point annotations at a file or folder of one format; supported: {_supported()}"
        )
    if path.is_file():
        raise DataError(
            f"cannot tell the annotation format of {str(path)!r}; supported: {_supported()}"
        )
    raise DataError(
        f"annotation folder {str(path)!r} holds no *.xml or *.png file; supported: {_supported()}"
    )


def read_annotations(
    path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    images: ImageIndex | Iterable[str],
) -> dict[str, ImageAnnotation]:
    """Read one annotation source (format detected from the path) or several, merged.

    Args:
        path: a VOC folder, COCO json, CSV file or mask folder (or a path of a format added
            with :func:`register_reader`); or a list of them, whose annotations are merged per
            image (e.g. Oxford-IIIT Pet head boxes and trimaps).
        images: the dataset's images (an :class:`~pytest_camcheck.data.images.ImageIndex` or
            relative paths).

    Returns:
        relative image path -> annotation, for the images that have annotations.

    Raises:
        DataError: a path's format cannot be told, or its reader finds bad annotations.
    """
    index = ImageIndex.coerce(images)
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    merged: dict[str, ImageAnnotation] = {}
    for p in paths:
        p = Path(p)
        found = READERS[detect_format(p)].read(p, index)
        for rel, ann in found.items():
            if rel in merged:
                merged[rel].update(ann)
            else:
                merged[rel] = ann
    return merged
