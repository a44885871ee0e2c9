"""The pytest plugin object that gathers camcheck records and writes the report at the end.

The plugin registers one :class:`ReportCollector` in ``pytest_configure`` when a report path is
set and the process is not an xdist worker, and unregisters it in ``pytest_unconfigure`` (the
life cycle of pytest's junitxml). On the worker (or the only process) the plugin appends, for
every camcheck test, ``("camcheck_case", record)`` or ``("camcheck_gate", record)`` to the call
report's ``user_properties``; xdist serialises those to the controller, where this collector
harvests them from ``pytest_runtest_logreport`` and writes the report in
``pytest_sessionfinish``.

Importing this module is cheap (no numpy, OpenCV, jinja2 or torch): the report is rendered only
when the session finishes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .records import OUTCOMES, outcome_of, record_from_dict

__all__ = ["CASE_KEY", "GATE_KEY", "ReportCollector", "attach_pytest_html"]

CASE_KEY = "camcheck_case"
GATE_KEY = "camcheck_gate"
_OUTCOMES = frozenset(OUTCOMES)


def _report_outcome(report: Any) -> str:
    """pytest's verdict for one phase report (see :func:`.records.outcome_of`)."""
    return outcome_of(
        report.when,
        bool(report.passed),
        bool(report.failed),
        bool(report.skipped),
        hasattr(report, "wasxfail"),
    )


def _set_outcome(record: dict[str, Any], outcome: str, *, case: bool) -> None:
    """Set a record's outcome; a case's severity follows it (it is computed from it)."""
    record["outcome"] = outcome
    if case:
        record["severity"] = record_from_dict({**record, "kind": "case"}).severity


def _entries(report: Any) -> list[tuple[str, dict[str, Any]]]:
    """The camcheck records in a report's ``user_properties`` (tuples, or lists after xdist)."""
    found = []
    for entry in getattr(report, "user_properties", None) or ():
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            continue
        name, value = entry
        if name in (CASE_KEY, GATE_KEY) and isinstance(value, Mapping):
            found.append((name, dict(value)))
    return found


