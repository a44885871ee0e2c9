"""Tests of the assert_* helpers: verdicts, messages, and the evidence they record."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

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
from pytest_camcheck.report.records import Evidence, PeakInfo, RegionInfo

H, W = 48, 64
HEAD = Box(20, 10, 40, 30)
HEAD_BBOX = {"x0": 20.0, "y0": 10.0, "x1": 40.0, "y1": 30.0}
HEAD_SHARE = 400 / (H * W)


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


def assert_plain_json(item: Evidence | dict) -> None:
    """Evidence must be plain JSON once converted: no numpy scalars, no NaN."""
    data = item.to_dict() if isinstance(item, Evidence) else item
    json.dumps(data, allow_nan=False)
    if isinstance(item, Evidence):
        assert Evidence.from_dict(json.loads(json.dumps(data))) == item


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
        assert isinstance(item, Evidence)
        assert_plain_json(item)
        assert item.check == "peak_in_box" and item.passed is True
        assert item.sample == "cat/cat_001"
        assert item.layer is None and item.method is None and item.target is None
        assert (item.peak.row, item.peak.col, item.peak.ties) == (20, 30, 1)
        assert item.peak.value == pytest.approx(1.0)
        assert item.region == RegionInfo("box", HEAD_BBOX, pytest.approx(HEAD_SHARE))
        assert item.metric == "distance_px" and item.value == 0.0
        assert item.threshold_name == "tolerance" and item.threshold == 0.0
        assert item.message is None and item.degenerate is None


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
    assert item.passed is False and item.value == pytest.approx(20.5)
    assert item.message == message
    assert item.region.name == "head"
    assert item.peak == PeakInfo(12, 60, pytest.approx(1.0), 1)
    assert info.value.evidence == item.to_dict()
    assert info.value.evidence["value"] == pytest.approx(20.5)
    assert_plain_json(item)
    assert_plain_json(info.value.evidence)


def test_peak_in_box_without_a_case_has_no_sample_prefix_and_records_nothing() -> None:
    with pytest.raises(CamAssertionError) as info:
        assert_peak_in_box(torch.from_numpy(blob(12, 60)), (20, 10, 40, 30), tolerance=20)
    assert str(info.value).startswith(
        "CAM peak at (row 12, col 60) is 20.5 px outside region 'box'"
    )
    assert "(tolerance 20 px)" in str(info.value)
    assert evidence.current_scope() is None
    assert info.value.evidence["sample"] is None and info.value.evidence["threshold"] == 20.0


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
    assert scope.items[0].peak.ties == 4 and scope.items[0].details["ties_inside"] == 4
    assert scope.items[0].passed is True
    cam[40, 60] = 1.0  # a fifth tied pixel outside the box
    with evidence.collecting("dog/7") as scope, pytest.raises(CamAssertionError) as info:
        assert_peak_in_box(cam, HEAD)
    message = str(info.value)
    assert message.startswith("sample dog/7: CAM peak is not unique: 5 pixels share the maximum")
    assert "(first at row 20, col 30) and only 4 of them lie within 0 px of region 'box'" in message
    assert "every tied pixel is on the region" in message
    (item,) = scope.items
    assert item.peak.ties == 5 and item.details["ties_inside"] == 4
    assert item.passed is False and item.value is None  # no distance for a tied peak
    details = info.value.evidence["details"]
    assert details["ties_inside"] == 4
    # outside a camcheck test the map's layer is unknown: only the chance of a random hit
    assert details["random_peak_hit"] == pytest.approx(item.region.area_fraction)
    assert "map_cell_px" not in details


# --------------------------------------------------------------------------------------------
# energy


def test_energy_in_region_pass_and_fail_by_construction() -> None:
    # inside mass 400 * 1.0, outside 2672 * 0.1: fraction 400 / 667.2 = 0.5995
    expected = 400.0 / (400.0 + 2672 * 0.1)
    for cam in both(two_level(1.0, 0.1)):
        with evidence.collecting("s1") as scope:
            got = assert_energy_in_region(cam, Region("head", (HEAD,)), min_fraction=0.5)
        assert got == pytest.approx(expected, rel=1e-6)
        (item,) = scope.items
        assert item.check == "energy_in_region" and item.passed is True
        assert item.metric == "energy_fraction"
        assert item.value == pytest.approx(expected, rel=1e-6)
        assert item.threshold_name == "min_fraction" and item.threshold == 0.5
        assert item.region == RegionInfo("head", HEAD_BBOX, pytest.approx(HEAD_SHARE))
        assert (item.peak.row, item.peak.col) == (10, 20)  # first of the tied inside pixels
        assert_plain_json(item)
    with evidence.collecting("cat/cat_001") as scope, pytest.raises(CamAssertionError) as info:
        assert_energy_in_region(two_level(1.0, 0.1), Region("head", (HEAD,)), 0.75)
    assert str(info.value) == (
        "sample cat/cat_001: only 60.0% of the CAM energy lies inside region 'head' "
        "Box(x0=20, y0=10, x1=40, y1=30) (required at least 75.0%); 40.0% lies outside it. "
        "The model relies on evidence elsewhere: open the report overlay for this sample."
    )
    assert scope.items[0].passed is False and scope.items[0].threshold == 0.75
    assert info.value.evidence["value"] == pytest.approx(expected)
    assert info.value.evidence["threshold"] == 0.75


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
    (item,) = scope.items
    assert item.check == "energy_outside_region" and item.passed is False
    assert item.threshold_name == "max_fraction" and item.threshold == 0.1
    assert item.value == pytest.approx(400.0 / 667.2)
    assert item.region.name == "watermark"


# --------------------------------------------------------------------------------------------
# localization


def test_localization_iou_pass_and_fail() -> None:
    shape = (64, 80)
    for cam in both(blob(30, 40, sigma=4.0, shape=shape)):
        with evidence.collecting("s") as scope:
            iou = assert_localization_iou(cam, Box(33, 23, 48, 38), min_iou=0.9)
        assert iou == pytest.approx(1.0)
        (item,) = scope.items
        assert item.check == "localization_iou" and item.passed is True
        assert item.details["predicted_box"] == {"x0": 33.0, "y0": 23.0, "x1": 48.0, "y1": 38.0}
        assert item.details["matched_box"] == item.details["predicted_box"]
        assert item.details["map_threshold"] == 0.2
        assert item.metric == "iou" and item.value == pytest.approx(1.0)
        assert item.threshold_name == "min_iou" and item.threshold == 0.9
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
    assert info.value.evidence["value"] == pytest.approx(180.0 / 270.0)
    assert info.value.evidence["threshold"] == 0.7
    # a region with several boxes names the best one
    two = Region("dogs", (Box(0, 0, 10, 10), Box(36, 23, 51, 38)))
    with pytest.raises(CamAssertionError, match=r"\(best box Box\(x0=36, y0=23, x1=51, y1=38\)\)"):
        assert_localization_iou(cam, two, min_iou=0.7)
    with evidence.collecting("s") as scope:
        assert assert_localization_iou(cam, two, min_iou=0.6) == pytest.approx(180.0 / 270.0)
    assert scope.items[0].details["matched_box"] == {"x0": 36.0, "y0": 23.0, "x1": 51.0, "y1": 38.0}


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
        assert item.check == kind and item.passed is False
        assert isinstance(item.degenerate, str) and reason in item.degenerate
        assert item.value is None and item.message == message
        assert item.margin() == 1.0  # a degenerate map is as bad as a miss can be
        assert_plain_json(item)
    with pytest.raises(CamAssertionError, match=r"^degenerate CAM: "):
        CALLS[kind](arr)


def test_assert_not_degenerate_passes_and_returns_the_peak() -> None:
    for cam in both(blob(7, 9) - 0.2):
        with evidence.collecting() as scope:
            peak = assert_not_degenerate(cam)
        assert (peak.row, peak.col, peak.ties) == (7, 9, 1)
        (item,) = scope.items
        assert item.check == "not_degenerate" and item.passed is True
        assert item.degenerate is None and item.sample is None
        assert item.details["min"] == pytest.approx(-0.2, abs=1e-6)
        assert item.details["map_shape"] == [H, W]
        assert item.metric == "max" and item.value == pytest.approx(0.8, abs=1e-6)
        assert item.peak == PeakInfo(7, 9, pytest.approx(0.8, abs=1e-6), 1)
        assert_plain_json(item)


# --------------------------------------------------------------------------------------------
# provenance: which of the case's maps an assertion measured


def case_maps() -> dict[str, torch.Tensor]:
    """Two float32 maps of one sample: layer3 peaks off HEAD, layer4 on it."""
    return {
        "layer3": torch.from_numpy(blob(12, 60).astype(np.float32)),
        "layer4": torch.from_numpy(blob(20, 30).astype(np.float32)),
    }


def test_an_assertion_on_one_of_the_cases_maps_names_its_layer() -> None:
    maps = case_maps()
    m3, m4 = maps["layer3"], maps["layer4"]
    for cam in (m3, m3.numpy(), m3[None]):  # the tensor, its numpy view, a (1, H, W) view
        with (
            evidence.collecting(
                "s1", maps=maps, method="gradcam", target=1, run_method="gradcam"
            ) as scope,
            pytest.raises(CamAssertionError) as info,
        ):
            assert_peak_in_box(cam, HEAD)
        message = str(info.value)
        assert message.startswith("sample s1, layer layer3: CAM peak at (row 12, col 60)")
        assert "(gradcam)" not in message  # the run's own method is not repeated
        (item,) = scope.items
        assert (item.sample, item.layer, item.method, item.target) == ("s1", "layer3", "gradcam", 1)
        assert info.value.evidence["layer"] == "layer3"
    with evidence.collecting("s1", maps=maps, method="gradcam", run_method="gradcam") as scope:
        assert_peak_in_box(m4, HEAD)
    assert scope.items[0].layer == "layer4" and scope.items[0].passed is True


def test_a_map_of_another_method_is_named_with_it() -> None:
    maps = case_maps()
    with (
        evidence.collecting("s1", maps=maps, method="gradcam", run_method="cam"),
        pytest.raises(CamAssertionError) as info,
    ):
        assert_energy_in_region(maps["layer3"], HEAD, 0.5)
    assert str(info.value).startswith("sample s1, layer layer3 (gradcam): only ")
    assert info.value.evidence["method"] == "gradcam"


def test_a_degenerate_case_map_names_its_layer() -> None:
    maps = {"layer3": torch.zeros(H, W)}
    with (
        evidence.collecting("s1", maps=maps, method="gradcam", run_method="gradcam") as scope,
        pytest.raises(CamAssertionError) as info,
    ):
        assert_not_degenerate(maps["layer3"])
    assert str(info.value).startswith("degenerate CAM for sample s1, layer layer3: it is all zero")
    assert scope.items[0].layer == "layer3"


def test_a_map_the_test_made_itself_has_no_layer() -> None:
    maps = case_maps()
    copy = maps["layer3"].clone()  # the same numbers, other memory
    derived = maps["layer3"] * 1.0
    for cam in (copy, derived, copy.numpy(), blob(12, 60)):
        with (
            evidence.collecting("s1", maps=maps, method="gradcam", run_method="gradcam") as scope,
            pytest.raises(CamAssertionError) as info,
        ):
            assert_peak_in_box(cam, HEAD)
        assert str(info.value).startswith("sample s1: CAM peak at (row 12, col 60)")
        (item,) = scope.items
        assert item.layer is None and item.method is None and item.target is None
    # outside any scope nothing is known about the map, not even the sample
    with pytest.raises(CamAssertionError) as info:
        assert_peak_in_box(maps["layer3"], HEAD)
    assert str(info.value).startswith("CAM peak at")
    assert info.value.evidence["layer"] is None


# --------------------------------------------------------------------------------------------
# configured defaults


DEFAULTS = {"peak_tolerance": 5.0, "min_energy": 0.2}


def test_peak_in_box_uses_the_configured_tolerance() -> None:
    cam = blob(20, 44)  # centre (44.5, 20.5): 4.5 px right of x1 = 40
    with evidence.collecting("s1", defaults=DEFAULTS) as scope:
        assert assert_peak_in_box(cam, HEAD).col == 44
    (item,) = scope.items
    assert item.passed is True and item.threshold == 5.0
    assert item.value == pytest.approx(4.5)
    # an explicit tolerance wins, also 0 (which is falsy)
    for explicit in (4, 0):
        with (
            evidence.collecting("s1", defaults=DEFAULTS) as scope,
            pytest.raises(CamAssertionError, match=rf"\(tolerance {explicit} px\)"),
        ):
            assert_peak_in_box(cam, HEAD, tolerance=explicit)
        assert scope.items[0].threshold == float(explicit)
    # outside a camcheck test the fallback is 0 px
    with pytest.raises(CamAssertionError, match=r"\(tolerance 0 px\)") as info:
        assert_peak_in_box(cam, HEAD)
    assert info.value.evidence["threshold"] == 0.0
    # a scope that configures nothing falls back too
    with evidence.collecting("s1") as scope, pytest.raises(CamAssertionError):
        assert_peak_in_box(cam, HEAD)
    assert scope.items[0].threshold == 0.0


def test_energy_in_region_uses_the_configured_min_energy() -> None:
    cam = two_level(1.0, 0.3)  # 400 / (400 + 801.6) = 0.333
    expected = 400.0 / (400.0 + 2672 * 0.3)
    with evidence.collecting("s1", defaults=DEFAULTS) as scope:
        assert assert_energy_in_region(cam, HEAD) == pytest.approx(expected)
    assert scope.items[0].threshold == 0.2 and scope.items[0].passed is True
    with (
        evidence.collecting("s1", defaults=DEFAULTS) as scope,
        pytest.raises(CamAssertionError, match=r"required at least 40\.0%"),
    ):
        assert_energy_in_region(cam, HEAD, min_fraction=0.4)
    assert scope.items[0].threshold == 0.4
    with evidence.collecting("s1", defaults={"min_energy": 0.9}) as scope:
        assert_energy_in_region(cam, HEAD, min_fraction=0.0)  # explicit 0 wins over 0.9
    assert scope.items[0].threshold == 0.0
    # outside a camcheck test the fallback is one half
    with pytest.raises(CamAssertionError, match=r"required at least 50\.0%") as info:
        assert_energy_in_region(cam, HEAD)
    assert info.value.evidence["threshold"] == 0.5


def test_a_configured_default_is_validated_like_an_argument() -> None:
    with (
        evidence.collecting("s1", defaults={"min_energy": 1.5, "peak_tolerance": -1}),
        pytest.raises(ValueError, match="min_fraction"),
    ):
        assert_energy_in_region(two_level(1.0, 0.1), HEAD)
    with (
        evidence.collecting("s1", defaults={"peak_tolerance": -1}),
        pytest.raises(ValueError, match="tolerance"),
    ):
        assert_peak_in_box(blob(20, 30), HEAD)


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
    (item,) = scope.items
    assert item.check == "pass_rate" and item.passed is True
    assert item.details["bound"] == "lower" and item.metric == "lower"
    assert item.threshold_name == "min_rate" and item.threshold == 0.9
    assert item.value == pytest.approx(result.lower)
    summary = item.details["result"]
    assert summary["name"] == "pointing_game[head, tol=15]" and summary["count"] == 50
    assert summary["passed"] == 50
    assert summary["per_class"]["dog"]["count"] == 10
    assert_plain_json(item)


def test_pass_rate_evidence_carries_the_results_provenance() -> None:
    values = [0.1 * i for i in range(10)]
    result = rate_result(
        "energy[head] @ layer3",
        [v >= 0.5 for v in values],
        [f"s{i}" for i in range(10)],
        ["cat"] * 10,
        values=values,
        threshold=0.5,
        layer="layer3",
        method="gradcam",
        metric="energy_fraction",
        threshold_name="min_fraction",
    )
    with evidence.collecting() as scope:
        assert assert_pass_rate(result, 0.4, bound="rate") is result
    (item,) = scope.items
    assert (item.layer, item.method) == ("layer3", "gradcam")
    assert item.metric == "rate" and item.value == pytest.approx(0.5)
    assert item.threshold == 0.4 and item.details["bound"] == "rate"
    assert item.details["result"] == result.to_dict()
    assert item.details["result"]["values"] == pytest.approx(values)
    assert item.details["result"]["metric"] == "energy_fraction"
    with pytest.raises(CamAssertionError) as info:
        assert_pass_rate(result, 0.9, bound="upper")
    ev = info.value.evidence
    assert (ev["layer"], ev["method"], ev["threshold"]) == ("layer3", "gradcam", 0.9)
    assert ev["details"]["result"] == json.loads(json.dumps(result.to_dict()))


def test_pass_rate_lower_bound_failure_message() -> None:
    result = _result(40, 2, 10, 3)  # 45/50; cat 38/40 = 95%, dog 7/10 = 70%
    with evidence.collecting() as scope, pytest.raises(CamAssertionError) as info:
        assert_pass_rate(result, 0.9)
    assert str(info.value) == (
        "pointing_game[head, tol=15]: lower 95% bound 78.6% < required 90.0% (45/50 passed = "
        "90.0%); worst classes: dog 70.0% (7/10); failing samples: cat_0, cat_1, dog_0, dog_1, "
        "dog_2"
    )
    assert scope.items[0].passed is False
    assert info.value.evidence["value"] == pytest.approx(wilson_interval(45, 50)[0])
    assert info.value.evidence["details"]["result"]["lower"] == pytest.approx(
        wilson_interval(45, 50)[0]
    )
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
    result = info.value.evidence["details"]["result"]
    assert result["count"] == 0 and result["rate"] is None  # nan is stored as null
    assert result["missing"] == ["a"]


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


FAILING_CALLS = {
    "peak_in_box": lambda: assert_peak_in_box(blob(12, 60), HEAD),
    "tied_peak": lambda: assert_peak_in_box(np.ones((H, W)) - np.eye(H, W), HEAD),
    "energy_in_region": lambda: assert_energy_in_region(two_level(0.1, 1.0), HEAD, 0.5),
    "energy_outside_region": lambda: assert_energy_outside_region(two_level(1, 0.1), HEAD, 0.1),
    "localization_iou": lambda: assert_localization_iou(blob(40, 5), HEAD, 0.5),
    "not_degenerate": lambda: assert_not_degenerate(np.zeros((H, W))),
    "degenerate_energy": lambda: assert_energy_in_region(np.zeros((H, W)), HEAD, 0.5),
    "pass_rate": lambda: assert_pass_rate(_result(4, 4, 0, 0), 0.5),
}


def test_public_names() -> None:
    assert pytest_camcheck.assert_peak_in_box is assert_peak_in_box
    assert pytest_camcheck.assert_pass_rate is assert_pass_rate
    assert pytest_camcheck.RateResult.__name__ == "RateResult"


@pytest.mark.parametrize("name", sorted(FAILING_CALLS))
def test_a_failure_shows_the_test_not_camchecks_internals(name: str) -> None:
    # pytest hides frames that set __tracebackhide__: what the user sees ends in their test
    with pytest.raises(CamAssertionError) as info:
        FAILING_CALLS[name]()
    shown = info.traceback.filter(info)
    assert {Path(str(entry.path)).name for entry in shown} == {Path(__file__).name}
    assert len(info.traceback) > len(shown), "the helper's own frames were there to hide"


def test_cam_assertion_error_is_an_assertion_error() -> None:
    with pytest.raises(AssertionError):
        assert_energy_in_region(two_level(0.1, 1.0), HEAD, 0.5)
    assert math.isfinite(assert_energy_in_region(two_level(1.0, 0.0), HEAD, 1.0))
