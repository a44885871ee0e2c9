"""Smoke test of benchmarks/bench_baseline.py, so the benchmark cannot rot (40 samples, 64 px)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_baseline.py"


def test_the_baseline_benchmark_runs_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    spec = importlib.util.spec_from_file_location("bench_baseline", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_baseline"] = module
    threads = torch.get_num_threads()
    try:
        spec.loader.exec_module(module)
        out = tmp_path / "bench.json"
        args = ["--samples", "40", "--size", "64", "--batch-size", "16", "--rounds", "1"]
        assert module.main([*args, "--json", str(out)]) == 0
        # a limit no comparison can meet fails the run
        assert module.main([*args, "--max-compare-seconds", "0"]) == 1
    finally:
        sys.modules.pop("bench_baseline", None)
        torch.set_num_threads(threads)
    figures = json.loads(out.read_text())
    assert figures["samples"] == 40 and figures["seconds"]["compare"] > 0
    assert figures["passed"].endswith("/40") and figures["baseline_kb"] > 0
    assert "compare with the baseline" in capsys.readouterr().out
