"""The HTML page and its JSON sidecar: content, order, escaping, schema, atomic writes."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from pytest_camcheck.errors import ConfigError
from pytest_camcheck.report import html as report_html
from pytest_camcheck.report.html import SCHEMA_VERSION, build_view, write_report
from pytest_camcheck.report.records import (
    CaseRecord,
    Evidence,
    GateRecord,
    RegionInfo,
    record_from_dict,
)


def write_and_read(rh, tmp_path: Path, records, summary=None, **kwargs):
    path = write_report(tmp_path / "report.html", summary or rh.SUMMARY, records, **kwargs)
    return rh.read_report(path)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def table_rows(table) -> dict[str, str]:
    """``{th text: td text}`` of a two-column table."""
    return {
        tr.find_all("th")[0].all_text(): tr.find_all("td")[0].all_text()
        for tr in table.find_all("tr")
        if tr.find_all("th") and tr.find_all("td")
    }


class PlotCalls:
    """A ``plot_png`` for :func:`build_view` that records what it was asked to draw."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, kind: str, **kwargs) -> None:
        self.calls.append((kind, kwargs))
        return None

    def histograms(self) -> list[dict]:
        return [kwargs for kind, kwargs in self.calls if kind == "histogram"]


# ---------------------------------------------------------------- content


def test_one_card_per_failing_case_with_its_pictures_and_numbers(rh, tmp_path) -> None:
    records = [
        rh.make_case("t.py::test_cam[a]", severity=1.2),
        rh.make_case("t.py::test_cam[b]", severity=1.4),
        rh.make_case("t.py::test_cam[ok]", outcome="passed", images={}),
    ]
    assert [r.severity for r in records] == [pytest.approx(1.2), pytest.approx(1.4), 0.0]
    report = write_and_read(rh, tmp_path, records)
    assert report.card_nodeids() == ["t.py::test_cam[b]", "t.py::test_cam[a]"]
    card = report.cards[0]
    text = card.all_text()
    for expected in (
        "FAILED",
        "severity 1.4",
        # the message, as the failing assertion wrote it
        "sample b, layer layer4: only 10.0% of the CAM energy lies inside region 'head'",
        "t.py::test_cam[b]",
    ):
        assert expected in text, expected
    assert card.find_all("h3", "case-id")[0].all_text() == "b"
    facts = table_rows(card.find_all("table", "facts")[0])
    assert facts == {
        "Label": "3 (cat)",
        "Prediction": "5 (dog), p = 0.910",
        "CAM target": "3",
        "Method": "gradcam",
        "Layer": "layer4",
        "All layers": "layer4, layer3",
        "Test settings": "layer = layer4, method = gradcam, min_energy = 0.5",
        "Image file": "data/b.png",
        "Test": "t.py::test_cam[b]",
    }
    # the evidence exactly as the assertion recorded it: its metric, its threshold, the region
    (row,) = card.find_all("table", "evidence")[0].find_all("tr")[1:]
    check, verdict, _ = (td.all_text() for td in row.find_all("td"))
    assert (check, verdict) == ("energy_in_region", "FAILED")
    lines = [div.all_text() for div in row.find_all("div")]
    assert lines[:4] == [
        "energy_fraction: 0.1",
        "min_fraction: 0.5",
        "region: head (x0=4, y0=20, x1=24, y1=44), 15.6% of the map",
        "peak: row 12, col 48",
    ]
    assert {"layer: layer4", "method: gradcam", "target: 3"} <= set(lines)
    assert not any(line.startswith(("sample:", "message:")) for line in lines)
    # original + overlay + 2 strip tiles, every one a decodable WebP of the size it declares
    images = card.find_all("img")
    assert len(images) == 4
    shapes = [rh.decode_image(img.attrs["src"], "image/webp").shape for img in images]
    assert shapes[0] == shapes[1] == (144, 192, 3)  # the 48 x 64 image, enlarged 3 x
    assert all(max(s[:2]) <= 256 for s in shapes)
    for img, shape in zip(images, shapes):
        assert (int(img.attrs["height"]), int(img.attrs["width"])) == shape[:2]
        assert (img.attrs["loading"], img.attrs["decoding"]) == ("lazy", "async")
    captions = [c.all_text() for c in card.find_all("figcaption")]
    assert captions == ["image", "gradcam on layer4", "layer4", "layer3"]


