"""``python -m pytest_camcheck.demo``: the main job on the built-in demo.

By default (``make demo``) it runs the three-part tour of :mod:`pytest_camcheck.demo.tour`:
a real ImageNet model on real photos, the Clever Hans story below, and layer by layer; it
writes ``<out>/index.html`` linking the three reports. ``--part clever-hans`` runs this story
alone:

Writes a small synthetic "circles vs squares" test set whose images of one class carry a
class-correlated watermark, then runs pytest-camcheck on two models trained by
``scripts/train_demo_models.py``: a clean one (passes) and one that learnt the watermark (high
accuracy, but its CAMs sit on the watermark: fails). Each run writes an HTML report.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

from .clever_hans import INI, TEST_FILE


def _run(out: Path, model: str, extra: list[str]) -> int:
    work = out / model
    work.mkdir(parents=True, exist_ok=True)
    (work / "test_demo.py").write_text(TEST_FILE)
    (work / "pytest.ini").write_text(INI.format(model=model))
    data = work / "data"
    if data.exists():
        import shutil

        shutil.rmtree(data)
    data.symlink_to((out / "data").resolve(), target_is_directory=True)
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
        *extra,
        str(work / "test_demo.py"),
    ]
    print(f"\n=== {model} model: {' '.join(cmd[2:])}", flush=True)
    return subprocess.call(cmd, cwd=work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_camcheck.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    parser.add_argument("--per-class", type=int, default=40, help="test images per class")
    parser.add_argument("--model", choices=("clean", "watermark", "both"), default="both")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    parser.add_argument(
        "--part",
        choices=("all", "clever-hans"),
        default="all",
        help="all: the three-part tour with its index page (default); clever-hans: this story",
    )
    parser.add_argument(
        "--screenshot", default=None, help="also save a PNG of a report (needs chromium)"
    )
    args = parser.parse_args(argv)
    if args.part == "all":
        from .tour import main as tour

        return tour(Path(args.out), Path(args.screenshot) if args.screenshot else None)

    from .synthetic import write_dataset

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    write_dataset(out / "data", n_per_class=args.per_class, seed=2026, watermark=True)
    models = ["clean", "watermark"] if args.model == "both" else [args.model]
    codes = {m: _run(out, m, list(args.pytest_args)) for m in models}
    print(
        textwrap.dedent(f"""
        === pytest-camcheck demo
        test images: {out / "data"}""")
    )
    for m, code in codes.items():
        verdict = "all checks passed" if code == 0 else "checks FAILED"
        report = out / m / f"report-{m}.html"
        print(f"{m:>9} model: {verdict} (pytest exit {code}); report: {report}")
    expected = {"clean": 0, "watermark": 1}
    ok = all(codes[m] == expected[m] for m in codes)
    if ok:
        print(
            "As expected: the clean model passes, the watermark model is caught. Open the "
            "watermark report to see where it looks."
        )
        return 0
    print("Unexpected outcome: see the pytest output above.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
