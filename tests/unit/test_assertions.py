"""Tests of the assert_* helpers: verdicts, messages, and the evidence they record."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

import pytest_camcheck
from pytest_camcheck import evidence
from pytest_camcheck.assertions import (
    assert_energy_in_region,
    assert_energy_outside_region,
    assert_localization_iou,
    assert_not_degenerate,
    assert_pass_rate,
    assert_peak_in_box,
)
from pytest_camcheck.errors import CamAssertionError
from pytest_camcheck.metrics import Peak, rate_result, wilson_interval
from pytest_camcheck.regions import Box, Region

H, W = 48, 64
HEAD = Box(20, 10, 40, 30)


def blob(row: float, col: float, sigma: float = 3.0, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """A Gaussian bump with its unique maximum 1.0 at ``(row, col)``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2.0 * sigma**2))


def both(arr: np.ndarray) -> list:
    return [arr, torch.from_numpy(arr.astype(np.float32))]


def two_level(inside: float, outside: float) -> np.ndarray:
    """``inside`` on HEAD's 400 pixels, ``outside`` on the other 2672."""
    cam = np.full((H, W), outside)
    cam[10:30, 20:40] = inside
    return cam


def assert_plain_json(item: dict) -> None:
    """Evidence must be plain JSON: no numpy scalars, no NaN."""
    json.dumps(item, allow_nan=False)


def no_nan_numbers(message: str) -> bool:
    return re.search(r"\bnan\b|\binf\b", message) is None


# --------------------------------------------------------------------------------------------
# peak in box


def test_peak_in_box_passes_and_records_evidence() -> None:
    for cam in both(blob(20, 30)):
        with evidence.collecting("cat/cat_001") as scope:
            peak = assert_peak_in_box(cam, HEAD)
        assert peak == Peak(20, 30, pytest.approx(1.0), 1)
        (item,) = scope.items
        assert_plain_json(item)
        assert item["kind"] == "peak_in_box" and item["passed"] is True
        assert item["sample"] == "cat/cat_001"
        assert (item["peak_row"], item["peak_col"], item["ties"]) == (20, 30, 1)
        assert item["region"] == "box"
        assert item["region_bbox"] == {"x0": 20.0, "y0": 10.0, "x1": 40.0, "y1": 30.0}
        assert item["distance"] == 0.0 and item["tolerance"] == 0.0
        assert item["map_shape"] == [H, W]


def test_peak_in_box_failure_message_and_evidence() -> None:
    cam = blob(12, 60)  # centre (60.5, 12.5): 20.5 px right of x1 = 40
    region = Region("head", (HEAD,))
    with evidence.collecting("cat/cat_001") as scope, pytest.raises(CamAssertionError) as info:
        assert_peak_in_box(cam, region)
    message = str(info.value)
    assert message == (
        "sample cat/cat_001: CAM peak at (row 12, col 60) is 20.5 px outside region 'head' "
        "Box(x0=20, y0=10, x1=40, y1=30) (tolerance 0 px). The model looks elsewhere: open the "
        "report overlay for this sample."
    )
    (item,) = scope.items
    assert item["passed"] is False and item["distance"] == pytest.approx(20.5)
    assert info.value.evidence == item
    assert_plain_json(item)


def test_peak_in_box_without_a_case_has_no_sample_prefix_and_records_nothing() -> None:
    with pytest.raises(CamAssertionError) as info:
        assert_peak_in_box(torch.from_numpy(blob(12, 60)), (20, 10, 40, 30), tolerance=20)
    assert str(info.value).startswith(
        "CAM peak at (row 12, col 60) is 20.5 px outside region 'box'"
    )
    assert "(tolerance 20 px)" in str(info.value)


def test_peak_in_box_tolerance_edge_and_squeezed_map() -> None:
    cam = torch.from_numpy(blob(12, 60))[None]  # (1, H, W)
    assert assert_peak_in_box(cam, HEAD, tolerance=20.5).col == 60
    with pytest.raises(CamAssertionError):
        assert_peak_in_box(cam, HEAD, tolerance=20.4)


def test_peak_in_box_with_a_mask_region() -> None:
    mask = np.zeros((H, W), dtype=bool)
    mask[15:20, 25:35] = True
    assert assert_peak_in_box(blob(17, 30), mask).row == 17
    with pytest.raises(CamAssertionError, match=r"region 'box' \(mask of 50 px; bbox Box\(x0=25"):
        assert_peak_in_box(blob(40, 5), torch.from_numpy(mask))