def test_summary_shows_the_run_and_dashes_for_missing_keys(rh, tmp_path) -> None:
    summary = {"model": "torchvision:resnet18", "layers": ["layer3", "layer4"], "seed": 7}
    report = write_and_read(rh, tmp_path, [rh.make_case()], summary=summary)
    rows = table_rows(report.dom.find_all("table", "summary")[0])
    assert rows["Model"] == "torchvision:resnet18"
    assert rows["Layer(s)"] == "layer3, layer4"
    assert rows["Weights"] == rows["Device"] == rows["Thresholds"] == "—"
    assert rows["Model kwargs"] == rows["Settings"] == "—"
    assert rows["seed"] == "7"  # unknown keys are listed too

    full = write_and_read(rh, tmp_path, [rh.make_case()])
    rows = table_rows(full.dom.find_all("table", "summary")[0])
    assert rows["Weights"] == "weights/resnet18.pt"
    assert rows["Thresholds"] == "peak_tolerance = 15, min_energy = 0.5"
    assert rows["Model kwargs"] == "num_classes = 10"
    assert rows["Settings"] == "batch_size = 8, num_workers = 0"
    assert rows["Versions"] == "python 3.11, torch 2.x, pytest-camcheck 0.1.0"
    assert full.data["summary"]["model_kwargs"] == {"num_classes": 10}


def test_counts_and_gates_with_intervals_per_class_rates_and_plots(rh, tmp_path) -> None:
    gate = rh.make_gate()
    assert isinstance(gate, GateRecord) and gate.outcome == "failed"
    records = [
        rh.make_case("t.py::a"),
        rh.make_case("t.py::b", outcome="xfailed"),
        rh.make_case("t.py::c", outcome="passed", images={}),
        gate,
    ]
    report = write_and_read(rh, tmp_path, records)
    counts = {
        el.find_all("span")[0].all_text(): el.find_all("b")[0].all_text()
        for el in report.dom.find_all("div", "count")
    }
    assert counts["cases"] == "3"
    assert counts["failed"] == "1" and counts["passed"] == "1" and counts["xfailed"] == "1"
    assert counts["gates"] == "1" and counts["gates failed"] == "1"

    section = report.dom.find_all("section", "gate")[0]
    text = section.all_text()
    for expected in (
        "energy[head] @ layer4",
        "45/50 = 90.0%",
        "95% CI 78.6% – 95.7%",
        "lower bound ≥ 90.0%; per-sample threshold 0.5",
        "cat/cat_000, cat/cat_001, cat/cat_002, dog/dog_000, dog/dog_001",
        "lower 95% bound 78.6% < required 90.0%",  # the assertion's own message
    ):
        assert expected in text, expected
    rows = section.find_all("table", "per-class")[0].find_all("tr")[1:]
    assert [r.find_all("td")[0].all_text() for r in rows] == ["cat", "dog"]
    assert "27/30" in rows[0].all_text() and "CI 74.4% – 96.5%" in rows[0].all_text()
    assert "18/20" in rows[1].all_text() and "CI 69.9% – 97.2%" in rows[1].all_text()
    plots = section.find_all("img")
    assert len(plots) == 2  # histogram + per-class bars
    for img in plots:
        assert rh.decode_png(img.attrs["src"]).shape[1] == 480


def test_a_gates_histogram_shows_its_per_sample_values_at_its_threshold(rh) -> None:
    result = rh.gate_result()
    gate = rh.make_gate(result=result)
    assert gate.values == result.values and gate.threshold == 0.5
    assert (gate.layer, gate.method, gate.metric) == ("layer4", "gradcam", "energy_fraction")
    plots = PlotCalls()
    build_view({}, [gate], plot_png=plots)
    (hist,) = plots.histograms()
    assert hist["values"] == list(result.values) and hist["threshold"] == 0.5
    (bars,) = [kwargs for kind, kwargs in plots.calls if kind == "classes"]
    assert set(bars["per_class"]) == {"cat", "dog"} and bars["min_rate"] == 0.9


def overview_cases(rh, runs) -> list[CaseRecord]:
    """One case per ``(outcome, class, energy in 'head')``; 'tail' holds the rest."""
    records = []
    for i, (outcome, cls, energy) in enumerate(runs):
        found: tuple[Evidence, ...] = ()
        if energy is not None:
            found = (
                rh.energy_evidence(energy, sample=f"c{i}"),
                rh.energy_evidence(1 - energy, sample=f"c{i}", region="tail"),
            )
        records.append(
            rh.make_case(f"t.py::c{i}", images={}, outcome=outcome, class_name=cls, evidence=found)
        )
    return records


