"""Tests of pytest_camcheck.metrics on synthetic maps whose answers are known by construction."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from pytest_camcheck.metrics import (
    Peak,
    RateResult,
    as_map,
    as_region,
    degenerate_reason,
    energy_fraction,
    find_peak,
    is_degenerate_map,
    localization_box,
    localization_iou,
    pointing_hit,
    rate_result,
    region_distance,
    region_mask,
    wilson_interval,
)
from pytest_camcheck.regions import Box, Region

H, W = 48, 64


def blob(row: float, col: float, sigma: float = 3.0, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """A Gaussian bump with its unique maximum 1.0 at ``(row, col)``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2.0 * sigma**2))


def both(arr: np.ndarray) -> list:
    """The same map as numpy float64 and as a torch float32 tensor."""
    return [arr, torch.from_numpy(arr.astype(np.float32))]


# --------------------------------------------------------------------------------------------
# as_map


def test_as_map_accepts_numpy_and_torch_and_squeezes_a_leading_one() -> None:
    arr = blob(10, 20)
    t = torch.from_numpy(arr).requires_grad_(True)
    for cam in (arr, t, t[None], arr[None], torch.from_numpy(arr).to(torch.bfloat16)):
        out = as_map(cam)
        assert out.shape == (H, W)
        assert out.dtype == np.float64
        assert np.unravel_index(np.argmax(out), out.shape) == (10, 20)
    assert as_map(np.ones((3, 4), dtype=np.int64)).dtype == np.float64


@pytest.mark.parametrize(
    ("cam", "error", "text"),
    [
        (np.zeros((2, 5, 5)), ValueError, "(2, 5, 5)"),
        (torch.zeros(1, 1, 5, 5), ValueError, "(1, 1, 5, 5)"),
        (np.zeros(5), ValueError, "2-D"),
        (np.zeros((0, 5)), ValueError, "empty"),
        ([[0.0, 1.0], [1.0, 0.0]], TypeError, "list"),
        (np.zeros((3, 3), dtype=complex), TypeError, "complex"),
        (np.array([["a", "b"]]), TypeError, "real numbers"),
    ],
)
def test_as_map_rejects_what_is_not_one_map(cam, error, text) -> None:
    with pytest.raises(error, match=None) as info:
        as_map(cam)
    assert text in str(info.value)


# --------------------------------------------------------------------------------------------
# degeneracy and peaks


@pytest.mark.parametrize(
    ("arr", "reason"),
    [
        (np.zeros((H, W)), "all zero"),
        (np.full((H, W), 0.5), "constant (every pixel is 0.5)"),
        (np.where(blob(5, 5) > 0.5, np.nan, blob(5, 5)), "non-finite"),
        (np.where(blob(5, 5) > 0.99, np.inf, 0.0), "1 non-finite value (NaN or infinity)"),
        (-blob(5, 5), "no positive value"),
    ],
)
def test_degenerate_maps_are_detected_in_numpy_and_torch(arr, reason) -> None:
    for cam in both(arr):
        assert is_degenerate_map(cam)
        assert reason in degenerate_reason(cam)
        assert find_peak(cam) is None


def test_a_real_map_is_not_degenerate_even_with_negative_values() -> None:
    arr = blob(12, 30) - 0.3
    for cam in both(arr):
        assert not is_degenerate_map(cam)
        assert degenerate_reason(cam) is None


def test_find_peak_locates_a_blob_and_counts_ties() -> None:
    for cam in both(blob(17, 41) * 0.8):
        peak = find_peak(cam)
        assert peak == Peak(row=17, col=41, value=pytest.approx(0.8), ties=1)
    plateau = np.zeros((H, W))
    plateau[10:12, 30:33] = 1.0
    plateau[40, 60] = 0.5
    peak = find_peak(torch.from_numpy(plateau))
    assert (peak.row, peak.col, peak.ties) == (10, 30, 6)
    assert peak.to_dict() == {"row": 10, "col": 30, "value": 1.0, "ties": 6}


