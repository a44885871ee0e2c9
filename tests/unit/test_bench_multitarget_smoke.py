"""Smoke test of benchmarks/bench_multitarget.py, so the benchmark cannot rot (resnet18, 64 px)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_multitarget.py"


def test_the_multitarget_benchmark_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    spec = importlib.util.spec_from_file_location("bench_multitarget", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_multitarget"] = module
    threads = torch.get_num_threads()
    try:
        spec.loader.exec_module(module)
        status = module.main(["--quick", "--threads", "1"])
    finally:
        sys.modules.pop("bench_multitarget", None)
        torch.set_num_threads(threads)  # main() sets it for the whole process
    text = capsys.readouterr().out
    assert status == 0, text
    assert "PASS the 4-class call gives the maps of 4 separate calls" in text
    found = re.search(r"^ratio 4 classes / 1 class = (\d+\.\d+) \(goal <= 1\.3\)", text, re.M)
    assert found, text
    assert float(found.group(1)) > 0
    naive = re.search(r"^ratio 4 separate calls / 1 class = (\d+\.\d+)", text, re.M)
    assert naive and float(naive.group(1)) > 0, text
