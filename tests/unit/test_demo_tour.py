"""The demo tour (``make demo``): its verdicts, the index page, and the photos it uses. The
parts themselves run as the examples do (tests/examples); here they are faked."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_camcheck.demo import tour
from pytest_camcheck.demo.photos import CLASSES, PHOTOS, SCENES, make_scene, write_dataset

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="test_demo" name="test_a[x]"/>
<testcase classname="test_demo" name="test_b[x]"><failure message="no"/></testcase>
<testcase classname="test_demo" name="test_pointing_game_rate"><failure message="no"/></testcase>
<testcase classname="test_demo" name="test_c"><skipped message="why"/></testcase>
</testsuite></testsuites>
"""


def result(name: str, code: int, failed: list[str], report: Path) -> tour.PartResult:
    counts = {"passed": 3, "failed": len(failed), "error": 0, "skipped": 0}
    return tour.PartResult(name, code, counts, failed, report, 1.0)


def test_junit_counts(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text(JUNIT)
    counts, failed = tour._junit_counts(tmp_path / "junit.xml")
    assert counts == {"passed": 1, "failed": 2, "error": 0, "skipped": 1}
    assert failed == ["test_demo::test_b[x]", "test_demo::test_pointing_game_rate"]


def test_verdicts_want_exactly_the_expected_outcome(tmp_path: Path) -> None:
    ok = result("photos", 0, [], tmp_path / "r.html")
    assert tour._all_pass([ok]) is None
    assert "expected every check to pass, got exit code 1" in (
        tour._all_pass([result("photos", 1, ["t::x"], tmp_path / "r.html")]) or ""
    )
    clean = result("clean model", 0, [], tmp_path / "c.html")
    caught = result("watermark model", 1, ["t::test_pointing_game_rate"], tmp_path / "w.html")
    assert tour._clever_hans([clean, caught]) is None
    missed = result("watermark model", 0, [], tmp_path / "w.html")
    assert "should be caught" in (tour._clever_hans([clean, missed]) or "")
    no_gate = result("watermark model", 1, ["t::test_peak_on_object[x]"], tmp_path / "w.html")
    assert "gate should fail" in (tour._clever_hans([clean, no_gate]) or "")
    dirty = result("clean model", 1, ["t::x"], tmp_path / "c.html")
    assert "clean model should pass" in (tour._clever_hans([dirty, caught]) or "")


def test_the_index_links_each_report_and_says_what_was_unexpected(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "report.html").write_text("<html></html>")
    good = tour.Part(
        "1. Photos",
        "the <story>",
        [result("photos", 0, [], tmp_path / "photos" / "report.html")],
        tour._all_pass,
    )
    bad = tour.Part(
        "2. Other",
        "story",
        [result("other", 1, ["t::x"], tmp_path / "missing.html")],
        tour._all_pass,
    )
    page = tour.write_index(tmp_path, [good, bad]).read_text()
    assert '<a href="photos/report.html">photos report</a>' in page
    assert "the &lt;story&gt;" in page  # escaped
    assert '<p class="ok">As expected.</p>' in page
    assert "Unexpected: other: expected every check to pass" in page
    assert "other: no report" in page


def test_no_browser_no_screenshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "r.html").write_text("<html></html>")
    monkeypatch.setattr(tour.shutil, "which", lambda name: None)
    assert tour.screenshot(tmp_path / "r.html", tmp_path / "shot.png") is False
    assert not (tmp_path / "shot.png").exists()


def test_scenes_have_exact_boxes_inside_their_photo() -> None:
    image, regions = make_scene(SCENES[0], tile=64)
    assert image.size == (128, 128)
    assert set(regions) == set(SCENES[0])
    for name, boxes in regions.items():
        photo, obj = boxes["photo"], boxes["object"]
        assert photo.width == photo.height == 64
        assert photo.x0 <= obj.x0 < obj.x1 <= photo.x1 and photo.y0 <= obj.y0 < obj.y1 <= photo.y1
        # the tile holds that photo: its pixels are the photo's (not black canvas)
        tile = image.crop((int(photo.x0), int(photo.y0), int(photo.x1), int(photo.y1)))
        assert max(tile.convert("L").getextrema()) > 50, name


def test_the_photo_dataset_layout(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "data", scenes=False)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["annotations.csv", *(p.name for p in PHOTOS)]
    )
    rows = (root / "annotations.csv").read_text().splitlines()
    assert rows[0] == "image,label,region,x0,y0,x1,y1"
    assert rows[1] == "cat/chelsea.png,cat,object,0,0,390,300"
    assert set(CLASSES) == {p.name for p in PHOTOS} and CLASSES["cat"] == 285
