"""Annotated datasets: a folder of images (plus annotations) or a user factory.

:func:`build_dataset` is what the plugin calls. The dataset's :attr:`~AnnotatedDataset.ids` are
known without loading any image; ``ds[i]`` loads image ``i``, checks its annotations against its
real size, and returns a :class:`~pytest_camcheck.regions.Sample` whose ``image`` is the
transformed float ``(C, H, W)`` tensor and whose regions are in that tensor's pixels.

Everything wrong with one sample (an unreadable or oversized image, a size that differs from
the one its VOC/COCO file declares, a box of zero area or outside the image, an empty mask, a
region the transform crops away, a channels-last tensor) raises a one-line
:class:`~pytest_camcheck.errors.DataError` from ``ds[i]`` naming the sample and the file (and
line, when known), so that the plugin fails that sample's items only.

A folder dataset is *multi-object* (:attr:`AnnotatedDataset.multi_object`) when an image's
annotations hold objects of two classes or more (a VOC image with a person and a dog, several
COCO categories, several CSV labels). Its :meth:`~AnnotatedDataset.sample_labels` give each
image's classes (read from the annotations, no image loaded) and each loaded sample carries
``labels`` and ``class_regions`` (each class's regions, instance by instance). A dataset with
no such image behaves exactly as a single-label one.
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .._spec import import_from_spec, looks_like_spec
from ..errors import CamcheckError, ConfigError, DataError
from ..regions import Box, Region, Sample, as_region
from ._userframes import describe_exception
from .annotations import AnnotatedObject, ImageAnnotation, merge_regions
from .images import IMAGE_EXTENSIONS, ImageIndex, list_images, load_image, read_image_size
from .readers import read_annotations
from .transforms import (
    DEFAULT_IMAGE_SIZE,
    PairedTransform,
    looks_channels_last,
    resolve_transform,
    to_display,
)

__all__ = ["AnnotatedDataset", "FactoryDataset", "FolderDataset", "build_dataset"]

PathLike = str | os.PathLike[str]


def check_regions(
    sample_id: str,
    regions: Mapping[str, Region],
    width: int,
    height: int,
    where: str | ImageAnnotation = "",
) -> dict[str, Region]:
    """Check regions against their image's size and clip boxes to it.

    A box may stick out by at most 0.5 px (rounding in annotation tools); it is clipped.

    Args:
        sample_id: named in messages.
        regions: regions in the image's pixels.
        width: image width.
        height: image height.
        where: the annotation source(s) named in messages, or the image's annotation (which
            knows the file and line of each box).

    Raises:
        DataError: a box has zero area or lies more than 0.5 px outside the image, or a mask
            is empty or its size differs from the image's; the message names the sample,
            region, box (or mask), image size and, when known, the annotation file and line.
    """

    def source(name: str, box: Box | None = None, mask: bool = False) -> str:
        if isinstance(where, ImageAnnotation):
            text = where.where(name, box, mask=mask)
        else:
            text = where
        return f" (from {text})" if text else ""

    out: dict[str, Region] = {}
    for name, region in regions.items():
        boxes = []
        for b in region.boxes:
            if b.width <= 0 or b.height <= 0:
                flat = "width" if b.width <= 0 else "height"
                raise DataError(
                    f"sample {sample_id!r}: region {name!r} box {b} has zero {flat} (no "
                    f"area){source(name, b)}; a box needs x1 > x0 and y1 > y0: fix its "
                    "coordinates or remove it"
                )
            if not b.inside(width, height, slack=0.5):
                src = source(name, b)
                raise DataError(
                    f"sample {sample_id!r}: region {name!r} box {b} lies outside the "
                    f"{width}x{height} (width x height) image by more than 0.5 px{src}; fix "
                    "the box coordinates (pixels of the original image)"
                )
            boxes.append(
                Box(
                    min(max(b.x0, 0.0), width),
                    min(max(b.y0, 0.0), height),
                    min(max(b.x1, 0.0), width),
                    min(max(b.y1, 0.0), height),
                )
            )
        if region.mask is not None and region.mask.shape != (height, width):
            mh, mw = region.mask.shape
            src = source(name, mask=True)
            raise DataError(
                f"sample {sample_id!r}: region {name!r} has a {mw}x{mh} mask but the image is "
                f"{width}x{height} (width x height){src}; masks must have the image's size"
            )
        if region.mask is not None and not region.mask.any():
            raise DataError(
                f"sample {sample_id!r}: region {name!r} has an empty mask (no pixel is "
                f"set){source(name, mask=True)}; fix the mask or remove it"
            )
        out[name] = Region(name, tuple(boxes), region.mask)
    return out


def check_transformed(
    sample_id: str,
    regions: Mapping[str, Region],
    width: int,
    height: int,
    transform: str,
) -> None:
    """Check that every region still covers a pixel of the transformed image.

    Args:
        sample_id: named in messages.
        regions: regions in the transformed image's pixels.
        width: transformed image width.
        height: transformed image height.
        transform: the transform's name, for messages.

    Raises:
        DataError: a region covers no pixel (a crop cut it away, or a resize made it smaller
            than a pixel); the message names the sample, the region and the transform.
    """
    for name, region in regions.items():
        if not region.to_mask(height, width).any():
            boxes = ", ".join(str(b) for b in region.boxes[:3]) or "its mask"
            raise DataError(
                f"sample {sample_id!r}: region {name!r} covers no pixel of the {width}x{height} "
                f"image after transform {transform} (now {boxes}): the transform cropped it "
                "away or shrank it below one pixel; use a transform that keeps it (e.g. resize "
                "without cropping) or a larger image size"
            )


def _make_ids(relpaths: Sequence[str]) -> list[str]:
    stems = [os.path.splitext(rel)[0] for rel in relpaths]
    counts = Counter(stems)
    # two files that differ only by extension keep it, so that ids stay unique
    return [stem if counts[stem] == 1 else rel for stem, rel in zip(stems, relpaths)]


def _format_problems(what: str, problems: list[str], limit: int = 20) -> str:
    shown = "\n  ".join(problems[:limit])
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} {what}:\n  {shown}{more}"


class AnnotatedDataset(Dataset):
    """A dataset of :class:`~pytest_camcheck.regions.Sample` objects with annotated regions.

    Attributes:
        transform: the transform applied to each image (with its regions).
        multi_object: whether some image holds objects of several classes (see
            :meth:`sample_labels`); False unless a subclass says otherwise.
    """

    multi_object: bool = False

    def __init__(
        self, ids: Sequence[str], class_names: Sequence[str] | None, transform: PairedTransform
    ) -> None:
        dupes = sorted(k for k, n in Counter(ids).items() if n > 1)
        if dupes:
            raise DataError(
                f"sample ids must be unique; repeated: {', '.join(repr(d) for d in dupes[:10])}"
            )
        self._ids = list(ids)
        self._position = {sid: i for i, sid in enumerate(self._ids)}
        self._class_names = None if class_names is None else [str(c) for c in class_names]
        self.transform = transform

    @property
    def ids(self) -> list[str]:
        """Sample ids in dataset order (stable and unique; no image is loaded)."""
        return list(self._ids)

    @property
    def class_names(self) -> list[str] | None:
        """Class names by label index, when known."""
        return None if self._class_names is None else list(self._class_names)

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, index: int) -> Sample:
        """Load sample ``index`` (negative indices count from the end).

        Raises:
            IndexError: out of range.
            DataError: the image or its annotations are unusable (the message says which).
        """
        if isinstance(index, (bool, slice)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices must be integers, not {type(index).__name__}")
        n = len(self._ids)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"sample index {index} out of range for a dataset of {n}")
        return self._load(i)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self._load(i)

    def index_of(self, sample_id: str) -> int:
        """The position of the sample with this id.

        Raises:
            KeyError: no such sample (the message shows a few ids).
        """
        try:
            return self._position[sample_id]
        except KeyError:
            shown = ", ".join(repr(s) for s in self._ids[:5])
            raise KeyError(
                f"no sample {sample_id!r} in the dataset; ids look like: {shown}"
            ) from None

    def get(self, sample_id: str) -> Sample:
        """The sample with this id (see :meth:`index_of`)."""
        return self._load(self.index_of(sample_id))

    def display_image(self, index: int) -> np.ndarray:
        """Sample ``index``'s transformed image as RGB ``uint8`` ``(H, W, 3)`` for overlays.

        The default transform's normalisation is inverted exactly; other images are min-max
        scaled per channel.
        """
        sample = self[index]
        norm = sample.meta.get("normalization")
        pair = None if norm is None else (norm["mean"], norm["std"])
        return to_display(sample.image, pair)

    def region_names(self, index: int) -> list[str] | None:
        """Names of sample ``index``'s regions when known without loading it, else None."""
        return None

    def sample_labels(self, index: int) -> tuple[int, ...]:
        """The label indices of the classes present in image ``index`` (first-seen order),
        read without loading it; ``()`` unless the dataset is :attr:`multi_object`."""
        return ()

    def sample_difficult(self, index: int) -> tuple[int, ...]:
        """The label indices of :meth:`sample_labels` whose objects in image ``index`` are all
        marked difficult (VOC ``<difficult>1</difficult>``); ``()`` when none is."""
        return ()

    def check_images(self) -> None:
        """Check every image up front (a subclass fills this in).

        Raises:
            DataError: listing every bad image.
        """
        raise NotImplementedError

    def _load(self, i: int) -> Sample:
        raise NotImplementedError

    def _meta(self, original: tuple[int, int], image: Tensor, applied: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "original_size": original,
            "size": (int(image.shape[-1]), int(image.shape[-2])),
            "transform": self.transform.name if applied else None,
        }
        if applied and self.transform.normalization is not None:
            mean, std = self.transform.normalization
            meta["normalization"] = {"mean": list(mean), "std": list(std)}
        return meta

    def __repr__(self) -> str:
        classes = "" if self._class_names is None else f", {len(self._class_names)} classes"
        return f"{type(self).__name__}({len(self)} samples{classes})"


