"""The HTML + JSON report end to end through the real plugin (run_and_parse, as in junitxml)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pytest_camcheck.report.records import CaseRecord, GateRecord, record_from_dict

TESTS = """
import pytest
from pytest_camcheck import assert_energy_in_region, assert_pass_rate


def test_energy(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.6)


@pytest.mark.xfail(reason="known: the watermark", strict=False)
def test_energy_xfail(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.6)


def test_gate(camcheck):
    assert_pass_rate(camcheck.pointing_game(region="object"), min_rate=0.9)
"""


class _Cards(HTMLParser):
    """Collects every <article class="card ..."> (its nodeid text) and every <img> src."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, Any]] = []
        self.images: list[str] = []
        self._depth = 0
        self._in_nodeid = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "article" and "card" in classes:
            self.cards.append({"classes": classes, "nodeid": "", "images": []})
        if tag == "code" and "nodeid" in classes and self.cards:
            self._in_nodeid = True
        if tag == "img":
            self.images.append(a.get("src") or "")
            if self.cards:
                self.cards[-1]["images"].append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self._in_nodeid = False

    def handle_data(self, data: str) -> None:
        if self._in_nodeid:
            self.cards[-1]["nodeid"] += data


@dataclass
class Parsed:
    out: Path
    result: pytest.RunResult
    html: str
    cards: list[dict[str, Any]]
    images: list[str]
    data: dict[str, Any]


@pytest.fixture
def run_and_parse(camcheck_project):
    def run(*args: str, **project_kwargs: Any) -> Parsed:
        project = camcheck_project(
            tests=TESTS, watermark=True, model="toymodel:sneaky", **project_kwargs
        )
        out = project.root / "out" / "cam-report.html"
        result = project.run(f"--camcheck-report={out}", *args, subprocess=True)
        html = out.read_text(encoding="utf-8")
        parser = _Cards()
        parser.feed(html)
        data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        return Parsed(out, result, html, parser.cards, parser.images, data)

    return run


def temp_files(root: Path) -> list[Path]:
    """The report writer's temporary files (``.<name>.<random>.tmp``) anywhere under ``root``."""
    return sorted(p for p in root.rglob(".*.tmp") if p.is_file())


# MIME type of a data URI -> the first bytes of such a file
_MAGIC = {
    "image/png": (0, b"\x89PNG\r\n\x1a\n"),
    "image/webp": (8, b"WEBP"),
    "image/jpeg": (0, b"\xff\xd8\xff"),
}


def _decode(src: str) -> np.ndarray:
    head, sep, b64 = src.partition(";base64,")
    assert sep and head.removeprefix("data:") in _MAGIC, src[:40]
    offset, magic = _MAGIC[head.removeprefix("data:")]
    raw = base64.b64decode(b64, validate=True)
    assert raw[offset : offset + len(magic)] == magic, f"not a {head}"
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.size > 0
    return img


