"""Helpers for the report tests: real records with real pictures, and an HTML parser.

The records are built with the schema's own constructors (:class:`CaseRecord`,
:class:`GateRecord`, :class:`Evidence`; gates from the evidence of the real
``assert_pass_rate``); their pictures are rendered with the real :func:`render_case_images`
from tiny synthetic images whose CAM peak and annotated box are known by construction.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from pytest_camcheck import evidence
from pytest_camcheck.assertions import assert_pass_rate
from pytest_camcheck.errors import CamAssertionError
from pytest_camcheck.metrics import RateResult, rate_result
from pytest_camcheck.regions import Region
from pytest_camcheck.report.records import (
    CaseRecord,
    Evidence,
    GateRecord,
    PeakInfo,
    RegionInfo,
)
from pytest_camcheck.report.render import render_case_images

XSS = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_PREFIX = "data:image/png;base64,"
VOID = {"img", "br", "meta", "link", "input", "hr", "source", "area", "base", "col", "wbr"}


def blob(height: int, width: int, row: float, col: float, sigma: float = 6.0) -> np.ndarray:
    """A Gaussian blob in [0, 1] peaking at ``(row, col)``."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    return np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * sigma**2)).astype(np.float32)


def case_images(
    seed: int = 0, layers: tuple[str, ...] = ("layer4", "layer3"), **render: Any
) -> dict[str, Any]:
    """The ``images`` dict of a 48x64 case: a box at the left, the CAM peak at the right
    (``render``: more arguments of :func:`render_case_images`, e.g. ``full_image=True``)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    maps = {name: blob(48, 64, 12 + 4 * i, 48 - 6 * i) for i, name in enumerate(layers)}
    regions = {"head": Region.from_box("head", (4, 20, 24, 44))}
    return render_case_images(rgb, maps, layers[0], regions, (12, 48), **render)


HEAD_BBOX = {"x0": 4.0, "y0": 20.0, "x1": 24.0, "y1": 44.0}  # the box of case_images()
HEAD_SHARE = 20 * 24 / (48 * 64)
_FAILING = ("failed", "error", "xfailed")


def energy_evidence(
    fraction: float | None,
    threshold: float = 0.5,
    *,
    sample: str | None = "cat_001",
    region: str = "head",
    layer: str | None = "layer4",
    method: str | None = "gradcam",
    degenerate: str | None = None,
) -> Evidence:
    """What ``assert_energy_in_region`` records for ``fraction`` against ``threshold``."""
    passed = degenerate is None and fraction is not None and fraction >= threshold
    where = ", ".join(
        p for p in (f"sample {sample}" if sample else "", f"layer {layer}" if layer else "") if p
    )
    prefix = f"{where}: " if where else ""
    if degenerate is not None:
        message = f"degenerate CAM for {where}: {degenerate}, so the share cannot be judged"
    elif passed or fraction is None:
        message = None
    else:
        message = (
            f"{prefix}only {fraction:.1%} of the CAM energy lies inside region {region!r} "
            f"(required at least {threshold:.1%})"
        )
    return Evidence(
        check="energy_in_region",
        passed=passed,
        metric="energy_fraction",
        value=None if degenerate else fraction,
        threshold_name="min_fraction",
        threshold=threshold,
        sample=sample,
        layer=layer,
        method=method,
        target=3,
        region=RegionInfo(region, dict(HEAD_BBOX), HEAD_SHARE),
        peak=PeakInfo(12, 48, 1.0, 1),
        message=message,
        degenerate=degenerate,
    )


def make_case(
    nodeid: str = "tests/test_cams.py::test_energy[cat_001]",
    *,
    outcome: str = "failed",
    fraction: float | None = None,
    severity: float | None = None,
    images: dict[str, Any] | None = None,
    **overrides: Any,
) -> CaseRecord:
    """A ``camcheck_case`` record built like the plugin builds it, with pictures unless
    ``images={}``.

    Its one piece of evidence is an energy check of region 'head' against 0.5 that measured
    ``fraction`` (default: 0.31 for a failing outcome, 0.72 otherwise). ``severity`` (for a
    failing outcome) picks the fraction instead: a miss of ``severity - 1`` in [1, 1.5], or a
    degenerate drawn map and a miss of ``severity - 2`` in [2, 2.5].
    """
    case_id = overrides.pop("case_id", None)
    if case_id is None:
        case_id = nodeid.rsplit("[", 1)[-1].rstrip("]") if "[" in nodeid else nodeid
    degenerate = bool(overrides.pop("degenerate", False))
    if severity is not None and outcome in _FAILING:
        degenerate = degenerate or severity >= 2.0
        miss = severity - (2.0 if degenerate else 1.0)
        assert 0.0 <= miss <= 0.5, f"severity {severity} is not made from one miss below 0.5"
        fraction = 0.5 - miss
    if fraction is None:
        fraction = 0.31 if outcome in _FAILING else 0.72
    values: dict[str, Any] = {
        "nodeid": nodeid,
        "case_id": case_id,
        "outcome": outcome,
        "evidence": (energy_evidence(fraction, sample=case_id),),
        "layer": "layer4",
        "method": "gradcam",
        "layers": ("layer4", "layer3"),
        "target": 3,
        "label": 3,
        "class_name": "cat",
        "prediction": 5,
        "prediction_name": "dog",
        "probability": 0.91,
        "path": f"data/{case_id}.png",
        "degenerate": degenerate,
        "settings": {"layer": ["layer4"], "method": "gradcam", "min_energy": 0.5},
        "images": case_images() if images is None else images,
    }
    values.update(overrides)
    if "message" not in overrides:  # the first failing assertion's message, as the plugin's
        values["message"] = next((e.message for e in values["evidence"] if e.message), None)
    if isinstance(values["layers"], list):
        values["layers"] = tuple(values["layers"])
    return CaseRecord(**values)


def gate_result(
    name: str = "energy[head] @ layer4",
    classes: tuple[tuple[str, int, int], ...] = (("cat", 30, 3), ("dog", 20, 2)),
) -> RateResult:
    """A real rate result: per class ``(name, samples, failures)``; failing samples measured
    0.1, 0.2, ... and passing ones 0.5 and up (per-sample threshold 0.5)."""
    outcomes, ids, labels, values = [], [], [], []
    for cls, count, fails in classes:
        for i in range(count):
            value = round(0.1 * (i + 1), 3) if i < fails else round(0.5 + 0.4 * i / count, 3)
            outcomes.append(value >= 0.5)
            ids.append(f"{cls}/{cls}_{i:03d}")
            labels.append(cls)
            values.append(value)
    return rate_result(
        name,
        outcomes,
        ids,
        labels,
        values=values,
        threshold=0.5,
        layer="layer4",
        method="gradcam",
        metric="energy_fraction",
        threshold_name="min_fraction",
    )


def gate_evidence(result: RateResult, min_rate: float = 0.9, bound: str = "lower") -> Evidence:
    """The evidence the real ``assert_pass_rate`` records (pass or fail)."""
    with evidence.collecting() as scope:
        try:
            assert_pass_rate(result, min_rate, bound=bound)
        except CamAssertionError:
            pass
    (item,) = scope.items
    return item


def make_gate(
    nodeid: str = "tests/test_cams.py::test_energy_gate",
    *,
    result: RateResult | None = None,
    min_rate: float = 0.9,
    outcome: str = "failed",
    **overrides: Any,
) -> GateRecord:
    """The gate the plugin records for one ``assert_pass_rate`` (by default a failing one:
    45/50 with two classes, lower bound 78.6% < 90%)."""
    item = gate_evidence(gate_result() if result is None else result, min_rate)
    gate = GateRecord.from_evidence(nodeid, item, outcome)
    return replace(gate, **overrides) if overrides else gate


SUMMARY = {
    "model": "torchvision:resnet18",
    "weights": "weights/resnet18.pt",
    "dataset": "data/pets",
    "annotations": "data/pets/boxes.csv",
    "layers": ["layer4"],
    "method": "gradcam",
    "device": "cpu",
    "target": "label",
    "thresholds": {"peak_tolerance": 15.0, "min_energy": 0.5},
    "model_kwargs": {"num_classes": 10},
    "settings": {"batch_size": 8, "num_workers": 0},
    "versions": {"python": "3.11", "torch": "2.x", "pytest-camcheck": "0.1.0"},
}


def decode_png(uri: str) -> np.ndarray:
    """Decode a ``data:image/png;base64,...`` URI (checking the PNG signature) to RGB."""
    assert uri.startswith(DATA_PREFIX), uri[:40]
    raw = base64.b64decode(uri[len(DATA_PREFIX) :], validate=True)
    assert raw.startswith(PNG_SIGNATURE), "not a PNG"
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, "cv2 could not decode the PNG"
    return img[:, :, ::-1] if img.ndim == 3 else img


def decode_b64_png(b64: str) -> np.ndarray:
    """Decode a bare base64 PNG (as in a record's ``images``) to RGB."""
    return decode_png(DATA_PREFIX + b64)


def _is_webp(raw: bytes) -> bool:
    return raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"


# MIME type of a data URI -> the check its bytes must pass
SIGNATURES = {
    "image/png": lambda raw: raw.startswith(PNG_SIGNATURE),
    "image/webp": _is_webp,
    "image/jpeg": lambda raw: raw.startswith(b"\xff\xd8\xff"),
}


def decode_image(uri: str, mime: str | None = None) -> np.ndarray:
    """Decode a ``data:image/{png,webp,jpeg};base64,...`` URI to RGB with ``cv2.imdecode``,
    checking that the bytes are of the type the URI names (and that it is ``mime``, if given)."""
    head, sep, b64 = uri.partition(";base64,")
    assert sep and head.startswith("data:"), uri[:40]
    declared = head[len("data:") :]
    assert declared in SIGNATURES, f"unexpected MIME type {declared!r}"
    assert mime is None or declared == mime, (declared, mime)
    raw = base64.b64decode(b64, validate=True)
    assert SIGNATURES[declared](raw), f"the bytes are not {declared}"
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.size > 0, f"cv2 could not decode the {declared}"
    return img[:, :, ::-1] if img.ndim == 3 else img


def decode_b64_image(b64: str) -> np.ndarray:
    """Decode a bare base64 PNG, WebP or JPEG (as in a record's ``images``) to RGB."""
    raw = base64.b64decode(b64, validate=True)
    mime = next((m for m, ok in SIGNATURES.items() if ok(raw)), None)
    assert mime is not None, "neither PNG, WebP nor JPEG"
    return decode_image(f"data:{mime};base64,{b64}")


@dataclass
class Element:
    """One parsed element: tag, attributes, and the text inside it (with descendants)."""

    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)
    children: list[Element] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all_text(self) -> str:
        return "".join(self.text)

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                found.append(child)
            found.extend(child.find_all(tag, cls))
        return found