class FolderDataset(AnnotatedDataset):
    """Images in a folder, optionally annotated. Built by :func:`build_dataset`.

    Args:
        root: the dataset folder.
        images: image paths relative to ``root`` (``/`` separators), in dataset order.
        annotations: relative path -> annotation (original pixel coordinates).
        labels: class index per image (None when unknown, or when the image holds several
            classes).
        class_names: class names by index, when known.
        transform: the image transform.

    Attributes:
        multi_object: whether an image's annotations hold objects of two classes or more.
            Then every annotation class must be one of ``class_names`` (or, with no class
            names, an integer index), :meth:`sample_labels` gives each image's classes and
            each loaded sample's ``labels`` and ``class_regions`` are filled in.

    Raises:
        DataError: in a multi-object dataset, an annotation class that is not a class of the
            dataset (the message names the image, the class and the dataset's classes).
    """

    def __init__(
        self,
        root: Path,
        images: Sequence[str],
        annotations: Mapping[str, ImageAnnotation],
        labels: Sequence[int | None],
        class_names: Sequence[str] | None,
        transform: PairedTransform,
    ) -> None:
        super().__init__(_make_ids(images), class_names, transform)
        self.root = Path(root)
        self.images = list(images)
        self.annotations = dict(annotations)
        self.labels = list(labels)
        #: image path -> model output index, for annotation labels that are model indices
        self.model_labels: dict[str, int] = {}
        self.multi_object = _is_multi_object(self.images, self.annotations)
        self._pairs: list[tuple[int, ...]] = []
        self._difficult: list[tuple[int, ...]] = []
        if self.multi_object:
            for rel in self.images:
                ann = self.annotations.get(rel)
                pairs = _class_indices(rel, ann, self._class_names)
                self._pairs.append(pairs)
                self._difficult.append(_difficult_labels(ann, pairs, self._class_names))

    def sample_labels(self, index: int) -> tuple[int, ...]:
        """The label indices (into :attr:`class_names`, or the integer classes themselves when
        there are no class names) of the classes present in image ``index``, first-seen order,
        read from the annotations without loading the image. ``()`` for an image with no
        class, and for every image of a dataset that is not :attr:`multi_object`.

        Raises:
            IndexError: out of range.
        """
        if not self.multi_object:
            return ()
        return self._pairs[index]

    def sample_difficult(self, index: int) -> tuple[int, ...]:
        """The label indices of :meth:`sample_labels` whose objects in image ``index`` are all
        VOC-difficult (TorchRay skips such pairs); ``()`` when none is, and in a dataset that
        is not :attr:`multi_object`.

        Raises:
            IndexError: out of range.
        """
        if not self.multi_object:
            return ()
        return self._difficult[index]

    def _class_label_name(self, label: int) -> str:
        return class_label_name(self._class_names, label)

    def _object_keys(
        self, i: int, ann: ImageAnnotation | None, reserved: set[str]
    ) -> list[tuple[int, AnnotatedObject, str]]:
        """``(label index, object, key)`` for each object of image ``i`` in a multi-object
        dataset, the key unique among ``reserved`` (the merged regions' names) and readable in
        messages: ``"chair (object 2 of class chair)"``, ``"head (part 1 of class person)"``."""
        if not self.multi_object or ann is None:
            return []
        out: list[tuple[int, AnnotatedObject, str]] = []
        used = set(reserved)
        counts: Counter[tuple[int, str, bool]] = Counter()
        for obj in ann.objects:
            label = _class_index(obj.cls, self._class_names)
            if label is None:  # checked when the dataset was built
                raise DataError(f"{obj.source}: class {obj.cls!r} is not a class of the dataset")
            cname = self._class_label_name(label)
            instance = obj.name == str(obj.cls)
            counts[(label, obj.name, instance)] += 1
            n = counts[(label, obj.name, instance)]
            kind = "object" if instance else "part"
            key = base = f"{obj.name} ({kind} {n} of class {cname})"
            k = 2
            while key in used:
                key, k = f"{base} [{k}]", k + 1
            used.add(key)
            out.append((label, obj, key))
        return out

    def region_names(self, index: int) -> list[str]:
        """Names of sample ``index``'s regions, read from the annotations (no image is loaded)."""
        ann = self.annotations.get(self.images[index])
        return [] if ann is None else ann.region_names

    def _load(self, i: int) -> Sample:
        rel = self.images[i]
        sid = self._ids[i]
        path = self.root / rel
        image = load_image(path)
        width, height = image.size
        ann = self.annotations.get(rel)
        regions: dict[str, Region] = {}
        if ann:
            ann.check_size(sid, str(path), width, height)
            try:
                regions = ann.load_regions()
            except DataError as exc:
                raise DataError(f"sample {sid!r}: {exc}") from None
        regions = check_regions(sid, regions, width, height, ann or "")
        keyed = self._object_keys(i, ann, set(regions))
        instances: dict[str, Region] = {}
        for _, obj, key in keyed:
            instances.update(check_regions(sid, {key: obj.region}, width, height, obj.source))
        tensor, moved = self.transform(image, {**regions, **instances}, sid)
        out_w, out_h = int(tensor.shape[-1]), int(tensor.shape[-2])
        hidden: list[str] = []
        if keyed:  # the regions of classes: keep what the model sees (see _visible)
            claimed = set(instances) | {obj.name for _, obj, _ in keyed}
            for key in [k for k in moved if k in claimed]:
                seen = _visible(moved[key], out_w, out_h)
                if seen is None:
                    hidden.append(key)
                    del moved[key]
                else:
                    moved[key] = seen
        check_transformed(sid, moved, out_w, out_h, self.transform.name)
        regions = {name: moved[name] for name in regions if name in moved}
        pairs = self._pairs[i] if self.multi_object else ()
        class_regions = self._class_regions(pairs, keyed, moved)
        label = self.labels[i]
        meta = self._meta((width, height), tensor, applied=True)
        if ann:
            meta["annotations"] = list(ann.sources)
        if rel in self.model_labels:
            meta["model_label"] = self.model_labels[rel]
        if hidden:
            meta["not_visible"] = hidden
        return Sample(
            id=sid,
            path=str(path),
            label=label,
            regions=regions,
            image=tensor,
            class_name=_class_name(self._class_names, label),
            meta=meta,
            labels=pairs,
            class_regions=class_regions,
        )

    def _class_regions(
        self,
        pairs: tuple[int, ...],
        keyed: list[tuple[int, AnnotatedObject, str]],
        moved: Mapping[str, Region],
    ) -> dict[int, dict[str, Region]]:
        """Label index -> that class's regions, from the transformed instance regions.

        ``"<class>"`` is the union of the class's objects named like the class (of all its
        objects when none is), ``"<class>#1"``, ``"<class>#2"``... each of those on its own
        (file order), and every other region name of the class (parts) merged by name.
        """
        out: dict[int, dict[str, Region]] = {}
        for label in pairs:
            cname = self._class_label_name(label)
            mine = [(obj, moved[key]) for lab, obj, key in keyed if lab == label and key in moved]
            whole = [r for obj, r in mine if obj.name == str(obj.cls)]
            parts: dict[str, list[Region]] = {}
            for obj, r in mine:
                if obj.name != str(obj.cls):
                    parts.setdefault(obj.name, []).append(r)
            group: dict[str, Region] = {}
            if whole or mine:
                group[cname] = _union(cname, whole or [r for _, r in mine])
            for j, r in enumerate(whole, start=1):
                group[f"{cname}#{j}"] = Region(f"{cname}#{j}", r.boxes, r.mask)
            for name, found in parts.items():
                if name not in group:
                    group[name] = _union(name, found)
            out[label] = group
        return out

    def check_images(self) -> None:
        """Open every image's header (and every mask's) and check the boxes against the sizes.

        Decoding errors in the pixel data of a file whose header is intact only show when the
        sample is loaded.

        Raises:
            DataError: listing every unreadable image, box outside its image, and mask of the
                wrong size.
        """
        problems: list[str] = []
        for i, (rel, sid) in enumerate(zip(self.images, self._ids)):
            try:
                width, height = read_image_size(self.root / rel)
            except DataError as exc:
                problems.append(str(exc))
                continue
            ann = self.annotations.get(rel)
            if ann is None:
                continue
            try:
                ann.check_size(sid, str(self.root / rel), width, height)
                check_regions(sid, {r.name: r for r in ann.regions}, width, height, ann)
                for _, obj, key in self._object_keys(i, ann, set(ann.region_names)):
                    check_regions(sid, {key: obj.region}, width, height, obj.source)
            except DataError as exc:
                problems.append(str(exc))
                continue
            for m in ann.masks:
                try:
                    mw, mh = read_image_size(m.path)
                except DataError as exc:
                    problems.append(str(exc))
                    continue
                if (mw, mh) != (width, height):
                    problems.append(
                        f"sample {sid!r}: mask {str(m.path)!r} is {mw}x{mh} but the image is "
                        f"{width}x{height}"
                    )
        if problems:
            raise DataError(_format_problems(f"problem(s) in dataset {str(self.root)!r}", problems))


