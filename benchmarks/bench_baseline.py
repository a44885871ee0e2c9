"""Baseline benchmark: writing a baseline and comparing a retrained model's maps with it.

A tiny seeded CNN (average pooling to a 7x7 layer, a 1x1 convolution, global pooling and a linear
head) explains ``--samples`` synthetic ``--size`` px images (default 2,000 at 224 px: one bright
square each, annotated as region ``object``), in batches of ``--batch-size``, on the CPU. The
"retrained" model is the same network with its weights perturbed (seeded), so every map differs a
little from the baseline's and no comparison is short-cut.

Timed on the wall clock, each the median of ``--rounds`` rounds (default 3):

* ``maps``: the batched pass of the retrained model (forward, Grad-CAM, display maps): the
  cost camcheck pays anyway, for scale;
* ``write``: writing the baseline (float16 maps, compressed, manifest, atomic renames);
* ``load``: reading it back (manifest checks, sha256 of the data file, decompression);
* ``compare``: ``camcheck.baseline_comparison(min_ssim=0.8, max_peak_shift=10,
  min_rank_corr=0.5)`` once the maps are computed and the baseline read: per sample, the
  baseline's display map at the input size, SSIM at 64x64, peak shift, Spearman rank
  correlation of the raw maps and the energy change of the region (the part this feature adds).
  Its CPU time (this process, every thread) is printed too: on a shared machine the wall clock
  counts other jobs' load, the CPU time does not.

    python benchmarks/bench_baseline.py [--samples 2000] [--size 224] [--batch-size 64]
        [--rounds 3] [--threads N] [--json PATH] [--max-compare-seconds 10]

Exits 1 when the comparison's median CPU time exceeds ``--max-compare-seconds`` (default 10).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_camcheck.baseline import Baselines, read_baseline
from pytest_camcheck.errors import BaselineWritten
from pytest_camcheck.regions import Box, Sample
from pytest_camcheck.session import CamCheck
from pytest_camcheck.settings import Settings

TARGET_SECONDS = 10.0


class Net(nn.Module):
    """Average pooling to 7x7 (at 224 px), a 1x1 convolution (the CAM layer), GAP, linear."""

    def __init__(self, size: int, seed: int = 0, noise: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.pool = nn.AvgPool2d(max(1, size // 7))
        self.features = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU())
        self.fc = nn.Linear(16, 2)
        if noise:
            gen = torch.Generator().manual_seed(seed + 1)
            with torch.no_grad():
                for p in self.parameters():
                    p.add_(noise * p.abs().mean() * torch.randn(p.shape, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.pool(x)).mean(dim=(2, 3)))


class Squares:
    """``n`` images of ``size`` px: a bright square on a dark noisy background (seeded)."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size
        self.ids = [f"img/{i:05d}" for i in range(n)]
        self.class_names = ["dark", "bright"]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        gen = torch.Generator().manual_seed(i)
        side = self.size // 4
        r, c = (int(v) for v in torch.randint(0, self.size - side, (2,), generator=gen))
        img = 0.1 * torch.rand(3, self.size, self.size, generator=gen)
        img[:, r : r + side, c : c + side] += 0.8
        box = Box(c, r, c + side, r + side)
        return Sample(self.ids[i], label=i % 2, regions={"object": box}, image=img)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _cpu_timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    data = Squares(args.samples, args.size)
    settings = Settings(batch_size=args.batch_size, layer=("features",), num_workers=0)
    work = Path(tempfile.mkdtemp(prefix="bench_baseline_"))
    times: dict[str, list[float]] = {
        "maps": [],
        "write": [],
        "load": [],
        "compare": [],
        "compare_cpu": [],
    }
    result = None
    size_kb = 0.0
    try:
        for round_ in range(args.rounds):
            folder = work / f"round{round_}"
            writer = CamCheck(Net(args.size), data, settings, "cpu", baselines=Baselines(folder))
            writer.compute_all()
            start = time.perf_counter()
            try:
                writer.baseline_comparison()
            except BaselineWritten:
                pass
            times["write"].append(time.perf_counter() - start)
            (base,) = [p for p in folder.iterdir() if p.is_dir()]
            size_kb = sum(f.stat().st_size for f in base.iterdir()) / 1024
            times["load"].append(_timed(lambda b=base: read_baseline(b))[0])
            candidate = CamCheck(
                Net(args.size, noise=0.05), data, settings, "cpu", baselines=Baselines(folder)
            )
            times["maps"].append(_timed(candidate.compute_all)[0])
            candidate.baselines.load_folder(base)  # read: the comparison alone is timed
            from skimage.metrics import structural_similarity  # noqa: F401 (imported once)

            seconds, cpu, result = _cpu_timed(
                lambda c=candidate: c.baseline_comparison(
                    min_ssim=0.8, max_peak_shift=10, min_rank_corr=0.5
                )
            )
            times["compare"].append(seconds)
            times["compare_cpu"].append(cpu)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    assert result is not None
    return {
        "samples": args.samples,
        "size": args.size,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "seconds": medians,
        "all_seconds": times,
        "compare_us_per_sample": 1e6 * medians["compare"] / args.samples,
        "compare_cpu_us_per_sample": 1e6 * medians["compare_cpu"] / args.samples,
        "baseline_kb": size_kb,
        "passed": f"{result.passed}/{result.count}",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--max-compare-seconds", type=float, default=TARGET_SECONDS)
    args = parser.parse_args(argv)
    out = run(args)
    s = out["seconds"]
    print(
        f"baseline benchmark: {out['samples']} samples, {out['size']} px, batch "
        f"{out['batch_size']}, {out['threads']} thread(s), median of {out['rounds']} round(s)"
    )
    rows = [
        ("maps (retrained model, batched pass)", s["maps"], ""),
        (f"write baseline ({out['baseline_kb']:.0f} KiB)", s["write"], ""),
        ("load baseline", s["load"], ""),
        (
            "compare with the baseline",
            s["compare"],
            f" ({out['compare_us_per_sample']:.0f} us/sample; {out['passed']} within the "
            "thresholds)",
        ),
        (
            "  of which CPU time",
            s["compare_cpu"],
            f" ({out['compare_cpu_us_per_sample']:.0f} us/sample)",
        ),
    ]
    for label, seconds, note in rows:
        print(f"  {label:<38}{seconds:8.2f} s{note}")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if s["compare_cpu"] > args.max_compare_seconds:
        print(f"FAIL: the comparison took more than {args.max_compare_seconds:g} CPU seconds")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
