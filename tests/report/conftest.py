"""Helpers for the report tests: fake records with real pictures, and an HTML parser.

The records follow the plugin's contract (see ``pytest_camcheck.report.collector``); their
pictures are rendered with the real :func:`render_case_images` from tiny synthetic images whose
CAM peak and annotated box are known by construction.
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from pytest_camcheck.regions import Region
from pytest_camcheck.report.render import render_case_images

XSS = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_PREFIX = "data:image/png;base64,"
VOID = {"img", "br", "meta", "link", "input", "hr", "source", "area", "base", "col", "wbr"}


def blob(height: int, width: int, row: float, col: float, sigma: float = 6.0) -> np.ndarray:
    """A Gaussian blob in [0, 1] peaking at ``(row, col)``."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    return np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * sigma**2)).astype(np.float32)


def case_images(seed: int = 0, layers: tuple[str, ...] = ("layer4", "layer3")) -> dict[str, Any]:
    """The ``images`` dict of a 48x64 case: a box at the left, the CAM peak at the right."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    maps = {name: blob(48, 64, 12 + 4 * i, 48 - 6 * i) for i, name in enumerate(layers)}
    regions = {"head": Region.from_box("head", (4, 20, 24, 44))}
    return render_case_images(rgb, maps, layers[0], regions, (12, 48))


def make_case(
    nodeid: str = "tests/test_cams.py::test_energy[cat_001]",
    *,
    outcome: str = "failed",
    severity: float = 1.0,
    images: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A ``camcheck_case`` record (JSON-serialisable), with pictures unless ``images={}``."""
    case_id = nodeid.rsplit("[", 1)[-1].rstrip("]") if "[" in nodeid else nodeid
    record: dict[str, Any] = {
        "kind": "case",
        "nodeid": nodeid,
        "case_id": case_id,
        "outcome": outcome,
        "message": f"sample {case_id}: energy in 'head' 31.0% < 50.0%",
        "evidence": [
            {
                "kind": "energy_in_region",
                "passed": False,
                "fraction": 0.31,
                "min_fraction": 0.5,
                "region": "head",
            }
        ],
        "path": f"data/{case_id}.png",
        "label": 3,
        "class_name": "cat",
        "prediction": 5,
        "prediction_name": "dog",
        "probability": 0.91,
        "method": "gradcam",
        "layer": "layer4",
        "layers": ["layer4", "layer3"],
        "degenerate": False,
        "metrics": {"energy_in[head]": 0.31, "peak_hit[head]": False},
        "severity": severity,
        "images": case_images() if images is None else images,
    }
    record.update(overrides)
    return record


def make_gate(nodeid: str = "tests/test_cams.py::test_pointing_game", **overrides: Any) -> dict:
    """A failing ``camcheck_gate`` record with two classes and per-sample values."""
    record: dict[str, Any] = {
        "kind": "gate",
        "nodeid": nodeid,
        "outcome": "failed",
        "message": "pointing_game[head, tol=15]: lower 95% bound 78.6% < required 90.0%",
        "name": "pointing_game[head, tol=15]",
        "passed": 45,
        "count": 50,
        "rate": 0.9,
        "lower": 0.786,
        "upper": 0.957,
        "confidence": 0.95,
        "min_rate": 0.9,
        "bound": "lower",
        "threshold": 0.5,
        "values": [i / 50 for i in range(50)],
        "per_class": {
            "cat": {"passed": 27, "count": 30, "rate": 0.9, "lower": 0.74, "upper": 0.97},
            "dog": {"passed": 18, "count": 20, "rate": 0.9, "lower": 0.70, "upper": 0.97},
        },
        "failures": ["cat/cat_004", "dog/dog_017"],
    }
    record.update(overrides)
    return record


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
            write_report(tmp_path / "r.html", rh.SUMMARY, [rh.make_case()])
            assert len(rh.read_report(tmp_path / "r.html").cards) == 1
    """
    return SimpleNamespace(
        XSS=XSS,
        SUMMARY=SUMMARY,
        PNG_SIGNATURE=PNG_SIGNATURE,
        DATA_PREFIX=DATA_PREFIX,
        blob=blob,
        case_images=case_images,
        make_case=make_case,
        make_gate=make_gate,
        decode_png=decode_png,
        decode_b64_png=decode_b64_png,
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
