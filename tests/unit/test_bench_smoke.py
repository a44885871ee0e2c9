"""Smoke tests of benchmarks/bench_engine.py, so the benchmark cannot rot.

Everything runs on a resnet18 at 64x64 with a batch of 2 and one round: seconds, not minutes.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_engine.py"
TINY = ["--models", "resnet18", "--batches", "2", "--size", "64", "--device", "cpu"]
TINY += ["--rounds", "1", "--warmup", "0", "--min-time", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The benchmark script imported as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    assert spec is not None and spec.loader is not None, f"cannot load {BENCH}"
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_engine"] = module  # dataclasses look their module up here
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny work: more threads only contend with other jobs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_engine", None)
        torch.set_num_threads(threads)  # main() sets it for the whole process


@pytest.fixture(scope="module")
def tiny(bench: ModuleType) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """(resnet18, 2 images of 64x64, their predicted classes), seeded."""
    cpu = torch.device("cpu")
    model = bench.build_model("resnet18", cpu, torch.float32)
    x = bench.make_images(2, 64, cpu, torch.float32)
    return model, x, bench.predicted_classes(model, x)


def test_every_contender_returns_the_same_maps(bench: ModuleType, tiny: tuple) -> None:
    model, x, targets = tiny
    skipped: dict[str, str] = {}
    rows = bench.check_equivalence(model, x, targets, "fp32", skipped)
    assert skipped == {}, f"peers that did not run: {skipped}"
    bench.print_equivalence(rows, skipped)
    pairs = {r.pair for r in rows}
    for peer in ("captum", "pytorch-grad-cam", "torchcam"):
        assert f"ours vs {peer}" in pairs
    bad = [r for r in rows if not r.ok]
    assert not bad, f"maps differ: {bad}"
    gated = [r for r in rows if r.tol != float("inf") and not r.pair.startswith("control")]
    assert all(r.max_abs_diff <= 1e-4 for r in gated), rows


def test_equivalence_check_catches_different_maps(
    bench: ModuleType, tiny: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If our engine explained another class, the check must say the maps differ."""
    model, x, targets = tiny
    real = bench.compute_cams

    def other_class(*args: Any, **kwargs: Any) -> Any:
        kwargs["targets"] = (kwargs["targets"] + 1) % 1000
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "compute_cams", other_class)
    rows = bench.check_equivalence(model, x, targets, "fp32", {})
    differ = {r.pair for r in rows if not r.ok}
    assert {"ours vs captum", "ours vs pytorch-grad-cam", "ours vs torchcam"} <= differ


def test_saved_tensor_meter_counts_each_storage_once(bench: ModuleType) -> None:
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(4, 8)
    ((x @ w) @ w).sum().backward()
    expected = w.grad.clone()
    w.grad = None
    meter = bench.SavedTensorMeter([w])
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        y = (x @ w) @ w  # saves x, w, x @ w and w again: w's storage counts once
    assert meter.total == (32 + 64 + 32) * 4
    assert meter.params == 64 * 4
    y.sum().backward()  # the hooks hand the tensors back intact
    torch.testing.assert_close(w.grad, expected)


def test_saved_tensor_meter_keeps_no_graph_alive(bench: ModuleType) -> None:
    """A graph measured but never backpropagated must be freed (a leak here ran out of RAM)."""
    w = torch.randn(8, 8, requires_grad=True)
    meter = bench.SavedTensorMeter()
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        y = (torch.randn(4, 8) @ w).relu()  # relu saves its own output
    alive = weakref.ref(y)
    del y
    gc.collect()
    assert alive() is None
    assert meter.total > 0


def test_main_runs_end_to_end(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    status = bench.main([*TINY, "--clock", "cpu", "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "torch.set_num_threads(1)" in text
    assert "PASS every contender returns the same maps" in text
    verdicts = [line for line in text.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert len(verdicts) == 6, verdicts  # equivalence + the five targets
    data = json.loads(out.read_text())
    (res,) = data["results"]
    assert set(res["median_s"]) == set(res["labels"]), res["unavailable"]
    assert all(t > 0 for t in res["median_s"].values())
    assert res["saved_bytes"]["inference"] == 0
    assert 0 < res["saved_bytes"]["ours gradcam L4"] < res["full_graph_saved_bytes"]
    assert res["saved_bytes"]["ours cam"] == 0
    names = [t["name"] for t in data["targets"]]
    assert len(names) == 5 and all(t["value"] is not None for t in data["targets"])


def test_quick_flag(bench: ModuleType) -> None:
    args = bench.parse_args(["--quick", "--device", "cpu"])
    assert (args.models, args.batches, args.rounds) == (["resnet18"], [16], 3)


def test_cli_rejects_cpu_clock_on_cuda(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(SystemExit):
        bench.parse_args(["--device", "cuda", "--clock", "cpu"])
    assert "--clock cpu times the host" in capsys.readouterr().err
