"""Benchmark of the HTML report on real photos: render, write and open a report of failing cards.

Each case is a real photo: a scikit-image scene (astronaut, coffee, chelsea, rocket,
immunohistochemistry, hubble_deep_field, retina, motorcycle), a random square crop of it resized
to 480x480 and sometimes mirrored, with four CAM maps (layer1..layer4, each a blob on a coarser
grid, upsampled as a CAM is) so that the card has a four-tile strip, one annotated box and the
peak of the drawn map. The script

1. renders every case's pictures (:func:`render_case_images`: resize, blend, draw, encode), the
   per-card cost of the pictures;
2. writes the report (:func:`write_report`: HTML + JSON, atomically);
3. opens the HTML in headless Chromium and reads when the load event began, from the page's own
   navigation timing (``performance.getEntriesByType("navigation")[0].loadEventStart``, in ms
   since the navigation started): a copy of the page with a five-line probe appended is opened
   with ``--headless --dump-dom``, which dumps the DOM once the page has loaded; the probe
   writes the time into the DOM from its load handler. Real time (no virtual time budget), the
   median of ``--browser-runs`` runs, each in a fresh profile.

It prints both clocks per phase, the size per card and in all, the load time, and PASS/FAIL
against the targets: under 10 s of CPU to render and write, an HTML file under 8 MB, the load
event under 3 s (defaults: 200 cards, the report's default cap).

Run ``python benchmarks/bench_report.py --help``.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pytest_camcheck.regions import Region
from pytest_camcheck.report.html import write_report
from pytest_camcheck.report.records import CaseRecord, Evidence, RegionInfo
from pytest_camcheck.report.render import render_case_images

SIZE = 480
LAYERS = ("layer1", "layer2", "layer3", "layer4")
SHOWN = "layer4"
GRIDS = {"layer1": 56, "layer2": 28, "layer3": 14, "layer4": 7}  # a ResNet's at 224 px
SCENES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
)
LOAD_PROBE = """<script>
window.addEventListener("load", function () {
  var nav = performance.getEntriesByType("navigation")[0], out = document.createElement("pre");
  out.textContent = "camcheck-load load_ms=" + nav.loadEventStart.toFixed(1) + " end";
  document.body.appendChild(out);
});
</script>
"""
LOAD_LINE = re.compile(r"camcheck-load load_ms=(\d+(?:\.\d+)?) end")


@functools.cache
def scene(name: str) -> np.ndarray:
    """A scikit-image scene as ``(H, W, 3)`` uint8 RGB (the left view of a stereo pair)."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):
        img = img[0]
    return np.ascontiguousarray(img[:, :, :3])