def class_label_name(names: Sequence[str] | None, label: int) -> str:
    """The name of label ``label`` (its index as text when the classes have no names)."""
    if names and 0 <= label < len(names):
        return str(names[label])
    return str(label)


def _class_name(class_names: Sequence[str] | None, label: int | None) -> str | None:
    if class_names is None or label is None or not 0 <= label < len(class_names):
        return None
    return class_names[label]


def _visible(region: Region, width: int, height: int) -> Region | None:
    """What the model sees of a class's region after the transform, in an image with objects
    of several classes: a box that shrank below one pixel (a small object of a large photo)
    grows to the pixel holding its centre; a box, or a mask, that the transform cut away is
    left out. None when nothing is left (the object is outside the model's input).

    One tiny or cropped-away object then does not make its whole image unusable: the other
    classes of the image are still checked, and a class with nothing left has no region.
    """
    boxes: list[Box] = []
    for b in region.boxes:
        if b.mask(height, width).any():
            boxes.append(b)
            continue
        cx, cy = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
        # a crop clamps a box it cuts away to no area at the border: that one is gone
        if b.area > 0 and 0 <= cx < width and 0 <= cy < height:
            col, row = math.floor(cx), math.floor(cy)
            boxes.append(
                Box(min(b.x0, col), min(b.y0, row), max(b.x1, col + 1), max(b.y1, row + 1))
            )
    mask = region.mask
    if mask is not None and not Region(region.name, mask=mask).to_mask(height, width).any():
        mask = None
    if not boxes and mask is None:
        return None
    return Region(region.name, tuple(boxes), mask)


