"""View models of the regression gates and of compared maps, for the report's template.

A gate of ``assert_no_regression`` shows the candidate's and the reference's rates, their
difference with its interval, the McNemar p-value, the samples the candidate broke and fixed,
and both models' maps side by side for those samples. A gate on a map-similarity rate (to a
baseline or to a reference model) shows what it compared against, the thresholds, the samples
that moved most with their numbers, the samples added, removed or changed since the baseline,
and baseline | current | difference for the samples that moved. A case card whose test used
``baseline_map`` or ``reference_map`` shows the same three pictures.

Every number comes from the records as the assertions wrote them; this module only formats them.
``data_uri`` (the page's own check of base64 PNGs) is passed in by :mod:`.html`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ComparedView",
    "RegressionView",
    "SampleView",
    "Tile",
    "case_compared",
    "gate_regression",
]

DASH = "—"
_LISTED = 20
DataUri = Callable[[Any], Any]


@dataclass(frozen=True)
class Tile:
    """One picture of a compared sample (``uri`` None: missing or malformed)."""

    uri: Any
    caption: str
    alt: str


@dataclass(frozen=True)
class SampleView:
    """One sample of a regression gate: why it is shown, its numbers and its pictures."""

    id: str
    kind: str
    numbers: list[tuple[str, str]]
    tiles: list[Tile]


@dataclass(frozen=True)
class RegressionView:
    """The regression block of one gate."""

    title: str
    facts: list[tuple[str, str]]
    lists: list[tuple[str, str]]
    head: list[str]
    rows: list[list[str]]
    samples: list[SampleView] = field(default_factory=list)


@dataclass(frozen=True)
class ComparedView:
    """A case's map beside the map it was compared with."""

    role: str
    tiles: list[Tile]


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _pct(value: Any) -> str:
    v = _num(value)
    return DASH if v is None else f"{100 * v:.1f}%"


def _points(value: Any) -> str:
    v = _num(value)
    return DASH if v is None else f"{100 * v:+.1f}"


def _fmt(value: Any, digits: int = 3) -> str:
    v = _num(value)
    return DASH if v is None else f"{v:.{digits}f}"


def _ids(values: Any) -> str:
    if not isinstance(values, (list, tuple)) or not values:
        return DASH
    shown = ", ".join(str(v) for v in values[:_LISTED])
    more = len(values) - _LISTED
    return shown + (f" … (+{more} more, see the JSON file)" if more > 0 else "")


def _rate(entry: Any, confidence: Any) -> str:
    if not isinstance(entry, Mapping):
        return DASH
    conf = _num(confidence)
    ci = f"{100 * conf:g}% CI " if conf is not None else "CI "
    return (
        f"{entry.get('passed', DASH)}/{entry.get('count', DASH)} = {_pct(entry.get('rate'))} "
        f"({ci}{_pct(entry.get('lower'))} – {_pct(entry.get('upper'))})"
    )


def _tiles(sample: Mapping[str, Any], data_uri: DataUri) -> list[Tile]:
    out = []
    for tile in sample.get("tiles") or ():
        if isinstance(tile, Mapping):
            caption = str(tile.get("caption", ""))
            out.append(Tile(data_uri(tile.get("png")), caption, f"{sample.get('id')}: {caption}"))
    return out


