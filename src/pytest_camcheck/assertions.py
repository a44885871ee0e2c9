"""Assertions about where a model looks, with failure messages that carry the numbers.

Each ``assert_*`` helper measures one thing with :mod:`pytest_camcheck.metrics`, records what it
measured with :func:`pytest_camcheck.evidence.record` (pass or fail) and raises
:class:`~pytest_camcheck.errors.CamAssertionError` on failure. On success it returns the measured
value (a :class:`~pytest_camcheck.metrics.Peak`, a fraction, an IoU or a
:class:`~pytest_camcheck.metrics.RateResult`) so it can be logged.

A degenerate map (constant, all zero, or holding NaN or infinity) fails every assertion with a
message starting ``"degenerate CAM"``. Bad arguments (a threshold outside [0, 1], a box outside
the map, a 3-D map) are the caller's bug and raise ``TypeError`` / ``ValueError`` instead.

Example::

    from pytest_camcheck import assert_energy_in_region, assert_peak_in_box

    assert_peak_in_box(cam, (20, 30, 80, 90), tolerance=15)
    assert_energy_in_region(cam, head_region, min_fraction=0.5)
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

import numpy as np

from . import evidence
from .errors import CamAssertionError
from .metrics import (
    Peak,
    RateResult,
    as_map,
    as_region,
    degenerate_reason,
    energy_fraction,
    find_peak,
    localization_box,
    region_distance,
    region_mask,
    tied_inside,
)
from .regions import Box, Region

__all__ = [
    "assert_energy_in_region",
    "assert_energy_outside_region",
    "assert_localization_iou",
    "assert_not_degenerate",
    "assert_pass_rate",
    "assert_peak_in_box",
]

_BOUNDS = ("lower", "rate", "upper")
_MAX_LISTED_FAILURES = 10
_MAX_LISTED_CLASSES = 3


# --------------------------------------------------------------------------------------------
# helpers


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    return float(value)


def _fraction(value: Any, what: str) -> float:
    v = _number(value, what)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{what} must be a fraction in [0, 1] (e.g. 0.5 for 50%), got {value!r}")
    return v


def _tolerance(value: Any) -> float:
    v = _number(value, "tolerance")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {value!r}")
    return v


def _sample_prefix() -> str:
    case = evidence.current_case_id()
    return "" if case is None else f"sample {case}: "


def _pct(value: float, other: float | None = None) -> str:
    """``value`` as a percentage; more digits when 1 decimal would look equal to ``other``."""
    text = f"{value * 100:.1f}%"
    if other is not None and text == f"{other * 100:.1f}%" and value != other:
        text = f"{value * 100:.3f}%"
    return text


def _num(value: float, other: float | None = None) -> str:
    text = f"{value:.2f}"
    if other is not None and text == f"{other:.2f}" and value != other:
        text = f"{value:.4f}"
    return text


def _describe(region: Region) -> str:
    """``region 'head' Box(...)``, or a summary for masks and multi-box regions."""
    if region.mask is None and len(region.boxes) == 1:
        return f"region {region.name!r} {region.boxes[0]}"
    parts = []
    if region.boxes:
        parts.append(f"{len(region.boxes)} box{'es' if len(region.boxes) != 1 else ''}")
    if region.mask is not None:
        parts.append(f"mask of {int(region.mask.sum())} px")
    return f"region {region.name!r} ({', '.join(parts)}; bbox {region.bbox()})"


def _base(cam: np.ndarray) -> dict[str, Any]:
    return {"sample": evidence.current_case_id(), "map_shape": [int(s) for s in cam.shape]}


def _region_info(region: Region) -> dict[str, Any]:
    return {"region": region.name, "region_bbox": region.bbox().to_dict()}


def _peak_info(peak: Peak | None) -> dict[str, Any]:
    if peak is None:
        return {"peak_row": None, "peak_col": None, "peak_value": None, "ties": None}
    return {
        "peak_row": peak.row,
        "peak_col": peak.col,
        "peak_value": peak.value,
        "ties": peak.ties,
    }


def _passed(kind: str, data: dict[str, Any]) -> None:
    evidence.record(kind, True, **data)


def _fail(kind: str, message: str, data: dict[str, Any]) -> NoReturn:
    __tracebackhide__ = True
    evidence.record(kind, False, **data)
    raise CamAssertionError(message, evidence={"kind": kind, "passed": False, **data})


def _check_degenerate(kind: str, cam: np.ndarray, data: dict[str, Any], what: str) -> None:
    """Fail with a "degenerate CAM" message when the map carries no spatial evidence."""
    __tracebackhide__ = True
    reason = degenerate_reason(cam)
    data["degenerate"] = reason is not None
    if reason is None:
        return
    case = evidence.current_case_id()
    where = "" if case is None else f" for sample {case}"
    data["degenerate_reason"] = reason
    _fail(
        kind,
        f"degenerate CAM{where}: {reason}, so {what} cannot be judged. A degenerate map means "
        "the model gave no spatial evidence for the class at this layer: check that the layer "
        "is a spatial feature map before global pooling, and that the target class is the one "
        "you expect.",
        data,
    )


# --------------------------------------------------------------------------------------------
# per-sample assertions


def assert_not_degenerate(cam: Any) -> Peak:
    """Assert the map carries spatial evidence: finite, and not constant once clipped at 0.

    Args:
        cam: the ``(H, W)`` map (numpy array or torch tensor; ``(1, H, W)`` is squeezed).

    Returns:
        The map's :class:`~pytest_camcheck.metrics.Peak`.

    Raises:
        CamAssertionError: the map is degenerate (message starts ``"degenerate CAM"``).
    """
    __tracebackhide__ = True
    kind = "not_degenerate"
    arr = as_map(cam)
    data = _base(arr)
    _check_degenerate(kind, arr, data, "where the model looks")
    peak = find_peak(arr)
    assert peak is not None  # a non-degenerate map always has a peak
    data.update(_peak_info(peak))
    data["min"] = float(arr.min())
    data["max"] = float(arr.max())
    _passed(kind, data)
    return peak


def assert_peak_in_box(cam: Any, box: Any, tolerance: float = 0) -> Peak:
    """The pointing game for one sample: the map's peak must land on the box.

    The peak pixel's centre must lie in the box (or region), or within ``tolerance`` pixels of
    it. A maximum shared by several pixels fails (the game needs one point).

    Args:
        cam: the ``(H, W)`` map.
        box: a Box, ``(x0, y0, x1, y1)`` in the map's pixel coordinates, a Region or a boolean
            ``(H, W)`` mask.
        tolerance: pixels of slack around the box (>= 0).

    Returns:
        The :class:`~pytest_camcheck.metrics.Peak`.

    Raises:
        CamAssertionError: the peak is elsewhere, tied, or the map is degenerate.
        ValueError: a bad tolerance, or a box outside the map.
    """
    __tracebackhide__ = True
    kind = "peak_in_box"
    tol = _tolerance(tolerance)
    arr = as_map(cam)
    region = as_region(box, "box")
    mask = region_mask(region, arr.shape)
    data = {**_base(arr), **_region_info(region), "tolerance": tol}
    _check_degenerate(kind, arr, data, "the pointing game")
    peak = find_peak(arr)
    assert peak is not None
    data.update(_peak_info(peak))
    prefix = _sample_prefix()
    if peak.ties > 1:
        inside = tied_inside(arr, peak, region, mask, tol)
        data["ties_inside"] = inside
        if inside < peak.ties:
            data["distance"] = None
            _fail(
                kind,
                f"{prefix}CAM peak is not unique: {peak.ties} pixels share the maximum value "
                f"{peak.value:.4g} (first at row {peak.row}, col {peak.col}) and only {inside} "
                f"of them lie within {tol:g} px of {_describe(region)}; a tied maximum counts "
                "as a hit only when every tied pixel is on the region. Open the report overlay "
                "for this sample, or use assert_energy_in_region instead.",
                data,
            )
    distance = region_distance(region, mask, peak.row, peak.col)
    data["distance"] = distance
    if distance > tol:
        _fail(
            kind,
            f"{prefix}CAM peak at (row {peak.row}, col {peak.col}) is {distance:.1f} px outside "
            f"{_describe(region)} (tolerance {tol:g} px). The model looks elsewhere: open the "
            "report overlay for this sample.",
            data,
        )
    _passed(kind, data)
    return peak


def _energy(kind: str, cam: Any, region: Any, limit: float, limit_key: str) -> tuple:
    __tracebackhide__ = True
    arr = as_map(cam)
    reg = as_region(region, "region")
    region_mask(reg, arr.shape)
    data = {**_base(arr), **_region_info(reg), limit_key: limit}
    data["fraction"] = None
    _check_degenerate(kind, arr, data, "the share of evidence in the region")
    fraction = energy_fraction(arr, reg)
    data["fraction"] = fraction
    data.update(_peak_info(find_peak(arr)))
    return reg, fraction, data


def assert_energy_in_region(cam: Any, region: Any, min_fraction: float) -> float:
    """Assert that at least ``min_fraction`` of the map's mass lies inside the region.

    "The head dominates": the mass is the sum of the map (clipped at 0).

    Args:
        cam: the ``(H, W)`` map.
        region: a Region, Box, ``(x0, y0, x1, y1)`` or boolean ``(H, W)`` mask.
        min_fraction: the required share, in [0, 1].

    Returns:
        The measured fraction.

    Raises:
        CamAssertionError: less mass inside than required, or a degenerate map.
        ValueError: ``min_fraction`` outside [0, 1], or a region outside the map.
    """
    __tracebackhide__ = True
    kind = "energy_in_region"
    limit = _fraction(min_fraction, "min_fraction")
    reg, fraction, data = _energy(kind, cam, region, limit, "min_fraction")
    if fraction < limit:
        _fail(
            kind,
            f"{_sample_prefix()}only {_pct(fraction, limit)} of the CAM energy lies inside "
            f"{_describe(reg)} (required at least {_pct(limit)}); {_pct(1.0 - fraction)} lies "
            "outside it. The model relies on evidence elsewhere: open the report overlay for "
            "this sample.",
            data,
        )
    _passed(kind, data)
    return fraction


def assert_energy_outside_region(cam: Any, region: Any, max_fraction: float) -> float:
    """Assert that at most ``max_fraction`` of the map's mass lies inside the region.

    "Not looking at the watermark": the mass is the sum of the map (clipped at 0).

    Args:
        cam: the ``(H, W)`` map.
        region: the region to stay away from (Region, Box, ``(x0, y0, x1, y1)`` or mask).
        max_fraction: the largest share allowed inside it, in [0, 1].

    Returns:
        The measured fraction inside the region.

    Raises:
        CamAssertionError: more mass inside than allowed, or a degenerate map.
        ValueError: ``max_fraction`` outside [0, 1], or a region outside the map.
    """
    __tracebackhide__ = True
    kind = "energy_outside_region"
    limit = _fraction(max_fraction, "max_fraction")
    reg, fraction, data = _energy(kind, cam, region, limit, "max_fraction")
    if fraction > limit:
        _fail(
            kind,
            f"{_sample_prefix()}{_pct(fraction, limit)} of the CAM energy lies inside "
            f"{_describe(reg)} (allowed at most {_pct(limit)}). The model looks at "
            f"{reg.name!r}, which it should ignore: open the report overlay for this sample.",
            data,
        )
    _passed(kind, data)
    return fraction


def assert_localization_iou(
    cam: Any, box: Any, min_iou: float = 0.5, threshold: float = 0.2
) -> float:
    """Assert the box the map points at overlaps the annotated box (the CAM paper's protocol).

    The map is thresholded at ``threshold * max``; the bounding box of its largest 8-connected
    component must have an IoU of at least ``min_iou`` with ``box`` (with the best of a
    region's boxes).

    Args:
        cam: the ``(H, W)`` map.
        box: a Box, ``(x0, y0, x1, y1)`` or Region, in the map's pixel coordinates.
        min_iou: the required IoU, in [0, 1].
        threshold: the fraction of the maximum the map is thresholded at, in [0, 1].

    Returns:
        The IoU.

    Raises:
        CamAssertionError: the IoU is too low, or the map is degenerate.
        ValueError: ``min_iou`` / ``threshold`` outside [0, 1], or a box outside the map.
    """
    __tracebackhide__ = True
    kind = "localization_iou"
    need = _fraction(min_iou, "min_iou")
    thr = _fraction(threshold, "threshold")
    arr = as_map(cam)
    region = as_region(box, "box")
    region_mask(region, arr.shape)
    data = {**_base(arr), **_region_info(region), "min_iou": need, "threshold": thr}
    data.update({"iou": None, "predicted_box": None})
    _check_degenerate(kind, arr, data, "the localization box")
    predicted = localization_box(arr, thr)
    assert predicted is not None
    targets: tuple[Box, ...] = region.boxes or (region.bbox(),)
    ious = [predicted.iou(b) for b in targets]
    best = int(np.argmax(ious))
    iou = float(ious[best])
    data.update({"iou": iou, "predicted_box": predicted.to_dict()})
    data["matched_box"] = targets[best].to_dict()
    data.update(_peak_info(find_peak(arr)))
    if iou < need:
        target = (
            _describe(region)
            if len(targets) == 1
            else f"{_describe(region)} (best box {targets[best]})"
        )
        _fail(
            kind,
            f"{_sample_prefix()}IoU {_num(iou, need)} between the CAM box {predicted} (largest "
            f"component above {_pct(thr)} of the map's maximum) and {target} is below the "
            f"required {_num(need)}. The model's evidence is misplaced or the wrong size: open "
            "the report overlay for this sample.",
            data,
        )
    _passed(kind, data)
    return iou


# --------------------------------------------------------------------------------------------
# dataset-level assertion


def _worst_classes(result: RateResult, min_rate: float) -> str:
    if len(result.per_class) <= 1:
        return ""
    below = [
        c
        for c in result.per_class.values()
        if c.count and (math.isnan(c.rate) or c.rate < min_rate)
    ]
    if not below:
        return ""
    below.sort(key=lambda c: (c.rate, -c.count, c.name))
    shown = ", ".join(
        f"{c.name} {_pct(c.rate)} ({c.passed}/{c.count})" for c in below[:_MAX_LISTED_CLASSES]
    )
    more = len(below) - _MAX_LISTED_CLASSES
    if more > 0:
        shown += f" (+{more} more)"
    return f"; worst classes: {shown}"


def _failing_samples(result: RateResult) -> str:
    if not result.failures:
        return ""
    shown = ", ".join(result.failures[:_MAX_LISTED_FAILURES])
    more = len(result.failures) - _MAX_LISTED_FAILURES
    if more > 0:
        shown += f" ... (+{more} more)"
    return f"; failing samples: {shown}"


def assert_pass_rate(result: RateResult, min_rate: float, bound: str = "lower") -> RateResult:
    """Assert a dataset-level pass rate reaches ``min_rate``.

    Args:
        result: the rate, from :func:`pytest_camcheck.metrics.rate_result`.
        min_rate: the required rate, in [0, 1].
        bound: which number must reach it: ``"lower"`` (the lower confidence bound: the rate is
            above ``min_rate`` with the result's confidence), ``"rate"`` (the observed rate) or
            ``"upper"`` (the upper bound: the rate is not significantly below ``min_rate``).

    Returns:
        ``result``.

    Raises:
        CamAssertionError: the chosen number is below ``min_rate``, or no sample was evaluated.
        ValueError: ``min_rate`` outside [0, 1] or an unknown ``bound``.
    """
    __tracebackhide__ = True
    kind = "pass_rate"
    if not isinstance(result, RateResult):
        raise TypeError(
            f"result must be a RateResult (see pytest_camcheck.metrics.rate_result), "
            f"got {type(result).__name__}"
        )
    need = _fraction(min_rate, "min_rate")
    if bound not in _BOUNDS:
        raise ValueError(f"bound must be one of {', '.join(map(repr, _BOUNDS))}, got {bound!r}")
    data: dict[str, Any] = {
        "sample": evidence.current_case_id(),
        "name": result.name,
        "min_rate": need,
        "bound": bound,
        **{k: v for k, v in result.to_dict().items() if k not in ("values", "passed", "name")},
        "passed_count": int(result.passed),
        "result": result.to_dict(),  # the whole result (per-sample values too) for the report
    }
    conf = f"{result.confidence * 100:g}%"
    skipped = (
        f" ({len(result.missing)} sample{'s' if len(result.missing) != 1 else ''} skipped "
        "because they lack the region)"
        if result.missing
        else ""
    )
    if result.count == 0:
        _fail(
            kind,
            f"{result.name}: no samples were evaluated{skipped}, so the pass rate cannot reach "
            f"the required {_pct(need)}. Check that the dataset is not empty and that its "
            "annotations name this region.",
            data,
        )
    measured = {"lower": result.lower, "rate": result.rate, "upper": result.upper}[bound]
    if measured + 1e-12 < need:
        what = {
            "lower": f"lower {conf} bound",
            "rate": "pass rate",
            "upper": f"upper {conf} bound",
        }[bound]
        detail = (
            f"{result.passed}/{result.count} passed = {_pct(result.rate)}"
            if bound != "rate"
            else f"{result.passed}/{result.count} passed; {conf} CI "
            f"{_pct(result.lower)}-{_pct(result.upper)}"
        )
        _fail(
            kind,
            f"{result.name}: {what} {_pct(measured, need)} < required {_pct(need)} ({detail})"
            f"{_worst_classes(result, need)}{_failing_samples(result)}{skipped}",
            data,
        )
    _passed(kind, data)
    return result
