"""The collector as a plain object: harvesting records from reports, writing, the summary line."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_camcheck.report.collector import ReportCollector, attach_pytest_html
from pytest_camcheck.report.records import CaseRecord, GateRecord, record_from_dict


def fake_report(
    nodeid: str,
    when: str,
    outcome: str = "passed",
    props: list[Any] | None = None,
    *,
    xfail: bool = False,
) -> SimpleNamespace:
    """What pytest (or xdist, which turns tuples into lists) hands to ``logreport``."""
    report = SimpleNamespace(
        nodeid=nodeid,
        when=when,
        outcome=outcome,
        passed=outcome == "passed",
        failed=outcome == "failed",
        skipped=outcome == "skipped",
        user_properties=list(props or []),
    )
    if xfail:
        report.wasxfail = "reason"
    return report


def without_outcome(record: CaseRecord) -> dict[str, Any]:
    """A record's dict as another producer might send it: no outcome (pytest decides)."""
    data = record.to_dict()
    del data["outcome"]
    return data


def run_test(collector: ReportCollector, nodeid: str, call: str, props, **kw) -> None:
    """Feed the three phase reports of one test; the properties ride on call and teardown."""
    collector.pytest_runtest_logreport(fake_report(nodeid, "setup"))
    collector.pytest_runtest_logreport(fake_report(nodeid, "call", call, props, **kw))
    collector.pytest_runtest_logreport(fake_report(nodeid, "teardown", "passed", props))


@pytest.fixture
def collector(tmp_path: Path) -> ReportCollector:
    return ReportCollector(
        tmp_path / "r.html", include_passed=False, max_cases=200, summary=lambda: {"model": "m"}
    )


def test_one_record_per_test_from_the_call_phase(collector, rh) -> None:
    rec = rh.make_case("t.py::a", images={})
    run_test(collector, "t.py::a", "failed", [("camcheck_case", rec.to_dict()), ("other", 1)])
    assert list(collector.cases) == ["t.py::a"]
    assert collector.cases["t.py::a"]["outcome"] == "failed"
    assert collector.failing_cases == 1
    assert record_from_dict(collector.cases["t.py::a"]) == rec, "kept as it was sent"


def test_records_in_xdist_form_and_gates_by_name(collector, rh) -> None:
    gate_a = rh.make_gate(name="pointing")
    gate_b = rh.make_gate(name="energy", min_rate=0.5)  # reached: passed in a failing test
    assert (gate_a.outcome, gate_b.outcome) == ("failed", "passed")
    props = [
        ["camcheck_gate", gate_a.to_dict()],
        ["camcheck_gate", gate_b.to_dict()],
        ["junk"],
        "junk",
    ]
    run_test(collector, "t.py::gates", "failed", props)
    assert sorted(name for _, name in collector.gates) == ["energy", "pointing"]
    assert record_from_dict(collector.gates[("t.py::gates", "pointing")]) == gate_a
    # a gate that passed inside a failing test stays passed
    assert collector.gates[("t.py::gates", "energy")]["outcome"] == "passed"
    assert collector.gates[("t.py::gates", "pointing")]["outcome"] == "failed"


def test_missing_outcomes_take_pytest_verdict(collector, rh) -> None:
    for nodeid, call, xfail, expected in [
        ("t.py::f", "failed", False, "failed"),
        ("t.py::p", "passed", False, "passed"),
        ("t.py::xf", "skipped", True, "xfailed"),
        ("t.py::xp", "passed", True, "xpassed"),
    ]:
        rec = without_outcome(rh.make_case(nodeid, images={}))
        run_test(collector, nodeid, call, [("camcheck_case", rec)], xfail=xfail)
        assert collector.cases[nodeid]["outcome"] == expected, nodeid


def test_a_setup_error_with_a_record_is_an_error(collector, rh) -> None:
    rec = without_outcome(rh.make_case("t.py::s", images={}))
    collector.pytest_runtest_logreport(
        fake_report("t.py::s", "setup", "failed", [("camcheck_case", rec)])
    )
    collector.pytest_runtest_logreport(
        fake_report("t.py::s", "teardown", "passed", [("camcheck_case", rec)])
    )
    assert collector.cases["t.py::s"]["outcome"] == "error"
    assert collector.failing_cases == 1


def test_a_teardown_failure_turns_the_case_into_an_error(collector, rh) -> None:
    rec = rh.make_case("t.py::t", images={}, outcome="passed").to_dict()
    props = [("camcheck_case", rec)]
    collector.pytest_runtest_logreport(fake_report("t.py::t", "setup"))
    collector.pytest_runtest_logreport(fake_report("t.py::t", "call", "passed", props))
    collector.pytest_runtest_logreport(fake_report("t.py::t", "teardown", "failed", props))
    assert collector.cases["t.py::t"]["outcome"] == "error"


