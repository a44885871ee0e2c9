"""The HTML report of failing cases and its JSON sidecar.

:func:`write_report` turns the run's summary and the case/gate records (see
:mod:`pytest_camcheck.report.collector` for their shape) into one self-contained HTML file
(inline CSS, images as ``data:`` URIs decoded as they are drawn, no network) and a JSON file
next to it. The cards are ranked worst first; a table of contents lists the failing checks with
links to their cards, and a few lines of inline script filter the cards by class, check, layer
and outcome (read from ``data-*`` attributes; the page is complete without the script, which
only reveals the filter controls). The cards of one image's (image, class) pairs (records that
share an ``image_id``) follow one another under a heading naming the image and its classes; the
group stands where its worst card ranks. The template (``templates/report.html.j2``) only loops and
prints: every decision (what is shown, in which order, how numbers read) is made here, in small
view-model objects. Jinja2 autoescapes everything, so user text (class names, file names,
messages, test ids) always shows as text.

Both files are written atomically: to a temporary file in the same directory, flushed and synced,
then moved over the target with :func:`os.replace`. An interrupted run never leaves half a report
over the previous one.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from markupsafe import Markup

from .._atomic import atomic_write_files
from ..errors import ConfigError
from .files import GENERATOR, json_path_for
from .records import SCHEMA_VERSION, jsonable
from .regression_view import ComparedView, RegressionView, case_compared, gate_regression

__all__ = [
    "SCHEMA_VERSION",
    "CaseBlock",
    "CaseView",
    "GateView",
    "ImageGroupView",
    "ReportView",
    "build_view",
    "image_info",
    "render_html",
    "sort_cases",
    "write_report",
]

DASH = "—"

# outcome -> (badge text, css class, group for ordering: real failures first)
_OUTCOMES: dict[str, tuple[str, str, int]] = {
    "failed": ("FAILED", "failed", 0),
    "error": ("ERROR", "error", 0),
    "xpassed": ("XPASS (unexpectedly passed)", "xpassed", 2),
    "xfailed": ("XFAIL (expected failure)", "xfailed", 1),
    "passed": ("PASSED", "passed", 3),
    "skipped": ("SKIPPED", "skipped", 4),
}
_SHOWN_ALWAYS = {"failed", "error", "xfailed"}
_SHOWN_WITH_PASSED = {"passed", "xpassed"}
_COUNT_KEYS = ("passed", "failed", "error", "xfailed", "xpassed", "skipped")
_HTML_SPECIAL = ("&", "<", ">", '"', "'")
# base64 characters decoded to find an image's format and size: a PNG's or WebP's header lies in
# its first 30 bytes, a JPEG's size after its quantisation tables (a few hundred bytes)
_HEAD_CHARS = 2048
_SUMMARY_ROWS = (
    ("model", "Model"),
    ("model_kwargs", "Model kwargs"),
    ("weights", "Weights"),
    ("dataset", "Dataset"),
    ("annotations", "Annotations"),
    ("layers", "Layer(s)"),
    ("method", "Method"),
    ("device", "Device"),
    ("target", "Target"),
    ("thresholds", "Thresholds"),
    ("settings", "Settings"),
    ("versions", "Versions"),
)


# ---------------------------------------------------------------- formatting


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fmt_value(value: Any) -> str:
    """A short, readable rendering of any record value (``None`` -> an em dash)."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in value.items()) or DASH
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_value(v) for v in value) or DASH
    text = str(value)
    return text if text else DASH


def fmt_pct(value: Any) -> str:
    """``0.9`` -> ``"90.0%"``; missing or non-finite -> an em dash."""
    v = _finite(value)
    return DASH if v is None else f"{100.0 * v:.1f}%"


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's first frame header (SOFn), if it lies within ``head``."""
    pos = 2
    while pos + 9 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(head[pos + 5 : pos + 7], "big")
            width = int.from_bytes(head[pos + 7 : pos + 9], "big")
            return width, height
        pos += 2 + int.from_bytes(head[pos + 2 : pos + 4], "big")
    return None


def image_info(b64: Any) -> tuple[str, int | None, int | None] | None:
    """The MIME type, width and height of a base64-encoded PNG, WebP or JPEG, from its header.

    Returns None for anything else (not a string, not base64, another format). The size is None
    when the header does not say it where expected (the image may still display).
    """
    if not isinstance(b64, str):
        return None
    try:
        head = base64.b64decode(b64[:_HEAD_CHARS], validate=True)
    except (binascii.Error, ValueError):
        return None
    size: tuple[int, int] | None = None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
        if head[12:16] == b"IHDR" and len(head) >= 24:
            size = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        mime = "image/webp"
        chunk = head[12:16]
        if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a" and len(head) >= 30:
            size = (
                int.from_bytes(head[26:28], "little") & 0x3FFF,
                int.from_bytes(head[28:30], "little") & 0x3FFF,
            )
        elif chunk == b"VP8L" and head[20:21] == b"\x2f" and len(head) >= 25:
            bits = int.from_bytes(head[21:25], "little")
            size = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        elif chunk == b"VP8X" and len(head) >= 30:
            size = (
                int.from_bytes(head[24:27], "little") + 1,
                int.from_bytes(head[27:30], "little") + 1,
            )
    elif head.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
        size = _jpeg_size(head)
    else:
        return None
    return (mime, None, None) if size is None else (mime, size[0], size[1])


