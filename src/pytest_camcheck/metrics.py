"""Pure metric functions over class activation maps and annotated regions.

A map ("cam") is a 2-D ``(H, W)`` float array: a numpy array or a torch tensor (a ``(1, H, W)``
map is squeezed). The engine's display maps are in [0, 1]; other maps work too, their negative
values count as "no evidence" (they are clipped at 0, as the engine's ReLU does).

A map is DEGENERATE when it holds a non-finite value, or when, clipped at 0, it is constant (all
zero included): the model gave no spatial evidence for the class. Degenerate maps never pass:
:func:`pointing_hit` is False, :func:`energy_fraction` is nan, :func:`localization_box` is None.

Coordinates follow :mod:`pytest_camcheck.regions`: pixel ``(row, col)`` has its centre at
``(x, y) = (col + 0.5, row + 0.5)``.

This module imports numpy only at import time (never torch); OpenCV is imported on first use of
:func:`localization_box`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

# as_region lives in regions; it stays importable from here (assertions and users import it)
from .regions import Box, Region, as_region

__all__ = [
    "Peak",
    "RateResult",
    "as_map",
    "as_region",
    "degenerate_reason",
    "energy_fraction",
    "find_peak",
    "is_degenerate_map",
    "localization_box",
    "localization_iou",
    "pointing_hit",
    "rate_result",
    "region_distance",
    "region_mask",
    "wilson_interval",
]

UNLABELLED = "(unlabelled)"

# A map whose clipped range is within this fraction of its maximum counts as constant
# (the same rule as the engine's ``is_degenerate``).
_CONSTANT_RTOL = 1e-6


# --------------------------------------------------------------------------------------------
# inputs


def as_map(cam: Any) -> np.ndarray:
    """The map as a 2-D float64 numpy array.

    Args:
        cam: a numpy array or torch tensor of shape ``(H, W)`` or ``(1, H, W)``.

    Returns:
        A float64 ``(H, W)`` array (a copy when a conversion was needed).

    Raises:
        TypeError: ``cam`` is not a numeric array or tensor.
        ValueError: ``cam`` does not have shape ``(H, W)`` or ``(1, H, W)``, or is empty.
    """
    if hasattr(cam, "detach"):
        tensor = cam.detach().cpu()
        try:
            arr = np.asarray(tensor)
        except TypeError:  # bfloat16 and other dtypes numpy does not know
            arr = np.asarray(tensor.float())
    elif isinstance(cam, np.ndarray):
        arr = cam
    else:
        raise TypeError(
            f"a CAM must be a numpy array or a torch tensor of shape (H, W), "
            f"got {type(cam).__name__}"
        )
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"a CAM must hold real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"a CAM must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(
            f"a CAM must be one 2-D map of shape (H, W) (or (1, H, W)), got shape "
            f"{tuple(arr.shape)}; for a batch, pass one map at a time (e.g. result.map[i])"
        )
    if arr.size == 0:
        raise ValueError(f"a CAM must not be empty, got shape {tuple(arr.shape)}")
    return arr.astype(np.float64, copy=False)


def region_mask(region: Region, shape: tuple[int, int]) -> np.ndarray:
    """The region's boolean mask at a map's resolution, after checking it fits the map.

    Args:
        region: the region, in the map's pixel coordinates.
        shape: the map's ``(H, W)``.

    Returns:
        A boolean ``(H, W)`` mask.

    Raises:
        ValueError: a box of the region lies (partly) outside the map, or the region covers no
            pixel of it.
    """
    height, width = int(shape[0]), int(shape[1])
    for box in region.boxes:
        if not box.inside(width, height):
            raise ValueError(
                f"region {region.name!r}: {box} lies outside the {height}x{width} map "
                f"(x in [0, {width}], y in [0, {height}]); boxes must be in the map's pixel "
                "coordinates: scale them with Box.scaled(sx, sy) if the image was resized"
            )
    mask = region.to_mask(height, width)
    if not mask.any():
        raise ValueError(
            f"region {region.name!r} ({region!r}) covers no pixel of the {height}x{width} map: "
            "it is empty or too small at this resolution; check the annotation"
        )
    return mask


def region_distance(region: Region, mask: np.ndarray, row: int, col: int) -> float:
    """Distance in pixels from pixel ``(row, col)``'s centre to the region (0 inside it).

    Boxes are measured exactly (continuous coordinates); a mask's part is measured to the
    centres of its pixels at the map's resolution.

    Args:
        region: the region.
        mask: the region's mask at the map's resolution (see :func:`region_mask`).
        row: the pixel's row.
        col: the pixel's column.
    """
    if mask[row, col]:
        return 0.0
    best = math.inf
    for box in region.boxes:
        best = min(best, box.distance_to(col + 0.5, row + 0.5))
    if region.mask is not None:
        part = region.mask
        if part.shape != mask.shape:
            part = Region(region.name, mask=part).to_mask(*mask.shape)
        rows, cols = np.nonzero(part)
        if rows.size:
            best = min(best, float(np.hypot(rows - row, cols - col).min()))
    return float(best)


# --------------------------------------------------------------------------------------------
# degeneracy and the peak


def degenerate_reason(cam: Any) -> str | None:
    """Why the map is degenerate, or None when it is not.

    Returns:
        E.g. ``"it is all zero"``, ``"it is constant (every pixel is 0.5)"``, ``"it holds 3
        non-finite values (NaN or infinity)"``, ``"it has no positive value"``; None for a
        usable map.
    """
    arr = as_map(cam)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - finite.sum())
        return f"it holds {bad} non-finite value{'s' if bad != 1 else ''} (NaN or infinity)"
    pos = np.clip(arr, 0.0, None)
    hi = float(pos.max())
    lo = float(pos.min())
    if hi - lo <= abs(hi) * _CONSTANT_RTOL:
        if hi == 0.0:
            if float(arr.min()) < 0.0:
                return "it has no positive value (everything is <= 0)"
            return "it is all zero"
        return f"it is constant (every pixel is {hi:.4g})"
    return None


def is_degenerate_map(cam: Any) -> bool:
    """Whether the map is degenerate: a non-finite value, or constant once clipped at 0."""
    return degenerate_reason(cam) is not None


@dataclass(frozen=True)
class Peak:
    """The maximum of a map.

    Attributes:
        row: the row of the first pixel (in raster order) at the maximum.
        col: its column.
        value: the maximum value.
        ties: how many pixels hold exactly the maximum value (1 when unique).
    """

    row: int
    col: int
    value: float
    ties: int

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "col": self.col, "value": self.value, "ties": self.ties}


def find_peak(cam: Any) -> Peak | None:
    """The map's maximum, or None when the map is degenerate."""
    arr = as_map(cam)
    if is_degenerate_map(arr):
        return None
    flat = int(np.argmax(arr))
    row, col = divmod(flat, arr.shape[1])
    value = float(arr[row, col])
    ties = int(np.count_nonzero(arr == value))
    return Peak(row=int(row), col=int(col), value=value, ties=ties)