class ReportCollector:
    """Collects camcheck case and gate records and writes the HTML + JSON report.

    Args:
        path: the HTML file to write (the JSON file goes next to it, suffix ``.json``).
        include_passed: also show cards for passing cases.
        max_cases: at most this many case cards in the HTML (worst first).
        summary: called once at the end of the session; returns the run's summary dict
            (model, weights, dataset, layers, method, device, thresholds, versions...).

    Example (what the plugin does)::

        collector = ReportCollector(
            path, include_passed=False, max_cases=200, summary=lambda: {"model": "resnet18"}
        )
        config.pluginmanager.register(collector, "camcheck-report")
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        include_passed: bool = False,
        max_cases: int = 200,
        summary: Callable[[], Mapping[str, Any]],
    ) -> None:
        # absolute now: a test may chdir before the session ends
        self.path = Path(os.path.abspath(os.fspath(path)))
        self.include_passed = bool(include_passed)
        self.max_cases = max_cases
        self.summary = summary
        self.cases: dict[str, dict[str, Any]] = {}
        self.gates: dict[tuple[str, str], dict[str, Any]] = {}
        self.written: Path | None = None
        self.error: str | None = None
        self.skipped_reason: str | None = None
        self._ran = False
        self._outcomes: dict[str, str] = {}

    # ------------------------------------------------------------ harvesting

    def _store(
        self, nodeid: str, entries: list[tuple[str, dict]], outcome: str, *, replace: bool
    ) -> None:
        for name, record in entries:
            record.setdefault("nodeid", nodeid)
            if outcome == "error" or record.get("outcome") not in _OUTCOMES:
                # the plugin's own outcome stands (a passing gate in a failing test stays
                # "passed"); pytest's verdict fills it in when missing, and errors win
                _set_outcome(record, outcome, case=name == CASE_KEY)
            if name == CASE_KEY:
                record.setdefault("kind", "case")
                if replace or nodeid not in self.cases:
                    self.cases[nodeid] = record
            else:
                record.setdefault("kind", "gate")
                key = (nodeid, str(record.get("name", "")))
                if replace or key not in self.gates:
                    self.gates[key] = record

    def _mark_error(self, nodeid: str) -> None:
        if nodeid in self.cases:
            _set_outcome(self.cases[nodeid], "error", case=True)

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Keep one case record per test (and one gate record per test and gate name).

        The call phase's records win. A record without a valid ``outcome`` gets pytest's verdict
        for the test. A record attached to a failing setup becomes an ``"error"``; a failing
        teardown turns the test's case into an error; a record that only arrives with the
        teardown report is kept (with the call phase's verdict when it has no outcome).
        """
        nodeid = report.nodeid
        self._ran = True
        entries = _entries(report)
        if report.when == "call":
            outcome = _report_outcome(report)
            self._outcomes[nodeid] = outcome
            if entries:
                self._store(nodeid, entries, outcome, replace=True)
        elif report.when == "setup":
            if report.failed or report.skipped:
                self._outcomes[nodeid] = _report_outcome(report)
                if entries:
                    self._store(nodeid, entries, self._outcomes[nodeid], replace=False)
        else:  # teardown
            if report.failed:
                self._mark_error(nodeid)
                if entries:
                    self._store(nodeid, entries, "error", replace=False)
            elif entries:
                outcome = self._outcomes.get(nodeid, "passed")
                self._store(nodeid, entries, outcome, replace=False)
            self._outcomes.pop(nodeid, None)

    # ------------------------------------------------------------ results

    def records(self) -> list[dict[str, Any]]:
        """Every record collected so far: cases then gates, in arrival order."""
        return [*self.cases.values(), *self.gates.values()]

    @property
    def failing_cases(self) -> int:
        return sum(r.get("outcome") in ("failed", "error") for r in self.cases.values())

    def _summary(self) -> dict[str, Any]:
        try:
            return dict(self.summary() or {})
        except Exception as exc:  # the report is still worth writing without the summary
            return {"_error": f"{type(exc).__name__}: {exc}"}

    def pytest_sessionfinish(self, session: Any) -> None:
        """Write the report (also after an interrupted run: it holds what was collected).

        A run in which no test ran (``--collect-only``, a usage error, nothing selected) leaves
        an existing report alone. A write that fails is reported as a warning in the terminal
        summary; the test outcomes stand.
        """
        if not self._ran:
            self.skipped_reason = "no test ran"
            return
        from .html import write_report

        try:
            self.written = write_report(
                self.path,
                self._summary(),
                self.records(),
                include_passed=self.include_passed,
                max_cases=self.max_cases,
            )
        except (OSError, ConfigError) as exc:
            self.error = f"could not write the camcheck report to {self.path}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """``camcheck report: <path> (<n> failing cases, <m> gates)``, or why none was written."""
        if self.error is not None:
            terminalreporter.write_sep("-", "camcheck report NOT written", yellow=True)
            terminalreporter.write_line(
                f"warning: {self.error}; the test results above stand. Make sure the folder is "
                "writable, or pass another path with --camcheck-report",
                yellow=True,
            )
            return
        if self.written is None:
            if self.skipped_reason and self.path.exists():
                terminalreporter.write_line(
                    f"camcheck report: {self.path} left as it was ({self.skipped_reason})"
                )
            return
        n, m = self.failing_cases, len(self.gates)
        terminalreporter.write_sep(
            "-",
            f"camcheck report: {self.written} ({n} failing case{'s' if n != 1 else ''}, "
            f"{m} gate{'s' if m != 1 else ''})",
        )


def attach_pytest_html(item_or_report: Any, png_b64: str, name: str = "CAM overlay") -> bool:
    """Show a picture (base64 PNG, WebP or JPEG) in pytest-html's report for this test, when
    pytest-html is installed.

    Pass the call-phase ``TestReport`` from a ``pytest_runtest_makereport`` wrapper: the image is
    appended to ``report.extras``. With a test item, the image goes to the list of pytest-html's
    ``extras`` fixture when that fixture is active for the test (pytest-html reads nothing else
    from an item).

    Args:
        item_or_report: a ``TestReport`` (preferred) or a test item.
        png_b64: the picture's bytes in base64 (its header gives pytest-html its MIME type).
        name: the extra's title in pytest-html.

    Returns:
        Whether the image was attached (False without pytest-html, or for an item whose test does
        not use the ``extras`` fixture).
    """
    try:
        from pytest_html import extras as html_extras
    except ImportError:
        return False
    from .html import image_info

    info = image_info(png_b64)
    if info is None or info[0] == "image/png":
        extra = html_extras.png(png_b64, name=name)
    else:  # the report's pictures are WebP (or JPEG): tell pytest-html the right type
        mime = info[0]
        extra = html_extras.image(png_b64, name, mime_type=mime, extension=mime.split("/")[1])
    if hasattr(item_or_report, "when") and hasattr(item_or_report, "outcome"):
        item_or_report.extras = [*(getattr(item_or_report, "extras", None) or []), extra]
        return True
    config = getattr(item_or_report, "config", None)
    if config is None:
        return False
    try:
        from pytest_html.fixtures import extras_stash_key
    except ImportError:
        return False
    fixture_list = config.stash.get(extras_stash_key, None)
    if fixture_list is None:
        return False
    fixture_list.append(extra)
    return True
