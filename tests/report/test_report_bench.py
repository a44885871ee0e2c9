"""``benchmarks/bench_report.py`` on a tiny configuration: what it writes and what it prints.

Each test runs the script's ``main`` as a user would and checks its output against the files it
wrote: the report must hold one card per case, every picture must decode, and the printed sizes,
timings and verdict must agree with the files on disk and with each other.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pytest_camcheck.report.records import record_from_dict

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_report.py"
ROW = re.compile(r"^(render|write HTML \+ JSON|total)\s+(\d+\.\d\d)s\s+(\d+\.\d\d)s$")
PER_CASE = re.compile(r"^per case \(render\)\s+(\d+\.\d)ms\s+(\d+\.\d)ms$")
SIZES = re.compile(r"^cases: (\d+); sizes: HTML (\d+\.\d) MB, JSON (\d+) kB$")
VERDICT = re.compile(r"^(PASS|FAIL): (CPU|wall-clock) total (\d+\.\d\d) s, target < (\S+) s$")


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
    parsed: dict = {"rows": {}}
    for line in lines[1:]:
        if m := ROW.match(line):
            parsed["rows"][m.group(1)] = (float(m.group(2)), float(m.group(3)))
        elif m := PER_CASE.match(line):
            parsed["per_case_ms"] = (float(m.group(1)), float(m.group(2)))
        elif m := SIZES.match(line):
            parsed["cases"], parsed["html_mb"] = int(m.group(1)), float(m.group(2))
            parsed["json_kb"] = int(m.group(3))
        elif m := VERDICT.match(line):
            parsed["verdict"] = (m.group(1), m.group(2), float(m.group(3)), float(m.group(4)))
        else:
            raise AssertionError(f"unexpected line in the bench's output: {line!r}")
    assert set(parsed["rows"]) == {"render", "write HTML + JSON", "total"}
    assert {"per_case_ms", "cases", "verdict"} <= set(parsed)
    return parsed


def test_the_report_it_writes_has_one_card_per_case(bench, rh, tmp_path, capsys) -> None:
    out = tmp_path / "bench.html"
    assert bench.main(["--cases", "3", "--target", "1000", "--out", str(out)]) == 0
    printed = parse_text(capsys.readouterr().out)
    assert printed["cases"] == 3

    report = rh.read_report(out)
    expected = {f"tests/test_cams.py::test_energy[sample_{i:04d}]" for i in range(3)}
    assert set(report.card_nodeids()) == expected
    assert [c["nodeid"] for c in report.data["cases"]] == sorted(expected)
    card_bytes = 0
    for card in report.cards:
        # original, overlay and one strip tile per layer, each a 224 x 224 picture or less
        images = card.find_all("img")
        assert len(images) == 2 + len(bench.LAYERS)
        for img in images:
            picture = rh.decode_png(img.attrs["src"])
            assert max(picture.shape[:2]) <= 256
            card_bytes += len(img.attrs["src"])
    for img in report.images:
        rh.decode_png(img.attrs["src"])

    # the printed sizes are those of the files on disk
    html_bytes = out.stat().st_size
    assert printed["html_mb"] == float(f"{html_bytes / 1e6:.1f}")
    assert printed["json_kb"] == int(f"{out.with_suffix('.json').stat().st_size / 1e3:.0f}")
    # and the HTML is its pictures: no more than markup and the summary plots on top
    assert card_bytes < html_bytes < card_bytes + 200_000
    per_card_mb = printed["html_mb"] / printed["cases"]
    assert per_card_mb == pytest.approx(card_bytes / 3 / 1e6, abs=0.1)


def test_the_printed_timings_agree_with_each_other(bench, tmp_path, capsys) -> None:
    out = tmp_path / "bench.html"
    assert bench.main(["--cases", "4", "--target", "1000", "--out", str(out)]) == 0
    printed = parse_text(capsys.readouterr().out)
    (render_wall, render_cpu) = printed["rows"]["render"]
    (write_wall, write_cpu) = printed["rows"]["write HTML + JSON"]
    (total_wall, total_cpu) = printed["rows"]["total"]
    # rendering and writing four 224 x 224 cases is real work, measured by both clocks
    assert render_cpu > 0 and write_cpu > 0 and render_wall > 0 and write_wall > 0
    # each number is printed rounded to 10 ms (the per-case one to 0.1 ms)
    assert total_wall == pytest.approx(render_wall + write_wall, abs=0.011)
    assert total_cpu == pytest.approx(render_cpu + write_cpu, abs=0.011)
    per_wall, per_cpu = printed["per_case_ms"]
    assert per_wall * 4 / 1000 == pytest.approx(render_wall, abs=0.006)
    assert per_cpu * 4 / 1000 == pytest.approx(render_cpu, abs=0.006)
    # the verdict is judged on the CPU total, against the target given
    assert printed["verdict"] == ("PASS", "CPU", total_cpu, 1000.0)


def test_the_verdict_and_exit_code_follow_the_target(bench, capsys) -> None:
    assert bench.main(["--cases", "2", "--target", "0", "--wall"]) == 1
    printed = parse_text(capsys.readouterr().out)
    total_wall = printed["rows"]["total"][0]
    assert printed["verdict"] == ("FAIL", "wall-clock", total_wall, 0.0)

    assert bench.main(["--cases", "2", "--target", "1000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["judged_on"] == "total_cpu_s" and result["target_s"] == 1000.0
    assert result["pass"] is (result["total_cpu_s"] < 1000.0) is True
    assert result["cases"] == 2
    # without --out the report goes to a temporary directory, which is gone afterwards
    assert not Path(result["path"]).exists()
    assert not Path(result["path"]).parent.exists()


def test_json_output_describes_the_files_it_wrote(bench, tmp_path, capsys) -> None:
    out = tmp_path / "bench.html"
    assert bench.main(["--cases", "2", "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["path"] == str(out)
    assert result["html_bytes"] == out.stat().st_size
    assert result["json_bytes"] == out.with_suffix(".json").stat().st_size
    assert result["render_cpu_s"] > 0 and result["write_cpu_s"] > 0
    assert json.loads(out.with_suffix(".json").read_text())["counts"]["cards"] == 2


def test_the_same_seed_gives_the_same_report(bench, rh, tmp_path, capsys) -> None:
    def report(seed: int, name: str):
        out = tmp_path / name / "bench.html"
        assert bench.main(["--cases", "2", "--seed", str(seed), "--out", str(out)]) == 0
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
    assert bench.main(["--cases", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    report = rh.read_report(out)
    for case in report.data["cases"]:
        record = record_from_dict(case)
        assert {k: v for k, v in record.to_dict().items() if k != "images"} == case
        assert [e.check for e in record.evidence] == ["energy_in_region"]
    overview = report.dom.find_all("section", "overview")[0]
    alts = [img.attrs["alt"] for img in overview.find_all("img")]
    assert any(alt.startswith("histogram of energy in 'object'") for alt in alts), alts
