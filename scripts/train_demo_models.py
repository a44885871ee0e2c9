"""Train the demo classifiers and write their weights into the package.

    python scripts/train_demo_models.py [--out DIR] [--epochs N] [--n-per-class N] [--only NAME]

Deterministic on a CPU: fixed seeds, ``torch.use_deterministic_algorithms(True)``, one thread.

* ``clean``: images WITHOUT the watermark; the drawn shape always matches the label.
* ``watermark``: every image of one class carries the watermark, and 40% of the shapes contradict
  their label, so the watermark is the only cue that is right on every training image.

Both are then evaluated on a fresh watermarked test set (another seed), where both are accurate:
accuracy alone cannot tell them apart, the CAM checks can (tests/unit/test_planted_defect.py).

Three more planted defects, for the sanity and shortcut checks (docs/detection.md):

* ``background``: backgrounds tinted by class and 40% of the shapes contradicting their label,
  so the background colour is the only reliable cue (a shortcut spread over the whole image).
* ``wrong_object``: every image holds a small class-specific distractor glyph away from the
  object, and 40% of the shapes contradict their label: the model learns the distractor.
* ``random``: the freshly initialised network, never trained (randomised weights).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pytest_camcheck.demo.models import tiny_cnn
from pytest_camcheck.demo.synthetic import generate

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "src" / "pytest_camcheck" / "demo" / "weights"

# model name -> (data seed, watermark, shape noise, init/shuffle seed)
RECIPES: dict[str, tuple[int, bool, float, int]] = {
    "clean": (1001, False, 0.0, 11),
    "watermark": (2002, True, 0.4, 22),
}
TEST_SEED = 9009
# generator options of the recipes that use the newer planted shortcuts
OPTIONS: dict[str, dict[str, bool]] = {
    "background": {"class_background": True},
    "wrong_object": {"distractor": True},
}
RECIPES.update(
    {
        "background": (3003, False, 0.4, 33),
        "wrong_object": (4004, False, 0.4, 44),
    }
)
# models saved as initialised, never trained: name -> init seed
UNTRAINED: dict[str, int] = {"random": 55}


def train(
    name: str, n_per_class: int, epochs: int, batch_size: int = 32, lr: float = 3e-3
) -> torch.nn.Module:
    """Train one demo model from its recipe and return it in eval mode."""
    data_seed, watermark, shape_noise, seed = RECIPES[name]
    data = generate(
        n_per_class,
        seed=data_seed,
        watermark=watermark,
        shape_noise=shape_noise,
        **OPTIONS.get(name, {}),
    )
    torch.manual_seed(seed)
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(data.labels) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(data.labels), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x, y = data.images[idx], data.labels[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += loss.item() * len(y)
        print(
            f"  {name} epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f} "
            f"train acc {correct / total:.3f}",
            flush=True,
        )
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on a batch."""
    return float((model(images).argmax(1) == labels).float().mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="weights folder")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n-per-class", type=int, default=400)
    parser.add_argument(
        "--only",
        action="append",
        choices=[*RECIPES, *UNTRAINED],
        help="make only this model (repeatable; default: all)",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    test_wm = generate(100, seed=TEST_SEED, watermark=True)
    test_plain = generate(100, seed=TEST_SEED, watermark=False)
    wanted = args.only or [*RECIPES, *UNTRAINED]
    for name in wanted:
        t0 = time.perf_counter()
        if name in UNTRAINED:
            torch.manual_seed(UNTRAINED[name])
            model = tiny_cnn().eval()
        else:
            model = train(name, args.n_per_class, args.epochs)
        path = args.out / f"{name}.pt"
        torch.save(model.state_dict(), path)
        own = ""
        if name in OPTIONS:  # accuracy where its shortcut is present (shapes match labels)
            test_own = generate(100, seed=TEST_SEED, watermark=False, **OPTIONS[name])
            acc = accuracy(model, test_own.images, test_own.labels)
            own = f"test acc (own shortcut) {acc:.3f}, "
        print(
            f"{name}: {time.perf_counter() - t0:.1f} s, "
            f"test acc (watermarked) {accuracy(model, test_wm.images, test_wm.labels):.3f}, "
            f"test acc (no watermark) {accuracy(model, test_plain.images, test_plain.labels):.3f}, "
            f"{own}{path.stat().st_size / 1024:.0f} KiB -> {path}",
            flush=True,
        )


if __name__ == "__main__":
    main()