def _pictured(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    images = record.get("images")
    samples = images.get("samples") if isinstance(images, Mapping) else None
    return [s for s in samples or () if isinstance(s, Mapping)]


def _comparison_view(record: Mapping[str, Any], data_uri: DataUri) -> RegressionView:
    c = record.get("comparison") or {}
    conf = c.get("confidence")
    drop = _num(c.get("max_drop")) or 0.0
    bound = str(c.get("bound") or "lenient")
    rule = (
        f"lenient: fails when the candidate is worse by more than {100 * drop:g} points with "
        f"{_pct(conf)} confidence (upper bound of the difference < {_points(-drop)})"
        if bound == "lenient"
        else f"strict: fails unless the candidate is shown to be at most {100 * drop:g} points "
        f"worse (lower bound of the difference < {_points(-drop)} fails)"
    )
    facts = [
        ("Candidate", _rate(c.get("candidate"), conf)),
        ("Reference", _rate(c.get("reference"), conf)),
        (
            "Difference",
            f"{_points(c.get('difference'))} points ({_pct(conf)} CI "
            f"{_points(c.get('lower'))} to {_points(c.get('upper'))}; Newcombe, paired)",
        ),
        ("Exact McNemar p", _fmt(c.get("p_value"), 4)),
        ("Paired samples", str(c.get("n", DASH))),
        ("Gate", rule),
    ]
    lists = [
        ("Broken by the candidate", _ids(c.get("broken"))),
        ("Fixed by the candidate", _ids(c.get("fixed"))),
    ]
    if c.get("unpaired"):
        lists.append(("Evaluated by one model only", _ids(c.get("unpaired"))))
    samples = [
        SampleView(str(s.get("id")), str(s.get("kind", "")), [], _tiles(s, data_uri))
        for s in _pictured(record)
    ]
    return RegressionView("Candidate vs reference", facts, lists, [], [], samples)


def _moved_numbers(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    numbers = [
        ("SSIM", _fmt(entry.get("ssim"))),
        ("peak shift", f"{_fmt(entry.get('peak_shift'), 1)} px"),
        ("rank correlation", _fmt(entry.get("rank_corr"))),
    ]
    energy = entry.get("energy_change")
    if isinstance(energy, Mapping):
        numbers += [(f"energy in {k}", _points(v) + " points") for k, v in energy.items()]
    if entry.get("target_changed"):
        numbers.append(("explained class", "changed"))
    return numbers


def _similarity_view(record: Mapping[str, Any], data_uri: DataUri) -> RegressionView:
    s = record.get("similarity") or {}
    against = str(s.get("against") or "baseline")
    limits = []
    if _num(s.get("min_ssim")) is not None:
        limits.append(f"SSIM ≥ {_num(s.get('min_ssim')):g}")
    if _num(s.get("max_peak_shift")) is not None:
        limits.append(f"peak shift ≤ {_num(s.get('max_peak_shift')):g} px")
    if _num(s.get("min_rank_corr")) is not None:
        limits.append(f"rank correlation ≥ {_num(s.get('min_rank_corr')):g}")
    size = s.get("ssim_size")
    facts = [
        ("Compared with", f"{against}: {s.get('source') or DASH}"),
        ("A sample passes when", "; ".join(limits) or DASH),
        ("SSIM of the display maps at", f"{size}x{size}" if size else DASH),
    ]
    lists = [
        (label, _ids(s.get(key)))
        for key, label in (
            ("added", "Added since the baseline (not compared)"),
            ("removed", "Removed since the baseline"),
            ("changed", "Image changed since the baseline (not compared)"),
        )
        if s.get(key)
    ]
    moved = [m for m in s.get("moved") or () if isinstance(m, Mapping)]
    regions = sorted({k for m in moved for k in (m.get("energy_change") or {})})
    head = ["Sample", "Verdict", "SSIM", "Peak shift (px)", "Rank correlation"]
    head += [f"Energy in {r} (points)" for r in regions]
    rows = []
    for m in moved:
        energy = m.get("energy_change") or {}
        rows.append(
            [
                str(m.get("id")),
                "passed" if m.get("passed") else "FAILED",
                _fmt(m.get("ssim")),
                _fmt(m.get("peak_shift"), 1),
                _fmt(m.get("rank_corr")),
                *[_points(energy.get(r)) for r in regions],
            ]
        )
    by_id = {str(m.get("id")): m for m in moved}
    samples = [
        SampleView(
            str(p.get("id")),
            str(p.get("kind", "")),
            _moved_numbers(by_id.get(str(p.get("id")), {})),
            _tiles(p, data_uri),
        )
        for p in _pictured(record)
    ]
    title = "Map similarity to the " + ("baseline" if against == "baseline" else "reference model")
    return RegressionView(title, facts, lists, head, rows, samples)


def gate_regression(record: Mapping[str, Any], data_uri: DataUri) -> RegressionView | None:
    """The regression block of a gate record, or None for a plain pass-rate gate."""
    if record.get("check") == "no_regression" and isinstance(record.get("comparison"), Mapping):
        return _comparison_view(record, data_uri)
    if isinstance(record.get("similarity"), Mapping) and record.get("similarity"):
        return _similarity_view(record, data_uri)
    return None


def case_compared(record: Mapping[str, Any], data_uri: DataUri) -> list[ComparedView]:
    """The compared maps of a case record (``images["compare"]``), one row per role."""
    images = record.get("images")
    entries: Sequence[Any] = images.get("compare") or () if isinstance(images, Mapping) else ()
    out = []
    for entry in entries:
        if isinstance(entry, Mapping):
            role = str(entry.get("role", "other"))
            out.append(ComparedView(role, _tiles({"id": record.get("case_id"), **entry}, data_uri)))
    return out
