"""Smoke tests of benchmarks/bench_session.py, so the session benchmark cannot rot.

The end-to-end test runs the whole script on 8 JPEGs at 64 px with one round and no DataLoader
workers and no warm-up: two short processes (a pytest session and a plain loop), a few seconds
each.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from pytest_camcheck.data import ImageIndex, read_csv

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_session.py"
TINY = ["--images", "8", "--size", "64", "--rounds", "1", "--warmup", "0", "--workers", "0"]
TINY += ["--no-check"]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The benchmark script imported as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench_session", BENCH)
    assert spec is not None and spec.loader is not None, f"cannot load {BENCH}"
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_session"] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_session", None)


def test_dataset_annotations_are_read_by_camcheck(bench: ModuleType, tmp_path: Path) -> None:
    """The CSV the benchmark writes is one camcheck reads, boxes on the coloured rectangles."""
    data = tmp_path / "data"
    bench.make_dataset(data, 6)
    images = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.jpg"))
    assert len(images) == 6
    found = read_csv(data / "annotations.csv", ImageIndex(images))
    assert sorted(found) == images
    for rel, ann in found.items():
        assert ann.label == rel.split("/")[0]
        with Image.open(data / rel) as im:
            width, height = im.size
            pixels = np.asarray(im.convert("RGB"), dtype=np.float32)
        assert 300 <= width <= 500 and 300 <= height <= 500
        (region,) = ann.regions
        assert region.name == "object"
        ((x0, y0, x1, y1),) = ((b.x0, b.y0, b.x1, b.y1) for b in region.boxes)
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        inside = pixels[int(y0) + 4 : int(y1) - 4, int(x0) + 4 : int(x1) - 4]
        assert inside.std(axis=(0, 1)).max() < 12, f"{rel}: the box is not on the rectangle"


def test_main_runs_end_to_end(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    status = bench.main([*TINY, "--out", str(tmp_path / "work"), "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    ratio = re.search(r"^session/loop ratio: ([0-9.]+) \(target <= 1\.2\)", text, re.M)
    assert ratio is not None, text
    assert float(ratio.group(1)) > 0
    data = json.loads(out.read_text())
    (pair,) = data["pairs"]
    assert pair["workers"] == 0 and pair["warmup_session_s"] == []
    assert len(pair["session_s"]) == len(pair["loop_s"]) == 1
    assert pair["session_s"][0] > 0 and pair["loop_s"][0] > 0
    assert pair["ratio"] == pytest.approx(pair["session_s"][0] / pair["loop_s"][0])


def test_cli_rejects_bad_arguments(bench: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--workers", "-1"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])
    assert bench.parse_args([]).images == 512


def test_out_folder_must_be_ours(bench: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("do not overwrite")
    with pytest.raises(SystemExit, match="not made by this script"):
        bench.prepare_work(str(tmp_path))
