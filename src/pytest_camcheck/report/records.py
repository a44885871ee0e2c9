"""The one schema of what camcheck reports: evidence, case and gate records.

An ``assert_*`` helper that decides writes one :class:`Evidence` (what it measured, on which
map, against which threshold, and its verdict). The plugin wraps a finished test item's evidence
into a :class:`CaseRecord` (a per-sample item) or one :class:`GateRecord` per pass-rate
assertion (a dataset-level item), from plain values. Records travel to the xdist controller as
plain dicts (:meth:`to_dict` / ``from_dict``) and are rendered by :mod:`.html`, which never
recomputes a number.

:func:`outcome_of` is the one function that turns pytest's phase reports into a test outcome.

Imports nothing heavy (no numpy, torch or jinja2): assertions import it in every test.
The JSON layout is documented in ``docs/report.md`` (``schema_version`` :data:`SCHEMA_VERSION`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "OUTCOMES",
    "SCHEMA_VERSION",
    "CaseRecord",
    "Evidence",
    "GateRecord",
    "PeakInfo",
    "RegionInfo",
    "failure_message",
    "jsonable",
    "outcome_of",
    "record_from_dict",
    "severity",
]

SCHEMA_VERSION = 2
#: Every outcome a record can carry.
OUTCOMES = ("passed", "failed", "error", "xfailed", "xpassed", "skipped")


def jsonable(value: Any) -> Any:
    """Plain JSON types only: non-finite floats -> None, tuples -> lists, others -> str."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class RegionInfo:
    """The region an assertion measured against.

    Attributes:
        name: the region's name (``"head"``; ``"box"`` for a bare box).
        bbox: its bounding box ``{"x0", "y0", "x1", "y1"}`` in the map's pixels.
        area_fraction: the share of the map's pixels it covers, when known.
    """

    name: str
    bbox: dict[str, float] | None = None
    area_fraction: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RegionInfo | None:
        return None if not isinstance(data, Mapping) else cls(**_known(cls, data))


@dataclass(frozen=True)
class PeakInfo:
    """The map's maximum: pixel row/col (first in row-major order), value, tied pixels."""

    row: int
    col: int
    value: float
    ties: int = 1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PeakInfo | None:
        return None if not isinstance(data, Mapping) else cls(**_known(cls, data))


@dataclass(frozen=True)
class Evidence:
    """What one assertion measured and decided.

    Attributes:
        check: the assertion (``"peak_in_box"``, ``"energy_in_region"``,
            ``"energy_outside_region"``, ``"localization_iou"``, ``"not_degenerate"``,
            ``"pass_rate"``...).
        passed: its verdict.
        metric: the name of the measured number (``"distance_px"``, ``"energy_fraction"``,
            ``"iou"``, ``"rate"``...).
        value: the measured number (None when it could not be measured, e.g. degenerate).
        threshold_name: what the limit is called (``"tolerance"``, ``"min_fraction"``,
            ``"max_fraction"``, ``"min_iou"``, ``"min_rate"``).
        threshold: the limit the assertion actually used.
        sample: the sample id, for per-sample assertions inside a camcheck test.
        layer / method / target: the map's provenance when it is one of camcheck's maps
            (None for a map the test made itself).
        region: the region measured against.
        peak: the map's peak.
        message: the failure message (None when it passed).
        degenerate: why the map is degenerate, if it is.
        details: other numbers worth showing (e.g. the predicted box of an IoU check, or the
            whole rate result of a pass-rate check).
    """

    check: str
    passed: bool
    metric: str | None = None
    value: float | None = None
    threshold_name: str | None = None
    threshold: float | None = None
    sample: str | None = None
    layer: str | None = None
    method: str | None = None
    target: int | None = None
    region: RegionInfo | None = None
    peak: PeakInfo | None = None
    message: str | None = None
    degenerate: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        values = _known(cls, data)
        values["region"] = RegionInfo.from_dict(data.get("region"))
        values["peak"] = PeakInfo.from_dict(data.get("peak"))
        values["details"] = dict(data.get("details") or {})
        values.setdefault("check", "evidence")
        values["passed"] = bool(values.get("passed"))
        return cls(**values)

    def margin(self) -> float:
        """How far a failing measurement missed its limit, roughly in [0, 1] (0 when passed)."""
        if self.passed:
            return 0.0
        v, t = self.value, self.threshold
        if v is None or t is None or not (math.isfinite(v) and math.isfinite(t)):
            return 1.0 if self.degenerate else 0.0
        if self.threshold_name == "tolerance":  # a distance in pixels
            return min(1.0, max(0.0, v - t) / 100.0)
        if self.threshold_name and self.threshold_name.startswith("max"):
            return max(0.0, v - t)
        return max(0.0, t - v)