def _union(name: str, regions: Sequence[Region]) -> Region:
    """One region named ``name``: the boxes of all and the union of their masks."""
    out = Region(name, regions[0].boxes, regions[0].mask)
    for r in regions[1:]:
        out = merge_regions(out, r)
    return out


def _is_multi_object(images: Sequence[str], annotations: Mapping[str, ImageAnnotation]) -> bool:
    """Whether some image's annotations hold two classes or more."""
    for rel in images:
        ann = annotations.get(rel)
        if ann is not None and len(ann.classes) >= 2:
            return True
    return False


def _class_index(cls: str | int, class_names: Sequence[str] | None) -> int | None:
    """The label index of an annotation class: its position in ``class_names``, or the
    integer itself when there are no class names; None when it is neither."""
    if class_names is not None:
        if isinstance(cls, str) and cls in class_names:
            return list(class_names).index(cls)
        return None
    if isinstance(cls, int) and not isinstance(cls, bool):
        return cls
    return None


def _class_indices(
    rel: str, ann: ImageAnnotation | None, class_names: Sequence[str] | None
) -> tuple[int, ...]:
    """The label indices of an image's classes, first-seen order.

    Raises:
        DataError: a class is not one of ``class_names`` (or, with none, not an integer); the
            message names the annotation, the image, the class and the dataset's classes.
    """
    if ann is None:
        return ()
    out: list[int] = []
    for cls in ann.classes:
        index = _class_index(cls, class_names)
        if index is None:
            source = next((o.source for o in ann.objects if o.cls == cls), None)
            where = source or ann.where("") or "annotations"
            if class_names is None:
                known = "none: the image folder is flat and the other classes are integers"
            else:
                known = ", ".join(class_names) or "none"
            raise DataError(
                f"{where}: class {cls!r} of image {rel!r} is not a class of the dataset "
                f"({known}); use one of them (with class folders, every annotated object's "
                "class must be a class folder's name)"
            )
        if index not in out:
            out.append(index)
    return tuple(out)