# --------------------------------------------------------------------------------------------
# regions


def test_as_region_accepts_every_kind_of_region() -> None:
    box = Box(2, 3, 6, 8)
    expected = box.mask(10, 12)
    mask_np = expected.copy()
    forms = [
        Region("head", (box,)),
        box,
        (2, 3, 6, 8),
        [2.0, 3.0, 6.0, 8.0],
        np.array([2, 3, 6, 8]),
        torch.tensor([2.0, 3.0, 6.0, 8.0]),
        mask_np,
        torch.from_numpy(mask_np),
        mask_np.astype(np.uint8),
        mask_np.astype(int).tolist(),
    ]
    for form in forms:
        region = as_region(form, "head")
        assert isinstance(region, Region)
        assert region.name == "head"
        np.testing.assert_array_equal(region.to_mask(10, 12), expected)
    same = Region("x", (box,))
    assert as_region(same, "ignored") is same


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        ((1, 2, 3), ValueError, "4 numbers"),
        ((5, 5, 1, 1), ValueError, "inverted"),
        (np.array([[0.0, 0.3], [0.7, 1.0]]), ValueError, "boolean"),
        (np.zeros((2, 3, 3), dtype=bool), ValueError, "2-D"),
        ("head", TypeError, "str"),
        (3.0, TypeError, "float"),
    ],
)
def test_as_region_rejects_bad_regions_with_the_name(value, error, text) -> None:
    with pytest.raises(error) as info:
        as_region(value, "head")
    assert text in str(info.value)
    if error is ValueError:
        assert "head" in str(info.value)


def test_region_mask_rejects_boxes_outside_the_map_and_empty_regions() -> None:
    with pytest.raises(ValueError, match=r"region 'head'.*outside the 48x64 map.*Box.scaled"):
        region_mask(as_region((50, 10, 70, 20), "head"), (H, W))
    with pytest.raises(ValueError, match=r"region 'dot'.*covers no pixel"):
        region_mask(as_region((10.1, 10.1, 10.4, 10.4), "dot"), (H, W))
    with pytest.raises(ValueError, match=r"region 'blank'.*covers no pixel"):
        region_mask(as_region(np.zeros((H, W), dtype=bool), "blank"), (H, W))
    # half a pixel of slack for rounding
    assert region_mask(as_region((-0.4, 0, 64.4, 48), "all"), (H, W)).all()


def test_region_mask_resizes_a_mask_of_another_resolution() -> None:
    small = np.zeros((6, 8), dtype=bool)
    small[1:3, 2:4] = True
    mask = region_mask(as_region(small), (H, W))
    assert mask.sum() == 16 * 16
    assert mask[8:24, 16:32].all()


def test_region_distance_for_boxes_and_masks() -> None:
    box_region = as_region(Box(10, 10, 20, 20), "b")
    mask_region = as_region(Box(10, 10, 20, 20).mask(H, W), "m")
    for region in (box_region, mask_region):
        mask = region.to_mask(H, W)
        assert region_distance(region, mask, 15, 15) == 0.0
    # pixel (15, 25): centre x = 25.5; the box edge is x = 20, the last mask pixel centre 19.5
    assert region_distance(box_region, box_region.to_mask(H, W), 15, 25) == pytest.approx(5.5)
    assert region_distance(mask_region, mask_region.to_mask(H, W), 15, 25) == pytest.approx(6.0)
    # diagonal: from (25.5, 25.5) to the corner (20, 20)
    assert region_distance(box_region, box_region.to_mask(H, W), 25, 25) == pytest.approx(
        math.hypot(5.5, 5.5)
    )


# --------------------------------------------------------------------------------------------
# pointing game


def test_pointing_hit_inside_and_outside_a_box_in_numpy_and_torch() -> None:
    head = Box(30, 10, 50, 30)
    for cam in both(blob(20, 40)):
        assert pointing_hit(cam, head)
        assert pointing_hit(cam, Region("head", mask=head.mask(H, W)))
        assert pointing_hit(torch.as_tensor(cam)[None], (30, 10, 50, 30))
    for cam in both(blob(40, 5)):
        assert not pointing_hit(cam, head)