@dataclass(frozen=True)
class CaseRecord:
    """One per-sample test item (``camcheck_case``) and what its assertions found.

    Attributes:
        nodeid: the test item's id.
        case_id: the sample id.
        outcome: one of :data:`OUTCOMES`.
        message: the failure message (one line per assertion or error).
        evidence: what each assertion measured, in order.
        layer: the layer whose map the card draws: the failing assertion's layer, else the
            test's configured layer.
        method: the CAM method of that map.
        layers: every layer computed for the sample (the card's strip).
        target / label / class_name / prediction / prediction_name / probability: the sample's
            classes and the model's answer.
        path: the image file, if any.
        degenerate: whether the drawn map is degenerate.
        settings: the settings the test ran with (marker overrides applied), for the card.
        images: base64 pictures (``original``, ``overlay``, ``strip``, and ``full`` with
            ``camcheck_report_full_images``); empty when not rendered.
        image_id: the image's sample id when the case is one (image, class) pair of an image
            with objects of several classes (``case_id`` is then ``image_id/class``); the
            report groups such cards by image. None for a single-label sample.
    """

    nodeid: str
    case_id: str
    outcome: str
    message: str | None = None
    evidence: tuple[Evidence, ...] = ()
    layer: str | None = None
    method: str | None = None
    layers: tuple[str, ...] = ()
    target: int | None = None
    label: int | None = None
    class_name: str | None = None
    prediction: int | None = None
    prediction_name: str | None = None
    probability: float | None = None
    path: str | None = None
    degenerate: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    kind: str = "case"
    image_id: str | None = None

    @property
    def severity(self) -> float:
        return severity(self.outcome, self.degenerate, self.evidence)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "evidence"}
        out = jsonable(out)
        out["evidence"] = [e.to_dict() for e in self.evidence]
        out["severity"] = self.severity
        out["images"] = dict(self.images)  # base64 strings, kept as they are
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseRecord:
        values = _known(cls, data)
        values["evidence"] = tuple(
            Evidence.from_dict(e) for e in data.get("evidence") or () if isinstance(e, Mapping)
        )
        values["layers"] = tuple(str(x) for x in data.get("layers") or ())
        values["images"] = dict(data.get("images") or {})
        values["settings"] = dict(data.get("settings") or {})
        values.setdefault("nodeid", "")
        values.setdefault("case_id", str(values["nodeid"]))
        values.setdefault("outcome", "failed")
        values["kind"] = "case"
        return cls(**values)


