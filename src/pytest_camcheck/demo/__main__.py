"""``python -m pytest_camcheck.demo``: the main job on the built-in demo.

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

TEST_FILE = '''\
"""Demo camcheck tests: does the model look at the object, not at the watermark?"""

from pytest_camcheck import assert_energy_in_region, assert_pass_rate, assert_peak_in_box


def test_peak_on_object(camcheck_case):
    """The pointing game, one test item per image."""
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["object"], tolerance=4)


def test_object_holds_the_energy(camcheck_case):
    """A large share of the CAM energy lies on the object (objects cover ~25% of the image)."""
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.4)


def test_pointing_game_rate(camcheck):
    """Dataset-level gate on the lower 95% confidence bound."""
    assert_pass_rate(camcheck.pointing_game(region="object", tolerance=4), min_rate=0.8)
'''

INI = """\
[pytest]
camcheck_model = pytest_camcheck.demo.models:{model}_model
camcheck_dataset = data
camcheck_annotations = data/annotations.csv
camcheck_transform = pytest_camcheck.demo.models:transform
camcheck_method = gradcam
camcheck_batch_size = 32
camcheck_report = report-{model}.html
"""


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
    args = parser.parse_args(argv)

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