def _difficult_labels(
    ann: ImageAnnotation | None, pairs: tuple[int, ...], class_names: Sequence[str] | None
) -> tuple[int, ...]:
    """The labels of ``pairs`` whose objects in ``ann`` are all marked difficult."""
    if ann is None:
        return ()
    out = []
    for label in pairs:
        objs = [o for o in ann.objects if _class_index(o.cls, class_names) == label]
        if objs and all(o.difficult for o in objs):
            out.append(label)
    return tuple(out)


class FactoryDataset(AnnotatedDataset):
    """A user dataset from ``"package.module:factory"``. Built by :func:`build_dataset`.

    Items are :class:`~pytest_camcheck.regions.Sample` objects or tuples
    ``(image, label, regions)`` (or ``(image, label)``), the image being a PIL image (then the
    transform applies), a ``(C, H, W)`` / ``(H, W)`` tensor (used as is; ``uint8`` is scaled to
    [0, 1]) or an ``(H, W[, C])`` ``uint8`` numpy array (made a PIL image). ``regions`` maps a
    name to a :class:`Region`, a :class:`Box`, ``(x0, y0, x1, y1)``, a list of those, or a 2-D
    mask array, in the pixels of that image.

    Ids: the source's ``ids`` attribute if it has one, else ``sample.id`` of each item (which
    loads every item once; give your dataset an ``ids`` list to avoid it), else ``00000``,
    ``00001``...
    """

    def __init__(self, source: Any, spec: str, transform: PairedTransform) -> None:
        self.source = source
        self.spec = spec
        try:
            n = len(source)
        except TypeError:
            raise DataError(
                f"dataset {spec!r} returned a {type(source).__name__} without len(); return a "
                "sequence or a map-style torch Dataset (with __len__ and __getitem__)"
            ) from None
        except CamcheckError:
            raise
        except Exception as exc:
            raise DataError(
                f"dataset {spec!r}: len() of the dataset raised {describe_exception(exc, 3)}"
            ) from None
        if n == 0:
            raise DataError(f"dataset {spec!r} is empty; the factory returned no samples")
        class_names = None
        for attr in ("class_names", "classes"):
            value = getattr(source, attr, None)
            if isinstance(value, (list, tuple)) and all(isinstance(c, str) for c in value):
                class_names = list(value)
                break
        super().__init__(self._find_ids(n), class_names, transform)

    def _find_ids(self, n: int) -> list[str]:
        ids = getattr(self.source, "ids", None)
        if isinstance(ids, (list, tuple)) and len(ids) == n:
            return [str(s) for s in ids]
        first = self._item(0)
        if not isinstance(first, Sample):
            return [f"{i:05d}" for i in range(n)]
        found = [first.id]
        found += [str(self._item(i).id) for i in range(1, n)]
        return [str(s) for s in found]

    def _item(self, i: int) -> Any:
        try:
            return self.source[i]
        except CamcheckError:
            raise
        except Exception as exc:
            raise DataError(
                f"dataset {self.spec!r}: loading item {i} raised {describe_exception(exc, 3)}"
            ) from None

    def _load(self, i: int) -> Sample:
        item = self._item(i)
        sid = self._ids[i]
        where = f"dataset {self.spec!r} item {i} ({sid!r})"
        meta: dict[str, Any] = {}
        path = None
        if isinstance(item, Sample):
            image, label, raw_regions = item.image, item.label, item.regions
            class_name, path, meta = item.class_name, item.path, dict(item.meta)
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            image, label = item[0], item[1]
            raw_regions = item[2] if len(item) == 3 else None
            class_name = None
        else:
            raise DataError(
                f"{where} is a {type(item).__name__}; items must be Sample objects or tuples "
                "(image, label, regions)"
            )
        label = self._label(label, where)
        regions = _coerce_regions(raw_regions, where)
        if isinstance(image, np.ndarray):
            image = _array_to_pil(image, where)
        if isinstance(image, Image.Image):
            if image.mode != "RGB":
                image = image.convert("RGB")
            width, height = image.size
            regions = check_regions(sid, regions, width, height, where)
            tensor, regions = self.transform(image, regions, sid)
            check_transformed(
                sid, regions, int(tensor.shape[-1]), int(tensor.shape[-2]), self.transform.name
            )
            applied = True
        elif isinstance(image, Tensor):
            tensor = _tensor_image(image, where)
            height, width = (int(s) for s in tensor.shape[-2:])
            regions = check_regions(sid, regions, width, height, where)
            applied = False
        else:
            raise DataError(
                f"{where}: the image is a {type(image).__name__}; give a PIL image, a (C, H, W) "
                "tensor or an (H, W, C) uint8 array"
            )
        meta.update(self._meta((width, height), tensor, applied))
        return Sample(
            id=sid,
            path=path,
            label=label,
            regions=regions,
            image=tensor,
            class_name=class_name or _class_name(self._class_names, label),
            meta=meta,
        )

    def _label(self, label: Any, where: str) -> int | None:
        if label is None:
            return None
        if isinstance(label, Tensor) and label.numel() == 1:
            label = label.item()
        if isinstance(label, np.generic):
            label = label.item()
        if isinstance(label, str):
            if self._class_names and label in self._class_names:
                return self._class_names.index(label)
            raise DataError(
                f"{where}: label {label!r} is not a known class name (class_names: "
                f"{self._class_names}); give an int label or a `class_names` attribute"
            )
        if isinstance(label, bool) or not isinstance(label, int):
            raise DataError(f"{where}: label {label!r} is not an int, a class name or None")
        return label

    def check_images(self) -> None:
        """Load every item once and check its image and regions.

        Raises:
            DataError: listing every bad item.
        """
        problems: list[str] = []
        for i in range(len(self)):
            try:
                self._load(i)
            except CamcheckError as exc:
                problems.append(str(exc))
        if problems:
            raise DataError(_format_problems(f"problem(s) in dataset {self.spec!r}", problems))