def _data_uri(b64: Any) -> Markup | None:
    """``data:image/...;base64,...`` for a base64-encoded PNG, WebP or JPEG, else None (shown
    as missing).

    The string must start with one of those formats' headers (which sets the MIME type) and
    contain none of the characters HTML escaping would change, so marking it safe changes
    nothing escaping would have done; it only spares escaping megabytes of base64 one more time.
    """
    info = image_info(b64)
    if info is None or not b64.isascii() or any(c in b64 for c in _HTML_SPECIAL):
        return None
    return Markup(f"data:{info[0]};base64,{b64}")


def _image(b64: Any, caption: str, alt: str) -> Image:
    """One picture of a case, with its size when its header tells it."""
    info = image_info(b64)
    width, height = (info[1], info[2]) if info is not None else (None, None)
    return Image(_data_uri(b64), caption, alt, width, height)


def _severity(record: Mapping[str, Any]) -> float:
    v = _finite(record.get("severity"))
    return 0.0 if v is None else v


def _outcome(record: Mapping[str, Any]) -> str:
    return str(record.get("outcome") or "failed")


def sort_cases(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Cases worst first: failures and errors, then xfailed, xpassed, passed; within each group
    by severity (descending), then test id."""
    return sorted(
        records,
        key=lambda r: (
            _OUTCOMES.get(_outcome(r), ("", "", 5))[2],
            -_severity(r),
            str(r.get("nodeid", "")),
        ),
    )


# ---------------------------------------------------------------- view models


@dataclass(frozen=True)
class Image:
    """One picture: its data URI (None when missing or malformed), caption and, when known,
    its size in pixels (so the page lays out before lazily loaded pictures arrive)."""

    uri: Markup | None
    caption: str
    alt: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class EvidenceView:
    """One assertion's verdict and numbers."""

    kind: str
    verdict: str
    css: str
    numbers: list[tuple[str, str]]


@dataclass(frozen=True)
class CaseView:
    """Everything one case card shows, already formatted.

    ``rank`` is the card's place, worst first (1 is the worst); ``outcome`` and the
    ``filter_*`` fields are the values of the card's ``data-*`` attributes that the page's filter
    matches (``filter_checks``: the checks that failed on this case, space-separated); ``full``
    is the overlay at the image's own resolution, when the run rendered it.
    """

    anchor: str
    title: str
    nodeid: str
    badge: str
    css: str
    severity: str
    message: str | None
    facts: list[tuple[str, str]]
    degenerate: bool
    pictures: list[Image]
    strip: list[Image]
    evidence: list[EvidenceView]
    no_images: str | None
    compared: list[ComparedView] = field(default_factory=list)
    rank: int = 0
    outcome: str = ""
    filter_class: str = ""
    filter_checks: str = ""
    filter_layer: str = ""
    full: Image | None = None


@dataclass(frozen=True)
class ImageGroupView:
    """The heading over the cards of one image's (image, class) pairs.

    ``anchor`` is the heading's id; ``heading`` names the image and each of its classes with
    the outcomes of its cases (every case of the image in the run, with a card or not);
    ``note`` says how many of them have no card here (None when all do).
    """

    anchor: str
    image_id: str
    heading: str
    note: str | None = None


@dataclass(frozen=True)
class CaseBlock:
    """Cards shown together: one image's pair cards under their heading (``image``), or one
    single-label card (``image`` None, shown as it always was)."""

    image: ImageGroupView | None
    cases: list[CaseView]


@dataclass(frozen=True)
class ClassRow:
    """One class's pass rate in a gate."""

    name: str
    passed: str
    rate: str
    interval: str
    css: str


@dataclass(frozen=True)
class GateView:
    """A dataset-level gate (a pass rate with its confidence interval)."""

    name: str
    nodeid: str
    badge: str
    css: str
    score: str
    interval: str
    requirement: str
    message: str | None
    classes: list[ClassRow]
    plots: list[Image]
    failures: str | None
    regression: RegressionView | None = None
    anchor: str = ""


@dataclass(frozen=True)
class OverviewView:
    """The per-sample results over the whole run: metric histograms and pass rates per class."""

    plots: list[Image]
    classes: list[ClassRow]


@dataclass(frozen=True)
class TocLink:
    """One link of the table of contents: to a card (``#3 cat_001``) or to a gate."""

    anchor: str
    label: str
    note: str


@dataclass(frozen=True)
class TocEntry:
    """A failing check (at a layer) and the cards where it failed, worst first."""

    label: str
    count: str
    links: list[TocLink]


@dataclass(frozen=True)
class FilterView:
    """One filter control: the ``data-*`` attribute it matches and its choices
    (``(value, label)``, the label with the number of cards)."""

    key: str
    label: str
    options: list[tuple[str, str]]


@dataclass(frozen=True)
class ReportView:
    """The whole page.

    ``cases`` are the cards in the order shown (their ranks); ``blocks`` lay the same cards out,
    one image's pair cards together under a heading.
    """

    title: str
    generated: str
    summary: list[tuple[str, str]]
    counts: list[tuple[str, str, str]]
    overview: OverviewView | None
    gates: list[GateView]
    cases: list[CaseView]
    left_out: str | None
    empty: str | None
    warnings: list[str] = field(default_factory=list)
    toc: list[TocEntry] = field(default_factory=list)
    filters: list[FilterView] = field(default_factory=list)
    blocks: list[CaseBlock] = field(default_factory=list)


def _summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, label in _SUMMARY_ROWS:
        value = summary.get(key)
        if key == "versions" and isinstance(value, Mapping):
            text = ", ".join(f"{k} {fmt_value(v)}" for k, v in value.items()) or DASH
        elif key in ("thresholds", "settings", "model_kwargs") and isinstance(value, Mapping):
            text = ", ".join(f"{k} = {fmt_value(v)}" for k, v in value.items()) or DASH
        else:
            text = fmt_value(value)
        rows.append((label, text))
    known = {k for k, _ in _SUMMARY_ROWS}
    for key, value in summary.items():
        if key not in known and not str(key).startswith("_"):
            rows.append((str(key), fmt_value(value)))
    return rows


def _class_text(index: Any, name: Any) -> str:
    if index is None and name is None:
        return DASH
    if name is None:
        return fmt_value(index)
    if index is None:
        return str(name)
    return f"{fmt_value(index)} ({name})"


_EVIDENCE_SKIP = frozenset(
    {
        "check",
        "passed",
        "metric",
        "value",
        "threshold_name",
        "threshold",
        "region",
        "peak",
        "message",
        "details",
        "sample",
    }
)


def _evidence_view(item: Any) -> EvidenceView:
    """One assertion's verdict and the numbers it used, exactly as it recorded them."""
    if not isinstance(item, Mapping):
        return EvidenceView("evidence", DASH, "", [("value", fmt_value(item))])
    passed = item.get("passed")
    verdict = DASH if passed is None else ("passed" if passed else "FAILED")
    css = "" if passed is None else ("ok" if passed else "bad")
    numbers: list[tuple[str, str]] = []
    if item.get("metric"):
        numbers.append((str(item["metric"]), fmt_value(item.get("value"))))
    if item.get("threshold_name"):
        numbers.append((str(item["threshold_name"]), fmt_value(item.get("threshold"))))
    region = item.get("region")
    if isinstance(region, Mapping):
        text = str(region.get("name", DASH))
        if isinstance(region.get("bbox"), Mapping):
            text += f" ({fmt_value(region['bbox'])})"
        share = _finite(region.get("area_fraction"))
        if share is not None:
            text += f", {fmt_pct(share)} of the map"
        numbers.append(("region", text))
        if share is not None and share >= WHOLE_IMAGE_SHARE:
            numbers.append(
                (
                    "warning",
                    f"the region covers {fmt_pct(share)} of the image: almost any peak lands "
                    "in it, so this check says little; check the annotations",
                )
            )
    peak = item.get("peak")
    if isinstance(peak, Mapping):
        text = f"row {fmt_value(peak.get('row'))}, col {fmt_value(peak.get('col'))}"
        ties = peak.get("ties")
        if isinstance(ties, int) and ties > 1:
            text += f" ({ties} tied)"
        numbers.append(("peak", text))
    numbers += [
        (str(k), fmt_value(v))
        for k, v in item.items()
        if k not in _EVIDENCE_SKIP and v not in (None, "", {}, [])
    ]
    details = item.get("details")
    if isinstance(details, Mapping):
        numbers += [(str(k), fmt_value(v)) for k, v in details.items() if k != "result"]
    return EvidenceView(str(item.get("check", "evidence")), verdict, css, numbers)


def _evidence_items(record: Mapping[str, Any]) -> list[Any]:
    evidence = record.get("evidence") or []
    return [evidence] if isinstance(evidence, Mapping) else list(evidence)


def _failing_checks(record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """``(check, layer)`` of every evidence item that failed, in order, without repeats; check
    names have no whitespace (they are matched as space-separated words on the page)."""
    found: dict[tuple[str, str | None], None] = {}
    for item in _evidence_items(record):
        if isinstance(item, Mapping) and item.get("passed") is False:
            check = "_".join(str(item.get("check") or "evidence").split()) or "evidence"
            layer = item.get("layer")
            found[(check, None if layer in (None, "") else str(layer))] = None
    return list(found)


def _class_key(record: Mapping[str, Any]) -> str:
    """The class a card is filtered by: its class name, else its label, else a dash."""
    name = record.get("class_name")
    if name is None:
        name = record.get("label")
    return DASH if name is None else str(name)


def _image_id(record: Mapping[str, Any]) -> str | None:
    """The image a pair record belongs to (None for a single-label sample)."""
    value = record.get("image_id")
    return None if value in (None, "") else str(value)


def _group_by_image(
    cards: Sequence[Mapping[str, Any]],
) -> list[tuple[str | None, list[Mapping[str, Any]]]]:
    """The cards (worst first) laid out in blocks: the pair cards of one image together, at the
    place of the image's worst card and in their own order; each single-label card alone."""
    blocks: list[tuple[str | None, list[Mapping[str, Any]]]] = []
    where: dict[str, int] = {}
    for record in cards:
        image = _image_id(record)
        if image is None:
            blocks.append((None, [record]))
        elif image in where:
            blocks[where[image]][1].append(record)
        else:
            where[image] = len(blocks)
            blocks.append((image, [record]))
    return blocks


def _image_group(
    anchor: str, image: str, records: Sequence[Mapping[str, Any]], shown: int
) -> ImageGroupView:
    """The heading of one image's cards: its classes (worst first) and the outcomes of their
    cases, over every case of the image in the run (``records``, worst first); ``shown`` of
    them have a card."""
    outcomes: dict[str, dict[str, None]] = {}
    for record in records:
        outcomes.setdefault(_class_key(record), {})[_outcome(record)] = None
    n = len(outcomes)
    classes = ", ".join(f"{name} ({', '.join(seen)})" for name, seen in outcomes.items())
    heading = f"Image {image} {DASH} {n} class{'' if n == 1 else 'es'}: {classes}"
    missing = len(records) - shown
    note = None
    if missing > 0:
        note = f"{shown} of its {_plural(len(records), 'case')} shown as cards"
    return ImageGroupView(anchor=anchor, image_id=image, heading=heading, note=note)


def _case_view(record: Mapping[str, Any], index: int) -> CaseView:
    outcome = _outcome(record)
    badge, css, _ = _OUTCOMES.get(outcome, (outcome.upper(), "other", 5))
    nodeid = str(record.get("nodeid") or DASH)
    title = str(record.get("case_id") or nodeid)
    images = record.get("images") or {}
    if not isinstance(images, Mapping):
        images = {}
    layer = str(record.get("layer") or DASH)
    method = str(record.get("method") or DASH)
    original = overlay = full = None
    if "original" in images:
        original = _image(images.get("original"), "image", f"{title}: image")
    if "overlay" in images:
        overlay = _image(
            images.get("overlay"),
            f"{method} on {layer}",
            f"{title}: {method} overlay on {layer}",
        )
    if "full" in images:
        full = _image(
            images.get("full"),
            f"{method} on {layer}, full resolution",
            f"{title}: {method} overlay on {layer} at full resolution",
        )
    strip = []
    for tile in images.get("strip") or []:
        if isinstance(tile, Mapping):
            name = str(tile.get("layer", "?"))
            strip.append(_image(tile.get("image"), name, f"{title}: {method} on {name}"))
    probability = _finite(record.get("probability"))
    prediction = _class_text(record.get("prediction"), record.get("prediction_name"))
    if probability is not None:
        prediction += f", p = {probability:.3f}"
    layers = record.get("layers") or []
    # a pair's card explains one of its image's classes: say which
    facts = [
        (
            "Label" if _image_id(record) is None else "Class",
            _class_text(record.get("label"), record.get("class_name")),
        ),
        ("Prediction", prediction),
        ("Method", method),
        ("Layer", layer),
    ]
    if record.get("target") is not None:
        facts.insert(2, ("CAM target", fmt_value(record.get("target"))))
    if isinstance(layers, (list, tuple)) and len(layers) > 1:
        facts.append(("All layers", ", ".join(str(x) for x in layers)))
    settings = record.get("settings")
    if isinstance(settings, Mapping) and settings:
        facts.append(
            ("Test settings", ", ".join(f"{k} = {fmt_value(v)}" for k, v in settings.items()))
        )
    facts.append(("Image file", str(record.get("path") or DASH)))
    evidence = _evidence_items(record)
    message = record.get("message")
    has_images = original is not None or overlay is not None or bool(strip)
    return CaseView(
        anchor=f"case-{index}",
        title=title,
        nodeid=nodeid,
        badge=badge,
        css=css,
        severity=fmt_value(_finite(record.get("severity"))),
        message=None if message in (None, "") else str(message),
        facts=facts,
        degenerate=bool(record.get("degenerate")),
        pictures=[p for p in (original, overlay) if p is not None],
        strip=strip,
        evidence=[_evidence_view(e) for e in evidence],
        no_images=None
        if has_images
        else "No images were rendered for this case (passing cases are rendered only with "
        "--camcheck-report-all).",
        compared=case_compared(record, _data_uri),
        rank=index + 1,
        outcome=outcome,
        filter_class=_class_key(record),
        filter_checks=" ".join(dict.fromkeys(check for check, _ in _failing_checks(record))),
        filter_layer=layer,
        full=full,
    )


def _interval(record: Mapping[str, Any], confidence: Any = None) -> str:
    lower, upper = _finite(record.get("lower")), _finite(record.get("upper"))
    if lower is None or upper is None:
        return DASH
    conf = _finite(confidence)
    prefix = f"{100 * conf:g}% CI " if conf is not None else "CI "
    return f"{prefix}{fmt_pct(lower)} – {fmt_pct(upper)}"


def _gate_view(record: Mapping[str, Any], plot_png: Callable[..., str | None]) -> GateView:
    outcome = _outcome(record)
    badge, css, _ = _OUTCOMES.get(outcome, (outcome.upper(), "other", 5))
    passed, count = record.get("passed"), record.get("count")
    score = f"{fmt_value(passed)}/{fmt_value(count)} = {fmt_pct(record.get('rate'))}"
    min_rate = _finite(record.get("min_rate"))
    bound = record.get("bound")
    requirement = DASH
    if min_rate is not None:
        what = {"lower": "lower bound", "upper": "upper bound", "rate": "rate"}.get(
            str(bound), "rate"
        )
        requirement = f"{what} ≥ {fmt_pct(min_rate)}"
    threshold = _finite(record.get("threshold"))
    if threshold is not None:
        sep = "; " if requirement != DASH else ""
        requirement = ("" if requirement == DASH else requirement) + f"{sep}per-sample threshold "
        requirement += fmt_value(threshold)
    per_class = record.get("per_class") or {}
    classes = []
    if isinstance(per_class, Mapping):
        for cname, entry in per_class.items():
            if not isinstance(entry, Mapping):
                continue
            rate = _finite(entry.get("rate"))
            ok = "" if min_rate is None or rate is None else ("ok" if rate >= min_rate else "bad")
            classes.append(
                ClassRow(
                    name=str(cname),
                    passed=f"{fmt_value(entry.get('passed'))}/{fmt_value(entry.get('count'))}",
                    rate=fmt_pct(rate),
                    interval=_interval(entry),
                    css=ok,
                )
            )
    name = str(record.get("name") or record.get("nodeid") or "gate")
    values = record.get("values") or []
    histogram = None
    if isinstance(values, (list, tuple)) and values:
        uri = _data_uri(plot_png("histogram", values=values, threshold=threshold, name=name))
        histogram = Image(uri, "per-sample values", f"{name}: histogram of per-sample values")
    class_plot = None
    if classes and isinstance(per_class, Mapping):
        uri = _data_uri(plot_png("classes", per_class=per_class, min_rate=min_rate, name=name))
        class_plot = Image(uri, "pass rate per class", f"{name}: pass rate per class")
    check_plot = None
    extra = record.get("extra")
    if isinstance(extra, Mapping) and extra.get("kind") in _CHECK_PLOTS:
        caption = _CHECK_PLOTS[str(extra["kind"])]
        uri = _data_uri(plot_png("check", extra=extra, name=name))
        check_plot = Image(uri, caption, f"{name}: {caption}")
    failures = record.get("failures") or []
    failures_text = None
    if isinstance(failures, (list, tuple)) and failures:
        shown = ", ".join(str(f) for f in failures[:20])
        more = len(failures) - 20
        failures_text = shown + (f" … (+{more} more, see the JSON file)" if more > 0 else "")
    message = record.get("message")
    return GateView(
        name=name,
        nodeid=str(record.get("nodeid") or DASH),
        badge=badge,
        css=css,
        score=score,
        interval=_interval(record, record.get("confidence")),
        requirement=requirement,
        message=None if message in (None, "") else str(message),
        classes=classes,
        plots=[p for p in (check_plot, histogram, class_plot) if p is not None],
        failures=failures_text,
        regression=gate_regression(record, _data_uri),
    )


_MAX_HISTOGRAMS = 6
#: A region covering at least this share of the image is flagged: its checks say little.
WHOLE_IMAGE_SHARE = 0.9
_ENERGY_CHECKS = ("energy_in_region", "energy_outside_region")


def _overview(
    cases: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    plot_png: Callable[..., str | None],
) -> OverviewView | None:
    """Histograms of the energy fractions the assertions measured (one per region, check,
    layer and threshold, each drawn at the threshold the assertions used), and each class's
    pass rate."""
    if not cases:
        return None
    from ..metrics import wilson_interval

    # one value per sample and map: several tests of one sample may measure the same thing
    values: dict[tuple[str, str, str, float | None], dict[str, float | None]] = {}
    tally: dict[str, list[int]] = {}
    for record in cases:
        sample = str(record.get("case_id") or record.get("nodeid"))
        for ev in record.get("evidence") or ():
            if not isinstance(ev, Mapping) or ev.get("check") not in _ENERGY_CHECKS:
                continue
            region = ev.get("region")
            name = str(region.get("name")) if isinstance(region, Mapping) else "region"
            key = (name, str(ev["check"]), str(ev.get("layer") or ""), _finite(ev.get("threshold")))
            values.setdefault(key, {})[f"{sample}|{ev.get('method')}"] = _finite(ev.get("value"))
        outcome = _outcome(record)
        if outcome == "skipped":
            continue
        name = record.get("class_name")
        if name is None:
            name = DASH if record.get("label") is None else str(record.get("label"))
        entry = tally.setdefault(str(name), [0, 0])
        entry[0] += outcome in ("passed", "xpassed")
        entry[1] += 1
    plots = []
    for (region, check, layer, threshold), per_sample in list(values.items())[:_MAX_HISTOGRAMS]:
        where = f" @ {layer}" if layer else ""
        title = f"energy in {region!r}{where}"
        limit = "max" if check == "energy_outside_region" else "min"
        caption = f"energy in region {region}{where} ({limit} {fmt_value(threshold)})"
        uri = _data_uri(
            plot_png(
                "histogram",
                values=list(per_sample.values()),
                threshold=threshold,
                name=title,
                xlabel=f"energy fraction in {region!r}",
            )
        )
        plots.append(Image(uri, caption, f"histogram of {title}"))
    per_class: dict[str, dict[str, float]] = {}
    for name, (passed, count) in sorted(tally.items()):
        lower, upper = wilson_interval(passed, count)
        rate = passed / count if count else float("nan")
        per_class[name] = {
            "passed": passed,
            "count": count,
            "rate": rate,
            "lower": lower,
            "upper": upper,
        }
    classes = [
        ClassRow(
            name=name,
            passed=f"{entry['passed']}/{entry['count']}",
            rate=fmt_pct(entry["rate"]),
            interval=_interval(entry, 0.95),
            css="",
        )
        for name, entry in per_class.items()
    ]
    if per_class:
        uri = _data_uri(plot_png("classes", per_class=per_class, min_rate=None, name="tests"))
        plots.append(Image(uri, "tests passed per class", "tests passed per class"))
    return OverviewView(plots=plots, classes=classes)


# the plot of each sanity / shortcut check (a gate's ``extra["kind"]``) and its caption
_CHECK_PLOTS = {
    "randomization": "similarity along the randomisation cascade",
    "deletion": "deletion curves: map order vs random order",
    "insertion": "insertion curves: map order vs random order",
    "occlusion": "probability drop: region vs background patches",
    "spatial_bias": "mean map per class, hot spot outlined",
}


def _default_plot_png(kind: str, **kwargs: Any) -> str | None:
    """Draw one summary plot and return it as base64 PNG."""
    from .plots import check_plot, class_rate_plot, histogram_plot
    from .render import encode_png_b64

    name = str(kwargs.get("name", ""))
    if kind == "check":
        return encode_png_b64(check_plot(kwargs["extra"], title=name))
    if kind == "histogram":
        img = histogram_plot(
            [_finite(v) for v in kwargs["values"]],
            kwargs.get("threshold"),
            title=name,
            xlabel=kwargs.get("xlabel") or f"{name.split('[')[0]} per sample",
        )
    else:
        img = class_rate_plot(
            kwargs["per_class"], kwargs.get("min_rate"), title=f"pass rate per class: {name}"
        )
    return encode_png_b64(img)


def count_outcomes(
    cases: Sequence[Mapping[str, Any]], gates: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Counts of case outcomes and of gates (``gates_failed`` counts failed or errored ones)."""
    counter = Counter(_outcome(r) for r in cases)
    counts = {"cases": len(cases)}
    for key in _COUNT_KEYS:
        counts[key] = counter.pop(key, 0)
    for key, n in sorted(counter.items()):
        counts[key] = n
    counts["gates"] = len(gates)
    counts["gates_failed"] = sum(_outcome(g) in ("failed", "error") for g in gates)
    return counts


def _split(records: Iterable[Any]) -> tuple[list, list]:
    """Case and gate records as dicts (typed records are converted with ``to_dict``)."""
    cases, gates = [], []
    for r in records:
        if hasattr(r, "to_dict") and not isinstance(r, Mapping):
            r = r.to_dict()
        if not isinstance(r, Mapping):
            continue
        (gates if r.get("kind") == "gate" else cases).append(r)
    return cases, gates


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _toc(
    cards: Sequence[Mapping[str, Any]], views: Sequence[CaseView], gates: Sequence[GateView]
) -> list[TocEntry]:
    """The table of contents: failing gates, then each failing check (at its layer) with links
    to the failed and errored cards where it failed, the check whose worst card ranks highest
    first; failures that no camcheck check explains come last."""
    entries: list[TocEntry] = []
    failing_gates = [g for g in gates if g.css in ("failed", "error")]
    if failing_gates:
        links = [TocLink(g.anchor, g.name, g.score) for g in failing_gates]
        entries.append(TocEntry("dataset gates", _plural(len(links), "gate"), links))
    by_check: dict[str, list[TocLink]] = {}
    unexplained: list[TocLink] = []
    for record, view in zip(cards, views):
        if view.outcome not in ("failed", "error"):
            continue
        link = TocLink(view.anchor, f"#{view.rank} {view.title}", f"severity {view.severity}")
        checks = _failing_checks(record)
        for check, layer in checks:
            by_check.setdefault(check if layer is None else f"{check} @ {layer}", []).append(link)
        if not checks:
            unexplained.append(link)
    for label, links in by_check.items():  # in the order of their worst card
        entries.append(TocEntry(label, _plural(len(links), "card"), links))
    if unexplained:
        label = "failures and errors without a failed camcheck check"
        entries.append(TocEntry(label, _plural(len(unexplained), "card"), unexplained))
    return entries


def _filters(views: Sequence[CaseView]) -> list[FilterView]:
    """The filter controls over the cards: class, failing check, layer, outcome (a control
    only when some card has a value for it)."""
    order = list(_OUTCOMES)
    values = {
        "class": Counter(v.filter_class for v in views),
        "check": Counter(c for v in views for c in v.filter_checks.split()),
        "layer": Counter(v.filter_layer for v in views),
        "outcome": Counter(v.outcome for v in views),
    }
    labels = {"class": "Class", "check": "Failed check", "layer": "Layer", "outcome": "Outcome"}
    filters = []
    for key, counter in values.items():
        if key == "outcome":
            keys = sorted(counter, key=lambda o: (order.index(o) if o in order else len(order), o))
        else:
            keys = sorted(counter)
        options = [(value, f"{value} ({counter[value]})") for value in keys]
        if options:
            filters.append(FilterView(key, labels[key], options))
    return filters


def build_view(
    summary: Mapping[str, Any],
    records: Iterable[Mapping[str, Any]],
    *,
    include_passed: bool = False,
    max_cases: int = 200,
    generated: str | None = None,
    plot_png: Callable[..., str | None] = _default_plot_png,
) -> tuple[ReportView, dict[str, int]]:
    """Build the page's view model and the counts (see :func:`write_report`)."""
    if isinstance(max_cases, bool) or not isinstance(max_cases, int) or max_cases < 0:
        raise ConfigError(
            f"max_cases must be a whole number >= 0, got {max_cases!r}; "
            "e.g. 200 (0 shows no case cards, only the summary)"
        )
    cases, gates = _split(records)
    shown_outcomes = _SHOWN_ALWAYS | (_SHOWN_WITH_PASSED if include_passed else set())
    eligible = sort_cases(r for r in cases if _outcome(r) in shown_outcomes)
    # the worst max_cases cases get a card; one image's pair cards are then moved together
    grouped = _group_by_image(eligible[:max_cases])
    cards = [record for _, records in grouped for record in records]
    left_out = len(eligible) - len(cards)
    counts = count_outcomes(cases, gates)
    counts["cards"] = len(cards)
    counts["cards_left_out"] = left_out

    count_rows = [("cases", str(counts["cases"]), "")]
    for key in _COUNT_KEYS:
        if counts[key] or key in ("passed", "failed"):
            count_rows.append((key, str(counts[key]), _OUTCOMES[key][1]))
    count_rows.append(("gates", str(counts["gates"]), ""))
    if counts["gates"]:
        count_rows.append(("gates failed", str(counts["gates_failed"]), "failed"))

    failing = counts["failed"] + counts["error"]
    summary = dict(summary or {})
    warnings = []
    if "_error" in summary:
        warnings.append(f"The run's summary could not be collected: {summary['_error']}")
    extra = summary.pop("warnings", None)  # the run's own warnings, shown above everything
    if isinstance(extra, (list, tuple)):
        warnings.extend(str(w) for w in extra if w)
    case_views = [_case_view(r, i) for i, r in enumerate(cards)]
    blocks = _blocks(grouped, case_views, cases)
    gate_views = [replace(_gate_view(g, plot_png), anchor=f"gate-{i}") for i, g in enumerate(gates)]
    view = ReportView(
        title=f"camcheck report: {failing} failing case{'s' if failing != 1 else ''}",
        generated=generated or _now(),
        summary=_summary_rows(summary),
        counts=count_rows,
        overview=_overview(cases, summary, plot_png),
        gates=gate_views,
        cases=case_views,
        left_out=(
            f"{left_out} more case{'s' if left_out != 1 else ''} not shown "
            f"(max_cases = {max_cases}); every case is listed in the JSON file next to this one."
        )
        if left_out
        else None,
        empty=None
        if eligible
        else "No failing cases."
        + ("" if include_passed else " (Passing cases are shown with --camcheck-report-all.)"),
        warnings=warnings,
        toc=_toc(cards, case_views, gate_views),
        filters=_filters(case_views),
        blocks=blocks,
    )
    return view, counts


def _blocks(
    grouped: Sequence[tuple[str | None, Sequence[Mapping[str, Any]]]],
    views: Sequence[CaseView],
    cases: Sequence[Mapping[str, Any]],
) -> list[CaseBlock]:
    """The card views (in the order of ``grouped``'s records) laid out in ``grouped``'s blocks,
    each image's block with its heading (over all of the image's ``cases``)."""
    of_image: dict[str, list[Mapping[str, Any]]] = {}
    for record in sort_cases(cases):
        image = _image_id(record)
        if image is not None:
            of_image.setdefault(image, []).append(record)
    blocks: list[CaseBlock] = []
    start = groups = 0
    for image, records in grouped:
        block_views = list(views[start : start + len(records)])
        start += len(records)
        group = None
        if image is not None:
            anchor = f"image-{groups}"
            groups += 1
            group = _image_group(anchor, image, of_image.get(image, records), len(records))
        blocks.append(CaseBlock(group, block_views))
    return blocks


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("pytest_camcheck", "report/templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(view: ReportView) -> str:
    """Render the page's view model with ``templates/report.html.j2``."""
    return _environment().get_template("report.html.j2").render(report=view)


# ---------------------------------------------------------------- JSON + atomic files


_jsonable = jsonable


def report_json(
    summary: Mapping[str, Any],
    records: Iterable[Mapping[str, Any]],
    counts: Mapping[str, int],
    generated: str,
) -> dict[str, Any]:
    """The JSON sidecar's content (schema version :data:`SCHEMA_VERSION`)."""
    cases, gates = _split(records)
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": GENERATOR,
        "generated": generated,
        "summary": _jsonable(dict(summary or {})),
        "counts": dict(counts),
        "gates": [_jsonable({k: v for k, v in g.items() if k != "images"}) for g in gates],
        "cases": [_jsonable({k: v for k, v in r.items() if k != "images"}) for r in cases],
    }


def write_report(
    path: str | os.PathLike[str],
    summary: Mapping[str, Any],
    records: Iterable[Mapping[str, Any]],
    *,
    include_passed: bool = False,
    max_cases: int = 200,
) -> Path:
    """Write the HTML report and its JSON sidecar (``path`` with the suffix ``.json``).

    Args:
        path: the HTML file to write; missing parent directories are created.
        summary: the run's summary (model, weights, dataset, layers, method, device, target,
            thresholds, versions; missing keys show as an em dash, extra keys are listed too).
        records: ``camcheck_case`` and ``camcheck_gate`` records (``"kind"`` tells them apart).
        include_passed: also show cards for passing and xpassed cases.
        max_cases: at most this many case cards (worst first); a line says how many were left
            out. The JSON file lists every case whatever the cap.

    Returns:
        The HTML file's path.

    Raises:
        ConfigError: ``max_cases`` is not a whole number >= 0, or ``path`` names a directory.
    """
    target = Path(path)
    if target.suffix.lower() == ".json":
        raise ConfigError(
            f"camcheck report path {str(target)!r} ends in .json, but the JSON file is written "
            "next to the HTML one; give the HTML path, e.g. 'camcheck-report.html'"
        )
    if target.is_dir():
        raise ConfigError(
            f"camcheck report path {str(target)!r} is a directory; give a file name, "
            f"e.g. {str(target / 'camcheck-report.html')!r}"
        )
    records = list(records)
    generated = _now()
    view, counts = build_view(
        summary,
        records,
        include_passed=include_passed,
        max_cases=max_cases,
        generated=generated,
    )
    html_text = render_html(view)
    payload = report_json(summary, records, counts, generated)
    target.parent.mkdir(parents=True, exist_ok=True)
    json_path = json_path_for(target)

    def write_html(fh: IO[str]) -> None:
        fh.write(html_text)

    def write_json(fh: IO[str]) -> None:
        json.dump(payload, fh, indent=1, allow_nan=False, ensure_ascii=False)
        fh.write("\n")

    # the sidecar first: if a move fails, the HTML a reader opens is still the previous one
    atomic_write_files([(json_path, write_json), (target, write_html)])
    return target
