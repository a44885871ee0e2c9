"""Measure which check catches which planted defect, and print the table of docs/detection.md.

    python scripts/detection_table.py [--n-per-class N] [--models NAME ...] [--details]

Each demo model (:mod:`pytest_camcheck.demo.planted`) is checked on fresh test data that shows
its defect (seed ``TEST_SEED``, shapes matching their labels) with Grad-CAM on the default
layer, every check at its default thresholds. A cell shows the check's pass rate (passed /
judged samples); a check catches the model when the rate is below ``MIN_RATE`` (a failing
``assert_pass_rate(result, min_rate=MIN_RATE, bound="rate")``). Deterministic on a CPU.
"""

from __future__ import annotations

import argparse
import time

import torch

from pytest_camcheck.demo.planted import CHECKS, DEFECTS, MIN_RATE, TEST_SEED, detection_table


def cell(result) -> str:
    """``"0.95 (38/40)"``, with a mark when the check catches the model."""
    if result.count == 0:
        return "**n/j** (0 judged)"
    text = f"{result.rate:.2f} ({result.passed}/{result.count})"
    return f"**{text}**" if result.rate < MIN_RATE else text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-per-class", type=int, default=40)
    parser.add_argument("--models", nargs="+", choices=list(DEFECTS), default=list(DEFECTS))
    parser.add_argument("--details", action="store_true", help="also print notes and extras")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    t0 = time.perf_counter()
    table = detection_table(args.n_per_class, names=args.models)
    seconds = time.perf_counter() - t0
    print(
        f"{2 * args.n_per_class} test images per model (seed {TEST_SEED}); Grad-CAM, default "
        f"layer; a check catches a model (bold) when its pass rate is below {MIN_RATE:g}.\n"
    )
    print("| model | defect | accuracy | " + " | ".join(CHECKS) + " | caught by |")
    print("|---" * (len(CHECKS) + 4) + "|")
    for name, row in table.items():
        results = row["results"]
        caught = [
            c
            for c in CHECKS
            if c in results and (results[c].count == 0 or results[c].rate < MIN_RATE)
        ]
        cells = " | ".join(cell(results[c]) if c in results else "-" for c in CHECKS)
        print(
            f"| {name} | {DEFECTS[name].defect} | {row['accuracy']:.2f} | {cells} | "
            f"{', '.join(caught) or 'none'} |"
        )
    print(f"\n({seconds:.0f} s on {torch.get_num_threads()} threads)")
    if args.details:
        for name, row in table.items():
            for check, result in row["results"].items():
                print(f"\n{name} / {check}: {result}")
                extra = {k: v for k, v in result.extra.items() if k not in ("classes", "unjudged")}
                print(f"  extra: {extra}")


if __name__ == "__main__":
    main()