def test_peak_in_box_tied_maximum_fails_and_says_why() -> None:
    cam = np.zeros((H, W))
    cam[20:22, 30:32] = 1.0  # 2x2 plateau inside HEAD
    cam[40, 60] = 0.2
    with evidence.collecting("dog/7") as scope:
        assert_peak_in_box(cam, HEAD)  # every tied pixel is inside: a hit
    assert scope.items[0]["ties"] == 4 and scope.items[0]["ties_inside"] == 4
    cam[40, 60] = 1.0  # a fifth tied pixel outside the box
    with evidence.collecting("dog/7") as scope, pytest.raises(CamAssertionError) as info:
        assert_peak_in_box(cam, HEAD)
    message = str(info.value)
    assert message.startswith("sample dog/7: CAM peak is not unique: 5 pixels share the maximum")
    assert "(first at row 20, col 30) and only 4 of them lie within 0 px of region 'box'" in message
    assert "every tied pixel is on the region" in message
    assert scope.items[0]["ties"] == 5 and scope.items[0]["ties_inside"] == 4


# --------------------------------------------------------------------------------------------
# energy


def test_energy_in_region_pass_and_fail_by_construction() -> None:
    # inside mass 400 * 1.0, outside 2672 * 0.1: fraction 400 / 667.2 = 0.5995
    expected = 400.0 / (400.0 + 2672 * 0.1)
    for cam in both(two_level(1.0, 0.1)):
        with evidence.collecting("s1") as scope:
            got = assert_energy_in_region(cam, Region("head", (HEAD,)), min_fraction=0.5)
        assert got == pytest.approx(expected, rel=1e-6)
        item = scope.items[0]
        assert item["kind"] == "energy_in_region" and item["passed"] is True
        assert item["fraction"] == pytest.approx(expected, rel=1e-6)
        assert item["min_fraction"] == 0.5 and item["region"] == "head"
        assert_plain_json(item)
    with evidence.collecting("cat/cat_001") as scope, pytest.raises(CamAssertionError) as info:
        assert_energy_in_region(two_level(1.0, 0.1), Region("head", (HEAD,)), 0.75)
    assert str(info.value) == (
        "sample cat/cat_001: only 60.0% of the CAM energy lies inside region 'head' "
        "Box(x0=20, y0=10, x1=40, y1=30) (required at least 75.0%); 40.0% lies outside it. "
        "The model relies on evidence elsewhere: open the report overlay for this sample."
    )
    assert scope.items[0]["passed"] is False
    assert info.value.evidence["fraction"] == pytest.approx(expected)


def test_energy_message_shows_more_digits_when_close_to_the_threshold() -> None:
    cam = two_level(1.0, 0.1)  # 0.59952...
    with pytest.raises(CamAssertionError, match=r"only 59\.952% .*at least 60\.0%"):
        assert_energy_in_region(cam, HEAD, 0.6)


def test_energy_outside_region_pass_and_fail() -> None:
    watermark = Region("watermark", (HEAD,))
    for cam in both(two_level(0.1, 1.0)):
        got = assert_energy_outside_region(cam, watermark, max_fraction=0.1)
        assert got == pytest.approx(40.0 / (40.0 + 2672.0), rel=1e-6)
    with evidence.collecting("img_9") as scope, pytest.raises(CamAssertionError) as info:
        assert_energy_outside_region(two_level(1.0, 0.1), watermark, max_fraction=0.1)
    assert str(info.value) == (
        "sample img_9: 60.0% of the CAM energy lies inside region 'watermark' "
        "Box(x0=20, y0=10, x1=40, y1=30) (allowed at most 10.0%). The model looks at "
        "'watermark', which it should ignore: open the report overlay for this sample."
    )
    item = scope.items[0]
    assert item["kind"] == "energy_outside_region" and item["max_fraction"] == 0.1
    assert item["passed"] is False


# --------------------------------------------------------------------------------------------
# localization


def test_localization_iou_pass_and_fail() -> None:
    shape = (64, 80)
    for cam in both(blob(30, 40, sigma=4.0, shape=shape)):
        with evidence.collecting("s") as scope:
            iou = assert_localization_iou(cam, Box(33, 23, 48, 38), min_iou=0.9)
        assert iou == pytest.approx(1.0)
        item = scope.items[0]
        assert item["predicted_box"] == {"x0": 33.0, "y0": 23.0, "x1": 48.0, "y1": 38.0}
        assert item["threshold"] == 0.2 and item["min_iou"] == 0.9
        assert_plain_json(item)
    cam = blob(30, 40, sigma=4.0, shape=shape)
    with pytest.raises(CamAssertionError) as info:
        assert_localization_iou(cam, Region("dog", (Box(36, 23, 51, 38),)), min_iou=0.7)
    assert str(info.value) == (
        "IoU 0.67 between the CAM box Box(x0=33, y0=23, x1=48, y1=38) (largest component above "
        "20.0% of the map's maximum) and region 'dog' Box(x0=36, y0=23, x1=51, y1=38) is below "
        "the required 0.70. The model's evidence is misplaced or the wrong size: open the report "
        "overlay for this sample."
    )
    assert info.value.evidence["iou"] == pytest.approx(180.0 / 270.0)
    # a region with several boxes names the best one
    two = Region("dogs", (Box(0, 0, 10, 10), Box(36, 23, 51, 38)))
    with pytest.raises(CamAssertionError, match=r"\(best box Box\(x0=36, y0=23, x1=51, y1=38\)\)"):
        assert_localization_iou(cam, two, min_iou=0.7)
    assert assert_localization_iou(cam, two, min_iou=0.6) == pytest.approx(180.0 / 270.0)


