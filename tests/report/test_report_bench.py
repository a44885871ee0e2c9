"""A quick run of ``benchmarks/bench_report.py`` with a few cases, to keep it working."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_report.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["bench_report"]
    return module


def test_run_writes_a_report_of_every_case(bench, rh, tmp_path) -> None:
    result = bench.run(4, tmp_path / "bench.html", seed=1)
    assert result["cases"] == 4
    for key in ("render_s", "write_s", "render_cpu_s", "write_cpu_s"):
        assert result[key] >= 0.0, key
    assert result["total_s"] == pytest.approx(result["render_s"] + result["write_s"])
    report = rh.read_report(Path(result["path"]))
    assert len(report.cards) == 4
    # original, overlay and two strip tiles per case; the overview's histogram and class bars
    assert len(report.images) == 4 * 4 + 2
    for img in report.images:
        rh.decode_png(img.attrs["src"])
    assert result["html_bytes"] == Path(result["path"]).stat().st_size


def test_the_synthetic_cases_are_deterministic(bench) -> None:
    import numpy as np

    a = bench.make_case(np.random.default_rng(5))
    b = bench.make_case(np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (224, 224, 3)
    assert set(a[1]) == set(bench.LAYERS)
    assert a[3] == b[3]


def test_main_prints_json_and_judges_the_target(bench, capsys) -> None:
    assert bench.main(["--cases", "2", "--target", "1000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cases"] == 2 and out["pass"] is True and out["judged_on"] == "total_cpu_s"
    assert bench.main(["--cases", "2", "--target", "0", "--wall"]) == 1
    text = capsys.readouterr().out
    assert "FAIL: wall-clock total" in text and "render" in text