def test_the_overview_plots_energy_over_every_case_and_rates_per_class(rh, tmp_path) -> None:
    runs = [
        ("failed", "cat", 0.1),
        ("passed", "cat", 0.9),
        ("passed", "cat", 0.8),
        ("passed", "dog", 0.7),
        ("xfailed", "dog", 0.2),
        ("skipped", "dog", None),
    ]
    records = overview_cases(rh, runs)
    report = write_and_read(rh, tmp_path, records)
    overview = report.dom.find_all("section", "overview")[0]
    rows = [
        [td.all_text() for td in tr.find_all("td")]
        for tr in overview.find_all("table", "per-class")[0].find_all("tr")[1:]
    ]
    assert rows == [
        ["cat", "2/3", "66.7%", "95% CI 20.8% – 93.9%"],  # Wilson interval of 2/3
        ["dog", "1/2", "50.0%", "95% CI 9.5% – 90.5%"],  # the skipped case does not count
    ]
    plots = overview.find_all("img")
    assert [img.attrs["alt"] for img in plots] == [
        "histogram of energy in 'head' @ layer4",
        "histogram of energy in 'tail' @ layer4",
        "tests passed per class",
    ]
    captions = [c.all_text() for c in overview.find_all("figcaption")]
    assert captions[:2] == [
        "energy in region head @ layer4 (min 0.5)",
        "energy in region tail @ layer4 (min 0.5)",
    ]
    hist = rh.decode_png(plots[0].attrs["src"])
    threshold_red = ((hist == (220, 0, 0)).all(axis=2)).any(axis=0).sum()
    assert threshold_red > 0, "the threshold the assertions used is marked"

    plots = PlotCalls()
    build_view(rh.SUMMARY, records, plot_png=plots)
    head, tail = plots.histograms()
    assert sorted(head["values"]) == [0.1, 0.2, 0.7, 0.8, 0.9]  # the skipped case has none
    assert sorted(tail["values"]) == pytest.approx([0.1, 0.2, 0.3, 0.8, 0.9])
    assert head["xlabel"] == "energy fraction in 'head'"


def test_the_overview_histogram_is_drawn_at_the_threshold_the_evidence_used(rh) -> None:
    # the run is configured with min_energy 0.5, but these tests asked for 0.3 themselves
    assert rh.SUMMARY["thresholds"]["min_energy"] == 0.5
    records = [
        rh.make_case(f"t.py::c{i}", images={}, evidence=(rh.energy_evidence(v, 0.3),))
        for i, v in enumerate([0.1, 0.25, 0.6])
    ]
    plots = PlotCalls()
    view, _ = build_view(rh.SUMMARY, records, plot_png=plots)
    (hist,) = plots.histograms()
    assert hist["threshold"] == 0.3
    assert view.overview is not None
    assert view.overview.plots[0].caption == "energy in region head @ layer4 (min 0.3)"

    # another threshold on the same region is another histogram, each at its own limit
    outside = replace(
        rh.energy_evidence(0.4, 0.3, sample="w1"),
        check="energy_outside_region",
        threshold_name="max_fraction",
        threshold=0.1,
        passed=False,
    )
    records += [
        rh.make_case("t.py::d", images={}, evidence=(rh.energy_evidence(0.6, 0.5, sample="d"),)),
        rh.make_case("t.py::w", images={}, evidence=(outside,)),
    ]
    plots = PlotCalls()
    view, _ = build_view(rh.SUMMARY, records, plot_png=plots)
    assert [(h["threshold"], len(h["values"])) for h in plots.histograms()] == [
        (0.3, 3),
        (0.5, 1),
        (0.1, 1),
    ]
    assert [p.caption for p in view.overview.plots[:3]] == [
        "energy in region head @ layer4 (min 0.3)",
        "energy in region head @ layer4 (min 0.5)",
        "energy in region head @ layer4 (max 0.1)",
    ]