@dataclass(frozen=True)
class GateRecord:
    """One dataset-level gate and its verdict: a pass-rate assertion (``assert_pass_rate``) or
    a candidate-versus-reference gate (``assert_no_regression``).

    Attributes:
        nodeid: the test item's id.
        name: the rate's name, naming its layer (``"pointing_game[head, tol=15] @ layer4"``).
        outcome: this gate's own outcome (a passing gate in a failing test stays passed).
        message: the failure message, when it failed.
        layer / method: the maps the rate was measured on.
        passed / count / rate / lower / upper / confidence: the rate and its interval.
        min_rate / bound: the requirement.
        metric / threshold_name / threshold: the per-sample measurement and its limit.
        values: per-sample values (e.g. energy fractions), for the histogram.
        per_class: class -> ``{"passed", "count", "rate", "lower", "upper"}``.
        failures: ids of the failing samples (for ``no_regression``: the samples the candidate
            broke).
        missing: ids of the samples that lack the region.
        check: the assertion: ``"pass_rate"`` or ``"no_regression"``.
        comparison: for ``no_regression``, the paired comparison: ``candidate`` / ``reference``
            (each ``{"passed", "count", "rate", "lower", "upper"}`` over the pairs), ``n``,
            ``difference`` with ``lower`` / ``upper`` (Newcombe's interval) and ``confidence``,
            ``p_value`` (exact McNemar), ``fixed`` / ``broken`` ids, and the gate's ``max_drop``,
            ``bound`` and ``measured`` bound.
        similarity: for a rate of map similarity (to a baseline or a reference model): what
            it compared ``against``, its ``source``, the thresholds, per-sample ``peak_shift``
            and ``rank_corr`` (``values`` are the SSIMs), ``energy_change`` per region, the
            samples that ``moved`` most, and those ``added`` / ``removed`` / ``changed`` since
            the baseline.
        images: pictures of the samples that moved or that the candidate broke or fixed
            (``{"samples": [{"id", "kind", "tiles": [{"caption", "png"}]}]}``; not in the JSON).
        extra: the plot data of a sanity or shortcut check (:mod:`pytest_camcheck.sanity`):
            ``{"kind": "randomization" | "deletion" | "insertion" | "occlusion" |
            "spatial_bias", ...}``, as the check computed it.
    """

    nodeid: str
    name: str
    outcome: str
    message: str | None = None
    layer: str | None = None
    method: str | None = None
    passed: int = 0
    count: int = 0
    rate: float | None = None
    lower: float | None = None
    upper: float | None = None
    confidence: float | None = None
    min_rate: float | None = None
    bound: str | None = None
    metric: str | None = None
    threshold_name: str | None = None
    threshold: float | None = None
    values: tuple[float | None, ...] = ()
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    check: str = "pass_rate"
    comparison: dict[str, Any] = field(default_factory=dict)
    similarity: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "gate"

    @classmethod
    def from_evidence(
        cls, nodeid: str, evidence: Evidence, outcome: str, message: str | None = None
    ) -> GateRecord:
        """The gate of one ``pass_rate`` evidence (its details hold the rate result) or one
        ``no_regression`` evidence (its details hold the paired comparison)."""
        own = "passed" if evidence.passed else outcome
        if evidence.check == "no_regression":
            return cls._from_comparison(nodeid, evidence, own, message)
        result = dict(evidence.details.get("result") or {})
        per_class = {
            str(k): {f: v.get(f) for f in ("passed", "count", "rate", "lower", "upper")}
            for k, v in (result.get("per_class") or {}).items()
            if isinstance(v, Mapping)
        }
        return cls(
            nodeid=nodeid,
            name=str(result.get("name") or evidence.check),
            outcome=own,
            message=None if evidence.passed else (evidence.message or message),
            layer=result.get("layer"),
            method=result.get("method"),
            passed=int(result.get("passed") or 0),
            count=int(result.get("count") or 0),
            rate=result.get("rate"),
            lower=result.get("lower"),
            upper=result.get("upper"),
            confidence=result.get("confidence"),
            min_rate=evidence.threshold,
            bound=evidence.details.get("bound"),
            metric=result.get("metric"),
            threshold_name=result.get("threshold_name"),
            threshold=result.get("threshold"),
            values=tuple(result.get("values") or ()),
            per_class=per_class,
            failures=tuple(result.get("failures") or ()),
            missing=tuple(result.get("missing") or ()),
            similarity=dict(result.get("similarity") or {}),
            extra=dict(result.get("extra") or {}),
        )

    @classmethod
    def _from_comparison(
        cls, nodeid: str, evidence: Evidence, own: str, message: str | None
    ) -> GateRecord:
        comparison = dict(evidence.details.get("comparison") or {})
        comparison.update(
            max_drop=evidence.threshold,
            bound=evidence.details.get("bound"),
            measured=evidence.value,
        )
        candidate = comparison.get("candidate") or {}
        return cls(
            nodeid=nodeid,
            name=str(comparison.get("name") or evidence.check),
            outcome=own,
            message=None if evidence.passed else (evidence.message or message),
            layer=evidence.layer,
            method=evidence.method,
            passed=int(candidate.get("passed") or 0),
            count=int(candidate.get("count") or 0),
            rate=candidate.get("rate"),
            lower=candidate.get("lower"),
            upper=candidate.get("upper"),
            confidence=comparison.get("confidence"),
            bound=evidence.details.get("bound"),
            metric=evidence.metric,
            failures=tuple(comparison.get("broken") or ()),
            check="no_regression",
            comparison=comparison,
        )

    def to_dict(self) -> dict[str, Any]:
        out = jsonable({f.name: getattr(self, f.name) for f in fields(self) if f.name != "images"})
        if self.images:  # base64 strings, kept as they are (the JSON sidecar leaves them out)
            out["images"] = dict(self.images)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateRecord:
        values = _known(cls, data)
        for key in ("values", "failures", "missing"):
            values[key] = tuple(data.get(key) or ())
        values["per_class"] = dict(data.get("per_class") or {})
        for key in ("comparison", "similarity", "images", "extra"):
            values[key] = dict(data.get(key) or {})
        values.setdefault("nodeid", "")
        values.setdefault("name", str(values["nodeid"]) or "gate")
        values.setdefault("outcome", "failed")
        values["kind"] = "gate"
        return cls(**values)


def record_from_dict(data: Mapping[str, Any]) -> CaseRecord | GateRecord:
    """A record from its dict form (``"kind"`` tells which)."""
    if data.get("kind") == "gate":
        return GateRecord.from_dict(data)
    return CaseRecord.from_dict(data)


def severity(outcome: str, degenerate: bool, evidence: Sequence[Evidence]) -> float:
    """How bad a case is, for ordering cards: 0 when it passed; failures 1 + the worst margin,
    degenerate maps 2 + it."""
    if outcome in ("passed", "xpassed", "skipped"):
        return 0.0
    worst = max((e.margin() for e in evidence), default=0.0)
    return (2.0 if degenerate else 1.0) + worst


def outcome_of(when: str, passed: bool, failed: bool, skipped: bool, wasxfail: bool) -> str:
    """THE outcome of a test from one phase report's flags.

    ``when`` is the phase (``"setup"``, ``"call"``, ``"teardown"``); a failure outside the call
    is an ``"error"``; an expected failure is ``"xfailed"``, an unexpected pass ``"xpassed"``.
    """
    if when != "call":
        if failed:
            return "error"
        if skipped:
            return "xfailed" if wasxfail else "skipped"
        return "passed"
    if failed:
        return "failed"
    if skipped:
        return "xfailed" if wasxfail else "skipped"
    return "xpassed" if wasxfail else "passed"


def failure_message(text: str | None, exc_type: str | None) -> str | None:
    """The one-paragraph message a card shows for a failure (assertion text as it is; other
    exceptions prefixed with their type)."""
    if text is None:
        return None
    text = text.strip()
    if exc_type in (None, "CamAssertionError", "AssertionError", "Failed"):
        return text or None
    return f"{exc_type}: {text}" if text else exc_type