# --------------------------------------------------------------------------------------------
# degenerate maps fail everything


DEGENERATE = {
    "zero": (np.zeros((H, W)), "it is all zero"),
    "constant": (np.full((H, W), 0.5), "it is constant (every pixel is 0.5)"),
    "nan": (np.where(blob(5, 5) > 0.5, np.nan, blob(5, 5)), "non-finite values (NaN or infinity)"),
}

CALLS = {
    "peak_in_box": lambda cam: assert_peak_in_box(cam, HEAD, tolerance=1000),
    "energy_in_region": lambda cam: assert_energy_in_region(cam, HEAD, 0.0),
    "energy_outside_region": lambda cam: assert_energy_outside_region(cam, HEAD, 1.0),
    "localization_iou": lambda cam: assert_localization_iou(cam, HEAD, 0.0),
    "not_degenerate": assert_not_degenerate,
}


@pytest.mark.parametrize("kind", sorted(CALLS))
@pytest.mark.parametrize("which", sorted(DEGENERATE))
def test_a_degenerate_map_fails_every_assertion(kind: str, which: str) -> None:
    arr, reason = DEGENERATE[which]
    for cam in both(arr):
        with evidence.collecting("cat/cat_002") as scope, pytest.raises(CamAssertionError) as info:
            CALLS[kind](cam)
        message = str(info.value)
        assert message.startswith("degenerate CAM for sample cat/cat_002: ")
        assert reason in message
        assert "no spatial evidence" in message and "check that the layer" in message
        assert no_nan_numbers(message)
        (item,) = scope.items
        assert item["kind"] == kind and item["passed"] is False and item["degenerate"] is True
        assert_plain_json(item)
    with pytest.raises(CamAssertionError, match=r"^degenerate CAM: "):
        CALLS[kind](arr)


def test_assert_not_degenerate_passes_and_returns_the_peak() -> None:
    for cam in both(blob(7, 9) - 0.2):
        with evidence.collecting() as scope:
            peak = assert_not_degenerate(cam)
        assert (peak.row, peak.col, peak.ties) == (7, 9, 1)
        item = scope.items[0]
        assert item["kind"] == "not_degenerate" and item["passed"] is True
        assert item["degenerate"] is False and item["sample"] is None
        assert item["min"] == pytest.approx(-0.2, abs=1e-6)
        assert_plain_json(item)


# --------------------------------------------------------------------------------------------
# argument validation


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: assert_peak_in_box(blob(5, 5), HEAD, tolerance=-1), ValueError, "tolerance"),
        (lambda: assert_peak_in_box(blob(5, 5), HEAD, tolerance=True), TypeError, "tolerance"),
        (lambda: assert_peak_in_box(blob(5, 5), (0, 0, 70, 10)), ValueError, "outside the 48x64"),
        (lambda: assert_energy_in_region(blob(5, 5), HEAD, 1.5), ValueError, "min_fraction"),
        (lambda: assert_energy_in_region(blob(5, 5), HEAD, -0.1), ValueError, "min_fraction"),
        (lambda: assert_energy_in_region(blob(5, 5), HEAD, "0.5"), TypeError, "min_fraction"),
        (lambda: assert_energy_outside_region(blob(5, 5), HEAD, 2), ValueError, "max_fraction"),
        (lambda: assert_localization_iou(blob(5, 5), HEAD, min_iou=1.1), ValueError, "min_iou"),
        (lambda: assert_localization_iou(blob(5, 5), HEAD, threshold=-1), ValueError, "threshold"),
        (
            lambda: assert_energy_in_region(blob(5, 5), Region("ear", (Box(5, 5, 5.2, 5.2),)), 0.1),
            ValueError,
            "region 'ear'",
        ),
        (
            lambda: assert_energy_in_region(np.zeros((3, H, W)), HEAD, 0.5),
            ValueError,
            "(3, 48, 64)",
        ),
        (lambda: assert_not_degenerate([[0, 1]]), TypeError, "numpy array or a torch tensor"),
    ],
)
def test_bad_arguments_are_the_callers_bug(call, error, text) -> None:
    with evidence.collecting("s") as scope, pytest.raises(error) as info:
        call()
    assert text in str(info.value)
    assert not isinstance(info.value, AssertionError)
    assert scope.items == []


# --------------------------------------------------------------------------------------------
# pass rate


