"""Mask PNG annotations: a folder of PNGs named like the images.

A mask at ``<folder>/<rel>.png`` belongs to the image whose path relative to the dataset folder,
without extension, is ``<rel>`` (``masks/cat/cat_001.png`` -> ``cat/cat_001.jpg``). Failing that,
``<folder>/<region>/<rel>.png`` names the region by its first folder, and finally a PNG is matched
to the one image with the same file stem anywhere in the dataset (the Oxford-IIIT Pet layout:
``annotations/trimaps/Abyssinian_1.png`` -> ``images/Abyssinian_1.jpg``).

Two kinds of masks, decided per folder from its first PNG (a folder must hold one kind):

- binary masks: nonzero pixels are the region (any channel of a colour mask). The region is
  named by the PNG's parent folder inside the annotation folder, else ``"object"``.
- Oxford-IIIT Pet trimaps, recognised by their values (all in {1, 2, 3}, 2 present;
  1 = pet, 2 = background, 3 = border). The region is values 1 AND 3 (the pet with its border:
  the border pixels are where pet and background meet, so they belong to the outline of the
  pet), named ``"foreground"`` unless a region folder names it.

Masks are read when their sample is loaded (the reader only opens the first PNG to decide the
kind), so building a dataset of thousands of masks stays quick and light on memory. The mask
must have the image's size and set at least one pixel; this is checked when the sample is
loaded. A folder holding the dataset's own images (e.g. the image folder given as annotations)
is refused: every image would become its own full-frame mask.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ...errors import DataError
from ..annotations import ImageAnnotation, MaskFile, annotation_map, is_trimap, read_mask_array
from ..images import ImageIndex
from .common import holds_file

__all__ = ["DEFAULT_MASK_REGION", "TRIMAP_REGION", "detect_masks", "read_masks"]

#: Region name of a binary mask that no region folder names.
DEFAULT_MASK_REGION = "object"
#: Region name of a trimap that no region folder names.
TRIMAP_REGION = "foreground"


def _mask_files(folder: Path) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, folder)
        for name in filenames:
            if name.lower().endswith(".png") and not name.startswith("."):
                rel = name if rel_dir == "." else os.path.join(rel_dir, name)
                out.append(PurePosixPath(*Path(rel).parts).as_posix())
    return sorted(out)


def detect_masks(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``*.png`` files (in it or in a sub-folder)."""
    return path.is_dir() and holds_file(path, ".png")


def read_masks(
    folder: str | os.PathLike[str], images: ImageIndex | Iterable[str]
) -> dict[str, ImageAnnotation]:
    """Index the mask PNGs under ``folder`` (see the module docstring for naming rules).

    Args:
        folder: the folder of mask PNGs.
        images: the dataset's images (an :class:`ImageIndex` or relative paths).

    Returns:
        relative image path -> annotation whose ``masks`` list the PNGs, sorted by path.

    Raises:
        DataError: a PNG matches no image of the dataset, is one of the dataset's images, or
            the first PNG is unreadable.
    """
    index = ImageIndex.coerce(images)
    folder = Path(folder)
    files = _mask_files(folder)
    if not files:
        raise DataError(f"mask folder {str(folder)!r} holds no *.png file")
    _refuse_images_as_masks(folder, files, index)
    first = read_mask_array(folder / files[0])
    trimap = first.ndim == 2 and is_trimap(first)
    default_name = TRIMAP_REGION if trimap else DEFAULT_MASK_REGION

    found: dict[str, ImageAnnotation] = {}
    for rel_png in files:
        stem = rel_png[: -len(".png")]
        parts = stem.split("/")
        path = folder / rel_png
        try:
            rel, name = _match(index, stem, parts, default_name)
        except DataError as exc:
            raise DataError(f"mask {str(path)!r}: {exc}") from None
        if rel is None:
            raise DataError(
                f"mask {str(path)!r} matches no image of the dataset folder"
                f"{' ' + repr(index.root) if index.root else ''}; name it like the image "
                f"(<image path without extension>.png, optionally inside a region folder) or "
                "remove it"
            )
        ann = found.setdefault(rel, ImageAnnotation())
        ann.masks.append(MaskFile(path, name, trimap))
        ann.add_source(str(path))
    return annotation_map(found)


def _refuse_images_as_masks(folder: Path, files: list[str], index: ImageIndex) -> None:
    """Refuse a mask folder that holds the dataset's own images (e.g. the image folder itself):
    each image would silently become its own full-frame mask.

    Raises:
        DataError: a PNG of the folder is one of the dataset's images (same real file).
    """
    if index.root is None:
        return
    images = {os.path.realpath(os.path.join(index.root, rel)): rel for rel in index.images}
    for rel_png in files:
        rel = images.get(os.path.realpath(folder / rel_png))
        if rel is None:
            continue
        what = (
            "is the dataset folder itself"
            if os.path.realpath(folder) == os.path.realpath(index.root)
            else "holds the dataset's own images"
        )
        raise DataError(
            f"the annotations point at the images: mask folder {str(folder)!r} {what} "
            f"({str(folder / rel_png)!r} is image {rel!r}), so every image would become its "
            "own full-frame mask. Pass the annotations instead: a *.csv file, a COCO *.json "
            "file, a folder of VOC *.xml files, or a separate folder of mask PNGs named like "
            "the images"
        )


def _match(
    index: ImageIndex, stem: str, parts: list[str], default_name: str
) -> tuple[str | None, str]:
    # 1. same relative path as the image
    rel = index.find(stem, by_stem=True) if len(parts) == 1 else _find_stem_path(index, stem)
    if rel is not None:
        return rel, default_name
    if len(parts) >= 2:
        # 2. <region>/<relative path of the image>
        rel = _find_stem_path(index, "/".join(parts[1:]))
        if rel is None and len(parts) == 2:
            rel = index.find(parts[1], by_stem=True)
        if rel is not None:
            return rel, parts[0]
        # 3. same file stem anywhere; the parent folder names the region
        rel = index.find(parts[-1], by_stem=True)
        if rel is not None:
            return rel, parts[-2]
    return None, default_name


def _find_stem_path(index: ImageIndex, stem: str) -> str | None:
    """The image whose relative path without extension is exactly ``stem``."""
    hit = index.find(stem, by_stem=False)
    if hit is not None and os.path.splitext(hit)[0] == stem:
        return hit
    return None