# --------------------------------------------------------------------------------------------
# per-sample metrics


def _check_tolerance(tolerance: float) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.number)):
        raise TypeError(f"tolerance must be a number of pixels, got {tolerance!r}")
    tol = float(tolerance)
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {tolerance!r}")
    return tol


def pointing_hit(cam: Any, region: Any, tolerance: float = 0.0) -> bool:
    """The pointing game for one map: does its peak land on the region?

    A hit when the peak pixel lies in the region or within ``tolerance`` pixels of it (distance
    from the pixel's centre). A maximum shared by several pixels (a plateau, as bilinear
    upsampling makes of a hot border cell) is a hit only when EVERY tied pixel is on the region:
    a tie never wins by the luck of the tie-break. A degenerate map is a miss.

    Args:
        cam: the ``(H, W)`` map.
        region: a Region, Box, ``(x0, y0, x1, y1)`` or boolean mask (see :func:`as_region`).
        tolerance: pixels of slack around the region (>= 0).

    Raises:
        ValueError: bad tolerance, or a region outside the map / covering no pixel of it.
    """
    tol = _check_tolerance(tolerance)
    arr = as_map(cam)
    reg = as_region(region)
    mask = region_mask(reg, arr.shape)
    peak = find_peak(arr)
    if peak is None:
        return False
    return tied_inside(arr, peak, reg, mask, tol) == peak.ties