def test_one_value_per_sample_and_map_in_the_overview(rh) -> None:
    # two tests of the same sample measure the same map: it counts once
    first = rh.make_case("t.py::test_a[s1]", images={}, fraction=0.2)
    second = rh.make_case("t.py::test_b[s1]", images={}, fraction=0.2)
    other = rh.make_case("t.py::test_a[s2]", images={}, fraction=0.4)
    plots = PlotCalls()
    build_view({}, [first, second, other], plot_png=plots)
    (hist,) = plots.histograms()
    assert sorted(hist["values"]) == [0.2, 0.4]
    # cases without energy evidence give no histogram, only the per-class bars
    plots = PlotCalls()
    view, _ = build_view({}, [rh.make_case(images={}, evidence=())], plot_png=plots)
    assert plots.histograms() == []
    assert [p.alt for p in view.overview.plots] == ["tests passed per class"]


def test_xfailed_cards_are_marked_and_passing_ones_need_include_passed(rh, tmp_path) -> None:
    records = [
        rh.make_case("t.py::xf", outcome="xfailed", severity=2.5),
        rh.make_case("t.py::fail", severity=1.0),
        rh.make_case("t.py::xp", outcome="xpassed"),
        rh.make_case("t.py::ok", outcome="passed", images={}),
    ]
    assert records[0].severity > records[1].severity
    report = write_and_read(rh, tmp_path, records)
    # real failures come first, whatever an expected failure's severity
    assert report.card_nodeids() == ["t.py::fail", "t.py::xf"]
    xfail_card = report.cards[1]
    assert "xfailed" in xfail_card.classes
    assert "XFAIL (expected failure)" in xfail_card.all_text()

    report = write_and_read(rh, tmp_path, records, include_passed=True)
    assert report.card_nodeids() == ["t.py::fail", "t.py::xf", "t.py::xp", "t.py::ok"]
    ok_card = report.cards[3]
    assert "PASSED" in ok_card.all_text()
    assert "No images were rendered" in ok_card.all_text()
    assert not ok_card.find_all("img")


def test_cards_are_sorted_by_severity_then_test_id(rh, tmp_path) -> None:
    unmeasured = rh.energy_evidence(float("nan"))  # a NaN measurement ranks as a plain miss
    records = [
        rh.make_case("t.py::c", severity=1.0, images={}),
        rh.make_case("t.py::a", severity=1.0, images={}),
        rh.make_case("t.py::z", severity=2.5, images={}),
        rh.make_case("t.py::e", outcome="error", severity=2.0, images={}),
        rh.make_case("t.py::nan", images={}, evidence=(unmeasured,)),
    ]
    assert records[4].severity == 1.0
    report = write_and_read(rh, tmp_path, records)
    assert report.card_nodeids() == ["t.py::z", "t.py::e", "t.py::a", "t.py::c", "t.py::nan"]
    assert [c["severity"] for c in report.data["cases"]] == [1.0, 1.0, 2.5, 2.0, 1.0]


def test_max_cases_caps_the_cards_and_says_how_many_were_left_out(rh, tmp_path) -> None:
    records = [
        rh.make_case(f"t.py::c{i:02d}", fraction=0.5 - 0.04 * i, images={}) for i in range(12)
    ]
    report = write_and_read(rh, tmp_path, records, max_cases=5)
    assert report.card_nodeids() == [f"t.py::c{i:02d}" for i in (11, 10, 9, 8, 7)]
    left_out = report.dom.find_all("p", "left-out")
    assert len(left_out) == 1
    assert "7 more cases not shown (max_cases = 5)" in left_out[0].all_text()
    assert len(report.data["cases"]) == 12, "the JSON lists every case"
    assert report.data["counts"]["cards"] == 5 and report.data["counts"]["cards_left_out"] == 7

    none = write_and_read(rh, tmp_path, records, max_cases=0)
    assert none.cards == [] and "12 more cases not shown" in none.text()
    full = write_and_read(rh, tmp_path, records, max_cases=12)
    assert len(full.cards) == 12 and not full.dom.find_all("p", "left-out")


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True])
def test_max_cases_must_be_a_whole_number(rh, tmp_path, bad) -> None:
    with pytest.raises(ConfigError, match="max_cases"):
        write_report(tmp_path / "r.html", {}, [rh.make_case()], max_cases=bad)


def test_no_failing_cases_says_so(rh, tmp_path) -> None:
    report = write_and_read(rh, tmp_path, [rh.make_case(outcome="passed", images={})])
    assert report.cards == []
    assert "No failing cases." in report.text()
    assert "camcheck report: 0 failing cases" in report.dom.find_all("title")[0].all_text()


