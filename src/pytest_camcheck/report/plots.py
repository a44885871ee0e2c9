"""Small PNG-ready plots for the report, drawn with numpy and OpenCV (no matplotlib).

* :func:`histogram_plot`: the distribution of a per-sample metric (e.g. the energy fraction in a
  region) over the dataset, with the pass threshold marked by a red dashed line.
* :func:`class_rate_plot`: one horizontal bar per class with its pass rate, its confidence
  interval as a whisker, the counts written next to it, and the required rate marked.

Both return ``(H, W, 3)`` uint8 RGB arrays; encode them with
:func:`pytest_camcheck.report.render.encode_png_b64`. Text is drawn with OpenCV's Hershey font,
which has ASCII only: other characters show as ``?`` (the HTML tables carry the exact names).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

__all__ = [
    "BAR_COLOUR",
    "FAIL_COLOUR",
    "PASS_COLOUR",
    "THRESHOLD_COLOUR",
    "check_plot",
    "class_rate_plot",
    "curve_plot",
    "histogram_plot",
    "mean_maps_plot",
    "scatter_plot",
]

BAR_COLOUR = (70, 130, 180)
PASS_COLOUR = (60, 160, 90)
FAIL_COLOUR = (210, 80, 70)
THRESHOLD_COLOUR = (220, 0, 0)
_AXIS = (40, 40, 40)
_GRID = (225, 225, 225)
_TEXT = (20, 20, 20)
_WHITE = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SMALL = 0.38
_TITLE = 0.45


def _ascii(text: Any, limit: int = 60) -> str:
    s = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    return s if len(s) <= limit else s[: limit - 1] + "~"


def _text(
    img: np.ndarray,
    text: str,
    x: int,
    y: int,
    *,
    scale: float = _SMALL,
    colour: tuple[int, int, int] = _TEXT,
    align: str = "left",
    valign: str = "baseline",
) -> None:
    """Write ASCII text; ``align`` in left/centre/right, ``valign`` in baseline/middle/top."""
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    if align == "centre":
        x -= tw // 2
    elif align == "right":
        x -= tw
    if valign == "middle":
        y += th // 2
    elif valign == "top":
        y += th
    cv2.putText(img, text, (int(x), int(y)), _FONT, scale, colour, 1, cv2.LINE_AA)


def _vertical_text(img: np.ndarray, text: str, x_centre: int, y_centre: int) -> None:
    """Write text rotated by 90 degrees (reading bottom-up), centred on a point."""
    (tw, th), base = cv2.getTextSize(text, _FONT, _SMALL, 1)
    patch = np.full((th + base + 2, tw + 2, 3), 255, np.uint8)
    cv2.putText(patch, text, (1, th + 1), _FONT, _SMALL, _TEXT, 1, cv2.LINE_AA)
    patch = cv2.rotate(patch, cv2.ROTATE_90_COUNTERCLOCKWISE)
    ph, pw = patch.shape[:2]
    y0 = max(0, y_centre - ph // 2)
    x0 = max(0, x_centre - pw // 2)
    y1 = min(img.shape[0], y0 + ph)
    x1 = min(img.shape[1], x0 + pw)
    img[y0:y1, x0:x1] = np.minimum(img[y0:y1, x0:x1], patch[: y1 - y0, : x1 - x0])


def _dashed_vline(
    img: np.ndarray, x: int, y0: int, y1: int, colour: tuple[int, int, int], thickness: int = 2
) -> None:
    for y in range(y0, y1, 8):
        cv2.line(img, (x, y), (x, min(y + 4, y1)), colour, thickness)


def _fmt_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _count_ticks(top: int) -> list[int]:
    """0 and a few round whole-number ticks covering ``top`` (steps of 1, 2 or 5 x 10^k)."""
    top = max(1, int(top))
    step = 1
    while top / step > 5:
        for factor in (2, 5 / 2, 2):  # 1 -> 2 -> 5 -> 10 -> 20 ...
            step = round(step * factor)
            if top / step <= 5:
                break
    return list(range(0, math.ceil(top / step) * step + 1, step))


def _range(values: np.ndarray, threshold: float | None) -> tuple[float, float]:
    points = list(values.tolist())
    if threshold is not None and math.isfinite(threshold):
        points.append(float(threshold))
    if not points:
        return 0.0, 1.0
    lo, hi = min(points), max(points)
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if hi - lo < 1e-12:
        return lo - 0.5, hi + 0.5
    pad = 0.02 * (hi - lo)
    return lo - pad, hi + pad


def histogram_plot(
    values: Sequence[float | None],
    threshold: float | None = None,
    *,
    title: str = "energy in region",
    xlabel: str = "energy fraction in region",
    bins: int = 20,
    width: int = 480,
    height: int = 260,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Histogram of per-sample metric values, with the threshold as a red dashed line.

    Args:
        values: one value per sample; ``None`` and non-finite values are left out and counted
            in the title.
        threshold: the pass threshold to mark (e.g. the minimum energy fraction), or None.
        title: the plot's title (ASCII; other characters show as ``?``).
        xlabel: the x axis label.
        bins: number of equal-width bins.
        width: image width in pixels.
        height: image height in pixels.
        value_range: the x range; default [0, 1] when every value (and the threshold) lies in
            it, else the data's range.

    Returns:
        ``(height, width, 3)`` uint8 RGB.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    raw = [float("nan") if v is None else float(v) for v in values]
    arr = np.asarray(raw, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    dropped = int(arr.size - finite.size)
    lo, hi = value_range if value_range is not None else _range(finite, threshold)
    counts, edges = np.histogram(np.clip(finite, lo, hi), bins=bins, range=(lo, hi))

    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 52, 16, 28, 44
    px0, px1 = left, width - right
    py0, py1 = top, height - bottom  # py1 is the x axis (count 0)

    head = f"{_ascii(title)} (n={finite.size}"
    head += f", {dropped} not finite)" if dropped else ")"
    _text(img, head, width // 2, 18, scale=_TITLE, align="centre")

    top_count = max(1, int(counts.max()) if counts.size else 1)

    def xpix(v: float) -> int:
        return round(float(px0 + (v - lo) / (hi - lo) * (px1 - px0)))

    def ypix(c: float) -> int:
        return round(float(py1 - c / top_count * (py1 - py0)))

    # horizontal grid and y ticks
    y_ticks = _count_ticks(top_count)
    top_count = y_ticks[-1]
    for c in y_ticks:
        y = ypix(c)
        cv2.line(img, (px0, y), (px1, y), _GRID, 1)
        cv2.line(img, (px0 - 4, y), (px0, y), _AXIS, 1)
        _text(img, str(c), px0 - 7, y, align="right", valign="middle")
    # bars
    for i, c in enumerate(counts):
        if c <= 0:
            continue
        xa, xb = xpix(edges[i]), xpix(edges[i + 1])
        cv2.rectangle(img, (xa + 1, ypix(c)), (max(xa + 1, xb - 1), py1), BAR_COLOUR, -1)
    # axes
    cv2.line(img, (px0, py0), (px0, py1), _AXIS, 1)
    cv2.line(img, (px0, py1), (px1, py1), _AXIS, 1)
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        x = xpix(v)
        cv2.line(img, (x, py1), (x, py1 + 4), _AXIS, 1)
        _text(img, _fmt_tick(v), x, py1 + 7, align="centre", valign="top")
    _text(img, _ascii(xlabel), (px0 + px1) // 2, height - 6, align="centre")
    _vertical_text(img, "samples", 12, (py0 + py1) // 2)
    # threshold last, so that it shows over the bars
    if threshold is not None and math.isfinite(threshold) and lo <= threshold <= hi:
        x = xpix(float(threshold))
        _dashed_vline(img, x, py0, py1, THRESHOLD_COLOUR)
        label = f"threshold {_fmt_tick(float(threshold))}"
        (tw, _), _ = cv2.getTextSize(label, _FONT, _SMALL, 1)
        if x + 4 + tw <= px1:
            _text(img, label, x + 4, py0 + 2, colour=THRESHOLD_COLOUR, valign="top")
        else:
            _text(img, label, x - 4, py0 + 2, colour=THRESHOLD_COLOUR, align="right", valign="top")
    return img


def _num(value: Any, default: float = float("nan")) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out


def class_rate_plot(
    per_class: Mapping[str, Mapping[str, Any]],
    min_rate: float | None = None,
    *,
    title: str = "pass rate per class",
    width: int = 480,
    row_height: int = 22,
    max_rows: int = 30,
) -> np.ndarray:
    """Horizontal bars of the pass rate of each class, worst first.

    Each row shows the class name, a bar of length ``rate`` (green when it reaches
    ``min_rate``, red below it, blue when there is no requirement), the confidence interval
    ``[lower, upper]`` as a whisker, and ``"70.0% (7/10)"``. The required rate is a red dashed line.

    Args:
        per_class: class name -> ``{"passed", "count", "rate", "lower", "upper"}``.
        min_rate: the required rate, or None.
        title: the plot's title.
        width: image width in pixels.
        row_height: pixels per class.
        max_rows: at most this many classes are drawn (the worst); a note counts the rest.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    rows = []
    for name, entry in per_class.items():
        count = int(_num(entry.get("count"), 0.0))
        passed = int(_num(entry.get("passed"), 0.0))
        rate = _num(entry.get("rate"))
        if not math.isfinite(rate):
            rate = passed / count if count else float("nan")
        rows.append(
            (str(name), passed, count, rate, _num(entry.get("lower")), _num(entry.get("upper")))
        )
    rows.sort(key=lambda r: (r[3] if math.isfinite(r[3]) else -1.0, r[0]))
    hidden = max(0, len(rows) - max_rows)
    rows = rows[:max_rows]

    top, bottom = 30, 34 + (16 if hidden else 0)
    left, right = 132, 104
    height = top + bottom + row_height * max(1, len(rows))
    img = np.full((height, width, 3), 255, np.uint8)
    px0, px1 = left, width - right
    axis_y = top + row_height * max(1, len(rows))
    _text(img, _ascii(title), width // 2, 18, scale=_TITLE, align="centre")

    def xpix(rate: float) -> int:
        return round(float(px0 + min(max(rate, 0.0), 1.0) * (px1 - px0)))

    for k in range(5):
        x = xpix(k / 4)
        cv2.line(img, (x, top), (x, axis_y), _GRID, 1)
        cv2.line(img, (x, axis_y), (x, axis_y + 4), _AXIS, 1)
        _text(img, f"{25 * k}%", x, axis_y + 7, align="centre", valign="top")
    for i, (name, passed, count, rate, lower, upper) in enumerate(rows):
        y_mid = top + i * row_height + row_height // 2
        _text(img, _ascii(name, 18), px0 - 6, y_mid, align="right", valign="middle")
        if math.isfinite(rate):
            if min_rate is None:
                colour = BAR_COLOUR
            else:
                colour = PASS_COLOUR if rate >= min_rate else FAIL_COLOUR
            half = max(3, row_height // 2 - 4)
            if rate > 0:
                cv2.rectangle(img, (px0, y_mid - half), (xpix(rate), y_mid + half), colour, -1)
            if math.isfinite(lower) and math.isfinite(upper):
                xl, xu = xpix(lower), xpix(upper)
                cv2.line(img, (xl, y_mid), (xu, y_mid), _AXIS, 1)
                cv2.line(img, (xl, y_mid - 3), (xl, y_mid + 3), _AXIS, 1)
                cv2.line(img, (xu, y_mid - 3), (xu, y_mid + 3), _AXIS, 1)
            label = f"{100 * rate:.1f}% ({passed}/{count})"
        else:
            label = f"- ({passed}/{count})"
        _text(img, label, px1 + 6, y_mid, valign="middle")
    cv2.line(img, (px0, top), (px0, axis_y), _AXIS, 1)
    cv2.line(img, (px0, axis_y), (px1, axis_y), _AXIS, 1)
    _text(img, "pass rate", (px0 + px1) // 2, axis_y + 30, align="centre")
    if min_rate is not None and math.isfinite(min_rate):
        _dashed_vline(img, xpix(float(min_rate)), top - 4, axis_y, THRESHOLD_COLOUR)
    if hidden:
        _text(img, f"(+{hidden} more classes, see the table)", 6, height - 6)
    return img


# --------------------------------------------------------------------------------------------
# the sanity and shortcut checks' plots (pytest_camcheck.sanity): drawn from a gate's ``extra``

_SERIES_COLOURS = ((210, 80, 70), (70, 130, 180), (60, 160, 90), (150, 150, 150))


def _plot_frame(
    width: int, height: int, title: str, xlabel: str, ylabel: str
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    img = np.full((height, width, 3), 255, np.uint8)
    box = (56, 30, width - 18, height - 46)  # x0, y0, x1, y1 of the plotting area
    _text(img, _ascii(title, 70), width // 2, 18, scale=_TITLE, align="centre")
    _text(img, _ascii(xlabel), (box[0] + box[2]) // 2, height - 6, align="centre")
    _vertical_text(img, _ascii(ylabel, 30), 12, (box[1] + box[3]) // 2)
    return img, box


def _y_axis(img: np.ndarray, box: tuple[int, int, int, int], lo: float, hi: float) -> Any:
    x0, y0, x1, y1 = box

    def ypix(v: float) -> int:
        return round(float(y1 - (v - lo) / (hi - lo) * (y1 - y0)))

    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = ypix(v)
        cv2.line(img, (x0, y), (x1, y), _GRID, 1)
        _text(img, _fmt_tick(round(v, 2)), x0 - 6, y, align="right", valign="middle")
    cv2.line(img, (x0, y0), (x0, y1), _AXIS, 1)
    cv2.line(img, (x0, y1), (x1, y1), _AXIS, 1)
    return ypix


def _dashed_hline(
    img: np.ndarray, y: int, x0: int, x1: int, colour: tuple[int, int, int], thickness: int = 2
) -> None:
    for x in range(x0, x1, 8):
        cv2.line(img, (x, y), (min(x + 4, x1), y), colour, thickness)


def _legend(
    img: np.ndarray, box: tuple[int, int, int, int], labels: Sequence[str], bottom: bool = False
) -> None:
    x, y = box[2] - 6, (box[3] - 8 - 16 * len(labels)) if bottom else box[1] + 4
    for k, label in enumerate(labels):
        text = _ascii(label, 40)
        (tw, _), _ = cv2.getTextSize(text, _FONT, _SMALL, 1)
        colour = _SERIES_COLOURS[k % len(_SERIES_COLOURS)]
        cv2.line(img, (x - tw - 26, y + 6), (x - tw - 8, y + 6), colour, 2)
        _text(img, text, x, y + 6, align="right", valign="middle")
        y += 16


def curve_plot(
    xs: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    bands: Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]] | None = None,
    threshold: float | None = None,
    x_labels: Sequence[str] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    y_range: tuple[float, float] | None = None,
    legend_bottom: bool = False,
    width: int = 480,
    height: int = 260,
) -> np.ndarray:
    """Line plot of one or more series over the same x values.

    Args:
        xs: the x positions (e.g. the fraction of pixels removed, or 0..K-1 for steps).
        series: label -> y values (None for a missing point), drawn in order (first in red).
        bands: label -> ``(lower, upper)``: a shaded band around that series (e.g. quartiles).
        threshold: a horizontal red dashed line (e.g. the largest similarity allowed).
        x_labels: text under each x position instead of numbers (e.g. the cascade's steps).
        title / xlabel / ylabel: the texts (ASCII).
        y_range: the y axis (default [0, 1], widened to the data).
        legend_bottom: put the legend in the bottom-right corner (for rising curves).
        width / height: image size in pixels.

    Returns:
        ``(height, width, 3)`` uint8 RGB.
    """
    img, box = _plot_frame(width, height, title, xlabel, ylabel)
    x0, _, x1, y1 = box
    values = [float(v) for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    lo, hi = y_range if y_range is not None else (0.0, 1.0)
    if y_range is None and values:
        lo, hi = min(lo, min(values)), max(hi, max(values))
    if threshold is not None and math.isfinite(threshold):
        lo, hi = min(lo, threshold), max(hi, threshold)
    if hi - lo < 1e-9:
        hi = lo + 1.0
    ypix = _y_axis(img, box, lo, hi)
    xlo, xhi = (min(xs), max(xs)) if len(xs) > 1 else (0.0, 1.0)
    if x_labels is not None:  # categories: half a step of room on each side for the labels
        xlo, xhi = xlo - 0.5, xhi + 0.5
    span = xhi - xlo or 1.0

    def xpix(v: float) -> int:
        return round(float(x0 + (v - xlo) / span * (x1 - x0)))

    if x_labels is not None:
        for x, label in zip(xs, x_labels):
            _text(img, _ascii(label, 14), xpix(x), y1 + 7, align="centre", valign="top")
    else:
        for k in range(5):
            v = xlo + span * k / 4
            _text(img, _fmt_tick(round(v, 2)), xpix(v), y1 + 7, align="centre", valign="top")
    for k, (label, ys) in enumerate(series.items()):
        colour = _SERIES_COLOURS[k % len(_SERIES_COLOURS)]
        if bands and label in bands:
            lower, upper = bands[label]
            poly = [
                (xpix(x), ypix(float(v)))
                for x, v in zip(xs, upper)
                if v is not None and math.isfinite(v)
            ]
            poly += [
                (xpix(x), ypix(float(v)))
                for x, v in reversed(list(zip(xs, lower)))
                if v is not None and math.isfinite(v)
            ]
            if len(poly) >= 3:
                shade = img.copy()
                cv2.fillPoly(shade, [np.array(poly, np.int32)], colour)
                img[:] = cv2.addWeighted(shade, 0.18, img, 0.82, 0)
        points = [
            (xpix(x), ypix(float(v))) for x, v in zip(xs, ys) if v is not None and math.isfinite(v)
        ]
        for k_pt in range(len(points) - 1):
            cv2.line(img, points[k_pt], points[k_pt + 1], colour, 2, cv2.LINE_AA)
        for pt in points:
            cv2.circle(img, pt, 3, colour, -1, cv2.LINE_AA)
    if threshold is not None and math.isfinite(threshold):
        _dashed_hline(img, ypix(float(threshold)), x0, x1, THRESHOLD_COLOUR)
    _legend(img, box, list(series), bottom=legend_bottom)
    return img


def scatter_plot(
    xs: Sequence[float | None],
    ys: Sequence[float | None],
    *,
    threshold: float | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    width: int = 480,
    height: int = 300,
) -> np.ndarray:
    """Scatter of paired values with the diagonal ``y = x`` and ``y = threshold`` (red, dashed).

    A point above the diagonal and the threshold is drawn green, any other red (e.g. the
    probability drop of masking a region against that of masking the background).

    Returns:
        ``(height, width, 3)`` uint8 RGB.
    """
    pairs = [
        (float(x), float(y))
        for x, y in zip(xs, ys)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    img, box = _plot_frame(width, height, f"{title} (n={len(pairs)})", xlabel, ylabel)
    x0, _, x1, y1 = box
    values = [v for pair in pairs for v in pair]
    lo, hi = min([0.0, *values]), max([1.0, *values])
    ypix = _y_axis(img, box, lo, hi)

    def xpix(v: float) -> int:
        return round(float(x0 + (v - lo) / (hi - lo) * (x1 - x0)))

    for k in range(5):
        v = lo + (hi - lo) * k / 4
        _text(img, _fmt_tick(round(v, 2)), xpix(v), y1 + 7, align="centre", valign="top")
    cv2.line(img, (xpix(lo), ypix(lo)), (xpix(hi), ypix(hi)), _AXIS, 1, cv2.LINE_AA)
    if threshold is not None and math.isfinite(threshold):
        _dashed_hline(img, ypix(float(threshold)), x0, x1, THRESHOLD_COLOUR)
    for x, y in pairs:
        ok = y > x and (threshold is None or y >= threshold)
        cv2.circle(img, (xpix(x), ypix(y)), 3, PASS_COLOUR if ok else FAIL_COLOUR, -1, cv2.LINE_AA)
    return img


def mean_maps_plot(
    classes: Mapping[str, Mapping[str, Any]],
    max_share: float | None = None,
    *,
    title: str = "",
    tile: int = 128,
    columns: int = 4,
    max_classes: int = 12,
) -> np.ndarray:
    """Each class's mean map (a heat map) with its hot spot outlined.

    Args:
        classes: class -> ``{"mean_map": rows of values in [0, 1], "scale": the map's shrink
            factor, "hot_spot": [x0, y0, x1, y1] in full-size map pixels or None, "share",
            "count", "judged"}`` (see :func:`pytest_camcheck.sanity.spatial_bias_check`).
        max_share: the largest share allowed: a hot spot above it is outlined red, else white.
        title: the plot's title.
        tile: pixels per map.
        columns: maps per row.
        max_classes: at most this many classes (the highest shares first).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    items = sorted(classes.items(), key=lambda kv: (-_num(kv[1].get("share"), 0.0), kv[0]))
    hidden = max(0, len(items) - max_classes)
    items = items[:max_classes]
    cols = max(1, min(columns, len(items)))
    rows = max(1, math.ceil(len(items) / cols))
    pad, caption = 8, 30
    width = max(320, cols * (tile + pad) + pad)
    height = 28 + rows * (tile + caption + pad) + (16 if hidden else 0)
    img = np.full((height, width, 3), 255, np.uint8)
    _text(img, _ascii(title, 70), width // 2, 18, scale=_TITLE, align="centre")
    for k, (name, entry) in enumerate(items):
        r, c = divmod(k, cols)
        x, y = pad + c * (tile + pad), 28 + r * (tile + caption + pad)
        grid = np.asarray(entry.get("mean_map") or [[0.0]], dtype=np.float64)
        grid = np.nan_to_num(grid, nan=0.0)
        span = float(grid.max() - grid.min())
        norm = (grid - grid.min()) / span if span > 0 else np.zeros_like(grid)
        heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.resize(heat, (tile, tile), interpolation=cv2.INTER_NEAREST)
        img[y : y + tile, x : x + tile] = heat[:, :, ::-1]
        share = _num(entry.get("share"), 0.0)
        hot = entry.get("hot_spot")
        scale = _num(entry.get("scale"), 1.0)
        bad = max_share is not None and share > max_share and entry.get("judged", True)
        if isinstance(hot, (list, tuple)) and len(hot) == 4 and grid.size:
            fy, fx = tile / (grid.shape[0] / scale), tile / (grid.shape[1] / scale)
            p0 = (x + round(float(hot[0]) * fx), y + round(float(hot[1]) * fy))
            p1 = (x + round(float(hot[2]) * fx) - 1, y + round(float(hot[3]) * fy) - 1)
            cv2.rectangle(img, p0, p1, THRESHOLD_COLOUR if bad else _WHITE, 2)
        label = f"{_ascii(name, 14)}: {100 * share:.0f}% of {int(_num(entry.get('count'), 0))}"
        _text(
            img,
            label,
            x + tile // 2,
            y + tile + 14,
            align="centre",
            colour=FAIL_COLOUR if bad else _TEXT,
        )
    if hidden:
        _text(img, f"(+{hidden} more classes, see the JSON file)", 6, height - 6)
    return img


def check_plot(extra: Mapping[str, Any], *, title: str = "") -> np.ndarray:
    """The plot of one sanity or shortcut check, from the ``extra`` its rate result carries:
    the similarity along the randomisation cascade, the deletion / insertion curves, the
    occlusion drops (region vs background) or the per-class mean maps.

    Raises:
        ValueError: an unknown ``extra["kind"]``.
    """
    kind = str(extra.get("kind"))
    if kind == "randomization":
        steps = [str(s) for s in extra.get("steps") or []]
        xs = list(range(len(steps)))

        def part(name: str, key: str) -> list[float | None]:
            return [e.get(key) if isinstance(e, Mapping) else None for e in extra.get(name) or []]

        return curve_plot(
            xs,
            {"Spearman (mean)": part("spearman", "mean"), "SSIM (mean)": part("ssim", "mean")},
            bands={
                "Spearman (mean)": (part("spearman", "q25"), part("spearman", "q75")),
                "SSIM (mean)": (part("ssim", "q25"), part("ssim", "q75")),
            },
            threshold=_num(extra.get("max_similarity")),
            x_labels=steps,
            title=title or "randomisation cascade",
            xlabel="re-initialised down to (head first)",
            ylabel="similarity to the map",
        )
    if kind in ("deletion", "insertion"):
        xs = [float(v) for v in extra.get("fractions") or []]
        auc_cam, auc_rnd = extra.get("auc_cam"), extra.get("auc_random")
        label_cam = "map order" + (f" (AUC {auc_cam:.3f})" if auc_cam is not None else "")
        label_rnd = "random order" + (f" (AUC {auc_rnd:.3f})" if auc_rnd is not None else "")
        return curve_plot(
            xs,
            {label_cam: extra.get("cam") or [], label_rnd: extra.get("random") or []},
            title=title or kind,
            xlabel=f"fraction of pixels {'revealed' if kind == 'insertion' else 'removed'}",
            ylabel="target probability",
            y_range=(0.0, 1.0),
            legend_bottom=kind == "insertion",
        )
    if kind == "occlusion":
        return scatter_plot(
            extra.get("background_drop") or [],
            extra.get("region_drop") or [],
            threshold=_num(extra.get("min_drop")),
            title=title or "occlusion",
            xlabel="drop when background patches are masked",
            ylabel=f"drop, {_ascii(extra.get('region', 'region'), 12)} masked",
        )
    if kind == "spatial_bias":
        return mean_maps_plot(
            extra.get("classes") or {},
            _num(extra.get("max_share")),
            title=title or "mean map per class",
        )
    raise ValueError(f"no plot for a check of kind {kind!r}")