def test_pointing_hit_tolerance_edge() -> None:
    # peak at (row 20, col 55): centre x = 55.5, exactly 5.5 px right of the box edge x1 = 50
    cam = blob(20, 55)
    head = Box(30, 10, 50, 30)
    assert not pointing_hit(cam, head)
    assert not pointing_hit(cam, head, tolerance=5.49)
    assert pointing_hit(cam, head, tolerance=5.5)
    assert pointing_hit(torch.from_numpy(cam), head, tolerance=15)
    # a mask is measured to its pixel centres: the last one is at x = 49.5, 6 px away
    mask = Region("head", mask=head.mask(H, W))
    assert not pointing_hit(cam, mask, tolerance=5.5)
    assert pointing_hit(cam, mask, tolerance=6.0)


def test_pointing_hit_tied_maximum_hits_only_when_every_tie_is_inside() -> None:
    cam = np.zeros((H, W))
    cam[15:17, 35:37] = 1.0  # a 2x2 plateau well inside the box
    cam[40, 5] = 0.3
    for c in both(cam):
        assert find_peak(c).ties == 4
        assert pointing_hit(c, Box(30, 10, 50, 30))
    cam[45, 5] = 1.0  # one more tied pixel far outside: the tie-break must not decide
    for c in both(cam):
        assert find_peak(c).ties == 5
        assert not pointing_hit(c, Box(30, 10, 50, 30))
        assert pointing_hit(c, Box(30, 10, 50, 30), tolerance=100)
    cam[15, 35] = 1.01  # one pixel now wins
    assert pointing_hit(cam, Box(30, 10, 50, 30))


@pytest.mark.parametrize("arr", [np.zeros((H, W)), np.full((H, W), 0.7), np.full((H, W), np.nan)])
def test_pointing_hit_on_a_degenerate_map_is_a_miss(arr) -> None:
    for cam in both(arr):
        assert not pointing_hit(cam, Box(0, 0, W, H), tolerance=1000)


def test_pointing_hit_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        pointing_hit(blob(5, 5), Box(0, 0, 10, 10), tolerance=-1)
    with pytest.raises(TypeError, match="tolerance"):
        pointing_hit(blob(5, 5), Box(0, 0, 10, 10), tolerance="5")
    with pytest.raises(ValueError, match="outside the 48x64 map"):
        pointing_hit(blob(5, 5), Box(0, 0, 100, 10))


# --------------------------------------------------------------------------------------------
# energy


def test_energy_fraction_by_construction() -> None:
    cam = np.full((40, 40), 0.25)
    cam[0:10, 10:20] = 1.0  # 100 px of 1.0 inside; 1500 px of 0.25 outside
    expected = 100.0 / (100.0 + 1500 * 0.25)
    for c in both(cam):
        assert energy_fraction(c, (10, 0, 20, 10)) == pytest.approx(expected, rel=1e-6)
        assert energy_fraction(c, Region("m", mask=Box(10, 0, 20, 10).mask(40, 40))) == (
            pytest.approx(expected, rel=1e-6)
        )
        assert energy_fraction(c, (0, 0, 40, 40)) == pytest.approx(1.0)
    # a region of two boxes sums their union
    two = Region("two", (Box(10, 0, 20, 10), Box(0, 30, 10, 40)))
    assert energy_fraction(cam, two) == pytest.approx((100.0 + 25.0) / 475.0)


def test_energy_fraction_clips_negative_values() -> None:
    cam = np.full((20, 20), -5.0)
    cam[0:5, 0:5] = 2.0
    cam[10, 10] = 2.0
    assert energy_fraction(cam, (0, 0, 5, 5)) == pytest.approx(50.0 / 52.0)