def _array_to_pil(array: np.ndarray, where: str) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise DataError(
            f"{where}: a numpy image must be uint8 (H, W) or (H, W, C); got {array.dtype} "
            f"{array.shape}"
        )
    return Image.fromarray(array)


def _tensor_image(image: Tensor, where: str) -> Tensor:
    x = image.detach().as_subclass(Tensor)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise DataError(
            f"{where}: a tensor image must be (C, H, W) or (H, W), got {tuple(x.shape)}"
        )
    if looks_channels_last(tuple(x.shape)):
        raise DataError(
            f"{where}: the image tensor has shape {tuple(x.shape)}, which looks like (H, W, C) "
            "(channels last); the model's input is a (C, H, W) float tensor: return "
            "image.permute(2, 0, 1)"
        )
    if x.dtype == torch.uint8:
        return x.to(torch.float32) / 255.0
    if not x.is_floating_point():
        raise DataError(f"{where}: a tensor image must be float or uint8, got {x.dtype}")
    return x.to(torch.float32).contiguous()


def _coerce_regions(raw: Any, where: str) -> dict[str, Region]:
    if raw is None:
        return {}
    if isinstance(raw, (list, tuple)) and all(isinstance(r, Region) for r in raw):
        raw = {r.name: r for r in raw}
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: regions must be a dict name -> region, got {type(raw).__name__}")
    out: dict[str, Region] = {}
    for name, value in raw.items():
        try:
            out[str(name)] = as_region(value, str(name), rename=True, nonzero_masks=True)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{where}: region {name!r} ({str(value)[:60]}) is not a Region, a Box, "
                f"(x0, y0, x1, y1), a list of boxes or a 2-D mask: {exc}"
            ) from None
    return out


