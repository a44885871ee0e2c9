"""``benchmarks/bench_report.py`` on a tiny configuration: what it writes and what it prints.

Each test runs the script's ``main`` as a user would and checks its output against the files it
wrote: the report must hold one card per case, every picture must decode (WebP, at display
size), the photos must be the scenes they claim, and the printed sizes, timings, load time and
verdicts must agree with the files on disk and with each other.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from pytest_camcheck.report.records import record_from_dict

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_report.py"
ROW = re.compile(r"^(render \+ encode|write HTML \+ JSON|total)\s+(\d+\.\d\d)s\s+(\d+\.\d\d)s$")
PER_CASE = re.compile(r"^per card \(render \+ encode\)\s+(\d+\.\d)ms\s+(\d+\.\d)ms$")
SIZES = re.compile(
    r"^cards: (\d+); HTML (\d+\.\d\d) MB \((\d+\.\d{4}) MB per card\), JSON (\d+) kB"
    r"(, with full-resolution overlays)?(?:, (jpeg|png) pictures)?$"
)
LOAD = re.compile(
    r"^chromium load event: (?:(\d+\.\d\d) s \(median of (\d+); whole chromium process "
    r"(\d+\.\d\d) s\)|not measured \((.+)\))$"
)
VERDICT = re.compile(r"^(PASS|FAIL|SKIP): (.+), target < (\S+) (s|MB)$")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["bench_report"]
    return module


def parse_text(out: str) -> dict:
    """The numbers of the bench's text output (every line must be one the bench prints)."""
    lines = out.strip().splitlines()
    assert lines[0].split() == ["wall", "cpu"], lines[0]
    parsed: dict = {"rows": {}, "verdicts": []}
    for line in lines[1:]:
        if m := ROW.match(line):
            parsed["rows"][m.group(1)] = (float(m.group(2)), float(m.group(3)))
        elif m := PER_CASE.match(line):
            parsed["per_case_ms"] = (float(m.group(1)), float(m.group(2)))
        elif m := SIZES.match(line):
            parsed["cases"], parsed["html_mb"] = int(m.group(1)), float(m.group(2))
            parsed["mb_per_card"], parsed["json_kb"] = float(m.group(3)), int(m.group(4))
            parsed["full"] = m.group(5) is not None
            parsed["format"] = m.group(6) or "webp"
        elif m := LOAD.match(line):
            parsed["load"] = m.groups()
        elif m := VERDICT.match(line):
            parsed["verdicts"].append((m.group(1), m.group(2), float(m.group(3)), m.group(4)))
        else:
            raise AssertionError(f"unexpected line in the bench's output: {line!r}")
    assert set(parsed["rows"]) == {"render + encode", "write HTML + JSON", "total"}
    assert {"per_case_ms", "cases", "load"} <= set(parsed)
    assert [v[3] for v in parsed["verdicts"]] == ["s", "MB", "s"]  # time, size, load
    return parsed


def test_the_report_it_writes_has_one_card_per_case(bench, rh, tmp_path, capsys) -> None:
    out = tmp_path / "bench.html"
    assert bench.main(["--cases", "3", "--target", "1000", "--no-browser", "--out", str(out)]) == 0
    printed = parse_text(capsys.readouterr().out)
    assert printed["cases"] == 3 and printed["full"] is False

    report = rh.read_report(out)
    expected = {f"tests/test_cams.py::test_energy[sample_{i:04d}]" for i in range(3)}
    assert set(report.card_nodeids()) == expected
    assert [c["nodeid"] for c in report.data["cases"]] == sorted(expected)
    card_bytes = 0
    for card in report.cards:
        # original, overlay and one strip tile per layer: WebP at display size
        images = card.find_all("img")
        assert len(images) == 2 + len(bench.LAYERS) == 6
        shapes = [rh.decode_image(img.attrs["src"], "image/webp").shape for img in images]
        assert shapes[:2] == [(256, 256, 3), (256, 256, 3)]  # the 480 px photo, shrunk
        assert shapes[2:] == [(96, 96, 3)] * 4
        card_bytes += sum(len(img.attrs["src"]) for img in images)
        assert not card.find_all("details"), "no full-resolution overlay unless asked"
    for img in report.images:
        rh.decode_image(img.attrs["src"])

    # the printed sizes are those of the files on disk
    html_bytes = out.stat().st_size
    assert printed["html_mb"] == float(f"{html_bytes / 1e6:.2f}")
    assert printed["mb_per_card"] == float(f"{html_bytes / 1e6 / 3:.4f}")
    assert printed["json_kb"] == int(f"{out.with_suffix('.json').stat().st_size / 1e3:.0f}")
    # and the HTML is its pictures: no more than markup and the summary plots on top
    assert card_bytes < html_bytes < card_bytes + 200_000
    # a card's pictures of a real 480 px photo with a 4-layer strip: tens of kB, not hundreds
    assert 10_000 < card_bytes / 3 < 45_000