def _check(parsed: Parsed) -> None:
    # 3 red images fail test_energy, 3 xfail; the gate fails (3/6 hits)
    parsed.result.assert_outcomes(passed=3, failed=4, xfailed=3, xpassed=3)
    nodeids = sorted(c["nodeid"] for c in parsed.cards)
    assert nodeids == sorted(
        [f"test_cam.py::test_energy[red/red_0{i}]" for i in range(3)]
        + [f"test_cam.py::test_energy_xfail[red/red_0{i}]" for i in range(3)]
    )
    assert all(len(c["images"]) >= 2 for c in parsed.cards)  # original + overlay at least
    for card in parsed.cards:  # WebP thumbnails: no larger than 256 px on the long side
        assert all(src.startswith("data:image/webp;base64,") for src in card["images"])
        assert all(max(_decode(src).shape[:2]) <= 256 for src in card["images"])
    assert len(parsed.images) > sum(len(c["images"]) for c in parsed.cards)  # + summary plots
    for src in parsed.images:
        _decode(src)
    assert parsed.html.lower().count("<script") == 1  # the card filter's own
    assert 'class="full"' not in parsed.html, "full-resolution overlays only when asked"
    data = parsed.data
    assert data["schema_version"] == 2
    summary = data["summary"]
    assert summary["model"] == "toymodel:sneaky" and summary["model_kwargs"] == {}
    assert summary["method"] == "gradcam"
    assert summary["layers"] == ["features"]  # resolved, also when workers computed it
    assert summary["settings"]["model"] == "toymodel:sneaky"
    assert summary["settings"]["method"] == "gradcam"
    cases = {c["nodeid"]: c for c in data["cases"]}
    assert len(cases) == 12  # every per-sample item: 6 of test_energy, 6 of test_energy_xfail
    failed = cases["test_cam.py::test_energy[red/red_00]"]
    assert failed["outcome"] == "failed" and failed["case_id"] == "red/red_00"
    assert "metrics" not in failed
    assert failed["message"].startswith("sample red/red_00, layer features: only ")
    # the assertion's own evidence: what it measured, on which map, against which limit
    (ev,) = failed["evidence"]
    assert (ev["check"], ev["passed"], ev["sample"]) == ("energy_in_region", False, "red/red_00")
    assert (ev["layer"], ev["method"]) == ("features", "gradcam")
    assert ev["metric"] == "energy_fraction" and ev["value"] < 0.6
    assert ev["threshold_name"] == "min_fraction" and ev["threshold"] == 0.6
    assert ev["region"]["name"] == "object" and ev["message"] == failed["message"]
    assert (failed["layer"], failed["method"]) == ("features", "gradcam")
    assert failed["severity"] > 1.0
    passed = cases["test_cam.py::test_energy[green/green_00]"]
    assert passed["outcome"] == "passed" and passed["evidence"][0]["passed"] is True
    assert passed["severity"] == 0.0 and passed["message"] is None
    assert cases["test_cam.py::test_energy_xfail[red/red_01]"]["outcome"] == "xfailed"
    for case in data["cases"]:  # every case reads back as a record of the schema
        record = record_from_dict(case)
        assert isinstance(record, CaseRecord)
        assert {k: v for k, v in record.to_dict().items() if k != "images"} == case
    (gate_data,) = data["gates"]
    gate = record_from_dict(gate_data)
    assert isinstance(gate, GateRecord) and gate.to_dict() == gate_data
    assert gate.count == 6 and gate.passed == 3 and gate.outcome == "failed"
    assert 0 <= gate.lower <= 0.5 <= gate.upper <= 1
    assert gate.layer == "features" and gate.min_rate == 0.9 and gate.bound == "lower"
    assert gate.failures == ("red/red_00", "red/red_01", "red/red_02")
    # nothing but the report next to it: no temporary file left behind
    assert sorted(p.name for p in parsed.out.parent.iterdir()) == [
        "cam-report.html",
        "cam-report.json",
    ]


def test_report_plain(run_and_parse) -> None:
    parsed = run_and_parse()
    _check(parsed)
    parsed.result.stdout.fnmatch_lines(["*camcheck report: *cam-report.html*"])


def test_report_under_xdist_has_the_same_cards(run_and_parse) -> None:
    plain = run_and_parse()
    dist = run_and_parse("-n", "2")
    _check(dist)
    assert sorted(c["nodeid"] for c in dist.cards) == sorted(c["nodeid"] for c in plain.cards)


def test_report_all_adds_passing_cases_and_caps(run_and_parse) -> None:
    parsed = run_and_parse("--camcheck-report-all", "-o", "camcheck_report_max_cases=4")
    assert len(parsed.cards) == 4
    assert "8 more cases not shown" in parsed.html  # 12 cases, 4 cards: the line says so


