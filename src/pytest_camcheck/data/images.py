"""Image files: discovery, loading, and matching annotation names to dataset images.

This module imports PIL and numpy only (no torch).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from ..errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageIndex",
    "is_image_file",
    "list_images",
    "load_image",
    "read_image_size",
]

#: File name endings recognised as images (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# What PIL raises on a file it cannot decode, depending on the format and on how it is broken.
_DECODE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError)


def is_image_file(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` ends with one of :data:`IMAGE_EXTENSIONS` and is not a hidden file."""
    base = os.path.basename(os.fspath(name))
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def list_images(root: Path, exclude: Iterable[Path] = ()) -> list[str]:
    """The images under ``root``, as sorted relative paths with ``/`` separators.

    Hidden files and folders (names starting with ``.``) are skipped, and so is every folder in
    ``exclude`` (e.g. an annotation folder of mask PNGs that lives inside the dataset folder).
    Symbolic links to folders are followed, as torchvision's ``ImageFolder`` does.
    """
    skip = {os.path.realpath(p) for p in exclude}
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) not in skip
        )
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if is_image_file(name):
                rel = name if rel_dir == "." else os.path.join(rel_dir, name)
                found.append(PurePosixPath(*Path(rel).parts).as_posix())
    return sorted(found)


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file and return it as a fully loaded RGB PIL image.

    Pixels are taken as stored: EXIF orientation tags are ignored, because annotation tools
    (VOC, COCO) record boxes in the stored pixel grid. Palette images with transparency go
    through RGBA first (which avoids PIL's warning); the alpha channel is then dropped.

    Raises:
        DataError: the file is missing, truncated or not an image; the message names it.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image file {str(p)!r} does not exist; check the dataset folder")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            return im.convert("RGB")
    except _DECODE_ERRORS as exc:
        raise DataError(
            f"cannot read image {str(p)!r}: {exc}. The file is corrupt or not an image: "
            "re-export it or remove it from the dataset"
        ) from exc


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` of an image, read from its header only.

    Raises:
        DataError: the file is missing or PIL cannot identify it; the message names it.
    """
    try:
        with Image.open(path) as im:
            return (int(im.size[0]), int(im.size[1]))
    except FileNotFoundError as exc:
        raise DataError(f"image file {str(path)!r} does not exist") from exc
    except _DECODE_ERRORS as exc:
        raise DataError(f"cannot read image {str(path)!r}: {exc}") from exc


def _strip_ext(rel: str) -> str:
    stem, _ = os.path.splitext(rel)
    return stem


class ImageIndex:
    """The images of a dataset folder, searchable by the names that annotation files use.

    Args:
        images: relative image paths with ``/`` separators (as :func:`list_images` returns).
        root: the dataset folder, only used in error messages.
    """

    def __init__(self, images: Sequence[str], root: str | os.PathLike[str] | None = None) -> None:
        self.images: list[str] = list(images)
        self.root = None if root is None else str(root)
        self._paths = set(self.images)
        self._by_stem: dict[str, list[str]] = defaultdict(list)
        self._by_base: dict[str, list[str]] = defaultdict(list)
        self._by_base_stem: dict[str, list[str]] = defaultdict(list)
        for rel in self.images:
            base = rel.rsplit("/", 1)[-1]
            self._by_stem[_strip_ext(rel)].append(rel)
            self._by_base[base].append(rel)
            self._by_base_stem[_strip_ext(base)].append(rel)

    @classmethod
    def coerce(cls, images: ImageIndex | Iterable[str]) -> ImageIndex:
        """``images`` itself when it is an index, else an index over those relative paths."""
        return images if isinstance(images, ImageIndex) else cls(list(images))

    def __contains__(self, rel: object) -> bool:
        return rel in self._paths

    def __len__(self) -> int:
        return len(self.images)

    def find(self, name: str, *, by_stem: bool = True) -> str | None:
        """The image that ``name`` refers to, or None.

        ``name`` is tried, in this order, as a relative path, as a relative path without its
        extension, as a file name searched in every sub-folder and (with ``by_stem``) as a file
        name without extension. The first rule that matches exactly one image wins.

        Raises:
            DataError: a rule matches several images (e.g. ``a.jpg`` in two sub-folders).
        """
        norm = name.replace("\\", "/").strip()
        while norm.startswith("./"):
            norm = norm[2:]
        if norm in self._paths:
            return norm
        base = norm.rsplit("/", 1)[-1]
        rules = [(self._by_stem, norm), (self._by_base, base)]
        if by_stem:
            rules.append((self._by_base_stem, _strip_ext(base)))
        for table, key in rules:
            hits = table.get(key, [])
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                shown = ", ".join(repr(h) for h in hits[:5])
                raise DataError(
                    f"image name {name!r} is ambiguous: it matches {len(hits)} images "
                    f"({shown}); write the path relative to the dataset folder instead"
                )
        return None

    def resolve(self, name: str, where: str, *, by_stem: bool = True) -> str:
        """Like :meth:`find` but raise when no image matches.

        Args:
            name: the image name as the annotation file writes it.
            where: the annotation file (and line or entry) that names it, for the message.
            by_stem: also match a file name given without its extension.

        Raises:
            DataError: no image matches (or several do); the message names ``where`` and ``name``.
        """
        try:
            hit = self.find(name, by_stem=by_stem)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        if hit is None:
            folder = f" {self.root!r}" if self.root else ""
            raise DataError(
                f"{where} names image {name!r}, which is not in the dataset folder{folder}; "
                "add the image or remove its annotation"
            )
        return hit