def tied_inside(arr: np.ndarray, peak: Peak, region: Region, mask: np.ndarray, tol: float) -> int:
    """How many of the pixels at the maximum lie within ``tol`` pixels of the region."""
    if peak.ties == 1:
        return int(region_distance(region, mask, peak.row, peak.col) <= tol)
    rows, cols = np.nonzero(arr == peak.value)
    return int(
        sum(region_distance(region, mask, int(r), int(c)) <= tol for r, c in zip(rows, cols))
    )


def energy_fraction(cam: Any, region: Any) -> float:
    """The share of the map's mass (values clipped at 0) inside the region.

    Returns:
        A fraction in [0, 1]; nan for a degenerate map (callers treat nan as a failure).

    Raises:
        ValueError: a region outside the map or covering no pixel of it.
    """
    arr = as_map(cam)
    mask = region_mask(as_region(region), arr.shape)
    if is_degenerate_map(arr):
        return math.nan
    pos = np.clip(arr, 0.0, None)
    total = float(pos.sum())
    return float(min(max(float(pos[mask].sum()) / total, 0.0), 1.0))


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise TypeError(f"threshold must be a fraction of the maximum in [0, 1], got {threshold!r}")
    thr = float(threshold)
    if not 0.0 <= thr <= 1.0:
        raise ValueError(
            f"threshold must be a fraction of the maximum in [0, 1], got {threshold!r}"
        )
    return thr


def localization_box(cam: Any, threshold: float = 0.2) -> Box | None:
    """The box the map points at, by the CAM paper's protocol (Zhou et al., 2016).

    The map is thresholded at ``threshold * max``; the bounding box of the largest
    8-connected component of the pixels at or above it is returned, in pixel coordinates
    (``Box(col0, row0, col1 + 1, row1 + 1)``). Between components of equal size, the one with more
    mass wins (then the first in raster order).

    Returns:
        The box, or None when the map is degenerate.
    """
    thr = _check_threshold(threshold)
    arr = as_map(cam)
    if is_degenerate_map(arr):
        return None
    import cv2  # imported on first use: keeps this module light

    pos = np.clip(arr, 0.0, None)
    binary = (pos >= thr * float(pos.max())).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:  # cannot happen for a non-degenerate map (the peak is always kept)
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    masses = np.bincount(labels.ravel(), weights=pos.ravel(), minlength=count)[1:]
    order = np.lexsort((-masses, -areas))  # largest area first, then the most mass
    best = int(order[0]) + 1
    x = int(stats[best, cv2.CC_STAT_LEFT])
    y = int(stats[best, cv2.CC_STAT_TOP])
    w = int(stats[best, cv2.CC_STAT_WIDTH])
    h = int(stats[best, cv2.CC_STAT_HEIGHT])
    return Box(float(x), float(y), float(x + w), float(y + h))


