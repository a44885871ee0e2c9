"""Benchmark of several target classes per image in one :func:`compute_cams` call.

With ``targets=[[c1, c2, c3, c4], ...]`` the engine explains four classes of every image from ONE
forward and ONE batched backward (autograd's ``is_grads_batched``), so the cost should stay close
to that of one class per image. This script times, in one process and round-robin over the
contenders (the order rotates every round):

* ``1 class``: ``compute_cams(model, x, "layer4", targets=top1)``, one class per image;
* ``4 classes``: ``compute_cams(model, x, "layer4", targets=[[4 classes] per image])``;
* ``4 calls``: four ``compute_cams`` calls of one class per image each (the naive way).

It first checks that the 4-class call gives the maps of the four separate calls, then prints the
median time of each contender and the ratios ``4 classes / 1 class`` (goal <= 1.3) and
``4 calls / 1 class``, each the median over rounds of the per-round ratio.

Run ``python benchmarks/bench_multitarget.py --help``; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
import torchvision
from torch import Tensor, nn

from pytest_camcheck.cam import compute_cams

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import cpu_name  # the sibling benchmark's helper

MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
LAYER = "layer4"
FOUR_OVER_ONE = 1.3
# Largest allowed max |difference| between the [0, 1] maps of the 4-class call and those of the
# separate calls: the same float32 maths, batched differently (a few 1e-6 in practice).
MAP_TOL = 1e-4


def build_model(name: str, seed: int = 0) -> nn.Module:
    """A torchvision ResNet with seeded random weights (no download), in eval mode, on CPU."""
    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    torch.manual_seed(seed)
    return torchvision.models.get_model(name, weights=None).eval()


def make_images(batch: int, size: int, seed: int = 1) -> Tensor:
    """``(batch, 3, size, size)`` seeded standard-normal images."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=gen)


def top_classes(model: nn.Module, x: Tensor, k: int) -> Tensor:
    """``(B, k)`` the k highest-scoring classes of each image, best first."""
    with torch.no_grad():
        return model(x).topk(k, dim=1).indices


def check_maps(model: nn.Module, x: Tensor, classes: Tensor) -> float:
    """Max |difference| between the maps of the k-class call and those of k separate calls."""
    k = classes.shape[1]
    pairs = compute_cams(model, x, LAYER, targets=classes.tolist())
    expected = torch.stack(
        [compute_cams(model, x, LAYER, targets=classes[:, j]).map for j in range(k)], dim=1
    )  # (B, k, H, W): row b * k + j of the pairs result
    return float((pairs.map - expected.flatten(0, 1)).abs().max())


def time_round_robin(
    contenders: dict[str, Callable[[], object]], rounds: int, warmup: int, min_time: float
) -> dict[str, list[float]]:
    """Seconds per call of each contender in each round; the order rotates every round.

    A measurement repeats the call until it spans about ``min_time`` seconds (the number of
    calls is fixed per contender from the last warm-up call), so that short calls are not
    dominated by the timer and scheduler noise.
    """
    keys = list(contenders)
    inner = dict.fromkeys(keys, 1)
    for _ in range(max(warmup, 1)):
        for key in keys:
            start = time.perf_counter()
            contenders[key]()
            once = time.perf_counter() - start
            inner[key] = max(1, math.ceil(min_time / max(once, 1e-9)))
    times: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            n = inner[key]
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                for _ in range(n):
                    contenders[key]()
                times[key].append((time.perf_counter() - start) / n)
            finally:
                gc.enable()
    return times


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over rounds of ``num[r] / den[r]`` (both timed in the same round)."""
    return statistics.median(a / b for a, b in zip(num, den))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time compute_cams with several target classes per image against one."
    )
    p.add_argument("--model", default="resnet50", choices=MODELS)
    p.add_argument("--batch", type=int, default=16, help="images per call (default 16)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    p.add_argument("--classes", type=int, default=4, help="classes per image (default 4)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (medians; default 5)")
    p.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first (default 1, at least 1)"
    )
    p.add_argument(
        "--min-time",
        type=float,
        default=0.2,
        help="repeat a call within a measurement until it spans this many seconds",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: resnet18, batch 4, 64x64, 3 rounds"
    )
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when the 4-classes/1-class goal fails"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.model, args.batch, args.size, args.rounds = "resnet18", 4, 64, 3
        args.min_time = min(args.min_time, 0.05)
    if args.rounds < 1 or args.batch < 1 or args.classes < 2 or args.size < 32:
        p.error("--rounds and --batch must be >= 1, --classes >= 2 and --size >= 32")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (1: maps differ, or --strict and a FAIL)."""
    args = parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    threads = args.threads or cores
    torch.set_num_threads(threads)
    k = args.classes
    print(
        f"pytest-camcheck multi-target benchmark | torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, python {platform.python_version()}"
    )
    print(
        f"cpu ({cpu_name()}, {cores} cores), {torch.get_num_threads()} threads | {args.model} "
        f"(random weights), batch {args.batch}, {args.size}x{args.size}, Grad-CAM at {LAYER}, "
        f"{k} classes per image, rounds {args.rounds}, warm-up {max(args.warmup, 1)}, "
        f"min-time {args.min_time:g} s"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > cores * 0.5:
        print(f"note: the CPU is busy (load {load:.1f} on {cores} cores): timings will be noisy")
    model = build_model(args.model)
    x = make_images(args.batch, args.size)
    classes = top_classes(model, x, k)
    per_image = classes.tolist()
    top1 = classes[:, 0].clone()

    diff = check_maps(model, x, classes)
    same = diff <= MAP_TOL
    print(
        f"{'PASS' if same else 'FAIL'} the {k}-class call gives the maps of {k} separate calls "
        f"(max |diff| {diff:.2e}, tolerance {MAP_TOL:g})"
    )

    many, naive = f"{k} classes", f"{k} calls"
    contenders: dict[str, Callable[[], object]] = {
        "1 class": lambda: compute_cams(model, x, LAYER, targets=top1),
        many: lambda: compute_cams(model, x, LAYER, targets=per_image),
        naive: lambda: [compute_cams(model, x, LAYER, targets=classes[:, j]) for j in range(k)],
    }
    gc.collect()
    gc.freeze()  # the long-lived objects (the model) need no collecting before each timing
    try:
        times = time_round_robin(contenders, args.rounds, args.warmup, args.min_time)
    finally:
        gc.unfreeze()
    print(f"  {'contender':<12}{'median ms':>11}{'maps/s':>9}")
    for key, ts in times.items():
        med = statistics.median(ts)
        maps = args.batch * (1 if key == "1 class" else k)
        print(f"  {key:<12}{med * 1e3:11.1f}{maps / med:9.2f}")
    ratio = paired_ratio(times[many], times["1 class"])
    naive_ratio = paired_ratio(times[naive], times["1 class"])
    ok = ratio <= FOUR_OVER_ONE
    verdict = "PASS" if ok else "FAIL"
    print(f"ratio {k} classes / 1 class = {ratio:.3f} (goal <= {FOUR_OVER_ONE:g}) {verdict}")
    print(f"ratio {k} separate calls / 1 class = {naive_ratio:.3f} (naive, for context)")
    sys.stdout.flush()
    if not same:
        return 1
    if args.strict and not ok:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