def test_degenerate_cases_are_flagged(rh, tmp_path) -> None:
    flagged = rh.make_case(degenerate=True)
    assert flagged.severity == pytest.approx(2.0 + 0.19)  # degenerate ranks above any miss
    report = write_and_read(rh, tmp_path, [flagged])
    assert "degenerate CAM" in report.cards[0].all_text()
    assert "degenerate CAM" not in write_and_read(rh, tmp_path, [rh.make_case()]).text()


def test_a_degenerate_measurement_shows_why(rh, tmp_path) -> None:
    item = rh.energy_evidence(None, degenerate="it is all zero")
    report = write_and_read(rh, tmp_path, [rh.make_case(evidence=(item,), degenerate=True)])
    lines = [
        div.all_text() for div in report.cards[0].find_all("table", "evidence")[0].find_all("div")
    ]
    assert "energy_fraction: —" in lines and "degenerate: it is all zero" in lines
    assert report.data["cases"][0]["severity"] == 3.0
    assert report.data["cases"][0]["evidence"][0]["degenerate"] == "it is all zero"


def test_a_malformed_picture_shows_as_missing_not_as_a_broken_image(rh, tmp_path) -> None:
    images = rh.case_images()
    images["overlay"] = "not base64 at all"
    images["strip"][0]["image"] = images["original"][:40] + '"><b>x</b>'
    report = write_and_read(rh, tmp_path, [rh.make_case(images=images)])
    card = report.cards[0]
    assert len(card.find_all("img")) == 2  # the original and the second strip tile
    assert len(card.find_all("div", "missing")) == 2
    assert "<b>x</b>" not in report.html


def test_the_page_is_self_contained(rh, tmp_path) -> None:
    report = write_and_read(rh, tmp_path, [rh.make_case(), rh.make_gate()])
    parser = rh.parse_html(report.html)
    tags = {el.tag for el in parser.find_all()}
    assert "link" not in tags and "iframe" not in tags
    assert "style" in tags
    (script,) = parser.find_all("script")  # the card filter, inline
    assert script.attrs == {} and "fetch" not in script.all_text()
    for img in report.images:
        assert img.attrs["src"].startswith(("data:image/png;base64,", "data:image/webp;base64,"))
        assert img.attrs.get("alt")
    for el in parser.find_all():
        for name, value in el.attrs.items():
            assert "http:" not in value and "https:" not in value, (el.tag, name)
    assert "@import" not in report.html and "url(" not in report.html


# ---------------------------------------------------------------- escaping


def test_user_text_is_escaped_everywhere(rh, tmp_path) -> None:
    xss = rh.XSS
    item = Evidence(
        check=xss,
        passed=False,
        metric=xss,
        value=0.1,
        region=RegionInfo(xss),
        layer=xss,
        details={xss: 1},
    )
    case = rh.make_case(
        f"tests/test_{xss}.py::test_cam[{xss}]",
        case_id=xss,
        class_name=xss,
        prediction_name=xss,
        path=f"/data/{xss}.png",
        message=f"sample {xss}: energy too low",
        layer=xss,
        layers=(xss, "layer3"),
        method=xss,
        evidence=(item,),
        settings={xss: xss},
    )
    case.images["strip"][0]["layer"] = xss
    gate = rh.make_gate(
        nodeid=f"t.py::{xss}", result=rh.gate_result(name=xss, classes=((xss, 2, 1),))
    )
    assert gate.name == xss and gate.failures == (f"{xss}/{xss}_000",)
    summary = dict(rh.SUMMARY, model=xss, weights=xss, versions={xss: xss}, model_kwargs={xss: xss})
    summary[xss] = xss
    report = write_and_read(rh, tmp_path, [case, gate], summary=summary)

    assert "<script>alert" not in report.html.lower()
    assert report.html.lower().count("<script") == 1  # the page's own filter script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report.html
    assert all(xss not in s.all_text() for s in report.dom.find_all("script"))
    card = report.cards[0]
    # shows as text: in the card title, label, prediction, path, message, test id, evidence...
    assert card.find_all("h3", "case-id")[0].all_text() == xss
    assert card.find_all("code", "nodeid")[0].all_text() == f"tests/test_{xss}.py::test_cam[{xss}]"
    card_text = card.all_text()
    for expected in (
        f"3 ({xss})",
        f"5 ({xss})",
        f"/data/{xss}.png",
        f"sample {xss}: energy too low",
        f"region: {xss}",
        f"{xss}: 0.1",  # the metric's name
        f"{xss}: 1",  # a detail's name
        f"{xss} = {xss}",  # the test's settings
        f"{xss} on {xss}",  # caption: method on layer
    ):
        assert expected in card_text, expected
    # attributes too: alt texts carry the case id, the filter's data-* the class and layer
    assert all(xss in img.attrs["alt"] for img in card.find_all("img"))
    assert card.attrs["data-class"] == card.attrs["data-layer"] == xss
    assert 'data-class="&lt;script&gt;alert(1)&lt;/script&gt;"' in report.html
    options = [o.attrs["value"] for o in report.dom.find_all("option")]
    assert xss in options and f"<option value={xss}" not in report.html
    gate_text = report.dom.find_all("section", "gate")[0].all_text()
    assert gate_text.count(xss) >= 4  # name, test id, failing samples, message, class row
    assert report.dom.find_all("title")[0].all_text().startswith("camcheck report")
    summary_text = report.dom.find_all("table", "summary")[0].all_text()
    assert summary_text.count(xss) >= 5


