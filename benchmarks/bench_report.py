"""Benchmark of the HTML report: render and write a report of many failing cases.

Each case is a 224x224 RGB image (smooth random colours plus pixel noise, so that its PNG is
about as hard to compress as a photo), two CAM maps (Gaussian blobs, so the per-layer strip is
drawn), one annotated box and a peak. The script times :func:`render_case_images` over all cases
and then :func:`write_report` (HTML + JSON, atomic), and prints both, the total, the file sizes
and PASS/FAIL against the target (default: 500 cases in under 10 s on one CPU core).

Run ``python benchmarks/bench_report.py --help``.
"""

from __future__ import annotations

import argparse
import json
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

SIZE = 224
LAYERS = ("layer4", "layer3")


def make_case(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray], Region, tuple]:
    """One synthetic image, its maps, an annotated box and the main map's peak."""
    coarse = rng.random((8, 8, 3), dtype=np.float32)
    img = cv2.resize(coarse, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    img = img + rng.normal(0.0, 0.04, img.shape).astype(np.float32)
    rgb = (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    maps = {}
    peak = (0, 0)
    for i, layer in enumerate(LAYERS):
        cy, cx = rng.uniform(20, SIZE - 20, size=2)
        sigma = rng.uniform(10, 40)
        m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        maps[layer] = (m / m.max()).astype(np.float32)
        if i == 0:
            peak = (int(cy), int(cx))
    x0, y0 = rng.uniform(0, SIZE / 2, size=2)
    w, h = rng.uniform(30, SIZE / 2, size=2)
    box = Region.from_box("object", (x0, y0, x0 + w, y0 + h))
    return rgb, maps, box, peak


def make_record(index: int, images: dict[str, Any], rng: np.random.Generator) -> CaseRecord:
    """A failing ``camcheck_case`` record as the plugin would send it."""
    fraction = float(rng.uniform(0.0, 0.5))
    case_id = f"bench/sample_{index:04d}"
    message = (
        f"sample {case_id}, layer {LAYERS[0]}: only {fraction:.1%} of the CAM energy lies "
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
        layer=LAYERS[0],
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
        layer=LAYERS[0],
        method="gradcam",
        layers=LAYERS,
        label=index % 10,
        class_name=f"class_{index % 10}",
        prediction=(index + 1) % 10,
        prediction_name=f"class_{(index + 1) % 10}",
        probability=float(rng.uniform(0.3, 1.0)),
        path=f"data/bench/sample_{index:04d}.png",
        images=images,
    )


def run(cases: int, out: Path, *, seed: int = 0, max_cases: int | None = None) -> dict[str, Any]:
    """Render ``cases`` failing cases and write the report to ``out``; return the timings.

    Each phase is timed twice: wall-clock (``*_s``) and this process's CPU time (``*_cpu_s``,
    user + system), which is what the work costs on an idle core of a shared machine.
    """
    rng = np.random.default_rng(seed)
    inputs = [make_case(rng) for _ in range(cases)]
    w0, c0 = time.perf_counter(), time.process_time()
    records = []
    for i, (rgb, maps, box, peak) in enumerate(inputs):
        images = render_case_images(rgb, maps, LAYERS[0], {"object": box}, peak)
        records.append(make_record(i, images, rng))
    w1, c1 = time.perf_counter(), time.process_time()
    summary = {"model": "bench", "layers": list(LAYERS), "method": "gradcam", "device": "cpu"}
    path = write_report(out, summary, records, max_cases=cases if max_cases is None else max_cases)
    w2, c2 = time.perf_counter(), time.process_time()
    return {
        "cases": cases,
        "render_s": w1 - w0,
        "write_s": w2 - w1,
        "total_s": w2 - w0,
        "render_cpu_s": c1 - c0,
        "write_cpu_s": c2 - c1,
        "total_cpu_s": c2 - c0,
        "html_bytes": path.stat().st_size,
        "json_bytes": path.with_suffix(".json").stat().st_size,
        "path": str(path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="failing cases (default 500)")
    parser.add_argument("--target", type=float, default=10.0, help="seconds allowed (default 10)")
    parser.add_argument(
        "--wall",
        action="store_true",
        help="judge the target on wall-clock time (default: on CPU time, which does not depend "
        "on what else the machine is running)",
    )
    parser.add_argument("--out", type=Path, default=None, help="report path (default: temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the timings as JSON")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "camcheck-report.html"
        result = run(args.cases, out, seed=args.seed)
    judged = "total_s" if args.wall else "total_cpu_s"
    result["target_s"] = args.target
    result["judged_on"] = judged
    result["pass"] = result[judged] < args.target
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        n = max(1, args.cases)
        print(f"{'':22s}{'wall':>9s}{'cpu':>9s}")
        phases = (("render", "render"), ("write HTML + JSON", "write"), ("total", "total"))
        for label, key in phases:
            print(f"{label:22s}{result[key + '_s']:8.2f}s{result[key + '_cpu_s']:8.2f}s")
        print(
            f"per case (render)     {1000 * result['render_s'] / n:7.1f}ms"
            f"{1000 * result['render_cpu_s'] / n:7.1f}ms"
        )
        print(
            f"cases: {args.cases}; sizes: HTML {result['html_bytes'] / 1e6:.1f} MB, "
            f"JSON {result['json_bytes'] / 1e3:.0f} kB"
        )
        verdict = "PASS" if result["pass"] else "FAIL"
        kind = "wall-clock" if args.wall else "CPU"
        print(f"{verdict}: {kind} total {result[judged]:.2f} s, target < {args.target:g} s")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