def test_a_changed_outcome_changes_the_severity(collector, rh) -> None:
    rec = rh.make_case("t.py::t", images={}, outcome="passed")
    assert rec.severity == 0.0
    props = [("camcheck_case", rec.to_dict())]
    collector.pytest_runtest_logreport(fake_report("t.py::t", "setup"))
    collector.pytest_runtest_logreport(fake_report("t.py::t", "call", "passed", props))
    collector.pytest_runtest_logreport(fake_report("t.py::t", "teardown", "failed"))
    stored = collector.cases["t.py::t"]
    assert stored["outcome"] == "error"
    assert stored["severity"] == record_from_dict(stored).severity == 1.0


def test_a_record_seen_only_at_teardown_keeps_the_call_verdict(collector, rh) -> None:
    rec = without_outcome(rh.make_case("t.py::late", images={}))
    collector.pytest_runtest_logreport(fake_report("t.py::late", "setup"))
    collector.pytest_runtest_logreport(fake_report("t.py::late", "call", "failed"))
    collector.pytest_runtest_logreport(
        fake_report("t.py::late", "teardown", "passed", [("camcheck_case", rec)])
    )
    assert collector.cases["t.py::late"]["outcome"] == "failed"


def test_a_rerun_replaces_the_earlier_record(collector, rh) -> None:
    first = rh.make_case("t.py::r", images={}, severity=1.3).to_dict()
    second = rh.make_case("t.py::r", images={}, outcome="passed").to_dict()
    run_test(collector, "t.py::r", "failed", [("camcheck_case", first)])
    run_test(collector, "t.py::r", "passed", [("camcheck_case", second)])
    assert collector.cases["t.py::r"]["outcome"] == "passed"
    assert collector.failing_cases == 0


def test_sessionfinish_writes_and_the_summary_line_names_the_file(collector, rh) -> None:
    case, gate = rh.make_case("t.py::a"), rh.make_gate("t.py::g")
    run_test(collector, "t.py::a", "failed", [("camcheck_case", case.to_dict())])
    run_test(collector, "t.py::g", "failed", [("camcheck_gate", gate.to_dict())])
    collector.pytest_sessionfinish(session=None)
    assert collector.written == collector.path
    report = rh.read_report(collector.path)
    assert report.card_nodeids() == ["t.py::a"]
    assert report.data["summary"] == {"model": "m"}
    assert report.data["schema_version"] == 2
    # the sidecar holds the records that were sent, less their pictures
    (json_case,) = report.data["cases"]
    assert record_from_dict(json_case) == replace(case, images={})
    assert [record_from_dict(g) for g in report.data["gates"]] == [gate]
    assert isinstance(record_from_dict(report.data["gates"][0]), GateRecord)

    lines: list[tuple[str, str]] = []
    reporter = SimpleNamespace(write_sep=lambda sep, text: lines.append((sep, text)))
    collector.pytest_terminal_summary(reporter)
    assert lines == [("-", f"camcheck report: {collector.path} (1 failing case, 1 gate)")]


def test_a_broken_summary_still_gives_a_report(tmp_path, rh) -> None:
    def summary() -> dict:
        raise RuntimeError("model not loaded")

    collector = ReportCollector(tmp_path / "r.html", summary=summary)
    run_test(collector, "t.py::a", "failed", [("camcheck_case", rh.make_case("t.py::a").to_dict())])
    collector.pytest_sessionfinish(session=None)
    report = rh.read_report(tmp_path / "r.html")
    assert "could not be collected: RuntimeError: model not loaded" in report.text()
    assert len(report.cards) == 1


