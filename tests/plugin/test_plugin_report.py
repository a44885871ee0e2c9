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
        return Parsed(result, html, parser.cards, parser.images, data)

    return run


def _decode(src: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    raw = base64.b64decode(src[len(prefix) :], validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
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
    for card in parsed.cards:  # thumbnails: no larger than 256 px on the long side
        assert all(max(_decode(src).shape[:2]) <= 256 for src in card["images"])
    assert len(parsed.images) > sum(len(c["images"]) for c in parsed.cards)  # + summary plots
    for src in parsed.images:
        _decode(src)
    assert "<script" not in parsed.html.lower()
    data = parsed.data
    assert data["schema_version"] == 1
    assert data["summary"]["model"] == "toymodel:sneaky"
    assert data["summary"]["method"] == "gradcam"
    assert data["summary"]["layers"] == ["features"]  # resolved, also when workers computed it
    cases = {c["nodeid"]: c for c in data["cases"]}
    failed = cases["test_cam.py::test_energy[red/red_00]"]
    assert failed["outcome"] == "failed" and failed["case_id"] == "red/red_00"
    assert failed["metrics"]["energy_in[object]"] < 0.6
    assert "red/red_00" in failed["message"]
    assert cases["test_cam.py::test_energy_xfail[red/red_01]"]["outcome"] == "xfailed"
    (gate,) = data["gates"]
    assert gate["count"] == 6 and gate["passed"] == 3 and gate["outcome"] == "failed"
    assert 0 <= gate["lower"] <= 0.5 <= gate["upper"] <= 1


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
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;_script&gt;" in html
    assert Path(str(out) + ".tmp").exists() is False


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
    # one overlay per failing case, embedded by pytest-html
    for i in range(3):
        assert f"CAM overlay red/red_0{i}" in html
    assert "CAM overlay green/green_00" not in html
