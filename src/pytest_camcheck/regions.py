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

__all__ = ["Box", "Region", "Sample"]


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


def _as_region(name: str, value: Region | Box | Iterable[float]) -> Region:
    if isinstance(value, Region):
        return value
    return Region.from_box(name, value)


@dataclass
class Sample:
    """One annotated image of a dataset.

    Args:
        id: a stable, human-readable id (``"pets/Abyssinian_1"``): it names the test item.
        path: the image file, when there is one.
        label: the class index, when known.
        regions: region name -> :class:`Region`, in the coordinates of ``image`` (or of the
            original file while ``image`` is not loaded).
        image: the pixels, when already loaded (a PIL image or a ``(C, H, W)`` tensor).
        class_name: a readable name of the class, when known.
        meta: anything else worth showing in the report.
    """

    id: str
    path: str | None = None
    label: int | None = None
    regions: dict[str, Region] = field(default_factory=dict)
    image: Any = None
    class_name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.regions, Mapping):
            self.regions = {k: _as_region(k, v) for k, v in self.regions.items()}
        else:
            regs = list(self.regions)
            self.regions = {r.name: r for r in regs}