class Terminal:
    """A terminal reporter that keeps what the collector writes to it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_sep(self, sep: str, text: str, **markup: Any) -> None:
        self.lines.append(f"{sep} {text}")

    def write_line(self, text: str, **markup: Any) -> None:
        self.lines.append(text)


def test_an_unwritable_path_is_a_warning_and_the_results_stand(tmp_path, rh) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    collector = ReportCollector(blocker / "r.html", summary=dict)
    run_test(collector, "t.py::a", "failed", [("camcheck_case", rh.make_case("t.py::a").to_dict())])
    collector.pytest_sessionfinish(session=None)  # does not raise: the test results stand
    assert collector.written is None
    assert collector.error is not None
    assert collector.error.startswith(f"could not write the camcheck report to {collector.path}")
    assert blocker.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"], "no temporary file left"
    terminal = Terminal()
    collector.pytest_terminal_summary(terminal)
    assert terminal.lines[0] == "- camcheck report NOT written"
    assert terminal.lines[1].startswith(f"warning: {collector.error}; the test results above")
    assert "--camcheck-report" in terminal.lines[1]


def test_a_failed_write_leaves_no_temporary_file(collector, rh, tmp_path) -> None:
    run_test(collector, "t.py::a", "failed", [("camcheck_case", rh.make_case("t.py::a").to_dict())])
    # the JSON sidecar's place is taken by a folder: both temporary files get written, and
    # the move of the second one fails
    (tmp_path / "r.json" / "keep").mkdir(parents=True)
    collector.pytest_sessionfinish(session=None)
    assert collector.written is None
    assert "r.json" in str(collector.error)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert [p.name for p in (tmp_path / "r.json").iterdir()] == ["keep"]


def test_a_run_in_which_no_test_ran_leaves_the_report_alone(collector, rh, tmp_path) -> None:
    run_test(collector, "t.py::a", "failed", [("camcheck_case", rh.make_case("t.py::a").to_dict())])
    collector.pytest_sessionfinish(session=None)
    before = collector.path.read_bytes()

    idle = ReportCollector(collector.path, summary=dict)
    idle.pytest_sessionfinish(session=None)  # e.g. --collect-only
    assert idle.written is None and idle.error is None
    assert collector.path.read_bytes() == before
    terminal = Terminal()
    idle.pytest_terminal_summary(terminal)
    assert terminal.lines == [f"camcheck report: {collector.path} left as it was (no test ran)"]


def test_the_path_is_made_absolute_at_once(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    collector = ReportCollector("out/r.html", summary=dict)
    assert collector.path == tmp_path / "out" / "r.html"


def test_no_summary_line_before_anything_was_written(collector) -> None:
    lines: list[str] = []
    collector.pytest_terminal_summary(SimpleNamespace(write_sep=lambda *a: lines.append(a)))
    assert lines == []


# ---------------------------------------------------------------- pytest-html


@pytest.fixture
def fake_pytest_html(monkeypatch) -> SimpleNamespace:
    """A stand-in for pytest-html 4's ``extras`` and ``fixtures`` modules."""
    package = types.ModuleType("pytest_html")
    extras = types.ModuleType("pytest_html.extras")
    fixtures = types.ModuleType("pytest_html.fixtures")

    def png(content: str, name: str = "Image") -> dict:
        return {"format_type": "image", "content": content, "name": name, "mime_type": "image/png"}

    extras.png = png  # type: ignore[attr-defined]
    fixtures.extras_stash_key = pytest.StashKey[list]()  # type: ignore[attr-defined]
    package.extras = extras  # type: ignore[attr-defined]
    package.fixtures = fixtures  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pytest_html", package)
    monkeypatch.setitem(sys.modules, "pytest_html.extras", extras)
    monkeypatch.setitem(sys.modules, "pytest_html.fixtures", fixtures)
    return SimpleNamespace(key=fixtures.extras_stash_key)


def test_attach_to_a_report_appends_to_its_extras(fake_pytest_html) -> None:
    report = fake_report("t.py::a", "call", "failed")
    report.extras = [{"name": "earlier"}]
    assert attach_pytest_html(report, "iVBORw0KGgo=") is True
    assert report.extras[0] == {"name": "earlier"}
    assert report.extras[1]["content"] == "iVBORw0KGgo="
    assert report.extras[1]["name"] == "CAM overlay"


def test_attach_to_an_item_uses_the_extras_fixture_list_when_active(fake_pytest_html) -> None:
    stash = pytest.Stash()
    item = SimpleNamespace(config=SimpleNamespace(stash=stash))
    assert attach_pytest_html(item, "abc") is False, "fixture not in use: nothing to attach to"
    stash[fake_pytest_html.key] = []
    assert attach_pytest_html(item, "abc") is True
    assert stash[fake_pytest_html.key][0]["content"] == "abc"


def test_attach_is_a_no_op_without_pytest_html(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest_html", None)  # makes the import fail
    report = fake_report("t.py::a", "call", "failed")
    assert attach_pytest_html(report, "abc") is False
    assert not hasattr(report, "extras")


def test_importing_the_collector_is_cheap() -> None:
    # the plugin imports it at configure time of every run with a report path: no numpy,
    # OpenCV, jinja2 or torch until the report is written
    heavy = ("torch", "cv2", "jinja2", "numpy", "skimage")
    code = (
        "import json, sys\n"
        "import pytest_camcheck.report\n"
        "from pytest_camcheck.report.collector import ReportCollector\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