def test_the_cases_are_real_photos_of_the_scenes_it_names(bench) -> None:
    rng = np.random.default_rng(0)
    n = len(bench.SCENES)
    photos = [bench.make_case(i, rng)[0] for i in range(n)]
    scenes = [bench.scene(name) for name in bench.SCENES]

    def hist(img: np.ndarray) -> np.ndarray:
        h = cv2.calcHist([img], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
        return cv2.normalize(h, h).flatten()

    for i, img in enumerate(photos):
        assert img.shape == (480, 480, 3) and img.dtype == np.uint8
        assert img.std() > 15, "a photo, not a flat picture"
        # a crop of most of its scene: its colours are those of its own scene more than any other
        scores = [cv2.compareHist(hist(img), hist(s), cv2.HISTCMP_CORREL) for s in scenes]
        assert int(np.argmax(scores)) == i, (bench.SCENES[i], scores)
    _, maps, box, peak = bench.make_case(0, rng)
    assert list(maps) == list(bench.LAYERS) and len(maps) == 4
    for m in maps.values():
        assert m.shape == (480, 480) and m.min() == 0.0 and m.max() == 1.0
    assert divmod(int(np.argmax(maps[bench.SHOWN])), 480) == peak
    assert box.boxes and 60 <= box.boxes[0].x1 - box.boxes[0].x0 <= 240


def test_the_printed_timings_agree_with_each_other(bench, tmp_path, capsys) -> None:
    out = tmp_path / "bench.html"
    assert bench.main(["--cases", "4", "--target", "1000", "--no-browser", "--out", str(out)]) == 0
    printed = parse_text(capsys.readouterr().out)
    (render_wall, render_cpu) = printed["rows"]["render + encode"]
    (write_wall, write_cpu) = printed["rows"]["write HTML + JSON"]
    (total_wall, total_cpu) = printed["rows"]["total"]
    # rendering and writing four 480 x 480 cases is real work, measured by both clocks
    assert render_cpu > 0 and write_cpu > 0 and render_wall > 0 and write_wall > 0
    # each number is printed rounded to 10 ms (the per-case one to 0.1 ms)
    assert total_wall == pytest.approx(render_wall + write_wall, abs=0.011)
    assert total_cpu == pytest.approx(render_cpu + write_cpu, abs=0.011)
    per_wall, per_cpu = printed["per_case_ms"]
    assert per_wall * 4 / 1000 == pytest.approx(render_wall, abs=0.006)
    assert per_cpu * 4 / 1000 == pytest.approx(render_cpu, abs=0.006)
    # the time verdict is judged on the CPU total, against the target given; no browser asked
    time_verdict, size_verdict, load_verdict = printed["verdicts"]
    assert time_verdict == ("PASS", f"CPU total {total_cpu:.2f} s", 1000.0, "s")
    assert size_verdict == ("PASS", f"HTML {printed['html_mb']:.2f} MB", 8.0, "MB")
    assert load_verdict == ("SKIP", "load event not measured", 3.0, "s")
    assert printed["load"][3] == "--no-browser"


def test_the_verdicts_and_exit_code_follow_the_targets(bench, capsys) -> None:
    assert bench.main(["--cases", "2", "--target", "0", "--wall", "--no-browser"]) == 1
    printed = parse_text(capsys.readouterr().out)
    total_wall = printed["rows"]["total"][0]
    assert printed["verdicts"][0] == ("FAIL", f"wall-clock total {total_wall:.2f} s", 0.0, "s")

    assert bench.main(["--cases", "2", "--max-mb", "0.01", "--no-browser"]) == 1
    printed = parse_text(capsys.readouterr().out)
    assert [v[0] for v in printed["verdicts"]] == ["PASS", "FAIL", "SKIP"]

    assert bench.main(["--cases", "2", "--target", "1000", "--json", "--no-browser"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["judged_on"] == "total_cpu_s" and result["target_s"] == 1000.0
    assert result["pass"] is (result["total_cpu_s"] < 1000.0) is True
    assert result["pass_size"] is True and result["pass_load"] is None
    assert result["load_s"] is None and result["chromium"] is None
    assert result["cases"] == 2 and result["max_mb"] == 8.0 and result["max_load_s"] == 3.0
    # without --out the report goes to a temporary directory, which is gone afterwards
    assert not Path(result["path"]).exists()
    assert not Path(result["path"]).parent.exists()


def test_json_output_describes_the_files_it_wrote(bench, tmp_path, capsys) -> None:
    out = tmp_path / "bench.html"
    assert bench.main(["--cases", "2", "--json", "--no-browser", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["path"] == str(out)
    assert result["html_bytes"] == out.stat().st_size
    assert result["mb_per_card"] == pytest.approx(out.stat().st_size / 2e6)
    assert result["json_bytes"] == out.with_suffix(".json").stat().st_size
    assert result["render_cpu_s"] > 0 and result["write_cpu_s"] > 0
    assert json.loads(out.with_suffix(".json").read_text())["counts"]["cards"] == 2


def test_full_images_add_the_full_resolution_overlay(bench, rh, tmp_path, capsys) -> None:
    def run(*extra: str) -> tuple[dict, object]:
        out = tmp_path / f"r{len(extra)}" / "bench.html"
        assert bench.main(["--cases", "2", "--no-browser", "--out", str(out), *extra]) == 0
        return parse_text(capsys.readouterr().out), rh.read_report(out)

    (plain, plain_report), (full, full_report) = run(), run("--full-images")
    assert full["full"] is True and plain["full"] is False
    for card in full_report.cards:
        (details,) = card.find_all("details", "full")
        (img,) = details.find_all("img")
        assert rh.decode_image(img.attrs["src"], "image/webp").shape == (480, 480, 3)
    assert full["mb_per_card"] > plain["mb_per_card"]
    # the rest of the cards is the same
    drop = {"full"}
    assert [
        [i.attrs["src"] for i in c.find_all("img") if not _in(i, c, drop)]
        for c in full_report.cards
    ] == [[i.attrs["src"] for i in c.find_all("img")] for c in plain_report.cards]


def test_the_format_option_compares_encodings(bench, rh, tmp_path, capsys) -> None:
    sizes = {}
    for image_format, mime in (
        ("webp", "image/webp"),
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
    ):
        out = tmp_path / image_format / "bench.html"
        args = ["--cases", "2", "--no-browser", "--format", image_format, "--out", str(out)]
        assert bench.main(args) == 0
        printed = parse_text(capsys.readouterr().out)
        assert printed["format"] == image_format
        sizes[image_format] = printed["mb_per_card"]
        for card in rh.read_report(out).cards:
            for img in card.find_all("img"):
                rh.decode_image(img.attrs["src"], mime)
    # the same pictures: WebP smallest, JPEG (full colour resolution) next, PNG far larger
    assert sizes["webp"] < sizes["jpeg"] < sizes["png"] / 3


def _in(img, card, classes: set[str]) -> bool:
    """Whether ``img`` lies inside a ``<details>`` of ``card`` with one of ``classes``."""
    return any(img in d.find_all("img") for d in card.find_all("details") if d.classes & classes)


def test_the_same_seed_gives_the_same_report(bench, rh, tmp_path, capsys) -> None:
    def report(seed: int, name: str):
        out = tmp_path / name / "bench.html"
        args = ["--cases", "2", "--seed", str(seed), "--no-browser", "--out", str(out)]
        assert bench.main(args) == 0
        capsys.readouterr()
        parsed = rh.read_report(out)
        parsed.data.pop("generated")
        return parsed

    a, b, other = report(5, "a"), report(5, "b"), report(6, "c")
    assert a.data == b.data
    assert [i.attrs["src"] for i in a.images] == [i.attrs["src"] for i in b.images]
    assert [i.attrs["src"] for i in a.images] != [i.attrs["src"] for i in other.images]
    assert a.data["cases"] != other.data["cases"]


def test_the_bench_measures_records_of_the_current_schema(bench, rh, tmp_path, capsys) -> None:
    out = tmp_path / "bench.html"
    assert bench.main(["--cases", "2", "--no-browser", "--out", str(out)]) == 0
    capsys.readouterr()
    report = rh.read_report(out)
    for case in report.data["cases"]:
        record = record_from_dict(case)
        assert {k: v for k, v in record.to_dict().items() if k != "images"} == case
        assert [e.check for e in record.evidence] == ["energy_in_region"]
        assert record.layers == bench.LAYERS
    overview = report.dom.find_all("section", "overview")[0]
    alts = [img.attrs["alt"] for img in overview.find_all("img")]
    assert any(alt.startswith("histogram of energy in 'object'") for alt in alts), alts


def test_the_load_event_is_measured_in_chromium(bench, chromium, tmp_path, capsys) -> None:
    out = tmp_path / "bench.html"
    args = ["--cases", "2", "--chromium", chromium, "--out", str(out)]
    assert bench.main([*args, "--browser-runs", "2"]) == 0
    printed = parse_text(capsys.readouterr().out)
    load, runs, process, why = printed["load"]
    assert why is None and int(runs) == 2
    # the page's own clock, from navigation start to the load event: within the process's time
    assert 0.0 < float(load) < float(process)
    assert printed["verdicts"][2] == ("PASS", f"load event {load} s", 3.0, "s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.html", "bench.json"]

    assert bench.main([*args, "--browser-runs", "1", "--max-load", "0", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert len(result["load_runs_s"]) == 1 and result["load_s"] > 0
    assert result["pass_load"] is False and result["pass"] is False
    assert result["chromium"] == chromium