def _result(n_cat: int, fail_cat: int, n_dog: int, fail_dog: int, **kwargs):
    outcomes, ids, classes = [], [], []
    for cls, n, fails in (("cat", n_cat, fail_cat), ("dog", n_dog, fail_dog)):
        for i in range(n):
            outcomes.append(i >= fails)
            ids.append(f"{cls}_{i}")
            classes.append(cls)
    return rate_result("pointing_game[head, tol=15]", outcomes, ids, classes, **kwargs)


def test_pass_rate_passes_and_returns_the_result() -> None:
    result = _result(40, 0, 10, 0)
    with evidence.collecting() as scope:
        assert assert_pass_rate(result, 0.9) is result
    item = scope.items[0]
    assert item["kind"] == "pass_rate" and item["passed"] is True
    assert item["bound"] == "lower" and item["min_rate"] == 0.9
    assert item["name"] == "pointing_game[head, tol=15]" and item["count"] == 50
    assert item["passed_count"] == 50
    assert item["per_class"]["dog"]["count"] == 10
    assert_plain_json(item)


def test_pass_rate_lower_bound_failure_message() -> None:
    result = _result(40, 2, 10, 3)  # 45/50; cat 38/40 = 95%, dog 7/10 = 70%
    with evidence.collecting() as scope, pytest.raises(CamAssertionError) as info:
        assert_pass_rate(result, 0.9)
    assert str(info.value) == (
        "pointing_game[head, tol=15]: lower 95% bound 78.6% < required 90.0% (45/50 passed = "
        "90.0%); worst classes: dog 70.0% (7/10); failing samples: cat_0, cat_1, dog_0, dog_1, "
        "dog_2"
    )
    assert scope.items[0]["passed"] is False
    assert info.value.evidence["lower"] == pytest.approx(wilson_interval(45, 50)[0])
    # the same result passes on the observed rate and on the upper bound
    assert assert_pass_rate(result, 0.9, bound="rate") is result
    assert assert_pass_rate(result, 0.95, bound="upper") is result


def test_pass_rate_rate_and_upper_bound_failures_and_long_failure_lists() -> None:
    result = _result(40, 15, 10, 10, missing=["bird_1", "bird_2"])  # 25/50
    with pytest.raises(CamAssertionError) as info:
        assert_pass_rate(result, 0.8, bound="rate")
    message = str(info.value)
    assert message.startswith(
        "pointing_game[head, tol=15]: pass rate 50.0% < required 80.0% (25/50 passed; 95% CI "
        "36.6%-63.4%); worst classes: dog 0.0% (0/10), cat 62.5% (25/40); failing samples: "
        "cat_0, cat_1, cat_2, cat_3, cat_4, cat_5, cat_6, cat_7, cat_8, cat_9 ... (+15 more)"
    )
    assert message.endswith(" (2 samples skipped because they lack the region)")
    with pytest.raises(CamAssertionError, match=r"upper 95% bound 63\.4% < required 80\.0%"):
        assert_pass_rate(result, 0.8, bound="upper")


def test_pass_rate_with_no_samples_fails() -> None:
    empty = rate_result("energy[head]", [], [], [], missing=["a"])
    with pytest.raises(CamAssertionError) as info:
        assert_pass_rate(empty, 0.0)
    assert str(info.value).startswith(
        "energy[head]: no samples were evaluated (1 sample skipped because they lack the region)"
    )
    assert no_nan_numbers(str(info.value))
    assert_plain_json(info.value.evidence)


def test_pass_rate_validates_its_arguments() -> None:
    result = _result(4, 0, 0, 0)
    with pytest.raises(ValueError, match="bound must be one of 'lower', 'rate', 'upper'"):
        assert_pass_rate(result, 0.5, bound="mean")
    with pytest.raises(ValueError, match="min_rate"):
        assert_pass_rate(result, 90)
    with pytest.raises(TypeError, match="RateResult"):
        assert_pass_rate(0.9, 0.5)


# --------------------------------------------------------------------------------------------
# plumbing


def test_public_names_and_tracebackhide() -> None:
    assert pytest_camcheck.assert_peak_in_box is assert_peak_in_box
    assert pytest_camcheck.RateResult.__name__ == "RateResult"
    for fn in (
        assert_peak_in_box,
        assert_energy_in_region,
        assert_energy_outside_region,
        assert_localization_iou,
        assert_pass_rate,
        assert_not_degenerate,
    ):
        assert "__tracebackhide__" in fn.__code__.co_varnames, fn.__name__


def test_cam_assertion_error_is_an_assertion_error() -> None:
    with pytest.raises(AssertionError):
        assert_energy_in_region(two_level(0.1, 1.0), HEAD, 0.5)
    assert math.isfinite(assert_energy_in_region(two_level(1.0, 0.0), HEAD, 1.0))