def test_energy_fraction_of_a_degenerate_map_is_nan() -> None:
    for arr in (np.zeros((H, W)), np.full((H, W), 3.0), np.full((H, W), np.inf)):
        for cam in both(arr):
            assert math.isnan(energy_fraction(cam, (0, 0, 10, 10)))
    with pytest.raises(ValueError, match="region 'region'"):
        energy_fraction(np.zeros((H, W)), (0, 60, 10, 70))


# --------------------------------------------------------------------------------------------
# localization


def test_localization_box_of_a_gaussian_matches_the_threshold_radius() -> None:
    # threshold 0.2 keeps offsets d with exp(-d^2 / 32) >= 0.2, i.e. |d| <= 7.18 -> 7 px
    for cam in both(blob(30, 40, sigma=4.0, shape=(64, 80))):
        assert localization_box(cam, threshold=0.2) == Box(33, 23, 48, 38)
    # threshold 0.5: |d| <= 4 * sqrt(2 ln 2) = 4.71 -> 4 px
    assert localization_box(blob(30, 40, sigma=4.0, shape=(64, 80)), 0.5) == Box(36, 26, 45, 35)


def test_localization_box_takes_the_largest_8_connected_component() -> None:
    cam = np.zeros((20, 20))
    cam[2, 2] = cam[3, 3] = cam[4, 4] = 0.5  # 3 px, connected only diagonally
    cam[10, 10] = cam[10, 11] = 1.0  # 2 px holding the maximum
    cam[15, 15] = 0.9  # a third, single-pixel component
    assert localization_box(cam) == Box(2, 2, 5, 5)
    assert localization_box(torch.from_numpy(cam)) == Box(2, 2, 5, 5)
    # equal sizes: the component with more mass wins
    cam2 = np.zeros((20, 20))
    cam2[2, 2:5] = 0.5
    cam2[12, 2:5] = 0.6
    cam2[18, 18] = 1.0
    assert localization_box(cam2) == Box(2, 12, 5, 13)


def test_localization_box_of_a_degenerate_map_is_none() -> None:
    assert localization_box(np.zeros((H, W))) is None
    assert localization_box(torch.full((H, W), float("nan"))) is None
    with pytest.raises(ValueError, match="threshold"):
        localization_box(blob(5, 5), threshold=1.5)


def test_localization_iou_of_a_thresholded_blob_vs_its_box() -> None:
    cam = blob(30, 40, sigma=4.0, shape=(64, 80))
    iou, predicted = localization_iou(cam, Box(33, 23, 48, 38))
    assert iou == pytest.approx(1.0)
    assert predicted == Box(33, 23, 48, 38)
    # shifted by 3 px: intersection 12 x 15, union 2 * 225 - 180
    iou, _ = localization_iou(torch.from_numpy(cam), (36, 23, 51, 38))
    assert iou == pytest.approx(180.0 / 270.0)
    # a region with several boxes: the best one counts
    region = Region("dogs", (Box(0, 0, 10, 10), Box(36, 23, 51, 38)))
    assert localization_iou(cam, region)[0] == pytest.approx(180.0 / 270.0)
    iou, predicted = localization_iou(np.zeros((64, 80)), (0, 0, 10, 10))
    assert math.isnan(iou) and predicted is None
    with pytest.raises(ValueError, match="outside"):
        localization_iou(cam, (70, 0, 90, 10))


# --------------------------------------------------------------------------------------------
# Wilson interval and rate results


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(45, 50) == pytest.approx((0.7864, 0.9565), abs=1e-3)
    lower, upper = wilson_interval(0, 10)
    assert lower == 0.0
    assert upper == pytest.approx(1.96**2 / (10 + 1.96**2), abs=1e-3)  # 0.2775
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # symmetry and width ordering
    lo, up = wilson_interval(7, 30)
    lo2, up2 = wilson_interval(23, 30)
    assert (lo, up) == pytest.approx((1 - up2, 1 - lo2))
    lo99, up99 = wilson_interval(7, 30, confidence=0.99)
    assert lo99 < lo < 7 / 30 < up < up99


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((5, 3), ValueError),
        ((-1, 3), ValueError),
        ((1, 3, 1.0), ValueError),
        ((True, 3), TypeError),
    ],
)
def test_wilson_interval_rejects_bad_arguments(args, error) -> None:
    with pytest.raises(error):
        wilson_interval(*args)


