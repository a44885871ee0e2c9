"""Turning a finished camcheck test item into report records (worker side).

Records are plain JSON-serialisable dicts attached to the call report's ``user_properties``
(``("camcheck_case", record)`` / ``("camcheck_gate", record)``), so pytest-xdist carries them to
the controller, where the report collector writes the HTML. Overlays are rendered here, on the
process that holds the maps, and only for failing cases unless ``report_all`` is set.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from . import metrics
from .plugin import CASE_KEY, CHECK_KEY, SCOPE_KEY, _settings

__all__ = ["case_record", "records_for"]


def _outcome(report: pytest.TestReport) -> str:
    xfail = hasattr(report, "wasxfail")
    if report.when == "setup" and report.failed:
        return "error"
    if report.skipped and xfail:
        return "xfailed"
    if report.passed and xfail:
        return "xpassed"
    return str(report.outcome)


def _message(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str | None:
    if call.excinfo is not None:
        text = str(call.excinfo.value).strip()
        name = call.excinfo.typename
        return text if name in ("CamAssertionError", "AssertionError") else f"{name}: {text}"
    if report.failed:
        return report.longreprtext.strip().splitlines()[-1] if report.longreprtext else None
    return None


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _severity(outcome: str, degenerate: bool, items: list[dict[str, Any]]) -> float:
    if outcome in ("passed", "xpassed"):
        return 0.0
    worst = 0.0
    for ev in items:
        if ev.get("passed"):
            continue
        for have, need, sign in (
            ("fraction", "min_fraction", 1),
            ("fraction", "max_fraction", -1),
            ("iou", "min_iou", 1),
        ):
            if isinstance(ev.get(have), (int, float)) and isinstance(ev.get(need), (int, float)):
                worst = max(worst, sign * (ev[need] - ev[have]))
        if isinstance(ev.get("distance"), (int, float)):
            worst = max(worst, min(1.0, float(ev["distance"]) / 100.0))
    return (2.0 if degenerate else 1.0) + worst


def case_record(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None], render: bool
) -> dict[str, Any]:
    """The ``camcheck_case`` record of a per-sample item."""
    case = item.stash[CASE_KEY]
    scope = item.stash.get(SCOPE_KEY, None)
    items = list(scope.items) if scope is not None else []
    settings = _settings(item.config)
    outcome = _outcome(report)
    values: dict[str, Any] = {}
    for name, region in case.regions.items():
        try:  # a region the map cannot score (empty after the transform) gets no number
            values[f"energy_in[{name}]"] = _finite(metrics.energy_fraction(case.map, region))
            values[f"peak_hit[{name}]"] = metrics.pointing_hit(
                case.map, region, tolerance=settings.peak_tolerance
            )
        except ValueError:
            values[f"energy_in[{name}]"] = values[f"peak_hit[{name}]"] = None
    record: dict[str, Any] = {
        "kind": "case",
        "nodeid": item.nodeid,
        "case_id": case.id,
        "outcome": outcome,
        "message": _message(report, call),
        "evidence": items,
        "path": case.path,
        "label": case.label,
        "class_name": case.class_name,
        "prediction": case.prediction,
        "prediction_name": case.prediction_name,
        "probability": case.probability,
        "target": case.target,
        "method": case.method,
        "layer": case.layer,
        "layers": list(case.layers),
        "degenerate": case.degenerate,
        "metrics": values,
        "severity": _severity(outcome, case.degenerate, items),
        "images": {},
    }
    if render:
        from .report.render import render_case_images

        peak = case.peak()
        record["images"] = render_case_images(
            case.display_image(),
            {k: v.detach().cpu().numpy() for k, v in case.maps.items()},
            case.layer,
            case.regions,
            None if peak is None else (peak.row, peak.col),
        )
    return record


def gate_records(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]
) -> Iterator[dict[str, Any]]:
    """``camcheck_gate`` records for the pass-rate assertions a dataset-level test made."""
    scope = item.stash.get(SCOPE_KEY, None)
    if scope is None:
        return
    outcome = _outcome(report)
    message = _message(report, call)
    for ev in scope.items:
        if ev.get("kind") != "pass_rate":
            continue
        result = dict(ev.get("result") or {})
        yield {
            "kind": "gate",
            "nodeid": item.nodeid,
            "outcome": "passed" if ev.get("passed") else outcome,
            "message": None if ev.get("passed") else message,
            "name": result.get("name"),
            "passed": result.get("passed"),
            "count": result.get("count"),
            "rate": result.get("rate"),
            "lower": result.get("lower"),
            "upper": result.get("upper"),
            "confidence": result.get("confidence"),
            "min_rate": ev.get("min_rate"),
            "bound": ev.get("bound"),
            "threshold": result.get("threshold"),
            "values": list(result.get("values") or []),
            "per_class": {
                k: {f: v.get(f) for f in ("passed", "count", "rate", "lower", "upper")}
                for k, v in (result.get("per_class") or {}).items()
            },
            "failures": list(result.get("failures") or []),
        }


def records_for(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]
) -> Iterator[tuple[str, dict[str, Any]]]:
    settings = _settings(item.config)
    if CASE_KEY in item.stash:
        outcome = _outcome(report)
        render = settings.report_all or outcome in ("failed", "xfailed", "error")
        yield "camcheck_case", case_record(item, report, call, render)
    elif CHECK_KEY in item.stash:
        for rec in gate_records(item, report, call):
            yield "camcheck_gate", rec