def photo(index: int, rng: np.random.Generator) -> np.ndarray:
    """Case ``index``'s photo: a random square crop of a scene, resized to SIZE, maybe mirrored."""
    img = scene(SCENES[index % len(SCENES)])
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.7, 1.0))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(img[top : top + side, left : left + side], (SIZE, SIZE), cv2.INTER_AREA)
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def make_case(
    index: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray], Region, tuple[int, int]]:
    """One photo, its four maps, an annotated box and the drawn map's peak."""
    rgb = photo(index, rng)
    maps = {}
    for layer in LAYERS:
        grid = GRIDS[layer]
        yy, xx = np.mgrid[:grid, :grid].astype(np.float32)
        cy, cx = rng.uniform(0.15, 0.85, size=2) * grid
        sigma = rng.uniform(0.08, 0.25) * grid
        m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        m += 0.15 * rng.random((grid, grid), dtype=np.float32)
        m = cv2.resize(m.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        maps[layer] = (m - m.min()) / (m.max() - m.min())
    row, col = divmod(int(np.argmax(maps[SHOWN])), SIZE)
    x0, y0 = rng.uniform(0, SIZE / 2, size=2)
    w, h = rng.uniform(60, SIZE / 2, size=2)
    box = Region.from_box("object", (x0, y0, x0 + w, y0 + h))
    return rgb, maps, box, (row, col)


def make_record(index: int, images: dict[str, Any], rng: np.random.Generator) -> CaseRecord:
    """A failing ``camcheck_case`` record as the plugin would send it."""
    fraction = float(rng.uniform(0.0, 0.5))
    case_id = f"bench/sample_{index:04d}"
    message = (
        f"sample {case_id}, layer {SHOWN}: only {fraction:.1%} of the CAM energy lies "
        "inside region 'object' (required at least 50.0%)"
    )
    found = Evidence(
        check="energy_in_region",
        passed=False,
        metric="energy_fraction",
        value=fraction,
        threshold_name="min_fraction",
        threshold=0.5,
        sample=case_id,
        layer=SHOWN,
        method="gradcam",
        region=RegionInfo("object"),
        message=message,
    )
    return CaseRecord(
        nodeid=f"tests/test_cams.py::test_energy[sample_{index:04d}]",
        case_id=case_id,
        outcome="failed",
        message=message,
        evidence=(found,),
        layer=SHOWN,
        method="gradcam",
        layers=LAYERS,
        label=index % 10,
        class_name=f"class_{index % 10}",
        prediction=(index + 1) % 10,
        prediction_name=f"class_{(index + 1) % 10}",
        probability=float(rng.uniform(0.3, 1.0)),
        path=f"data/bench/sample_{index:04d}.jpg",
        images=images,
    )


def run(
    cases: int,
    out: Path,
    *,
    seed: int = 0,
    max_cases: int | None = None,
    full_images: bool = False,
    image_format: str = "webp",
) -> dict[str, Any]:
    """Render ``cases`` failing cases and write the report to ``out``; return the timings.

    Each phase is timed twice: wall-clock (``*_s``) and this process's CPU time (``*_cpu_s``,
    user + system), which is what the work costs on an idle core of a shared machine. The
    photos are cropped before the clocks start.
    """
    rng = np.random.default_rng(seed)
    inputs = [make_case(i, rng) for i in range(cases)]
    w0, c0 = time.perf_counter(), time.process_time()
    records = []
    for i, (rgb, maps, box, peak) in enumerate(inputs):
        images = render_case_images(
            rgb,
            maps,
            SHOWN,
            {"object": box},
            peak,
            image_format=image_format,
            full_image=full_images,
        )
        records.append(make_record(i, images, rng))
    w1, c1 = time.perf_counter(), time.process_time()
    summary = {"model": "bench", "layers": list(LAYERS), "method": "gradcam", "device": "cpu"}
    path = write_report(out, summary, records, max_cases=cases if max_cases is None else max_cases)
    w2, c2 = time.perf_counter(), time.process_time()
    html_bytes = path.stat().st_size
    return {
        "cases": cases,
        "render_s": w1 - w0,
        "write_s": w2 - w1,
        "total_s": w2 - w0,
        "render_cpu_s": c1 - c0,
        "write_cpu_s": c2 - c1,
        "total_cpu_s": c2 - c0,
        "html_bytes": html_bytes,
        "json_bytes": path.with_suffix(".json").stat().st_size,
        "mb_per_card": html_bytes / 1e6 / max(1, cases),
        "full_images": full_images,
        "image_format": image_format,
        "path": str(path),
    }


def chromium_load(chromium: str, page: Path, runs: int = 3) -> dict[str, Any]:
    """Open ``page`` in headless Chromium ``runs`` times; the load event's time (see the module
    docstring) and the whole process's wall time, each the median over the runs.

    Raises:
        RuntimeError: Chromium printed no time (it failed to start or to load the page).
    """
    probed = page.with_name(page.stem + "-load-probe.html")
    text = page.read_text(encoding="utf-8")
    probed.write_text(text.replace("</body>", LOAD_PROBE + "</body>", 1), encoding="utf-8")
    loads, processes = [], []
    try:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as profile:
                cmd = [
                    chromium,
                    "--headless",
                    "--disable-gpu",
                    "--no-sandbox",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    f"--user-data-dir={profile}",
                    "--window-size=1200,900",
                    "--dump-dom",
                    probed.as_uri(),
                ]
                start = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
                processes.append(time.perf_counter() - start)
            match = LOAD_LINE.search(proc.stdout)
            if match is None:
                raise RuntimeError(
                    f"chromium reported no load time (rc {proc.returncode}): {proc.stderr[-800:]}"
                )
            loads.append(float(match.group(1)) / 1000.0)
    finally:
        probed.unlink(missing_ok=True)
    return {
        "load_s": statistics.median(loads),
        "load_runs_s": loads,
        "chromium_process_s": statistics.median(processes),
    }


def find_chromium(given: str | None) -> str | None:
    """The Chromium binary: ``given``, else ``chromium`` / ``chromium-browser`` / ``google-chrome``
    on the PATH."""
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def verdicts(result: dict[str, Any]) -> list[tuple[str, str]]:
    """``(PASS|FAIL|SKIP, line)`` for each target."""
    judged = result["judged_on"]
    kind = "wall-clock" if judged == "total_s" else "CPU"
    mb = result["html_bytes"] / 1e6
    lines = [
        (
            "PASS" if result["pass_time"] else "FAIL",
            f"{kind} total {result[judged]:.2f} s, target < {result['target_s']:g} s",
        ),
        (
            "PASS" if result["pass_size"] else "FAIL",
            f"HTML {mb:.2f} MB, target < {result['max_mb']:g} MB",
        ),
    ]
    if result["load_s"] is None:
        lines.append(("SKIP", f"load event not measured, target < {result['max_load_s']:g} s"))
    else:
        verdict = "PASS" if result["pass_load"] else "FAIL"
        lines.append(
            (verdict, f"load event {result['load_s']:.2f} s, target < {result['max_load_s']:g} s")
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200, help="failing cases (default 200)")
    parser.add_argument(
        "--target", type=float, default=10.0, help="seconds allowed to render and write (10)"
    )
    parser.add_argument("--max-mb", type=float, default=8.0, help="HTML size allowed, MB (8)")
    parser.add_argument(
        "--max-load", type=float, default=3.0, help="seconds allowed to the load event (3)"
    )
    parser.add_argument(
        "--wall",
        action="store_true",
        help="judge the time target on wall-clock time (default: on CPU time, which does not "
        "depend on what else the machine is running)",
    )
    parser.add_argument(
        "--full-images",
        action="store_true",
        help="also embed each card's full-resolution overlay (camcheck_report_full_images)",
    )
    parser.add_argument(
        "--format",
        choices=("webp", "jpeg", "png"),
        default="webp",
        help="how the cards' pictures are encoded (default webp, as the plugin does)",
    )
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: on PATH)")
    parser.add_argument(
        "--no-browser", action="store_true", help="do not open the report in Chromium"
    )
    parser.add_argument("--browser-runs", type=int, default=3, help="Chromium runs (median)")
    parser.add_argument("--out", type=Path, default=None, help="report path (default: temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    chromium = None if args.no_browser else find_chromium(args.chromium)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "camcheck-report.html"
        result = run(
            args.cases, out, seed=args.seed, full_images=args.full_images, image_format=args.format
        )
        result.update(load_s=None, load_runs_s=[], chromium_process_s=None, chromium=chromium)
        if chromium is not None:
            result.update(chromium_load(chromium, out, max(1, args.browser_runs)))
    judged = "total_s" if args.wall else "total_cpu_s"
    result.update(
        target_s=args.target,
        max_mb=args.max_mb,
        max_load_s=args.max_load,
        judged_on=judged,
        pass_time=result[judged] < args.target,
        pass_size=result["html_bytes"] / 1e6 < args.max_mb,
        pass_load=None if result["load_s"] is None else result["load_s"] < args.max_load,
    )
    result["pass"] = bool(
        result["pass_time"] and result["pass_size"] and result["pass_load"] in (None, True)
    )
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        n = max(1, args.cases)
        print(f"{'':27s}{'wall':>9s}{'cpu':>9s}")
        phases = (("render + encode", "render"), ("write HTML + JSON", "write"), ("total", "total"))
        for label, key in phases:
            print(f"{label:27s}{result[key + '_s']:8.2f}s{result[key + '_cpu_s']:8.2f}s")
        print(
            f"per card (render + encode){1000 * result['render_s'] / n:8.1f}ms"
            f"{1000 * result['render_cpu_s'] / n:7.1f}ms"
        )
        print(
            f"cards: {args.cases}; HTML {result['html_bytes'] / 1e6:.2f} MB "
            f"({result['mb_per_card']:.4f} MB per card), "
            f"JSON {result['json_bytes'] / 1e3:.0f} kB"
            + (", with full-resolution overlays" if args.full_images else "")
            + ("" if args.format == "webp" else f", {args.format} pictures")
        )
        if result["load_s"] is not None:
            print(
                f"chromium load event: {result['load_s']:.2f} s (median of "
                f"{len(result['load_runs_s'])}; whole chromium process "
                f"{result['chromium_process_s']:.2f} s)"
            )
        else:
            why = "--no-browser" if args.no_browser else "no chromium found; --chromium PATH"
            print(f"chromium load event: not measured ({why})")
        for verdict, line in verdicts(result):
            print(f"{verdict}: {line}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
