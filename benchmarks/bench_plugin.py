"""Plugin scale benchmark: 2,000 small images, one test item per sample.

Measures, in subprocesses of the same interpreter, with a small conftest that records every
item's setup + call + teardown duration as pytest reports it:
  1. the batched pass alone (``CamCheck.compute_all``) on the demo's clean model;
  2. pytest with 2,000 trivial parametrised items (pytest's own per-item cost);
  3. pytest with 2,000 ``camcheck_case`` items calling ``assert_energy_in_region``; the first
     item carries the batched pass, every other one only serves its case from the cache.
camcheck's per-item cost = median item duration of (3) minus that of (2), the batched item
excluded. Target: a few milliseconds at most. Durations are measured inside each run, so other
load on the machine inflates both runs alike instead of being charged to camcheck.

    python benchmarks/bench_plugin.py [--per-class 1000] [--out /tmp/camcheck-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

INI = """\
[pytest]
camcheck_model = pytest_camcheck.demo.models:clean_model
camcheck_dataset = data
camcheck_annotations = data/annotations.csv
camcheck_transform = pytest_camcheck.demo.models:transform
camcheck_device = cpu
camcheck_batch_size = 64
"""

CAMCHECK_TESTS = """
from pytest_camcheck import assert_energy_in_region


def test_energy(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.0)
"""

PLAIN_TESTS = """
import pytest


@pytest.mark.parametrize("i", range({n}))
def test_plain(i):
    assert i >= 0
"""

DURATIONS = """
import json
import os

_DUR = {}


def pytest_runtest_logreport(report):
    _DUR[report.nodeid] = _DUR.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    with open(os.environ["CAMCHECK_BENCH_DURATIONS"], "w") as f:
        json.dump(_DUR, f)
"""

COMPUTE_ONLY = """
import time
from pathlib import Path
from pytest_camcheck.data import build_dataset
from pytest_camcheck.demo.models import clean_model
from pytest_camcheck.session import CamCheck
from pytest_camcheck.settings import Settings

ds = build_dataset("data", annotations="data/annotations.csv",
                   transform="pytest_camcheck.demo.models:transform", rootdir=Path.cwd())
check = CamCheck(clean_model(), ds, Settings(batch_size=64, device="cpu"), "cpu")
t0 = time.perf_counter()
check.compute_all()
print(f"{time.perf_counter() - t0:.3f}")
"""


def _time(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"command failed: {' '.join(cmd)}")
    return elapsed, proc.stdout


def _item_durations(cmd: list[str], root: Path, name: str) -> tuple[float, list[float], str]:
    out_file = root / f"durations-{name}.json"
    wall, out = _time(cmd, root, {"CAMCHECK_BENCH_DURATIONS": str(out_file)})
    durations = sorted(json.loads(out_file.read_text()).values())
    return wall, durations, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from pytest_camcheck.demo.synthetic import write_dataset

    root = Path(args.out or tempfile.mkdtemp(prefix="camcheck-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    n = 2 * args.per_class
    t0 = time.perf_counter()
    write_dataset(root / "data", n_per_class=args.per_class, seed=7, watermark=False)
    print(f"wrote {n} images of 96x96 in {time.perf_counter() - t0:.1f} s to {root / 'data'}")
    (root / "pytest.ini").write_text(INI)
    (root / "conftest.py").write_text(DURATIONS)
    (root / "test_camcheck.py").write_text(CAMCHECK_TESTS)
    (root / "test_plain.py").write_text(textwrap.dedent(PLAIN_TESTS.format(n=n)))
    (root / "compute_only.py").write_text(COMPUTE_ONLY)

    py = sys.executable
    _, out = _time([py, "compute_only.py"], root)
    t_compute = float(out.strip().splitlines()[-1])
    base = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    t_plain, plain, _ = _item_durations(
        [*base, "-p", "no:camcheck", "test_plain.py"], root, "plain"
    )
    t_cam, cam, out = _item_durations([*base, "test_camcheck.py"], root, "camcheck")
    progress = [line for line in out.splitlines() if line.startswith("camcheck: CAMs")]
    batched_item = cam[-1]  # the item that ran the batched pass
    per_item = statistics.median(cam[:-1]) - statistics.median(plain)
    p90 = cam[int(0.9 * (len(cam) - 1))] - plain[int(0.9 * (len(plain) - 1))]
    print(
        f"batched pass alone (compute_all, {n} images): {t_compute:.2f} s "
        f"({n / t_compute:.0f} img/s)"
    )
    print(
        f"pytest, {n} trivial items:   wall {t_plain:6.2f} s, median item "
        f"{statistics.median(plain) * 1000:.2f} ms"
    )
    print(
        f"pytest, {n} camcheck items:  wall {t_cam:6.2f} s, median item "
        f"{statistics.median(cam[:-1]) * 1000:.2f} ms, first item (batched pass) "
        f"{batched_item:.2f} s"
    )
    print(f"camcheck cost per item: median {per_item * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms")
    print(
        f"progress lines shown: {len(progress)}" + (f" (last: {progress[-1]})" if progress else "")
    )
    verdict = "PASS" if per_item <= 0.005 else "FAIL"
    print(f"{verdict}: median per-item overhead {per_item * 1000:.2f} ms <= 5 ms")


if __name__ == "__main__":
    main()
