"""The report draws each sanity / shortcut check with its plot, from the gate record alone."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from pytest_camcheck.metrics import rate_result
from pytest_camcheck.report.html import build_view, render_html
from pytest_camcheck.report.plots import THRESHOLD_COLOUR, check_plot, mean_maps_plot
from pytest_camcheck.report.records import Evidence, GateRecord

CURVE = [round(1 - k / 10, 2) for k in range(11)]
EXTRAS = {
    "randomization": {
        "kind": "randomization",
        "steps": ["fc", "features.6", "features.4"],
        "spearman": [
            {"mean": 0.3, "q25": 0.1, "q75": 0.5},
            {"mean": 0.1, "q25": 0.0, "q75": 0.2},
            {"mean": None, "q25": None, "q75": None},
        ],
        "ssim": [{"mean": 0.4, "q25": 0.3, "q75": 0.5}] * 3,
        "max_similarity": 0.5,
    },
    "deletion": {
        "kind": "deletion",
        "fractions": [k / 10 for k in range(11)],
        "cam": [v * v for v in CURVE],
        "random": CURVE,
        "auc_cam": 0.35,
        "auc_random": 0.5,
    },
    "insertion": {
        "kind": "insertion",
        "fractions": [k / 10 for k in range(11)],
        "cam": CURVE[::-1],
        "random": CURVE[::-1],
        "auc_cam": None,
        "auc_random": None,
    },
    "occlusion": {
        "kind": "occlusion",
        "region": "object",
        "region_drop": [0.9, 0.8, None],
        "background_drop": [0.1, 0.85, 0.2],
        "min_drop": 0.1,
    },
    "spatial_bias": {
        "kind": "spatial_bias",
        "size": [16, 16],
        "window": 4,
        "max_share": 0.5,
        "classes": {
            "cat": {
                "count": 10,
                "share": 0.9,
                "hot_spot": [12, 12, 16, 16],
                "judged": True,
                "mean_map": [[0.0] * 8 for _ in range(7)] + [[0.0] * 7 + [1.0]],
                "scale": 0.5,
            },
            "dog": {
                "count": 10,
                "share": 0.2,
                "hot_spot": [0, 0, 4, 4],
                "judged": True,
                "mean_map": [[0.5] * 8 for _ in range(8)],
                "scale": 0.5,
            },
        },
    },
}


@pytest.mark.parametrize("kind", sorted(EXTRAS))
def test_each_check_has_a_plot(kind: str) -> None:
    img = check_plot(EXTRAS[kind], title=f"{kind} @ features")
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] >= 150 and img.shape[1] >= 300
    assert (img != 255).any(axis=2).mean() > 0.02  # something was drawn


def test_an_unknown_check_has_no_plot() -> None:
    with pytest.raises(ValueError, match="no plot for a check of kind 'nope'"):
        check_plot({"kind": "nope"})


def test_the_hot_spot_that_breaks_the_limit_is_outlined_red() -> None:
    img = mean_maps_plot(EXTRAS["spatial_bias"]["classes"], 0.5, tile=64, columns=2)
    red = np.all(img == np.array(THRESHOLD_COLOUR, np.uint8), axis=2)
    rows, cols = np.nonzero(red)
    assert rows.size  # cat's corner: 12..16 of 16 -> the bottom-right quarter of its tile
    assert cols.min() >= 8 + 48 - 2 and cols.max() <= 8 + 64 + 1
    img_ok = mean_maps_plot(EXTRAS["spatial_bias"]["classes"], 0.95, tile=64, columns=2)
    assert not np.all(img_ok == np.array(THRESHOLD_COLOUR, np.uint8), axis=2).any()


def _gate(kind: str) -> dict:
    result = rate_result(
        f"{kind}[x] @ features",
        [True, False, True],
        ["a", "b", "c"],
        ["cat", "cat", "dog"],
        values=[0.1, 0.9, 0.2],
        threshold=0.5,
        extra=EXTRAS[kind],
    )
    ev = Evidence("pass_rate", False, threshold=0.9, details={"result": result.to_dict()})
    return GateRecord.from_evidence(f"test_x.py::test_{kind}", ev, "failed").to_dict()


def test_the_report_shows_each_check_with_its_plot_first() -> None:
    records = [_gate(kind) for kind in sorted(EXTRAS)]
    view, counts = build_view({}, records, generated="now")
    assert counts["gates"] == len(EXTRAS)
    captions = {g.name.split("[")[0]: g.plots[0].caption for g in view.gates}
    assert captions == {
        "deletion": "deletion curves: map order vs random order",
        "insertion": "insertion curves: map order vs random order",
        "occlusion": "probability drop: region vs background patches",
        "randomization": "similarity along the randomisation cascade",
        "spatial_bias": "mean map per class, hot spot outlined",
    }
    for gate in view.gates:
        uri = str(gate.plots[0].uri)
        png = base64.b64decode(uri.split(",", 1)[1])
        drawn = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert drawn is not None and drawn.shape[1] >= 300
    html = render_html(view)
    assert html.count("mean map per class, hot spot outlined") >= 1
    assert "deletion curves: map order vs random order" in html


def test_the_report_only_draws_what_the_record_carries() -> None:
    calls = []

    def plot_png(kind: str, **kwargs) -> None:
        calls.append((kind, kwargs.get("extra")))
        return None

    build_view({}, [_gate("deletion")], generated="now", plot_png=plot_png)
    drawn = [extra for kind, extra in calls if kind == "check"]
    assert drawn == [EXTRAS["deletion"]]  # the record's numbers, as they were
    plain = _gate("deletion")
    plain["extra"] = {}
    calls.clear()
    build_view({}, [plain], generated="now", plot_png=plot_png)
    assert "check" not in [kind for kind, _ in calls]
