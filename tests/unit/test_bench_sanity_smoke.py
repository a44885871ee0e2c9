"""Smoke test of benchmarks/bench_sanity.py, so the sanity benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sanity.py"


def test_the_benchmark_times_deletion_against_one_forward(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("bench_sanity", BENCH)
    assert spec is not None and spec.loader is not None, f"cannot load {BENCH}"
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_sanity"] = module
    try:
        spec.loader.exec_module(module)
        out = tmp_path / "figures.json"
        args = ["--images", "4", "--steps", "3", "--rounds", "1", "--batch-size", "4"]
        figures = module.main([*args, "--json", str(out)])
    finally:
        sys.modules.pop("bench_sanity", None)
    assert figures["images"] == 4 and figures["steps"] == 3
    assert set(figures["multiple"]) == {"forward", "deletion"}
    assert figures["multiple"]["forward"] == 1.0
    assert figures["multiple"]["deletion"] > 1.0  # several forwards of the same images
    assert json.loads(out.read_text())["seconds"]["deletion"] > 0
    printed = capsys.readouterr().out
    assert "deletion" in printed and "(floor: 6 forwards)" in printed