def localization_iou(cam: Any, box: Any, threshold: float = 0.2) -> tuple[float, Box | None]:
    """IoU between the map's :func:`localization_box` and the annotated box.

    Args:
        cam: the ``(H, W)`` map.
        box: a Box or ``(x0, y0, x1, y1)``; a Region is accepted too (the best IoU over its boxes;
            a mask-only region uses its bounding box).
        threshold: the fraction of the maximum the map is thresholded at.

    Returns:
        ``(iou, predicted_box)``; ``(nan, None)`` for a degenerate map.

    Raises:
        ValueError: a box outside the map or covering no pixel of it; a bad threshold.
    """
    thr = _check_threshold(threshold)
    arr = as_map(cam)
    reg = as_region(box, "box")
    region_mask(reg, arr.shape)
    predicted = localization_box(arr, thr)
    if predicted is None:
        return math.nan, None
    targets = reg.boxes or (reg.bbox(),)
    return max(predicted.iou(b) for b in targets), predicted


# --------------------------------------------------------------------------------------------
# dataset-level rates


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion.

    Args:
        successes: the number of successes (0 <= successes <= n).
        n: the number of trials.
        confidence: the two-sided confidence level, in (0, 1).

    Returns:
        ``(lower, upper)``; ``(0.0, 1.0)`` when ``n == 0``.
    """
    if isinstance(successes, bool) or isinstance(n, bool):
        raise TypeError("successes and n must be integers, not booleans")
    if int(successes) != successes or int(n) != n:
        raise TypeError(f"successes and n must be integers, got {successes!r} and {n!r}")
    k, total = int(successes), int(n)
    if total < 0 or not 0 <= k <= total:
        raise ValueError(f"need 0 <= successes <= n, got successes={k}, n={total}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if total == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + float(confidence) / 2.0)
    z2 = z * z
    p = k / total
    denom = 1.0 + z2 / total
    centre = (p + z2 / (2.0 * total)) / denom
    half = (z / denom) * math.sqrt(p * (1.0 - p) / total + z2 / (4.0 * total * total))
    lower = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends, no rounding dust
    upper = 1.0 if k == total else min(1.0, centre + half)
    return lower, upper


def _plain(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value * 100:.1f}%"


@dataclass(frozen=True)
class RateResult:
    """A pass rate over a dataset, with its confidence interval.

    Attributes:
        name: what was measured, e.g. ``"pointing_game[head, tol=15]"``.
        passed: how many samples passed.
        count: how many samples were evaluated.
        rate: ``passed / count`` (nan when ``count == 0``).
        lower: the lower bound of the Wilson interval.
        upper: the upper bound of the Wilson interval.
        confidence: the interval's confidence level.
        per_class: class name -> the same numbers for that class (empty for per-class entries).
        failures: ids of the samples that failed, in order.
        values: per-sample metric values (e.g. energy fractions; nan for degenerate maps).
        threshold: the per-sample threshold the outcomes were judged against, if any.
        missing: ids of the samples skipped because they lack the region.
        layer: the layer whose maps were measured, when known.
        method: the CAM method of those maps, when known.
        metric: the name of the per-sample value (e.g. ``"energy_fraction"``).
        threshold_name: what the per-sample threshold is called (e.g. ``"min_fraction"``).
        ids: the ids of the evaluated samples, in order (``values`` follow them).
        notes: remarks a failing gate's message repeats (e.g. samples added since a baseline).
        extra: what a check adds for the report's plot (JSON types only; e.g. the deletion
            curves of :mod:`pytest_camcheck.sanity`); empty for the plain rates.
    """

    name: str
    passed: int
    count: int
    rate: float
    lower: float
    upper: float
    confidence: float = 0.95
    per_class: dict[str, RateResult] = field(default_factory=dict)
    failures: tuple[str, ...] = ()
    values: tuple[float, ...] = ()
    threshold: float | None = None
    missing: tuple[str, ...] = ()
    layer: str | None = None
    method: str | None = None
    metric: str | None = None
    threshold_name: str | None = None
    ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (nan becomes None)."""
        return {
            "name": self.name,
            "passed": int(self.passed),
            "count": int(self.count),
            "rate": _plain(self.rate),
            "lower": _plain(self.lower),
            "upper": _plain(self.upper),
            "confidence": float(self.confidence),
            "per_class": {k: v.to_dict() for k, v in self.per_class.items()},
            "failures": list(self.failures),
            "values": [_plain(v) for v in self.values],
            "threshold": _plain(self.threshold),
            "missing": list(self.missing),
            "layer": self.layer,
            "method": self.method,
            "metric": self.metric,
            "threshold_name": self.threshold_name,
            "ids": list(self.ids),
            "notes": list(self.notes),
            "extra": dict(self.extra),
        }

    def __str__(self) -> str:
        text = (
            f"{self.name}: {self.passed}/{self.count} = {_pct(self.rate)} "
            f"({self.confidence * 100:g}% CI {_pct(self.lower)}-{_pct(self.upper)})"
        )
        if self.missing:
            text += f"; {len(self.missing)} skipped (region missing)"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


