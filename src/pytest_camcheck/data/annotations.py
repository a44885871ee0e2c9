"""What the annotation readers return: the annotations of one image, and their helpers.

Every reader (see :mod:`pytest_camcheck.data.readers`) returns a ``dict`` from the image's path
relative to the dataset folder (``/`` separators) to an :class:`ImageAnnotation`, whose regions
are in the ORIGINAL image's pixel coordinates (see :mod:`pytest_camcheck.regions`). Several
regions with the same name in one image are merged into one
:class:`~pytest_camcheck.regions.Region` with several boxes (and the union of the masks).

This module holds the data model only (it imports no reader) and imports PIL and numpy only
(no torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from ..regions import Box, Region

__all__ = [
    "TRIMAP_VALUES",
    "AnnotatedObject",
    "ImageAnnotation",
    "MaskFile",
    "annotation_map",
    "is_trimap",
    "merge_regions",
    "read_mask_array",
]

#: Pixel values of an Oxford-IIIT Pet trimap: 1 = pet, 2 = background, 3 = border.
TRIMAP_VALUES = frozenset({1, 2, 3})


def merge_regions(a: Region, b: Region) -> Region:
    """One region with the boxes of both and the union of their masks.

    Raises:
        DataError: both have masks of different shapes.
    """
    mask = a.mask
    if b.mask is not None:
        if mask is None:
            mask = b.mask
        elif mask.shape != b.mask.shape:
            raise DataError(
                f"region {a.name!r}: cannot merge masks of shapes {mask.shape} and "
                f"{b.mask.shape}; every mask of an image must have the image's size"
            )
        else:
            mask = mask | b.mask
    return Region(a.name, a.boxes + b.boxes, mask)


@dataclass
class MaskFile:
    """A mask PNG that becomes a region when its sample is loaded (masks are read lazily).

    Attributes:
        path: the PNG file.
        name: the region name.
        trimap: read it as an Oxford-IIIT trimap (1 = pet, 2 = background, 3 = border; the
            region is values 1 and 3) instead of a binary mask (nonzero = region).
    """

    path: Path
    name: str
    trimap: bool = False

    def load(self) -> Region:
        """Read the PNG and return the region (mask at the PNG's own resolution).

        Raises:
            DataError: the PNG cannot be read, or its kind does not match the folder's.
        """
        values = read_mask_array(self.path)
        if self.trimap:
            if values.ndim != 2 or not is_trimap(values):
                raise DataError(
                    f"mask {str(self.path)!r} is not a trimap (values 1, 2, 3) although the "
                    "folder's first mask is; keep one kind of mask per folder"
                )
            return Region(self.name, mask=(values == 1) | (values == 3))
        if values.ndim == 2 and is_trimap(values):
            raise DataError(
                f"mask {str(self.path)!r} looks like a trimap (values 1, 2, 3) but the folder's "
                "first mask is a binary mask; keep one kind of mask per folder"
            )
        flat = values if values.ndim == 2 else values.any(axis=-1)
        return Region(self.name, mask=flat != 0)


def read_mask_array(path: Path) -> np.ndarray:
    """The pixel values of a mask PNG: ``(H, W)``, or ``(H, W, C)`` for colour masks.

    Raises:
        DataError: PIL cannot decode the file.
    """
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "1":
                im = im.convert("L")
            if im.mode in ("RGBA", "LA", "PA"):
                # transparency is not a region: use the colour channels only
                im = im.convert("RGB") if im.mode != "LA" else im.convert("L")
            return np.asarray(im)
    except Exception as exc:  # PIL raises many kinds on broken or oversized files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot read mask {str(path)!r}: {reason}; re-export it or remove it"
        ) from None


def is_trimap(values: np.ndarray) -> bool:
    """Whether a 2-D mask holds Oxford-IIIT trimap values: all in {1, 2, 3}, 2 present."""
    present = {int(v) for v in np.unique(values)}
    return present <= TRIMAP_VALUES and 2 in present


@dataclass
class AnnotatedObject:
    """One annotated object instance of an image (a VOC ``<object>`` or ``<part>``, a COCO
    annotation, a CSV row with a label and a region).

    Attributes:
        cls: the object's class, a name or an integer index (a VOC part's class is its parent
            object's name).
        name: the region name the object contributes to (a VOC part's own name, a CSV row's
            ``region``; the class name for VOC objects and COCO annotations).
        region: this instance's box or mask, in the original image's pixel coordinates.
        source: the file and line or entry it comes from, named in error messages.
        difficult: VOC ``<difficult>1</difficult>`` (a part inherits its object's flag).
    """

    cls: str | int
    name: str
    region: Region
    source: str
    difficult: bool = False


@dataclass
class ImageAnnotation:
    """The annotations of one image.

    Attributes:
        label: the image's one class as a name or an index, when the annotations give one
            (CSV ``label``); None when they give none or several different ones (see
            :attr:`classes`).
        regions: boxes and masks in the original image's pixel coordinates, one per name.
        masks: mask PNGs read when the sample is loaded (see :class:`MaskFile`).
        sources: where the annotations came from (``file`` or ``file:line``), for messages.
        size: the image's ``(width, height)`` as the annotation file declares it, if it does.
        box_sources: ``(region name, box)`` -> the file (and line) that gave the box.
        mask_sources: region name -> the files (and entries) that gave its mask.
        declared_sizes: every ``((width, height), source)`` an annotation file declares for the
            image (see :meth:`declare_size`); checked against the real image when it is loaded.
        objects: every annotated object instance, in file order (see :class:`AnnotatedObject`);
            their regions are also merged by name into ``regions``.
        labels: the distinct image-level labels given (CSV ``label`` column), first-seen order.
    """

    label: str | int | None = None
    regions: list[Region] = field(default_factory=list)
    masks: list[MaskFile] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    size: tuple[int, int] | None = None
    box_sources: dict[tuple[str, Box], str] = field(default_factory=dict)
    mask_sources: dict[str, list[str]] = field(default_factory=dict)
    declared_sizes: list[tuple[tuple[int, int], str]] = field(default_factory=list)
    objects: list[AnnotatedObject] = field(default_factory=list)
    labels: list[str | int] = field(default_factory=list)
    _seen: list[str | int] = field(default_factory=list, init=False, repr=False, compare=False)

    def declare_size(self, size: tuple[int, int] | None, source: str) -> None:
        """Record the image's ``(width, height)`` as ``source`` declares it.

        Args:
            size: the declared size, or None (nothing is recorded).
            source: the file (and entry) that declares it, named in error messages.
        """
        if size is None:
            return
        size = (int(size[0]), int(size[1]))
        if self.size is None:
            self.size = size
        if (size, source) not in self.declared_sizes:
            self.declared_sizes.append((size, source))

    def check_size(self, sample_id: str, image: str, width: int, height: int) -> None:
        """Check the declared sizes against the image file's real size.

        Args:
            sample_id: named in the message.
            image: the image file, named in the message.
            width: the file's width.
            height: the file's height.

        Raises:
            DataError: an annotation file declares another size; the message names the
                annotation file, the image and both sizes.
        """
        declared = list(self.declared_sizes)
        if self.size is not None and all(size != self.size for size, _ in declared):
            declared.append((self.size, self.where("")))  # set directly, without a source
        for (w, h), source in declared:
            if (w, h) != (width, height):
                raise DataError(
                    f"sample {sample_id!r}: {source or 'the annotations'} declare(s) image "
                    f"{image!r} as {w}x{h} (width x height) but the file is {width}x{height}; "
                    "the annotations were made for another version of this image: annotate "
                    "this file again, or put back the image they were made for"
                )

    def add_region(self, region: Region, source: str | None = None) -> None:
        """Add a region, merging it into an existing region of the same name.

        Args:
            region: the region.
            source: the file (and line or entry) it comes from, named in error messages.
        """
        if source is not None:
            for b in region.boxes:
                self.box_sources.setdefault((region.name, b), source)
            if region.mask is not None:
                known = self.mask_sources.setdefault(region.name, [])
                if source not in known:
                    known.append(source)
        for i, old in enumerate(self.regions):
            if old.name == region.name:
                self.regions[i] = merge_regions(old, region)
                return
        self.regions.append(region)

    def add_source(self, source: str) -> None:
        if source not in self.sources:
            self.sources.append(source)

    def add_object(self, obj: AnnotatedObject) -> None:
        """Add one object instance: kept in :attr:`objects`, and its region merged by name into
        :attr:`regions` (its ``source`` recorded for messages)."""
        self.objects.append(obj)
        self._see(obj.cls)
        region = obj.region
        if region.name != obj.name:
            region = Region(obj.name, region.boxes, region.mask)
        self.add_region(region, obj.source)

    def _see(self, cls: str | int) -> None:
        if not any(_same_class(cls, c) for c in self._seen):
            self._seen.append(cls)

    def set_label(self, label: str | int | None, where: str) -> None:
        """Record an image-level label.

        Several different labels are allowed (an image with objects of several classes):
        :attr:`label` is the label while all labels given agree, and None once two differ;
        :attr:`classes` lists them all.

        Raises:
            DataError: the image's labels mix class names and integer indices; ``where``
                names the culprit.
        """
        if label is None or label == "":
            return
        given = list(self.labels)
        if self.label is not None and not any(_same_class(self.label, c) for c in given):
            given.insert(0, self.label)  # set directly, without set_label
        for old in given:
            if isinstance(old, str) != isinstance(label, str):
                raise DataError(
                    f"{where}: label {label!r} and the label {old!r} given earlier "
                    f"({', '.join(self.sources) or 'same file'}) mix a class name and an "
                    "integer index; name the classes of one image the same way"
                )
        if not any(_same_class(label, c) for c in given):
            given.append(label)
        self.labels = given
        for c in given:
            self._see(c)
        self.label = given[0] if len(given) == 1 else None

    @property
    def classes(self) -> list[str | int]:
        """The distinct classes present in the image, first-seen order: the classes of its
        objects and its image-level labels (CSV rows with a label and no region)."""
        out: list[str | int] = []
        extra = [o.cls for o in self.objects] + list(self.labels)
        if self.label is not None:
            extra.append(self.label)
        for cls in [*self._seen, *extra]:
            if not any(_same_class(cls, c) for c in out):
                out.append(cls)
        return out

    def update(self, other: ImageAnnotation) -> None:
        """Merge another annotation of the same image into this one."""
        for src in other.sources:
            self.add_source(src)
        where = ", ".join(other.sources) or "annotations"
        given = list(other.labels)
        if other.label is not None and not any(_same_class(other.label, c) for c in given):
            given.insert(0, other.label)
        for cls in other.classes:
            if not any(_same_class(cls, c) for c in given):
                self._see(cls)  # an object's class: first-seen order across both
            else:
                self.set_label(cls, where)
        self.objects.extend(other.objects)
        for region in other.regions:
            self.add_region(region)
        for key, src in other.box_sources.items():
            self.box_sources.setdefault(key, src)
        for name, srcs in other.mask_sources.items():
            known = self.mask_sources.setdefault(name, [])
            known.extend(s for s in srcs if s not in known)
        self.masks.extend(other.masks)
        if not other.declared_sizes and other.size is not None:
            self.declare_size(other.size, ", ".join(other.sources) or "annotations")
        for size, src in other.declared_sizes:
            self.declare_size(size, src)

    def where(self, name: str, box: Box | None = None, *, mask: bool = False) -> str:
        """Where a region's box, its mask (``mask=True``) or, with neither, the image's
        annotations came from."""
        if box is not None and (name, box) in self.box_sources:
            return self.box_sources[(name, box)]
        shown = list(self.sources)
        if mask:
            files = [str(m.path) for m in self.masks if m.name == name]
            from_masks = [*self.mask_sources.get(name, []), *files]
            shown = from_masks or shown
        text = ", ".join(shown[:3])
        return text + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")

    @property
    def region_names(self) -> list[str]:
        """Names of every region, masks included, without reading any file."""
        names = [r.name for r in self.regions]
        for m in self.masks:
            if m.name not in names:
                names.append(m.name)
        return names

    def load_regions(self) -> dict[str, Region]:
        """Every region by name, mask PNGs read now and merged with same-named boxes."""
        out: dict[str, Region] = {}
        for region in [*self.regions, *(m.load() for m in self.masks)]:
            old = out.get(region.name)
            out[region.name] = region if old is None else merge_regions(old, region)
        return out


def _same_class(a: str | int, b: str | int) -> bool:
    """Whether two classes are the same: equal and of the same kind (``1`` is not ``"1"``,
    ``True`` is not ``1``)."""
    return type(a) is type(b) and a == b


def annotation_map(found: Mapping[str, ImageAnnotation]) -> dict[str, ImageAnnotation]:
    """``found`` sorted by image path (readers return deterministic order)."""
    return {k: found[k] for k in sorted(found)}