# ---------------------------------------------------------------- JSON


def test_json_sidecar_schema(rh, tmp_path) -> None:
    unmeasured = rh.energy_evidence(float("nan"), sample="c")
    records = [
        rh.make_case("t.py::a", severity=1.3),
        rh.make_case("t.py::b", outcome="passed", images={}, probability=None),
        rh.make_case("t.py::c", outcome="xfailed", evidence=(unmeasured,)),
        rh.make_gate(),
    ]
    path = write_report(tmp_path / "out" / "camcheck.html", rh.SUMMARY, records)
    assert path == tmp_path / "out" / "camcheck.html"
    raw = path.with_suffix(".json").read_text(encoding="utf-8")
    assert "NaN" not in raw  # strict JSON
    data = json.loads(raw)
    assert set(data) == {
        "schema_version",
        "generator",
        "generated",
        "summary",
        "counts",
        "gates",
        "cases",
    }
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert data["generator"] == "pytest-camcheck"
    assert datetime.fromisoformat(data["generated"]).tzinfo is not None
    assert data["summary"] == json.loads(json.dumps(rh.SUMMARY))
    assert data["counts"] == {
        "cases": 3,
        "passed": 1,
        "failed": 1,
        "error": 0,
        "xfailed": 1,
        "xpassed": 0,
        "skipped": 0,
        "gates": 1,
        "gates_failed": 1,
        "cards": 2,
        "cards_left_out": 0,
    }
    assert [c["nodeid"] for c in data["cases"]] == ["t.py::a", "t.py::b", "t.py::c"]
    for case in data["cases"]:
        assert "images" not in case and "metrics" not in case
        assert case["kind"] == "case"
    assert data["cases"][0]["severity"] == pytest.approx(1.3)
    (item,) = data["cases"][2]["evidence"]
    assert item["value"] is None and item["threshold"] == 0.5  # NaN is stored as null
    assert set(item) == {
        "check",
        "passed",
        "metric",
        "value",
        "threshold_name",
        "threshold",
        "sample",
        "layer",
        "method",
        "target",
        "region",
        "peak",
        "message",
        "degenerate",
        "details",
    }
    expected_case = {k: v for k, v in records[0].to_dict().items() if k != "images"}
    assert data["cases"][0] == expected_case
    assert data["gates"] == [records[3].to_dict()]
    assert data["gates"][0]["kind"] == "gate" and data["gates"][0]["layer"] == "layer4"
    # what was written reads back as the same records (pictures are not in the JSON)
    assert record_from_dict(data["cases"][0]) == replace(records[0], images={})
    assert record_from_dict(data["cases"][1]) == records[1]
    assert record_from_dict(data["gates"][0]) == records[3]
    # the HTML and the JSON agree on when they were made
    assert data["generated"] in path.read_text(encoding="utf-8")