def test_full_images_put_each_overlay_at_full_resolution_one_click_away(run_and_parse) -> None:
    parsed = run_and_parse("--camcheck-report-full-images")
    assert len(parsed.cards) == 6
    assert parsed.html.count('<details class="full">') == 6
    for card in parsed.cards:
        # original, overlay (one layer: no strip), then the overlay at full resolution; these
        # images are 32 px, so "full" is enlarged as on the card and shows the same overlay
        assert len(card["images"]) == 3
        original, overlay, full = (_decode(src).astype(int) for src in card["images"])
        assert full.shape == overlay.shape
        assert np.abs(full - overlay).mean() < 8 < np.abs(full - original).mean()
    # the JSON sidecar is as without the option (pictures never go there); its summary lists
    # the setting, as it lists every resolved setting
    plain = run_and_parse()
    assert parsed.data["summary"]["settings"]["report_full_images"] is True
    assert plain.data["summary"]["settings"]["report_full_images"] is False
    for data in (parsed.data, plain.data):
        data.pop("generated")
        data["summary"]["settings"].pop("report_full_images")
        data["summary"]["settings"].pop("report")  # each run writes to its own folder
    assert parsed.data == plain.data


def test_user_strings_are_escaped(camcheck_project) -> None:
    project = camcheck_project(
        tests="""
        from pytest_camcheck import assert_energy_in_region

        def test_x(camcheck_case):
            assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], 0.99)
        """,
        watermark=True,
        model="toymodel:sneaky",
    )
    # a class folder whose name is markup
    data = project.root / "data"
    evil = "<script>alert(1)</script>"
    csv = data / "annotations.csv"
    (data / "red").rename(data / evil.replace("/", "_"))
    csv.write_text(
        csv.read_text()
        .replace("red/", evil.replace("/", "_") + "/")
        .replace(",red,", "," + evil.replace("/", "_") + ",")
    )
    out = project.root / "r.html"
    result = project.run(f"--camcheck-report={out}", subprocess=True)
    assert result.ret == 1
    html = out.read_text(encoding="utf-8")
    assert "<script>alert" not in html and html.count("<script") == 1  # the filter's own
    assert "&lt;script&gt;alert(1)&lt;_script&gt;" in html
    assert temp_files(project.root) == []


def test_a_failed_write_leaves_no_temporary_file(camcheck_project) -> None:
    project = camcheck_project(tests=TESTS, watermark=True, model="toymodel:sneaky")
    out = project.root / "out" / "cam-report.html"
    # during the run, the JSON file's place is taken by a folder: the report's temporary files
    # are written at the end of the session, and the move of the second one fails
    project.pytester.makepyfile(
        test_zz_block=f"""
        from pathlib import Path

        def test_block():
            (Path({str(out.with_suffix(".json"))!r}) / "keep").mkdir(parents=True)
        """
    )
    result = project.run(f"--camcheck-report={out}", subprocess=True)
    result.assert_outcomes(passed=4, failed=4, xfailed=3, xpassed=3)  # the results stand
    result.stdout.fnmatch_lines(
        [
            "*camcheck report NOT written*",
            f"warning: could not write the camcheck report to {out}:*--camcheck-report*",
        ]
    )
    assert [p.name for p in out.with_suffix(".json").iterdir()] == ["keep"]
    assert temp_files(project.root) == []


def test_overlay_attached_to_pytest_html(camcheck_project) -> None:
    pytest.importorskip("pytest_html", reason="pytest-html is in the test extra")
    project = camcheck_project(
        tests="""
        from pytest_camcheck import assert_energy_in_region

        def test_x(camcheck_case):
            assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], 0.6)
        """,
        watermark=True,
        model="toymodel:sneaky",
    )
    out = project.root / "html-report.html"
    result = project.run(f"--html={out}", "--self-contained-html", subprocess=True)
    result.assert_outcomes(passed=3, failed=3)
    html = out.read_text(encoding="utf-8")
    # one overlay per failing case, embedded by pytest-html with its own MIME type
    for i in range(3):
        assert f"CAM overlay red/red_0{i}" in html
    assert html.count("data:image/webp;base64,") == 3
    assert "CAM overlay green/green_00" not in html