class ReportParser(HTMLParser):
    """A small DOM built with the standard library's ``html.parser``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs})
        self.tags.append(tag)
        self.stack[-1].children.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        for el in self.stack:
            el.text.append(data)


def parse_html(text: str) -> Element:
    parser = ReportParser()
    parser.feed(text)
    parser.close()
    return parser.root


@dataclass
class ParsedReport:
    """A written report: the DOM, its text, its case cards and the JSON sidecar."""

    path: Path
    html: str
    dom: Element
    data: dict[str, Any]

    @property
    def cards(self) -> list[Element]:
        return self.dom.find_all("article", "card")

    def card_nodeids(self) -> list[str]:
        return [card.find_all("code", "nodeid")[0].all_text() for card in self.cards]

    @property
    def images(self) -> list[Element]:
        return self.dom.find_all("img")

    def text(self) -> str:
        return self.dom.all_text()


def read_report(path: Path) -> ParsedReport:
    import json

    html = path.read_text(encoding="utf-8")
    data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return ParsedReport(path, html, parse_html(html), data)


@pytest.fixture
def rh() -> SimpleNamespace:
    """The report test helpers: ``rh.make_case(...)``, ``rh.read_report(path)``, ``rh.XSS``...

    Example::

        def test_x(rh, tmp_path):
            write_report(tmp_path / "r.html", rh.SUMMARY, [rh.make_case(fraction=0.2)])
            assert len(rh.read_report(tmp_path / "r.html").cards) == 1
    """
    return SimpleNamespace(
        XSS=XSS,
        SUMMARY=SUMMARY,
        PNG_SIGNATURE=PNG_SIGNATURE,
        DATA_PREFIX=DATA_PREFIX,
        blob=blob,
        case_images=case_images,
        HEAD_BBOX=HEAD_BBOX,
        energy_evidence=energy_evidence,
        make_case=make_case,
        make_gate=make_gate,
        gate_result=gate_result,
        gate_evidence=gate_evidence,
        decode_png=decode_png,
        decode_b64_png=decode_b64_png,
        decode_image=decode_image,
        decode_b64_image=decode_b64_image,
        parse_html=parse_html,
        read_report=read_report,
    )


@pytest.fixture
def chromium() -> str:
    """The headless Chromium binary; skips when it is not installed."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip(
            "chromium is not installed: `apt-get update && apt-get install -y chromium` "
            "(`make test` does this when apt-get is available)"
        )
    return exe


@pytest.fixture
def probe_page(chromium: str, tmp_path: Path) -> Callable[..., str]:
    """``probe_page(page, probe, query="")``: open a copy of ``page`` with the ``probe``
    script appended before ``</body>`` in headless Chromium (``query`` added to its URL), and
    return the dumped DOM, in which the probe writes its findings into
    ``<pre id="camcheck-probe">``. Skips when Chromium is not installed."""

    def run(page: Path, probe: str, query: str = "") -> str:
        probed = page.with_name(page.stem + "-probed.html")
        text = page.read_text(encoding="utf-8")
        assert text.count("</body>") == 1
        probed.write_text(text.replace("</body>", probe + "</body>"), encoding="utf-8")
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=5000",
            "--window-size=1200,900",
            "--dump-dom",
            probed.as_uri() + query,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert '<pre id="camcheck-probe">' in proc.stdout, (
            f"no probe output from chromium (rc {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
        return proc.stdout

    return run
