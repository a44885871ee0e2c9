"""Annotated regions: boxes, masks, and the samples that carry them.

Coordinates are continuous pixel coordinates: x grows to the right, y downwards, the top-left
corner of the image is (0, 0) and pixel ``(row, col)`` covers ``[col, col+1) x [row, row+1)`` with
its centre at ``(col + 0.5, row + 0.5)``. A box ``Box(x0, y0, x1, y1)`` covers the pixels whose
centres lie inside it. Pascal VOC boxes (1-based, inclusive) become ``Box(xmin - 1, ymin - 1,
xmax, ymax)``; COCO boxes ``[x, y, w, h]`` become ``Box(x, y, x + w, y + h)``.

This module imports numpy only (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["REGION_KINDS", "Box", "Region", "Sample", "as_region"]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates (see the module docstring)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError(f"box {values} has a non-finite coordinate")
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(
                f"box {values} is inverted: expected x0 <= x1 and y0 <= y1 "
                "(coordinates are x0, y0, x1, y1 in pixels)"
            )

    @property
    def width(self) -> float:
        return float(self.x1 - self.x0)

    @property
    def height(self) -> float:
        return float(self.y1 - self.y0)

    @property
    def area(self) -> float:
        return self.width * self.height

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (float(self.x0), float(self.y0), float(self.x1), float(self.y1))

    def scaled(self, sx: float, sy: float) -> Box:
        """The box after scaling the image by ``sx`` horizontally and ``sy`` vertically."""
        return Box(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy)

    def inside(self, width: float, height: float, slack: float = 0.5) -> bool:
        """Whether the box lies within a ``width`` x ``height`` image (``slack`` pixels allowed)."""
        return (
            self.x0 >= -slack
            and self.y0 >= -slack
            and self.x1 <= width + slack
            and self.y1 <= height + slack
        )

    def distance_to(self, x: float, y: float) -> float:
        """Euclidean distance from the point ``(x, y)`` to the box (0 inside)."""
        dx = max(self.x0 - x, 0.0, x - self.x1)
        dy = max(self.y0 - y, 0.0, y - self.y1)
        return math.hypot(dx, dy)

    def contains_pixel(self, row: int, col: int, tolerance: float = 0.0) -> bool:
        """Whether pixel ``(row, col)``'s centre lies in the box grown by ``tolerance`` pixels."""
        return self.distance_to(col + 0.5, row + 0.5) <= tolerance

    def mask(self, height: int, width: int) -> np.ndarray:
        """Boolean ``(height, width)`` mask of the pixels whose centres lie in the box."""
        out = np.zeros((height, width), dtype=bool)
        c0 = max(math.ceil(self.x0 - 0.5), 0)
        c1 = min(math.floor(self.x1 - 0.5), width - 1)
        r0 = max(math.ceil(self.y0 - 0.5), 0)
        r1 = min(math.floor(self.y1 - 0.5), height - 1)
        if c1 >= c0 and r1 >= r0:
            out[r0 : r1 + 1, c0 : c1 + 1] = True
        return out

    def iou(self, other: Box) -> float:
        """Intersection over union with another box (0 when both are empty)."""
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.area + other.area - inter
        return float(inter / union) if union > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "x0": float(self.x0),
            "y0": float(self.y0),
            "x1": float(self.x1),
            "y1": float(self.y1),
        }

    def __str__(self) -> str:
        return f"Box(x0={self.x0:g}, y0={self.y0:g}, x1={self.x1:g}, y1={self.y1:g})"