def test_records_round_trip_through_their_dicts_and_json(rh) -> None:
    case = rh.make_case("t.py::test_cam[a]", severity=1.3)
    assert case.evidence and case.images
    gate = rh.make_gate()
    passing_gate = rh.make_gate(min_rate=0.5, outcome="failed")
    assert passing_gate.outcome == "passed", "a gate that passed in a failing test stays passed"
    for record in (case, gate, passing_gate, rh.make_case(outcome="passed", images={})):
        data = record.to_dict()
        assert data["kind"] == record.kind
        assert record_from_dict(data) == record
        again = json.loads(json.dumps(data, allow_nan=False))
        assert record_from_dict(again) == record
        assert type(record_from_dict(again)) is type(record)
    assert record_from_dict(case.to_dict()).evidence[0].region == RegionInfo(
        "head", rh.HEAD_BBOX, pytest.approx(20 * 24 / (48 * 64))
    )


def test_typed_records_and_their_dicts_give_the_same_report(rh, tmp_path) -> None:
    records = [rh.make_case("t.py::a", severity=1.2), rh.make_case("t.py::b"), rh.make_gate()]
    typed = write_report(tmp_path / "typed" / "r.html", rh.SUMMARY, records)
    plain = write_report(tmp_path / "plain" / "r.html", rh.SUMMARY, [r.to_dict() for r in records])
    a, b = rh.read_report(typed), rh.read_report(plain)
    a.data.pop("generated"), b.data.pop("generated")
    assert a.data == b.data
    assert a.card_nodeids() == b.card_nodeids() == ["t.py::a", "t.py::b"]
    assert [i.attrs["src"] for i in a.images] == [i.attrs["src"] for i in b.images]


# ---------------------------------------------------------------- files


def test_parent_directories_are_created_and_files_are_readable(rh, tmp_path) -> None:
    path = write_report(tmp_path / "a" / "b" / "r.html", {}, [rh.make_case()])
    assert path.is_file() and path.with_suffix(".json").is_file()
    mask = os.umask(0o022)
    os.umask(mask)
    # the mode open() would give, not the private 0600 of a temporary file
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(path.with_suffix(".json").stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] in (["r.html", "r.json"], ["r.json", "r.html"])


def test_bad_paths_are_config_errors(rh, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory.*camcheck-report\.html"):
        write_report(tmp_path, {}, [rh.make_case()])
    with pytest.raises(ConfigError, match=r"ends in \.json"):
        write_report(tmp_path / "r.json", {}, [rh.make_case()])


def test_a_failure_while_writing_the_json_leaves_the_previous_report_intact(
    rh, tmp_path, monkeypatch
) -> None:
    write_report(tmp_path / "r.html", rh.SUMMARY, [rh.make_case("t.py::old")])
    before = snapshot(tmp_path)
    assert set(before) == {"r.html", "r.json"}

    def broken_dump(obj, fh, **kwargs):
        fh.write('{"schema_version": 2, "cases": [')  # half a file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path / "r.html", rh.SUMMARY, [rh.make_case("t.py::new")])
    assert snapshot(tmp_path) == before, "old HTML and JSON untouched, no temporary file left"


def test_a_failure_while_rendering_leaves_nothing_behind(rh, tmp_path, monkeypatch) -> None:
    write_report(tmp_path / "r.html", rh.SUMMARY, [rh.make_case("t.py::old")])
    before = snapshot(tmp_path)

    def broken_render(view):
        raise KeyboardInterrupt  # the user pressed Ctrl-C while the report was being made

    monkeypatch.setattr(report_html, "render_html", broken_render)
    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path / "r.html", rh.SUMMARY, [rh.make_case("t.py::new")])
    assert snapshot(tmp_path) == before


def test_an_interrupted_html_write_leaves_no_temp_file(rh, tmp_path, monkeypatch) -> None:
    write_report(tmp_path / "r.html", rh.SUMMARY, [rh.make_case("t.py::old")])
    before = snapshot(tmp_path)
    real_fsync = os.fsync
    calls = []

    def fsync_then_fail(fd):
        calls.append(fd)
        real_fsync(fd)
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", fsync_then_fail)
    with pytest.raises(OSError, match="I/O error"):
        write_report(tmp_path / "r.html", rh.SUMMARY, [rh.make_case("t.py::new")])
    assert calls, "the file is synced before it replaces the old one"
    assert snapshot(tmp_path) == before


def test_a_new_report_replaces_the_old_one(rh, tmp_path) -> None:
    write_report(tmp_path / "report.html", {}, [rh.make_case("t.py::old", images={})])
    report = write_and_read(rh, tmp_path, [rh.make_case("t.py::new", images={})])
    assert report.card_nodeids() == ["t.py::new"]
    assert [c["nodeid"] for c in report.data["cases"]] == ["t.py::new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]
