"""What the report says is what the assertion used: marker tolerance, layer and min_fraction;
the run's settings in the JSON; the store computes only what the selected items need."""

from __future__ import annotations

import json
from typing import Any

import pytest

MARKERS = """
import pytest
from pytest_camcheck import assert_energy_in_region, assert_pass_rate, assert_peak_in_box


@pytest.mark.camcheck(peak_tolerance=64)
def test_peak_lenient(camcheck_case):
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["object"])


@pytest.mark.camcheck(layer="features.0")
def test_energy_on_layer(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.6)


@pytest.mark.camcheck(min_energy=0.05)
def test_energy_low_bar(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"])


@pytest.mark.camcheck(layer="features.0")
def test_gate_on_layer(camcheck):
    assert_pass_rate(camcheck.pointing_game(region="object"), min_rate=0.9)
"""

INI = """
camcheck_layer = features
camcheck_model_kwargs = {"sneaky": true}
camcheck_report = out/report.html
camcheck_report_all = true
"""


def _run(camcheck_project: Any, *args: str) -> tuple[pytest.RunResult, dict[str, Any], str]:
    project = camcheck_project(tests=MARKERS, watermark=True, model="toymodel:ColourNet", ini=INI)
    result = project.run(*args)
    data = json.loads((project.root / "out" / "report.json").read_text())
    html = (project.root / "out" / "report.html").read_text()
    return result, data, html


def _evidence(data: dict[str, Any], test: str) -> list[dict[str, Any]]:
    return [
        ev for case in data["cases"] if f"::{test}[" in case["nodeid"] for ev in case["evidence"]
    ]


@pytest.mark.parametrize("xdist", [(), ("-n", "2", "-p", "xdist")], ids=["plain", "n2"])
def test_the_report_shows_what_the_assertions_used(camcheck_project, xdist) -> None:
    result, data, html = _run(camcheck_project, *xdist)
    # the watermark model: red images look at the corner, green ones at their square
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 3 and outcomes.get("passed", 0) >= 6
    assert data["schema_version"] == 2

    lenient = _evidence(data, "test_peak_lenient")
    assert len(lenient) == 6
    assert all(ev["threshold"] == 64 and ev["threshold_name"] == "tolerance" for ev in lenient)
    assert all(ev["passed"] for ev in lenient)  # every peak is within 64 px of a 32 px image
    cards = [c for c in data["cases"] if "::test_peak_lenient[" in c["nodeid"]]
    assert {c["outcome"] for c in cards} == {"passed"}

    on_layer = [c for c in data["cases"] if "::test_energy_on_layer[" in c["nodeid"]]
    assert on_layer and all(c["layer"] == "features.0" for c in on_layer)
    assert all(ev["layer"] == "features.0" for c in on_layer for ev in c["evidence"])
    failed = [c for c in on_layer if c["outcome"] == "failed"]
    assert failed and all(", layer features.0: only" in c["message"] for c in failed)

    low = _evidence(data, "test_energy_low_bar")
    assert low and all(ev["threshold"] == 0.05 for ev in low)
    assert "(min 0.05)" in html  # the histogram drawn at the bar the assertions used

    (gate,) = data["gates"]
    assert gate["layer"] == "features.0" and gate["name"].endswith("@ features.0")
    assert gate["min_rate"] == 0.9

    summary = data["summary"]
    assert summary["model_kwargs"] == {"sneaky": True}
    assert summary["settings"]["layer"] == ["features"]
    assert summary["settings"]["peak_tolerance"] == 0.0
    assert "num_workers" in summary["settings"]
    assert "sneaky" in html  # the Run section shows the kwargs


STORE = """
import json
import os


def test_case(camcheck_case, camcheck_session):
    path = f"computed-{os.getpid()}.json"
    with open(path, "w") as f:
        json.dump(camcheck_session.store.computed(camcheck_session.config), f)
"""


def test_selecting_items_computes_only_their_batches(camcheck_project) -> None:
    project = camcheck_project(n_per_class=6, tests=STORE)  # 12 images, batches of 4
    # green_00..05 are samples 0..5, red_00..05 samples 6..11
    result = project.run("-k", "red_05 or green_01")
    result.assert_outcomes(passed=2)
    (written,) = project.root.glob("computed-*.json")
    assert json.loads(written.read_text()) == [0, 2]  # samples 1 and 11 only


BROKEN_LAYER_MODEL = """
import toymodel


def build():
    model = toymodel.good()
    model.features.register_forward_hook(lambda m, i, o: o[:, :, :0])  # an empty feature map
    return model
"""


def test_a_failing_batch_reports_once_per_item_in_one_line(camcheck_project) -> None:
    project = camcheck_project(
        tests="""
        def test_case(camcheck_case):
            pass
        """,
        model="broken:build",
        ini="camcheck_layer = features\n",
    )
    (project.root / "broken.py").write_text(BROKEN_LAYER_MODEL)
    result = project.run()
    result.assert_outcomes(errors=6)
    text = result.stdout.str()
    assert "INTERNALERROR" not in text
    assert "During handling" not in text and "Traceback" not in text
    lines = [ln for ln in text.splitlines() if ln.startswith("camcheck: computing the maps")]
    assert len(lines) == 6 and len(set(lines)) == 1  # the same kept error, one line each
    assert "batch 0 failed: IndexError" in lines[0]