@dataclass(frozen=True, eq=False)
class Region:
    """A named region of an image: the union of some boxes and, optionally, a pixel mask.

    Args:
        name: the region's name (``"head"``, ``"dog"``, ``"watermark"``).
        boxes: boxes in pixel coordinates.
        mask: optional boolean ``(H, W)`` mask at the image's resolution.
    """

    name: str
    boxes: tuple[Box, ...] = ()
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", tuple(self.boxes))
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.ndim != 2:
                raise ValueError(f"region {self.name!r}: mask must be 2-D (H, W), got {m.shape}")
            object.__setattr__(self, "mask", m.astype(bool, copy=False))
        if not self.boxes and self.mask is None:
            raise ValueError(f"region {self.name!r} has neither boxes nor a mask")

    @classmethod
    def from_box(cls, name: str, box: Box | Iterable[float]) -> Region:
        b = box if isinstance(box, Box) else Box(*[float(v) for v in box])
        return cls(name, (b,))

    @property
    def is_empty(self) -> bool:
        if self.mask is not None and self.mask.any():
            return False
        return all(b.area <= 0 for b in self.boxes)

    def to_mask(self, height: int, width: int) -> np.ndarray:
        """Boolean ``(height, width)`` mask of the region (union of its boxes and mask).

        A stored mask of another size is resized with nearest-neighbour sampling.
        """
        out = np.zeros((height, width), dtype=bool)
        for b in self.boxes:
            out |= b.mask(height, width)
        if self.mask is not None:
            m = self.mask
            if m.shape != (height, width):
                rows = np.minimum(
                    ((np.arange(height) + 0.5) * m.shape[0] / height).astype(int), m.shape[0] - 1
                )
                cols = np.minimum(
                    ((np.arange(width) + 0.5) * m.shape[1] / width).astype(int), m.shape[1] - 1
                )
                m = m[rows][:, cols]
            out |= m
        return out

    def bbox(self) -> Box:
        """The tightest box around the whole region."""
        boxes = list(self.boxes)
        if self.mask is not None and self.mask.any():
            rows = np.flatnonzero(self.mask.any(axis=1))
            cols = np.flatnonzero(self.mask.any(axis=0))
            boxes.append(
                Box(float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
            )
        if not boxes:
            return Box(0.0, 0.0, 0.0, 0.0)
        return Box(
            min(b.x0 for b in boxes),
            min(b.y0 for b in boxes),
            max(b.x1 for b in boxes),
            max(b.y1 for b in boxes),
        )

    def contains_pixel(self, row: int, col: int, tolerance: float = 0.0) -> bool:
        """Whether pixel ``(row, col)`` lies in the region, or within ``tolerance`` pixels of it."""
        if any(b.contains_pixel(row, col, tolerance) for b in self.boxes):
            return True
        if self.mask is None:
            return False
        m = self.mask
        if 0 <= row < m.shape[0] and 0 <= col < m.shape[1] and m[row, col]:
            return True
        if tolerance <= 0:
            return False
        ys, xs = np.nonzero(m)
        if ys.size == 0:
            return False
        d = np.hypot(xs - col, ys - row)
        return bool(d.min() <= tolerance)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "boxes": [b.to_dict() for b in self.boxes]}
        if self.mask is not None:
            out["mask_pixels"] = int(self.mask.sum())
            out["mask_shape"] = list(self.mask.shape)
        return out

    def __repr__(self) -> str:
        mask = "" if self.mask is None else f", mask={self.mask.shape}"
        return f"Region({self.name!r}, boxes={list(self.boxes)}{mask})"


