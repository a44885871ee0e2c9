"""Image files: discovery, loading, and matching annotation names to dataset images.

This module imports PIL and numpy only (no torch).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

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

# What PIL raises on an image too large to decode safely: the error always, the warning when
# the warning filters turn it into an exception (e.g. pytest's ``filterwarnings = error``).
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def is_image_file(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` ends with one of :data:`IMAGE_EXTENSIONS` and is not a hidden file."""
    base = os.path.basename(os.fspath(name))
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _scandir_sorted(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:  # unreadable folder: skipped, as os.walk does
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop (ELOOP) or a folder we may not stat
        return False


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:  # pragma: no cover - lstat of an entry just listed
        return False


def list_images(root: Path, exclude: Iterable[Path] = ()) -> list[str]:
    """The images under ``root``, as sorted relative paths with ``/`` separators.

    Hidden files and folders (names starting with ``.``) are skipped, and so is every folder in
    ``exclude`` (e.g. an annotation folder of mask PNGs that lives inside the dataset folder).

    Symbolic links to folders are followed (as torchvision's ``ImageFolder`` does), but each
    real folder is walked once: a link back to a folder already walked (a loop such as
    ``data/red/up -> data``) or to a folder that is walked under its own name is ignored. Each
    real file is listed once too: when a file is reachable under several names (through a
    linked folder or a linked file), the name that involves no symbolic link wins, else the
    first in sorted order. Broken links are listed (loading them fails with a clear message).
    """
    root_path = os.fspath(root)
    skip = {os.path.realpath(p) for p in exclude}
    walked: set[str] = set()
    # (relative path, real path, reached through a link)
    found: list[tuple[str, str, bool]] = []
    # folders reached through a link, walked after every real folder
    linked: list[tuple[str, str]] = []

    def walk(start: str, start_rel: str, via_link: bool) -> None:
        stack = [(start, start_rel)]
        while stack:
            path, rel_dir = stack.pop()
            real_dir = os.path.realpath(path)
            if real_dir in walked:
                continue
            walked.add(real_dir)
            for entry in _scandir_sorted(path):
                if entry.name.startswith("."):
                    continue
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                is_link = _is_link(entry)
                if _is_dir(entry):
                    if skip and os.path.realpath(entry.path) in skip:
                        continue
                    if is_link:
                        linked.append((entry.path, rel))
                    else:
                        stack.append((entry.path, rel))
                elif is_image_file(entry.name):
                    # a plain file's real path is its real folder's plus its name
                    real = os.path.join(real_dir, entry.name)
                    if is_link:
                        real = os.path.realpath(entry.path)
                    found.append((rel, real, via_link or is_link))

    walk(root_path, "", False)
    position = 0
    while position < len(linked):  # walking a linked folder may find more links
        path, rel = linked[position]
        position += 1
        walk(path, rel, True)

    best: dict[str, tuple[bool, str]] = {}
    for rel, real, via_link in found:
        key = (via_link, rel)
        if real not in best or key < best[real]:
            best[real] = key
    return sorted(rel for _, rel in best.values())


def _unit_scale(values: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth pixel values scaled to ``[0, 1]`` (the rule of :func:`load_image`)."""
    data = values.astype(np.float64)
    if mode.startswith("I;16"):
        return data / 65535.0
    finite = np.isfinite(data)
    data = np.where(finite, data, 0.0)
    if not finite.any():
        return data
    lo, hi = float(data[finite].min()), float(data[finite].max())
    if mode == "I" and lo >= 0 and hi <= 65535:
        return data / 65535.0
    if mode == "F" and lo >= 0 and hi <= 1:
        return data
    if hi <= lo:  # a constant image out of range: nothing to stretch
        return np.zeros_like(data)
    return np.where(finite, (data - lo) / (hi - lo), 0.0)


def _to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as an 8-bit RGB image (see :func:`load_image` for the rules)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        unit = _unit_scale(np.asarray(im), im.mode)
        gray = np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    elif im.mode in ("La", "RGBa"):  # premultiplied alpha: undo it first
        im = im.convert("LA" if im.mode == "La" else "RGBA")
    return im.convert("RGB")


def _unreadable(path: str | os.PathLike[str], exc: BaseException) -> DataError:
    """The one-line DataError for an image PIL cannot (or will not) decode."""
    shown = str(path)
    if isinstance(exc, _BOMB_ERRORS):
        return DataError(
            f"image {shown!r} is too large to decode safely ({exc}); shrink the file, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS in your conftest.py if you trust it"
        )
    if isinstance(exc, MemoryError):
        return DataError(f"image {shown!r} does not fit in memory; shrink the file")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(
        f"cannot read image {shown!r}: {reason}. The file is corrupt, truncated or not an "
        "image: re-export it or remove it from the dataset"
    )


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file and return it as a fully loaded 8-bit RGB PIL image.

    Pixels are taken as stored: EXIF orientation tags are ignored, because annotation tools
    (VOC, COCO) record boxes in the stored pixel grid. Palette images with transparency go
    through RGBA first (which avoids PIL's warning); the alpha channel is then dropped.

    Grey images of more than 8 bits are scaled to 8 bits (and repeated to three channels) by
    this rule, so that they keep their brightness instead of saturating:

    - 16-bit (PIL modes ``I;16``, ``I;16B``... e.g. 16-bit PNG and TIFF): divided by 65535, the
      full scale of 16 bits;
    - 32-bit integer (mode ``I``): divided by 65535 when every value lies in [0, 65535] (how
      16-bit files are often decoded), else min-max scaled to [0, 1];
    - floating point (mode ``F``, e.g. float TIFF): kept when every value lies in [0, 1], else
      min-max scaled to [0, 1]; NaN and infinite values become 0. A constant image outside
      [0, 1] becomes black.

    The result in [0, 1] is then rounded to 0..255.

    Raises:
        DataError: the file is missing, truncated, corrupt, not an image, or too large for PIL
            to decode safely (a decompression bomb); the one-line message names it.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image file {str(p)!r} does not exist; check the dataset folder")
    try:
        with Image.open(p) as im:
            im.load()
            return _to_rgb(im)
    except DataError:
        raise
    except Exception as exc:  # PIL raises many kinds on broken files (struct.error, ...)
        raise _unreadable(p, exc) from None


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` of an image, read from its header only.

    Raises:
        DataError: the file is missing, PIL cannot identify it, or it is too large to decode
            safely; the message names it.
    """
    try:
        with Image.open(path) as im:
            return (int(im.size[0]), int(im.size[1]))
    except FileNotFoundError:
        raise DataError(f"image file {str(path)!r} does not exist") from None
    except Exception as exc:
        raise _unreadable(path, exc) from None


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
