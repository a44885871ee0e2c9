"""Sanity-check benchmark: what deletion (and the other dataset-level checks) cost, as a multiple
of one forward pass over the same images.

The images are the demo's synthetic circles and squares (``--images`` of them, half per class,
96 px), the model the clean demo classifier (or ``--model resnet18`` with seeded random weights,
the images upsampled to ``--size``). The maps are computed first and not timed (the store keeps
them for every check). Then, for ``--rounds`` rounds, each contender is timed once, in an order
that rotates from round to round:

* ``forward``: ``model(x)`` under ``torch.inference_mode()`` over all images, in batches of
  ``--batch-size``: the unit;
* ``deletion``: ``camcheck.deletion(steps=--steps)`` over the dataset (batched: ``steps``
  forwards of each batch, the map's order and the random order stacked in one forward);
* with ``--all``, also ``insertion``, ``occlusion("object")``, ``randomization()`` and
  ``spatial_bias()``.

Each contender's time is the median over rounds; its multiple is the median over rounds of the
per-round ratio to the forward pass (a burst of load from other jobs hits both alike). Deletion's
floor is ``2 * steps`` forwards of the same images (two orders, ``steps - 1`` inner points each,
plus the image and the baseline), so its multiple should be close to ``2 * steps``.

    python benchmarks/bench_sanity.py [--images 512] [--steps 20] [--batch-size 64] [--rounds 3]
        [--model clean|resnet18] [--size 224] [--device cpu|cuda] [--threads N] [--all]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from pytest_camcheck.demo import planted
from pytest_camcheck.session import CamCheck
from pytest_camcheck.settings import Settings


class _Resized(planted.GeneratedDataset):
    """The demo images upsampled to another size (regions scaled with them)."""

    def __init__(self, base: planted.GeneratedDataset, size: int) -> None:
        images = F.interpolate(base.images, size=(size, size), mode="bilinear", align_corners=False)
        scale = size / base.images.shape[-1]
        regions = [{k: b.scaled(scale, scale) for k, b in r.items()} for r in base.regions]
        super().__init__(images, base.labels, regions)


def _model(name: str, device: str) -> torch.nn.Module:
    if name == "clean":
        return planted.DEFECTS["clean"].factory().to(device)
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=2)
    return model.eval().to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the contenders; returns the figures (also printed)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    data = planted.dataset("clean", n_per_class=max(1, args.images // 2))
    if args.model != "clean":
        data = _Resized(data, args.size)
    model = _model(args.model, args.device)
    settings = Settings(batch_size=args.batch_size, num_workers=0)
    check = CamCheck(model, data, settings, args.device)
    check.compute_all()  # the maps: shared by every check, not timed

    def forward() -> None:
        with torch.inference_mode():
            for s in range(0, len(data), args.batch_size):
                model(data.images[s : s + args.batch_size].to(args.device))
        _sync(args.device)

    contenders: dict[str, Callable[[], Any]] = {
        "forward": forward,
        "deletion": lambda: check.deletion(steps=args.steps),
    }
    if args.all:
        contenders.update(
            {
                "insertion": lambda: check.insertion(steps=args.steps),
                "occlusion": lambda: check.occlusion("object"),
                "randomization": lambda: check.randomization(),
                "spatial_bias": lambda: check.spatial_bias(),
            }
        )
    forward()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            contenders[name]()
            _sync(args.device)
            times[name].append(time.perf_counter() - t0)
    figures = {
        "images": len(data),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "model": args.model,
        "size": int(data.images.shape[-1]),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "multiple": {
            k: statistics.median(t / f for t, f in zip(v, times["forward"]))
            for k, v in times.items()
        },
    }
    print(
        f"{figures['images']} images of {figures['size']} px, model {args.model}, batch "
        f"{args.batch_size}, {args.device}, {figures['threads']} threads, {args.rounds} rounds"
    )
    print(f"{'check':<14} {'seconds':>9} {'x forward':>10}")
    for name in names:
        print(
            f"{name:<14} {figures['seconds'][name]:>9.3f} {figures['multiple'][name]:>10.1f}"
            + (f"   (floor: {2 * args.steps} forwards)" if name == "deletion" else "")
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=1)
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="clean", help="clean (the demo) or a torchvision name")
    parser.add_argument("--size", type=int, default=224, help="image size for a torchvision model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--all", action="store_true", help="also time the other checks")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