def rate_result(
    name: str,
    outcomes: Sequence[bool],
    ids: Sequence[str],
    classes: Sequence[str | None],
    values: Sequence[float] | None = None,
    threshold: float | None = None,
    missing: Sequence[str] = (),
    confidence: float = 0.95,
    *,
    layer: str | None = None,
    method: str | None = None,
    metric: str | None = None,
    threshold_name: str | None = None,
    notes: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> RateResult:
    """Build a :class:`RateResult` from per-sample outcomes.

    Args:
        name: what was measured, e.g. ``"pointing_game[head, tol=15]"``.
        outcomes: per-sample pass (True) / fail (False).
        ids: per-sample ids, same length as ``outcomes``.
        classes: per-sample class names (None -> ``"(unlabelled)"``), same length.
        values: per-sample metric values, empty/None or the same length as ``outcomes``.
        threshold: the per-sample threshold, if any.
        missing: ids of the samples skipped because they lack the region.
        confidence: the confidence level of the intervals.
        layer / method: the maps measured, when known (carried for messages and the report).
        metric / threshold_name: the names of the per-sample value and of its threshold.
        notes: remarks carried by the result (and repeated by a failing gate's message).
        extra: plot data for the report (the whole result's only, not the per-class ones).

    Raises:
        ValueError: the sequences have different lengths.
    """
    oks = [bool(o) for o in outcomes]
    id_list = [str(i) for i in ids]
    cls_list = [UNLABELLED if c is None else str(c) for c in classes]
    vals = [float(v) for v in values] if values is not None else []
    n = len(oks)
    if len(id_list) != n or len(cls_list) != n:
        raise ValueError(
            f"{name}: outcomes, ids and classes must have the same length, got "
            f"{n}, {len(id_list)} and {len(cls_list)}"
        )
    if vals and len(vals) != n:
        raise ValueError(f"{name}: values must be empty or one per outcome ({n}), got {len(vals)}")
    thr = None if threshold is None else float(threshold)

    def build(
        label: str, idx: list[int], per_class: dict[str, RateResult], top: bool
    ) -> RateResult:
        passed = sum(oks[i] for i in idx)
        count = len(idx)
        lower, upper = wilson_interval(passed, count, confidence)
        return RateResult(
            name=label,
            passed=passed,
            count=count,
            rate=passed / count if count else math.nan,
            lower=lower,
            upper=upper,
            confidence=float(confidence),
            per_class=per_class,
            failures=tuple(id_list[i] for i in idx if not oks[i]),
            values=tuple(vals[i] for i in idx) if vals else (),
            threshold=thr,
            missing=tuple(str(m) for m in missing) if top else (),
            layer=layer,
            method=method,
            metric=metric,
            threshold_name=threshold_name,
            ids=tuple(id_list[i] for i in idx),
            notes=tuple(str(n) for n in notes) if top else (),
            extra=dict(extra or {}) if top else {},
        )

    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cls_list):
        groups.setdefault(c, []).append(i)
    per_class = {c: build(c, groups[c], {}, False) for c in sorted(groups)}
    return build(name, list(range(n)), per_class, True)
