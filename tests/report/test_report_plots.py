"""The summary plots: a histogram with its threshold, and pass-rate bars per class."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_camcheck.report.plots import (
    BAR_COLOUR,
    FAIL_COLOUR,
    PASS_COLOUR,
    THRESHOLD_COLOUR,
    class_rate_plot,
    histogram_plot,
)
from pytest_camcheck.report.render import encode_png_b64


def mask_of(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(img == np.asarray(colour, np.uint8), axis=2)


def columns_of(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """The x positions of the columns that contain ``colour``."""
    return np.flatnonzero(mask_of(img, colour).any(axis=0))


def axis_span(img: np.ndarray) -> tuple[int, int]:
    """x of the y axis (the longest dark column) and the right end of the x axis."""
    dark = (img < 60).all(axis=2)
    x0 = int(np.argmax(dark.sum(axis=0)))
    row = int(np.argmax(dark.sum(axis=1)))
    return x0, int(np.flatnonzero(dark[row]).max())


# ---------------------------------------------------------------- histogram


def test_histogram_is_an_rgb_image_that_encodes(rh) -> None:
    img = histogram_plot([0.1, 0.2, 0.2, 0.9], 0.5, width=400, height=220)
    assert img.shape == (220, 400, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(rh.decode_b64_png(encode_png_b64(img)), img)


@pytest.mark.parametrize("threshold", [0.25, 0.5, 0.75])
def test_the_threshold_line_sits_at_its_value(threshold: float) -> None:
    img = histogram_plot([0.1, 0.3, 0.6, 0.8], threshold)
    x0, x1 = axis_span(img)
    cols = columns_of(img, THRESHOLD_COLOUR)
    # the dashed line (the threshold's label is drawn in the same colour further right)
    line_x = cols[np.argmax(mask_of(img, THRESHOLD_COLOUR)[:, cols].sum(axis=0))]
    expected = x0 + threshold * (x1 - x0)
    assert abs(line_x - expected) <= 2, (line_x, expected)


def test_no_threshold_no_line() -> None:
    assert columns_of(histogram_plot([0.2, 0.4]), THRESHOLD_COLOUR).size == 0


def test_bars_stand_where_the_values_are() -> None:
    low = histogram_plot([0.05] * 10)
    high = histogram_plot([0.95] * 10)
    x0, x1 = axis_span(low)
    low_cols, high_cols = columns_of(low, BAR_COLOUR), columns_of(high, BAR_COLOUR)
    assert low_cols.max() < x0 + 0.1 * (x1 - x0)
    assert high_cols.min() > x0 + 0.9 * (x1 - x0)


def test_bar_heights_follow_the_counts() -> None:
    img = histogram_plot([0.1] * 8 + [0.9] * 2, bins=10)
    bars = mask_of(img, BAR_COLOUR)
    x0, x1 = axis_span(img)
    mid = (x0 + x1) // 2
    tall = bars[:, :mid].any(axis=1).sum()
    short = bars[:, mid:].any(axis=1).sum()
    assert tall == pytest.approx(4 * short, rel=0.15)


def test_non_finite_values_are_left_out_and_an_empty_plot_still_draws() -> None:
    with_nan = histogram_plot([0.1, float("nan"), None, float("inf")], 0.5)
    assert mask_of(with_nan, BAR_COLOUR).any()
    empty = histogram_plot([], 0.5)
    assert not mask_of(empty, BAR_COLOUR).any()
    assert columns_of(empty, THRESHOLD_COLOUR).size > 0


def test_values_outside_zero_one_get_their_own_range() -> None:
    img = histogram_plot([10.0, 20.0, 30.0], 25.0)
    x0, x1 = axis_span(img)
    cols = columns_of(img, THRESHOLD_COLOUR)
    line_x = cols[np.argmax(mask_of(img, THRESHOLD_COLOUR)[:, cols].sum(axis=0))]
    # range is about [9.6, 30.4]: 25 lies at about 74 % of the axis
    assert abs(line_x - (x0 + 0.74 * (x1 - x0))) <= 4


def test_bins_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bins"):
        histogram_plot([0.5], bins=0)


# ---------------------------------------------------------------- per-class bars


def per_class(**rates: tuple[int, int]) -> dict[str, dict[str, float]]:
    out = {}
    for name, (passed, count) in rates.items():
        rate = passed / count
        out[name] = {"passed": passed, "count": count, "rate": rate, "lower": rate * 0.8,
                     "upper": min(1.0, rate * 1.1)}  # fmt: skip
    return out


def bar_rows(img: np.ndarray, colour: tuple[int, int, int]) -> list[tuple[int, int]]:
    """(row centre, bar length in px) of each bar drawn in ``colour``, top to bottom."""
    m = mask_of(img, colour)
    rows = np.flatnonzero(m.any(axis=1))
    bars, start = [], None
    for i, r in enumerate(rows):
        if start is None:
            start = r
        if i + 1 == len(rows) or rows[i + 1] != r + 1:
            band = m[start : r + 1]
            bars.append(((start + r) // 2, int(band.any(axis=0).sum())))
            start = None
    return bars


def test_bar_lengths_are_the_rates_and_colours_say_pass_or_fail() -> None:
    img = class_rate_plot(per_class(cat=(1, 4), dog=(3, 4)), min_rate=0.5)
    fail, ok = bar_rows(img, FAIL_COLOUR), bar_rows(img, PASS_COLOUR)
    assert len(fail) == 1 and len(ok) == 1
    assert ok[0][1] == pytest.approx(3 * fail[0][1], rel=0.05)
    assert fail[0][0] < ok[0][0], "worst class first (on top)"
    assert columns_of(img, THRESHOLD_COLOUR).size > 0


def test_without_a_requirement_bars_are_neutral_and_no_line_is_drawn() -> None:
    img = class_rate_plot(per_class(cat=(1, 2)))
    assert len(bar_rows(img, BAR_COLOUR)) == 1
    assert not mask_of(img, FAIL_COLOUR).any() and not mask_of(img, PASS_COLOUR).any()
    assert columns_of(img, THRESHOLD_COLOUR).size == 0


def test_rows_are_capped_and_the_plot_grows_with_the_classes() -> None:
    few = class_rate_plot(per_class(a=(1, 2), b=(2, 2)))
    many = class_rate_plot({f"c{i}": {"passed": i, "count": 50} for i in range(50)}, max_rows=10)
    assert many.shape[0] > few.shape[0]
    assert len(bar_rows(many, BAR_COLOUR)) == 9  # c0 (rate 0) has no bar, c1..c9 do
    assert many.shape[0] < 40 * 22  # 10 rows, not 50


def test_odd_names_and_missing_numbers_do_not_break_the_plot(rh) -> None:
    img = class_rate_plot({rh.XSS: {"passed": 1, "count": 3}, "ünï": {"count": 0}}, 0.9)
    assert img.dtype == np.uint8 and mask_of(img, FAIL_COLOUR).any()
