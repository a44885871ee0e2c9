"""The report's regression blocks: a no_regression gate, a map-similarity gate and a case compared
with its baseline, from records made by the real assertions; the JSON sidecar carries each
gate's verdict, rates and bounds, and no pictures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from pytest_camcheck import evidence
from pytest_camcheck.assertions import assert_no_regression
from pytest_camcheck.compare import SimilarityResult, paired_comparison
from pytest_camcheck.errors import CamAssertionError
from pytest_camcheck.metrics import rate_result
from pytest_camcheck.regions import Box, Region
from pytest_camcheck.report.html import build_view, render_html, write_report
from pytest_camcheck.report.pictures import comparison_tiles, difference_image
from pytest_camcheck.report.records import GateRecord, record_from_dict

IDS = [f"s{i:02d}" for i in range(20)]


def no_regression_gate() -> GateRecord:
    mine = [i >= 6 for i in range(20)]  # the candidate broke s00..s05
    theirs = [True] * 20
    cmp = paired_comparison(
        rate_result("pointing_game[head, tol=0] @ l4", mine, IDS, ["c"] * 20, layer="l4"),
        rate_result("pointing_game[head, tol=0] @ l4", theirs, IDS, ["c"] * 20, layer="l4"),
    )
    with evidence.collecting() as scope, pytest.raises(CamAssertionError):
        assert_no_regression(cmp, max_drop=0.05)
    (ev,) = scope.items
    gate = GateRecord.from_evidence("t.py::test_gate", ev, "failed")
    tiles = [{"caption": "reference", "png": PNG}, {"caption": "candidate", "png": PNG}]
    return GateRecord(
        **{
            **gate.__dict__,
            "images": {"samples": [{"id": "s00", "kind": "broken", "tiles": tiles}]},
        }
    )


def similarity_gate() -> GateRecord:
    outcomes = [i != 3 for i in range(20)]
    base = rate_result(
        "baseline_comparison[ssim>=0.8] @ l4",
        outcomes,
        IDS,
        ["c"] * 20,
        values=[0.3 if i == 3 else 0.95 for i in range(20)],
        threshold=0.8,
        metric="ssim",
        threshold_name="min_ssim",
        notes=["1 sample added since the baseline, not compared: s99"],
    )
    moved = (
        {
            "id": "s03",
            "passed": False,
            "ssim": 0.3,
            "peak_shift": 40.0,
            "rank_corr": 0.1,
            "energy_change": {"head": -0.4},
            "target_changed": False,
        },
    )
    result = SimilarityResult.build(
        base, source="tests/camcheck-baselines/l4", min_ssim=0.8, moved=moved, added=("s99",)
    )
    from pytest_camcheck.report.records import Evidence

    ev = Evidence(
        check="pass_rate",
        passed=False,
        metric="lower",
        value=0.7,
        threshold_name="min_rate",
        threshold=0.95,
        message="baseline_comparison: lower bound too low",
        details={"bound": "lower", "result": result.to_dict()},
    )
    gate = GateRecord.from_evidence("t.py::test_maps", ev, "failed")
    tiles = [{"caption": c, "png": PNG} for c in ("baseline", "current", "difference")]
    return GateRecord(
        **{**gate.__dict__, "images": {"samples": [{"id": "s03", "kind": "moved", "tiles": tiles}]}}
    )


def _png() -> str:
    from pytest_camcheck.report.render import encode_png_b64

    return encode_png_b64(np.zeros((4, 4, 3), dtype=np.uint8))


PNG = _png()


def test_gate_records_round_trip_with_their_regression_fields() -> None:
    for gate in (no_regression_gate(), similarity_gate()):
        again = record_from_dict(json.loads(json.dumps(gate.to_dict())))
        assert again == gate


def test_the_no_regression_gate_carries_rates_bounds_and_broken_samples() -> None:
    gate = no_regression_gate()
    assert gate.check == "no_regression" and gate.outcome == "failed"
    comp = gate.comparison
    assert comp["candidate"]["rate"] == pytest.approx(0.7) and comp["reference"]["rate"] == 1.0
    assert comp["broken"] == IDS[:6] and comp["fixed"] == []
    assert comp["max_drop"] == 0.05 and comp["bound"] == "lenient"
    assert comp["measured"] == pytest.approx(comp["upper"]) and comp["upper"] < -0.05
    assert gate.failures == tuple(IDS[:6]) and "broken by the candidate" in (gate.message or "")


def test_the_page_shows_the_regression_blocks(tmp_path: Path) -> None:
    case = {
        "kind": "case",
        "nodeid": "t.py::test_case[s03]",
        "case_id": "s03",
        "outcome": "failed",
        "images": {
            "overlay": PNG,
            "compare": [
                {
                    "role": "baseline",
                    "tiles": [{"caption": c, "png": PNG} for c in ("baseline", "current")],
                }
            ],
        },
    }
    records = [case, no_regression_gate().to_dict(), similarity_gate().to_dict()]
    view, _ = build_view({}, records, plot_png=lambda *a, **k: None)
    html = render_html(view)
    assert "Candidate vs reference" in html and "Map similarity to the baseline" in html
    assert "Broken by the candidate" in html and "s00, s01, s02, s03, s04, s05" in html
    assert "Exact McNemar p" in html and "Newcombe, paired" in html
    assert "Added since the baseline (not compared)" in html and "s99" in html
    assert html.count('alt="s00: reference"') == 1 and 'alt="s03: difference"' in html
    assert 'alt="s03: baseline"' in html  # the case card's baseline | current
    assert "energy in head" in html and "-40.0 points" in html

    path = write_report(tmp_path / "r.html", {}, records)
    data = json.loads(path.with_suffix(".json").read_text())
    gates = {g["nodeid"]: g for g in data["gates"]}
    assert all("images" not in g for g in data["gates"])
    assert gates["t.py::test_gate"]["comparison"]["broken"] == IDS[:6]
    assert gates["t.py::test_maps"]["similarity"]["moved"][0]["id"] == "s03"
    assert data["cases"][0]["case_id"] == "s03" and "images" not in data["cases"][0]


def test_comparison_pictures() -> None:
    rgb = np.full((32, 32, 3), 128, dtype=np.uint8)
    before = np.zeros((32, 32))
    before[4:12, 4:12] = 1.0
    after = np.zeros((32, 32))
    after[20:28, 20:28] = 1.0
    diff = difference_image(rgb, after, before)
    assert diff.shape[2] == 3
    scale = diff.shape[0] // 32  # enlarged by a whole factor
    gained = diff[24 * scale, 24 * scale]
    lost = diff[8 * scale, 8 * scale]
    assert gained[0] > 200 and gained[2] < 60  # red where the map gained evidence
    assert lost[2] > 200 and lost[0] < 60  # blue where it lost it
    regions = {"head": Region("head", (Box(4, 4, 12, 12),))}
    tiles = comparison_tiles(rgb, after, before, regions, other_label="baseline")
    assert [t["caption"] for t in tiles] == [
        "baseline",
        "current",
        "difference (current − baseline)",
    ]
    for tile in tiles:  # encoded pictures (the overlays in the report's image format)
        head = base64.b64decode(tile["png"])[:12]
        assert head.startswith(b"\x89PNG") or (head[:4] == b"RIFF" and head[8:] == b"WEBP")
    two = comparison_tiles(rgb, after, before, other_label="reference", difference=False)
    assert [t["caption"] for t in two] == ["reference", "current"]