def _resolve_path(value: PathLike, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _names_of(given: Sequence[tuple[str, str | int]]) -> list[str] | None:
    """The sorted class names of a flat folder's annotation classes (``(image, class)``); None
    when they are integers (model output indices).

    Raises:
        DataError: names mixed with integers.
    """
    names = sorted({c for _, c in given if isinstance(c, str)})
    bad = next(((rel, c) for rel, c in given if not isinstance(c, str)), None)
    if names and bad is not None:
        raise DataError(
            f"annotations mix class names and integer labels (e.g. {bad[0]!r} has "
            f"{bad[1]!r}); use one kind for every image"
        )
    return names or None


def _labels(
    images: Sequence[str],
    folder_labels: list[int | None],
    class_names: list[str] | None,
    annotations: Mapping[str, ImageAnnotation],
    model_indices: dict[str, int] | None = None,
) -> tuple[list[int | None], list[str] | None]:
    """Combine folder labels with annotation labels; derive class names for flat folders.

    With ``model_indices`` (a dict to fill), integer annotation labels of a dataset with class
    names are model output indices: they go into it (image -> index), not into the labels.
    """
    given = {rel: ann.label for rel, ann in annotations.items() if ann.label is not None}
    if class_names is None:
        class_names = _names_of(list(given.items()))
    labels: list[int | None] = []
    for rel, folder_label in zip(images, folder_labels):
        value = given.get(rel)
        where = annotations[rel].where("") if rel in annotations else ""
        if value is None:
            labels.append(folder_label)
            continue
        if isinstance(value, str):
            if class_names is None or value not in class_names:
                raise DataError(
                    f"{where}: label {value!r} of image {rel!r} is not a class of the dataset "
                    f"({', '.join(class_names or [])}); use one of them or an integer index"
                )
            index = class_names.index(value)
        else:
            index = value
            if model_indices is not None and class_names is not None:
                model_indices[rel] = index  # an output index of the model (camcheck_classes)
                labels.append(folder_label)
                continue
            if class_names is not None and not 0 <= index < len(class_names):
                raise DataError(
                    f"{where}: label {index} of image {rel!r} is out of range for "
                    f"{len(class_names)} classes; if it is an output index of the model, map "
                    "the dataset's classes to the model's outputs with camcheck_classes, which "
                    "makes integer labels model indices"
                )
        if folder_label is not None and index != folder_label:
            raise DataError(
                f"{where}: label {value!r} of image {rel!r} contradicts its class folder "
                f"{class_names[folder_label]!r}; fix the annotation or move the image"
            )
        labels.append(index)
    return labels, class_names


def _object_labels(
    images: Sequence[str],
    folder_labels: list[int | None],
    class_names: list[str] | None,
    annotations: Mapping[str, ImageAnnotation],
) -> tuple[list[int | None], list[str] | None]:
    """Labels and class names of a multi-object dataset (some image holds several classes).

    With class folders, every annotation class must be a folder's name; in a flat folder the
    class names are the sorted union of the images' (named) classes, and integer classes with
    no names are model output indices. Sub-folders none of whose names is an annotation class
    (``images/``, ``JPEGImages/``, ``train/``) are not class folders: the dataset is then read
    as a flat one. An image's label is its class when it holds exactly one (which must agree
    with its class folder), None when it holds several, and its class folder's (or None) when
    it holds none.

    Raises:
        DataError: names mixed with integer classes, a class that is not a class folder, or a
            one-class image whose class contradicts its class folder.
    """
    if class_names is not None:
        named = {c for ann in annotations.values() for c in ann.classes if isinstance(c, str)}
        if not named & set(class_names):
            # no annotation class is a folder's name: the folders group images, not classes
            class_names = None
            folder_labels = [None] * len(folder_labels)
    if class_names is None:
        class_names = _names_of([(rel, c) for rel, ann in annotations.items() for c in ann.classes])
    labels: list[int | None] = []
    for rel, folder_label in zip(images, folder_labels):
        ann = annotations.get(rel)
        pairs = _class_indices(rel, ann, class_names)
        if len(pairs) != 1:
            labels.append(None if pairs else folder_label)
            continue
        if folder_label is not None and pairs[0] != folder_label and class_names is not None:
            where = ann.where("") if ann is not None else ""
            raise DataError(
                f"{where}: class {class_names[pairs[0]]!r}, the only class annotated in image "
                f"{rel!r}, contradicts its class folder {class_names[folder_label]!r}; fix the "
                "annotation or move the image"
            )
        labels.append(pairs[0])
    return labels, class_names


def build_dataset(
    dataset: PathLike | Any,
    annotations: PathLike | Sequence[PathLike] | None = None,
    transform: str | Any | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    rootdir: PathLike | None = None,
    model_labels: bool = False,
) -> AnnotatedDataset:
    """Build the dataset the plugin runs CAM checks on.

    Args:
        dataset: a folder of images (``root/<class>/<image>`` gives labels, classes sorted by
            name as torchvision's ``ImageFolder`` does; hidden folders are ignored), or
            ``"package.module:factory"`` naming a callable that returns the samples (see
            :class:`FactoryDataset`), or such a dataset object itself (anything with
            ``__len__`` and ``__getitem__``).
        annotations: a VOC folder of ``*.xml``, a COCO ``.json``, a ``.csv``, or a folder of
            mask PNGs (format detected from the path); or a list of them, merged. Only for
            folder datasets.
        transform: None (the default transform), ``"package.module:name"``, or a callable; see
            :mod:`pytest_camcheck.data.transforms`.
        image_size: output size of the default transform.
        rootdir: what relative paths and spec imports are resolved against (the pytest
            rootdir); the current directory when None.
        model_labels: integer labels in the annotations of a dataset with class names are
            model output indices (``camcheck_classes`` is set), kept in each sample's
            ``meta["model_label"]``; the sample's ``label`` stays its class folder's.

    Returns:
        the dataset; its ids are ordered by relative image path.

    Raises:
        DataError: missing folder, no images, bad annotations (the message says which and how
            to fix them).
        ConfigError: a bad spec, transform or ``image_size``.
    """
    base = Path.cwd() if rootdir is None else Path(rootdir)
    paired = resolve_transform(transform, image_size, rootdir)
    if not isinstance(dataset, (str, os.PathLike)):
        if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
            if annotations is not None:
                raise ConfigError(
                    "annotations apply to folder datasets only; a dataset object's items carry "
                    "their own regions"
                )
            return FactoryDataset(dataset, type(dataset).__name__, paired)
        raise ConfigError(
            f"dataset must be a folder path, 'package.module:factory' or a dataset object, got "
            f"{type(dataset).__name__}"
        )
    spec = os.fspath(dataset)
    if (
        isinstance(dataset, str)
        and looks_like_spec(spec)
        and not _resolve_path(spec, base).exists()
    ):
        if annotations is not None:
            raise ConfigError(
                f"annotations apply to folder datasets only; dataset {spec!r} is a factory, "
                "whose items carry their own regions"
            )
        factory = import_from_spec(spec, what="dataset", rootdir=rootdir)
        source = _call_factory(factory, spec, rootdir)
        return FactoryDataset(source, spec, paired)
    root = _resolve_path(spec, base)
    if not root.exists():
        raise DataError(
            f"dataset folder {str(root)!r} does not exist; give a folder of images (relative to "
            f"{str(base)!r}) or 'package.module:factory'"
        )
    if not root.is_dir():
        raise DataError(f"dataset {str(root)!r} is a file; give the folder that holds the images")
    if annotations is None:
        ann_paths: list[Path] = []
    elif isinstance(annotations, (str, os.PathLike)):
        ann_paths = [_resolve_path(annotations, base)]
    else:
        ann_paths = [_resolve_path(a, base) for a in annotations]
    excluded = [p for p in ann_paths if p.is_dir()]
    images = list_images(root, exclude=excluded)
    if not images:
        raise DataError(
            f"dataset folder {str(root)!r} holds no images; looked for files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)} (any case) in it and its sub-folders"
        )
    class_names: list[str] | None = None
    folder_labels: list[int | None] = [None] * len(images)
    if all("/" in rel for rel in images):
        skip = {os.path.realpath(p) for p in excluded}
        real_root = os.path.realpath(root)
        class_names = sorted(
            e.name
            for e in os.scandir(root)
            if _is_class_folder(e, real_root) and os.path.realpath(e.path) not in skip
        )
        position = {c: i for i, c in enumerate(class_names)}
        folder_labels = [position[rel.split("/", 1)[0]] for rel in images]
    found = read_annotations(ann_paths, ImageIndex(images, root)) if ann_paths else {}
    indices: dict[str, int] | None = {} if model_labels else None
    if _is_multi_object(images, found):
        labels, class_names = _object_labels(images, folder_labels, class_names, found)
    else:
        labels, class_names = _labels(images, folder_labels, class_names, found, indices)
    dataset = FolderDataset(root, images, found, labels, class_names, paired)
    dataset.model_labels = dict(indices or {})
    return dataset


def _is_class_folder(entry: os.DirEntry[str], real_root: str) -> bool:
    """Whether a folder entry of the dataset root is a class folder: a visible folder, and not
    a link back to the root or to a folder above it (a loop holds no class)."""
    if entry.name.startswith("."):
        return False
    try:
        if not entry.is_dir():
            return False
    except OSError:  # a link loop
        return False
    if not entry.is_symlink():
        return True
    real = os.path.realpath(entry.path)
    return not (real == real_root or real_root.startswith(real.rstrip(os.sep) + os.sep))


def _call_factory(factory: Any, spec: str, rootdir: PathLike | None) -> Any:
    """The factory's dataset: a class or a function is called, a dataset object used as is."""
    is_object = not callable(factory) or hasattr(factory, "__len__")
    if is_object and not isinstance(factory, type):
        return factory
    added = None
    if rootdir is not None:
        # the factory may import modules next to its own lazily
        added = os.fspath(rootdir)
        sys.path.insert(0, added)
    try:
        return factory()
    except CamcheckError:
        raise
    except Exception as exc:
        # One short paragraph: the user's frames only, not hundreds of lines from inside torch.
        raise DataError(
            f"dataset {spec!r}: the factory raised {describe_exception(exc, 5, rootdir)}; "
            f"call {spec.partition(':')[2]}() outside pytest to see the whole traceback"
        ) from None
    finally:
        if added is not None:
            try:
                sys.path.remove(added)
            except ValueError:
                pass
