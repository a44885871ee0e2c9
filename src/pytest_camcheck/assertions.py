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
from .compare import SSIM_SIZE, PairedComparison, energy_change, map_differences, resize_to
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
from .report.records import Evidence, PeakInfo, RegionInfo

__all__ = [
    "assert_energy_in_region",
    "assert_energy_outside_region",
    "assert_localization_iou",
    "assert_no_regression",
    "assert_not_degenerate",
    "assert_pass_rate",
    "assert_peak_in_box",
    "assert_similar_maps",
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


def _context(cam: Any) -> dict[str, Any]:
    """The sample and the map's provenance (layer, method, target) in the running test."""
    src = evidence.source_of(cam)
    ctx: dict[str, Any] = {"sample": evidence.current_case_id()}
    if src is not None:
        ctx.update(layer=src.layer, method=src.method or None, target=src.target)
    return ctx


def _prefix(ctx: dict[str, Any]) -> str:
    """``"sample cat/1, layer layer3: "`` (the method too when it is not the run's)."""
    parts = []
    if ctx.get("sample") is not None:
        parts.append(f"sample {ctx['sample']}")
    if ctx.get("layer"):
        where = f"layer {ctx['layer']}"
        scope = evidence.current_scope()
        run_method = None if scope is None else scope.run_method
        if ctx.get("method") and ctx["method"] != run_method:
            where += f" ({ctx['method']})"
        parts.append(where)
    return (", ".join(parts) + ": ") if parts else ""


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


def _region_info(region: Region, mask: np.ndarray) -> RegionInfo:
    return RegionInfo(
        name=region.name,
        bbox=region.bbox().to_dict(),
        area_fraction=float(mask.mean()) if mask.size else None,
    )


def _peak_info(peak: Peak | None) -> PeakInfo | None:
    if peak is None:
        return None
    return PeakInfo(row=peak.row, col=peak.col, value=float(peak.value), ties=peak.ties)


def _hit_chance(region: Region, mask: np.ndarray, tolerance: float) -> float:
    """The chance that a peak at a uniformly random pixel counts as a hit: the share of the
    map's pixels whose centre lies within ``tolerance`` pixels of the region."""
    if tolerance <= 0 or not mask.size:
        return float(mask.mean()) if mask.size else 0.0
    height, width = mask.shape
    cy = np.arange(height, dtype=float)[:, None] + 0.5
    cx = np.arange(width, dtype=float)[None, :] + 0.5
    near = mask.copy()
    for b in region.boxes:  # exact, as the pointing game measures boxes
        dx = np.maximum(np.maximum(b.x0 - cx, 0.0), cx - b.x1)
        dy = np.maximum(np.maximum(b.y0 - cy, 0.0), cy - b.y1)
        near |= np.hypot(dx, dy) <= tolerance
    if region.mask is not None:  # to the centres of the mask's pixels
        from scipy.ndimage import distance_transform_edt

        near |= distance_transform_edt(~mask) <= tolerance
    return float(near.mean())


def _add_resolution(
    ev: dict[str, Any], arr: np.ndarray, region: Region, mask: np.ndarray, tolerance: float = 0.0
) -> None:
    """Note what limits a small region's verdict: the size in pixels of one cell of the map's
    layer (when the map is one of camcheck's) and the chance a random peak would hit it."""
    extra: dict[str, Any] = {"random_peak_hit": _hit_chance(region, mask, tolerance)}
    raw = evidence.raw_map(ev.get("layer"))
    shape = getattr(raw, "shape", None)
    if shape is not None and len(shape) >= 2 and int(shape[-1]) and int(shape[-2]):
        ch = float(arr.shape[0]) / int(shape[-2])
        cw = float(arr.shape[1]) / int(shape[-1])
        extra["map_cell_px"] = round(ch, 2) if abs(ch - cw) < 1e-6 else [round(ch, 2), round(cw, 2)]
        extra["map_grid"] = [int(shape[-2]), int(shape[-1])]
    ev["_resolution"] = extra


def _evidence(passed: bool, ev: dict[str, Any], message: str | None = None) -> Evidence:
    values = dict(ev)
    resolution = values.pop("_resolution", None)
    if resolution:
        values["details"] = {**dict(values.get("details") or {}), **resolution}
    return Evidence(passed=passed, message=message, **values)


def _passed(ev: dict[str, Any]) -> None:
    evidence.record(_evidence(True, ev))


def _fail(message: str, ev: dict[str, Any]) -> NoReturn:
    __tracebackhide__ = True
    item = _evidence(False, ev, message)
    evidence.record(item)
    raise CamAssertionError(message, evidence=item.to_dict())


def _check_degenerate(cam: np.ndarray, ev: dict[str, Any], what: str) -> None:
    """Fail with a "degenerate CAM" message when the map carries no spatial evidence."""
    __tracebackhide__ = True
    reason = degenerate_reason(cam)
    if reason is None:
        return
    raw = evidence.raw_map(ev.get("layer"))
    if raw is not None:  # the display map of a NaN map is zeros: say what the raw map held
        raw_reason = degenerate_reason(raw)
        if raw_reason is not None and "non-finite" in raw_reason:
            reason = f"the raw map (before ReLU and upsampling) {raw_reason.removeprefix('it ')}"
    ev["degenerate"] = reason
    ctx = {k: ev.get(k) for k in ("sample", "layer", "method")}
    where = _prefix(ctx)[:-2]  # the prefix is empty or ends in exactly ": "
    _fail(
        f"degenerate CAM{' for ' + where if where else ''}: {reason}, so {what} cannot be "
        "judged. A degenerate map means the model gave no spatial evidence for the class at "
        "this layer: check that the layer is a spatial feature map before global pooling, and "
        "that the target class is the one you expect.",
        ev,
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
    ev: dict[str, Any] = {"check": "not_degenerate", **_context(cam), "metric": "max"}
    arr = as_map(cam)
    _check_degenerate(arr, ev, "where the model looks")
    peak = find_peak(arr)
    assert peak is not None  # a non-degenerate map always has a peak
    ev.update(peak=_peak_info(peak), value=float(arr.max()))
    ev["details"] = {"min": float(arr.min()), "map_shape": list(arr.shape)}
    _passed(ev)
    return peak


def _resolve_default(value: Any, key: str, fallback: float) -> Any:
    """The threshold the test passed, else the running camcheck test's configured one."""
    if value is not None:
        return value
    configured = evidence.default(key)
    return fallback if configured is None else configured


def assert_peak_in_box(cam: Any, box: Any, tolerance: float | None = None) -> Peak:
    """The pointing game for one sample: the map's peak must land on the box.

    The peak pixel's centre must lie in the box (or region), or within ``tolerance`` pixels of
    it. A maximum shared by several pixels counts as a hit only when every tied pixel is on the
    region.

    Args:
        cam: the ``(H, W)`` map.
        box: a Box, ``(x0, y0, x1, y1)`` in the map's pixel coordinates, a Region or a boolean
            ``(H, W)`` mask.
        tolerance: pixels of slack around the box (>= 0). None: the configured
            ``camcheck_peak_tolerance`` inside a camcheck test (marker included), else 0.

    Returns:
        The :class:`~pytest_camcheck.metrics.Peak`.

    Raises:
        CamAssertionError: the peak is elsewhere, tied off the region, or the map is
            degenerate.
        ValueError: a bad tolerance, or a box outside the map.
    """
    __tracebackhide__ = True
    tol = _tolerance(_resolve_default(tolerance, "peak_tolerance", 0.0))
    ctx = _context(cam)
    arr = as_map(cam)
    region = as_region(box, "box")
    mask = region_mask(region, arr.shape)
    ev: dict[str, Any] = {
        "check": "peak_in_box",
        **ctx,
        "metric": "distance_px",
        "threshold_name": "tolerance",
        "threshold": tol,
        "region": _region_info(region, mask),
    }
    _add_resolution(ev, arr, region, mask, tol)
    _check_degenerate(arr, ev, "the pointing game")
    peak = find_peak(arr)
    assert peak is not None
    ev["peak"] = _peak_info(peak)
    prefix = _prefix(ctx)
    if peak.ties > 1:
        inside = tied_inside(arr, peak, region, mask, tol)
        ev["details"] = {"ties_inside": inside}
        if inside < peak.ties:
            _fail(
                f"{prefix}CAM peak is not unique: {peak.ties} pixels share the maximum value "
                f"{peak.value:.4g} (first at row {peak.row}, col {peak.col}) and only {inside} "
                f"of them lie within {tol:g} px of {_describe(region)}; a tied maximum counts "
                "as a hit only when every tied pixel is on the region. Open the report overlay "
                "for this sample, or use assert_energy_in_region instead.",
                ev,
            )
    distance = region_distance(region, mask, peak.row, peak.col)
    ev["value"] = float(distance)
    if distance > tol:
        _fail(
            f"{prefix}CAM peak at (row {peak.row}, col {peak.col}) is {distance:.1f} px outside "
            f"{_describe(region)} (tolerance {tol:g} px). The model looks elsewhere: open the "
            "report overlay for this sample.",
            ev,
        )
    _passed(ev)
    return peak


def _energy(
    check: str, cam: Any, region: Any, limit: float, limit_key: str
) -> tuple[Region, float, dict[str, Any]]:
    __tracebackhide__ = True
    ctx = _context(cam)
    arr = as_map(cam)
    reg = as_region(region, "region")
    mask = region_mask(reg, arr.shape)
    ev: dict[str, Any] = {
        "check": check,
        **ctx,
        "metric": "energy_fraction",
        "threshold_name": limit_key,
        "threshold": limit,
        "region": _region_info(reg, mask),
    }
    _add_resolution(ev, arr, reg, mask)
    _check_degenerate(arr, ev, "the share of evidence in the region")
    fraction = energy_fraction(arr, reg)
    ev["value"] = float(fraction)
    ev["peak"] = _peak_info(find_peak(arr))
    return reg, fraction, ev


def assert_energy_in_region(cam: Any, region: Any, min_fraction: float | None = None) -> float:
    """Assert that at least ``min_fraction`` of the map's mass lies inside the region.

    "The head dominates": the mass is the sum of the map (clipped at 0).

    Args:
        cam: the ``(H, W)`` map.
        region: a Region, Box, ``(x0, y0, x1, y1)`` or boolean ``(H, W)`` mask.
        min_fraction: the required share, in [0, 1]. None: the configured
            ``camcheck_min_energy`` inside a camcheck test (marker included), else 0.5.

    Returns:
        The measured fraction.

    Raises:
        CamAssertionError: less mass inside than required, or a degenerate map.
        ValueError: ``min_fraction`` outside [0, 1], or a region outside the map.
    """
    __tracebackhide__ = True
    limit = _fraction(_resolve_default(min_fraction, "min_energy", 0.5), "min_fraction")
    reg, fraction, ev = _energy("energy_in_region", cam, region, limit, "min_fraction")
    if fraction < limit:
        _fail(
            f"{_prefix(ev)}only {_pct(fraction, limit)} of the CAM energy lies inside "
            f"{_describe(reg)} (required at least {_pct(limit)}); {_pct(1.0 - fraction)} lies "
            "outside it. The model relies on evidence elsewhere: open the report overlay for "
            "this sample.",
            ev,
        )
    _passed(ev)
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
    limit = _fraction(max_fraction, "max_fraction")
    reg, fraction, ev = _energy("energy_outside_region", cam, region, limit, "max_fraction")
    if fraction > limit:
        _fail(
            f"{_prefix(ev)}{_pct(fraction, limit)} of the CAM energy lies inside "
            f"{_describe(reg)} (allowed at most {_pct(limit)}). The model looks at "
            f"{reg.name!r}, which it should ignore: open the report overlay for this sample.",
            ev,
        )
    _passed(ev)
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
    need = _fraction(min_iou, "min_iou")
    thr = _fraction(threshold, "threshold")
    ctx = _context(cam)
    arr = as_map(cam)
    region = as_region(box, "box")
    mask = region_mask(region, arr.shape)
    ev: dict[str, Any] = {
        "check": "localization_iou",
        **ctx,
        "metric": "iou",
        "threshold_name": "min_iou",
        "threshold": need,
        "region": _region_info(region, mask),
        "details": {"map_threshold": thr},
    }
    _add_resolution(ev, arr, region, mask)
    _check_degenerate(arr, ev, "the localization box")
    predicted = localization_box(arr, thr)
    assert predicted is not None
    targets: tuple[Box, ...] = region.boxes or (region.bbox(),)
    ious = [predicted.iou(b) for b in targets]
    best = int(np.argmax(ious))
    iou = float(ious[best])
    ev["value"] = iou
    ev["details"] = {
        "map_threshold": thr,
        "predicted_box": predicted.to_dict(),
        "matched_box": targets[best].to_dict(),
    }
    ev["peak"] = _peak_info(find_peak(arr))
    if iou < need:
        target = (
            _describe(region)
            if len(targets) == 1
            else f"{_describe(region)} (best box {targets[best]})"
        )
        _fail(
            f"{_prefix(ctx)}IoU {_num(iou, need)} between the CAM box {predicted} (largest "
            f"component above {_pct(thr)} of the map's maximum) and {target} is below the "
            f"required {_num(need)}. The model's evidence is misplaced or the wrong size: open "
            "the report overlay for this sample.",
            ev,
        )
    _passed(ev)
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
    if not isinstance(result, RateResult):
        raise TypeError(
            f"result must be a RateResult (see pytest_camcheck.metrics.rate_result), "
            f"got {type(result).__name__}"
        )
    need = _fraction(min_rate, "min_rate")
    if bound not in _BOUNDS:
        raise ValueError(f"bound must be one of {', '.join(map(repr, _BOUNDS))}, got {bound!r}")
    measured = {"lower": result.lower, "rate": result.rate, "upper": result.upper}[bound]
    ev: dict[str, Any] = {
        "check": "pass_rate",
        "sample": evidence.current_case_id(),
        "layer": result.layer,
        "method": result.method,
        "metric": bound if bound != "rate" else "rate",
        "value": None if measured != measured else float(measured),
        "threshold_name": "min_rate",
        "threshold": need,
        "details": {"bound": bound, "result": result.to_dict()},
    }
    conf = f"{result.confidence * 100:g}%"
    skipped = ""
    if result.missing:
        n = len(result.missing)
        some = f"{n} sample{'s' if n != 1 else ''}"
        if set(result.missing) <= set(result.failures):
            skipped = (
                f' ({some} lack the region and count as failed; pass missing="skip" to the '
                "check to leave them out)"
            )
        else:
            skipped = f" ({some} skipped because they lack the region)"
    if result.count == 0:
        hint = (
            "Check that the dataset is not empty and that its annotations name this region."
            if not result.notes
            else "; ".join(result.notes) + "."
        )
        _fail(
            f"{result.name}: no samples were evaluated{skipped}, so the pass rate cannot reach "
            f"the required {_pct(need)}. {hint}",
            ev,
        )
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
            f"{result.name}: {what} {_pct(measured, need)} < required {_pct(need)} ({detail})"
            f"{_worst_classes(result, need)}{_failing_samples(result)}{skipped}"
            f"{''.join('; ' + note for note in result.notes)}",
            ev,
        )
    _passed(ev)
    return result


# --------------------------------------------------------------------------------------------
# regression: two maps, two models


def _limit(value: Any, what: str, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    v = _number(value, what)
    if not lo <= v <= hi:
        raise ValueError(f"{what} must be in [{lo:g}, {hi:g}] (or None), got {value!r}")
    return v


def _as_raw(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    arr = as_map(value)
    return arr[None]


def assert_similar_maps(
    cam: Any,
    other: Any,
    min_ssim: float | None = 0.8,
    max_peak_shift: float | None = None,
    min_rank_corr: float | None = None,
    *,
    regions: Any = None,
) -> dict[str, float]:
    """Assert two maps look at the same places: two layers, two models, or a map and its
    baseline (``camcheck_case.baseline_map``).

    The numbers are those of ``camcheck.baseline_comparison``: the SSIM of the maps resized to
    64x64 (``skimage.metrics.structural_similarity``, ``data_range=1``), the distance between
    their peaks in pixels of ``cam`` (``other`` is resized to ``cam``'s size when they differ),
    and Spearman's rank correlation of the raw maps behind them when both are camcheck's maps
    (of the maps themselves, at 64x64, otherwise).

    Args:
        cam: the ``(H, W)`` map under test (values in [0, 1]).
        other: the map it should resemble.
        min_ssim: the least SSIM, in [-1, 1] (None: not checked).
        max_peak_shift: the largest peak shift in pixels (None: not checked).
        min_rank_corr: the least rank correlation, in [-1, 1] (None: not checked).
        regions: name -> region (a Region, Box or box tuple) whose change of energy to record
            (not checked; shown in the report).

    Returns:
        ``{"ssim": ..., "peak_shift": ..., "rank_corr": ...}``.

    Raises:
        CamAssertionError: a threshold does not hold.
        ValueError: a bad threshold, or no threshold at all.
    """
    __tracebackhide__ = True
    need_ssim = _limit(min_ssim, "min_ssim", -1.0, 1.0)
    need_shift = _limit(max_peak_shift, "max_peak_shift", 0.0, math.inf)
    need_corr = _limit(min_rank_corr, "min_rank_corr", -1.0, 1.0)
    if need_ssim is None and need_shift is None and need_corr is None:
        raise ValueError("give at least one of min_ssim, max_peak_shift, min_rank_corr")
    ctx = _context(cam)
    source = evidence.source_of(other)
    role = source.role if source is not None else None
    x, y = as_map(cam), as_map(other)
    diffs = map_differences(
        x, y, _as_raw(evidence.raw_of(cam)), _as_raw(evidence.raw_of(other)), SSIM_SIZE
    )
    ssim, shift, corr = (float(v[0]) for v in (diffs.ssim, diffs.peak_shift, diffs.rank_corr))
    details: dict[str, Any] = {
        "peak_shift": shift,
        "rank_corr": corr,
        "max_peak_shift": need_shift,
        "min_rank_corr": need_corr,
        "against": role,
        "against_layer": None if source is None else source.layer,
        "ssim_size": SSIM_SIZE,
        "rank_corr_of": "raw maps" if diffs.raw else f"maps at {SSIM_SIZE}x{SSIM_SIZE}",
    }
    if regions:
        y_at_x = y if y.shape == x.shape else resize_to(y, x.shape)
        items = regions.items() if hasattr(regions, "items") else ((r.name, r) for r in regions)
        changes = {}
        for name, reg in items:
            mask = region_mask(as_region(reg, name), x.shape)
            changes[str(name)] = float(energy_change(x, y_at_x, mask)[0])
        details["energy_change"] = changes
    ev: dict[str, Any] = {
        "check": "similar_maps",
        **ctx,
        "metric": "ssim",
        "value": ssim,
        "threshold_name": "min_ssim",
        "threshold": need_ssim,
        "peak": _peak_info(find_peak(x)),
        "details": details,
    }
    problems = []
    if need_ssim is not None and not ssim >= need_ssim:
        problems.append(f"SSIM {ssim:.3f} < {need_ssim:g} (maps at {SSIM_SIZE}x{SSIM_SIZE})")
    if need_shift is not None and not shift <= need_shift:
        problems.append(
            f"the peak moved {shift:.1f} px (at most {need_shift:g} allowed)"
            if shift == shift
            else "only one of the maps has a peak (the other is degenerate)"
        )
    if need_corr is not None and not corr >= need_corr:
        problems.append(
            f"rank correlation {corr:.3f} < {need_corr:g}"
            if corr == corr
            else "no rank correlation (one map is constant or non-finite)"
        )
    if problems:
        what = f"its {role} map" if role in ("baseline", "reference") else "the other map"
        card = f" (the report's card shows {role} | current | difference)" if role else ""
        _fail(
            f"{_prefix(ctx)}the map differs from {what}: {'; '.join(problems)}{card}. Measured: "
            f"SSIM {ssim:.3f}, peak shift {shift:.1f} px, rank correlation {corr:.3f}.",
            ev,
        )
    _passed(ev)
    return {"ssim": ssim, "peak_shift": shift, "rank_corr": corr}


_REGRESSION_BOUNDS = ("lenient", "strict")


def _points(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value * 100:+.1f}"


def assert_no_regression(
    comparison: PairedComparison, max_drop: float = 0.0, bound: str = "lenient"
) -> PairedComparison:
    """Gate a candidate model against the reference (deployed) one on a paired comparison.

    Args:
        comparison: from ``camcheck.compare(...)``.
        max_drop: how much lower the candidate's rate may be, as a fraction (0.02: two
            percentage points), in [0, 1].
        bound: ``"lenient"`` (default): fail only when the candidate is worse by more than
            ``max_drop`` with the comparison's confidence (the whole interval of the difference
            lies below ``-max_drop``). ``"strict"``: fail unless the candidate is shown to be no
            worse than ``max_drop`` (the whole interval lies above ``-max_drop``), as a
            non-inferiority test does.

    Returns:
        ``comparison``.

    Raises:
        CamAssertionError: the gate fails; the message names the samples the candidate broke.
        ValueError: ``max_drop`` outside [0, 1] or an unknown ``bound``.
    """
    __tracebackhide__ = True
    if not isinstance(comparison, PairedComparison):
        raise TypeError(
            "comparison must be a PairedComparison (from camcheck.compare(...)), got "
            f"{type(comparison).__name__}"
        )
    drop = _fraction(max_drop, "max_drop")
    if bound not in _REGRESSION_BOUNDS:
        raise ValueError(
            f"bound must be one of {', '.join(map(repr, _REGRESSION_BOUNDS))}, got {bound!r}"
        )
    c = comparison
    measured = c.upper if bound == "lenient" else c.lower
    ev: dict[str, Any] = {
        "check": "no_regression",
        "sample": evidence.current_case_id(),
        "layer": c.layer,
        "method": c.method,
        "metric": "difference_upper" if bound == "lenient" else "difference_lower",
        "value": None if measured != measured else float(measured),
        "threshold_name": "max_drop",
        "threshold": drop,
        "details": {"bound": bound, "comparison": c.to_dict()},
    }
    conf = f"{c.confidence * 100:g}%"
    if c.n == 0:
        _fail(
            f"{c.name}: no sample was evaluated by both models, so the candidate cannot be "
            "compared with the reference; check that both computed the dataset's maps.",
            ev,
        )
    failing = measured + 1e-12 < -drop
    if failing:
        limit = _points(-drop) if drop else "0"
        summary = (
            f"candidate {_pct(c.candidate_rate)} vs reference {_pct(c.reference_rate)} on "
            f"{c.n} paired samples: difference {_points(c.difference)} points ({conf} CI "
            f"{_points(c.lower)} to {_points(c.upper)}), exact McNemar p = {c.p_value:.3g}"
        )
        if bound == "lenient":
            head = (
                f"the candidate is worse than the reference by more than {drop * 100:g} points "
                f"with {conf} confidence (upper bound {_points(c.upper)} < {limit})"
            )
        else:
            head = (
                f"the candidate is not shown to be at most {drop * 100:g} points worse than the "
                f"reference (lower {conf} bound {_points(c.lower)} < {limit})"
            )
        lists = ""
        for ids, what in (
            (c.broken, "broken by the candidate (pass with the reference, fail now)"),
            (c.fixed, "fixed by the candidate"),
        ):
            if ids:
                shown = ", ".join(ids[:_MAX_LISTED_FAILURES])
                more = len(ids) - _MAX_LISTED_FAILURES
                lists += f"; {what}: {shown}" + (f" ... (+{more} more)" if more > 0 else "")
        _fail(f"{c.name}: {head}; {summary}{lists}", ev)
    _passed(ev)
    return comparison