#: What :func:`as_region` accepts, for error messages.
REGION_KINDS = (
    "a Region, a Box, (x0, y0, x1, y1), a list of boxes (an (N, 4) array or a list of Box / "
    "4-number sequences) or a 2-D (H, W) mask (boolean or 0/1)"
)


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (anything with ``detach``) as a numpy array, without importing torch."""
    tensor = value.detach().cpu()
    try:
        return np.asarray(tensor)
    except TypeError:  # bfloat16 and other dtypes numpy does not know
        return np.asarray(tensor.float())


def _as_box(value: Any, name: str) -> Box:
    """One box from a :class:`Box` or 4 numbers; errors name the region."""
    if isinstance(value, Box):
        return value
    if hasattr(value, "detach"):
        value = _to_numpy(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            f"{name}: a box is a Box or 4 numbers (x0, y0, x1, y1) in pixels, "
            f"got {type(value).__name__}"
        )
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: a box is 4 numbers (x0, y0, x1, y1) in pixels, got {str(value)[:60]}"
        ) from None
    if len(values) != 4:
        raise ValueError(
            f"{name}: a box is 4 numbers (x0, y0, x1, y1) in pixels, got {len(values)} values"
        )
    try:
        return Box(*values)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _boxes_region(name: str, items: Iterable[Any]) -> Region:
    items = list(items)
    if len(items) == 1:
        return Region(name, (_as_box(items[0], name),))
    return Region(name, tuple(_as_box(v, f"{name} (box {i})") for i, v in enumerate(items)))


def _is_real(arr: np.ndarray) -> bool:
    """Whether an array holds booleans or real numbers (not objects, strings, complex)."""
    if np.issubdtype(arr.dtype, np.complexfloating):
        return False
    return np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)


def _array_region(arr: np.ndarray, name: str, nonzero_masks: bool) -> Region:
    if not _is_real(arr):
        raise TypeError(
            f"{name}: a box or mask holds real numbers or booleans, got an array of dtype "
            f"{arr.dtype}; expected {REGION_KINDS}"
        )
    if arr.ndim == 1:
        return Region(name, (_as_box(arr.tolist(), name),))
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: a mask must be a 2-D (H, W) array and a list of boxes an (N, 4) array, "
            f"got shape {tuple(arr.shape)}"
        )
    if arr.dtype == np.bool_:
        return Region(name, mask=arr.copy())
    zero_one = bool(np.isin(arr, (0, 1)).all())
    if arr.shape[1] == 4 and (nonzero_masks or not zero_one):
        return _boxes_region(name, arr.tolist())
    if nonzero_masks:
        return Region(name, mask=arr != 0)
    if not zero_one:
        raise ValueError(
            f"{name}: a mask must be boolean (or 0/1), got dtype {arr.dtype} with other values; "
            "threshold it first, e.g. mask > 0.5"
        )
    return Region(name, mask=arr.astype(bool))


def as_region(
    value: Any, name: str = "region", *, rename: bool = False, nonzero_masks: bool = False
) -> Region:
    """Coerce a region-like value into a :class:`Region`.

    Accepted values:

    - a :class:`Region`: returned as it is (renamed to ``name`` when ``rename`` is True);
    - a :class:`Box`, or 4 numbers ``(x0, y0, x1, y1)`` in pixel coordinates (a sequence, a
      1-D numpy array or torch tensor): a region of one box;
    - a list of boxes, each a :class:`Box` or 4 numbers, or an ``(N, 4)`` numeric array or
      tensor: one region of ``N`` boxes;
    - a 2-D ``(H, W)`` mask (numpy array, torch tensor or nested lists): boolean, or numeric
      holding only 0 and 1 (with ``nonzero_masks``, any numbers: nonzero is the region).

    A numeric 2-D array with 4 columns is a list of boxes, except when it holds only 0 and 1
    and ``nonzero_masks`` is False: then it is a mask (as every 0/1 array is). Torch tensors are
    recognised by their ``detach`` method, so this module never imports torch.

    Args:
        value: the region-like value.
        name: the region's name when ``value`` carries none; named in every error message.
        rename: give a :class:`Region` of another name the name ``name`` (a copy; the
            original is unchanged).
        nonzero_masks: read a numeric mask as "nonzero pixels are the region" instead of
            refusing values other than 0 and 1 (e.g. 0/255 masks from image files).

    Returns:
        The region.

    Raises:
        TypeError: ``value`` is none of the accepted kinds (a string, a number, an object...).
        ValueError: a box is not 4 numbers or is inverted or not finite, an array has neither
            1 nor 2 dimensions, or a mask holds values other than 0 and 1.
    """
    if isinstance(value, Region):
        if rename and value.name != name:
            return Region(name, value.boxes, value.mask)
        return value
    if isinstance(value, Box):
        return Region(name, (value,))
    if hasattr(value, "detach"):
        value = _to_numpy(value)
    if isinstance(value, np.ndarray):
        return _array_region(value, name, nonzero_masks)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{name}: expected {REGION_KINDS}, got {type(value).__name__}")
    items = [_to_numpy(v) if hasattr(v, "detach") else v for v in value]
    if any(isinstance(v, Box) for v in items):
        return _boxes_region(name, items)
    try:
        arr = np.asarray(items)
    except ValueError:  # ragged nesting
        arr = None
    if arr is None or not _is_real(arr):
        if items and all(
            isinstance(v, Iterable) and not isinstance(v, (str, bytes)) for v in items
        ):
            return _boxes_region(name, items)  # names the box that is not 4 numbers
        raise TypeError(f"{name}: expected {REGION_KINDS}, got {str(value)[:60]}")
    return _array_region(arr, name, nonzero_masks)


@dataclass
class Sample:
    """One annotated image of a dataset.

    Args:
        id: a stable, human-readable id (``"pets/Abyssinian_1"``): it names the test item.
        path: the image file, when there is one.
        label: the class index, when known.
        regions: region name -> :class:`Region`, in the coordinates of ``image`` (or of the
            original file while ``image`` is not loaded). A value may also be anything
            :func:`as_region` accepts (a :class:`Box`, ``(x0, y0, x1, y1)``, a mask...); a
            :class:`Region` keeps its own name. A list of regions is keyed by their names.
        image: the pixels, when already loaded (a PIL image or a ``(C, H, W)`` tensor).
        class_name: a readable name of the class, when known.
        meta: anything else worth showing in the report.
        labels: the label indices of the classes present in an image with objects of several
            classes (a multi-object dataset), first-seen order; ``()`` otherwise.
        class_regions: label index -> that class's regions (in the coordinates of ``image``):
            ``"<class>"`` the union of the class's objects, ``"<class>#1"``, ``"<class>#2"``...
            each instance on its own, and the class's other named regions (parts); ``{}``
            outside multi-object datasets.
    """

    id: str
    path: str | None = None
    label: int | None = None
    regions: dict[str, Region] = field(default_factory=dict)
    image: Any = None
    class_name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    labels: tuple[int, ...] = ()
    class_regions: dict[int, dict[str, Region]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.regions, Mapping):
            self.regions = {k: as_region(v, k) for k, v in self.regions.items()}
        else:
            regs = list(self.regions)
            self.regions = {r.name: r for r in regs}