def _dataset() -> tuple[list[bool], list[str], list[str | None], list[float]]:
    outcomes, ids, classes, values = [], [], [], []
    for i in range(40):
        outcomes.append(i not in (3, 17))
        ids.append(f"cat/{i:03d}")
        classes.append("cat")
        values.append(0.9 if i not in (3, 17) else 0.1)
    for i in range(10):
        outcomes.append(i < 7)
        ids.append(f"dog/{i:03d}")
        classes.append("dog" if i < 8 else None)
        values.append(0.8 if i < 7 else float("nan"))
    return outcomes, ids, classes, values


def test_rate_result_counts_interval_and_per_class_breakdown() -> None:
    outcomes, ids, classes, values = _dataset()
    result = rate_result(
        "pointing_game[head, tol=15]",
        outcomes,
        ids,
        classes,
        values=values,
        threshold=0.5,
        missing=("bird/001",),
    )
    assert (result.passed, result.count, result.rate) == (45, 50, 0.9)
    assert (result.lower, result.upper) == pytest.approx((0.7864, 0.9565), abs=1e-3)
    assert result.failures == ("cat/003", "cat/017", "dog/007", "dog/008", "dog/009")
    assert result.missing == ("bird/001",)
    assert result.threshold == 0.5
    assert len(result.values) == 50
    assert list(result.per_class) == ["(unlabelled)", "cat", "dog"]
    dog = result.per_class["dog"]
    assert (dog.name, dog.passed, dog.count, dog.failures) == ("dog", 7, 8, ("dog/007",))
    assert (dog.lower, dog.upper) == wilson_interval(7, 8)
    assert dog.per_class == {} and dog.missing == ()
    assert dog.values[:7] == (0.8,) * 7 and math.isnan(dog.values[7])
    unl = result.per_class["(unlabelled)"]
    assert (unl.passed, unl.count, unl.rate) == (0, 2, 0.0)


def test_rate_result_str_and_to_dict() -> None:
    outcomes, ids, classes, values = _dataset()
    result = rate_result("pointing_game[head, tol=15]", outcomes, ids, classes, values=values)
    assert str(result) == "pointing_game[head, tol=15]: 45/50 = 90.0% (95% CI 78.6%-95.7%)"
    data = result.to_dict()
    text = json.dumps(data, allow_nan=False)  # nan became None
    assert json.loads(text)["values"][-1] is None
    assert data["per_class"]["cat"]["passed"] == 38
    assert data["per_class"]["cat"]["count"] == 40
    assert data["failures"][0] == "cat/003"
    assert data["confidence"] == 0.95
    with_missing = rate_result("x", [True], ["a"], [None], missing=["b", "c"], confidence=0.9)
    assert str(with_missing).startswith("x: 1/1 = 100.0% (90% CI ")
    assert str(with_missing).endswith("; 2 skipped (region missing)")


def test_rate_result_of_nothing_and_bad_lengths() -> None:
    empty = rate_result("energy[head]", [], [], [])
    assert empty.count == 0 and math.isnan(empty.rate)
    assert (empty.lower, empty.upper) == (0.0, 1.0)
    assert str(empty) == "energy[head]: 0/0 = n/a (95% CI 0.0%-100.0%)"
    assert empty.to_dict()["rate"] is None
    assert isinstance(empty, RateResult)
    with pytest.raises(ValueError, match="same length"):
        rate_result("x", [True, False], ["a"], [None, None])
    with pytest.raises(ValueError, match="values"):
        rate_result("x", [True, False], ["a", "b"], [None, None], values=[0.5])


def test_metrics_import_neither_torch_nor_cv2() -> None:
    code = (
        "import sys, pytest_camcheck.metrics, pytest_camcheck.assertions; "
        "bad = [m for m in ('torch', 'cv2') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
