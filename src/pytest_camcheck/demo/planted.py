"""The planted defects: each demo model with the test data that shows its defect, and the checks
that must catch it.

=============== ====================================================================
model           what is wrong (the test data it is measured on)
=============== ====================================================================
``clean``       nothing: it looks at the shape (plain images)
``watermark``   it reads a watermark stamped on one class (watermarked images)
``background``  it reads the class-tinted background (tinted images)
``random``      randomised weights: never trained (plain images)
``wrong_object``it looks at a class-specific distractor next to the object (images with it)
=============== ====================================================================

On its own test data (shapes that match their labels, the shortcut present), every trained
model is accurate: only the checks tell them apart. :func:`run_checks` runs the dataset-level
checks at their default thresholds; :func:`detection_table` runs them on every model
(``scripts/detection_table.py`` prints it; ``docs/detection.md`` shows it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..regions import Sample
from . import models
from .synthetic import CLASS_NAMES, generate

__all__ = [
    "CHECKS",
    "DEFECTS",
    "MIN_RATE",
    "TEST_SEED",
    "GeneratedDataset",
    "Planted",
    "dataset",
    "detection_table",
    "run_checks",
]

#: A seed used neither by training (1001..4004) nor by the training script's evaluation (9009).
TEST_SEED = 515151
#: The pass rate every check's gate requires in the table (on the observed rate): a check
#: catches a model when fewer than this share of the samples it can judge pass.
MIN_RATE = 0.8


@dataclass(frozen=True)
class Planted:
    """A demo model and the data that shows its defect.

    Attributes:
        name: the model's name (its weights file in ``demo/weights``).
        defect: one line saying what is wrong (``"none"`` for the clean model).
        factory: builds the model (eval mode, shipped weights).
        data: the options of :func:`~pytest_camcheck.demo.synthetic.generate` for its test data.
    """

    name: str
    defect: str
    factory: Callable[[], Any]
    data: dict[str, bool] = field(default_factory=dict)


DEFECTS: dict[str, Planted] = {
    p.name: p
    for p in (
        Planted("clean", "none", models.clean_model, {}),
        Planted("watermark", "watermark shortcut", models.watermark_model, {"watermark": True}),
        Planted(
            "background",
            "background shortcut",
            models.background_model,
            {"class_background": True},
        ),
        Planted("random", "randomised weights", models.random_model, {}),
        Planted(
            "wrong_object", "looks at a distractor", models.wrong_object_model, {"distractor": True}
        ),
    )
}

#: The dataset-level checks of the table, in column order.
CHECKS = ("randomization", "deletion", "insertion", "occlusion", "spatial_bias")


class GeneratedDataset:
    """The in-memory synthetic images as a camcheck dataset (``ids``, ``class_names``, samples).

    Args:
        images: ``(N, 3, H, W)`` normalised images.
        labels: ``(N,)`` class indices.
        regions: per image, region name -> box.
    """

    def __init__(self, images: Any, labels: Any, regions: Sequence[dict[str, Any]]) -> None:
        self.images = images
        self.labels = [int(v) for v in labels]
        self.regions = list(regions)
        self.class_names = list(CLASS_NAMES)
        counters: dict[int, int] = {}
        self.ids = []
        for label in self.labels:
            k = counters[label] = counters.get(label, -1) + 1
            self.ids.append(f"{CLASS_NAMES[label]}/{k:04d}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Sample:
        label = self.labels[index]
        return Sample(
            self.ids[index],
            label=label,
            regions=dict(self.regions[index]),
            image=self.images[index],
            class_name=CLASS_NAMES[label],
        )


def dataset(name: str, n_per_class: int = 40, seed: int = TEST_SEED) -> GeneratedDataset:
    """The test data of planted model ``name`` (shapes always match their labels)."""
    options = dict(DEFECTS[name].data)
    watermark = bool(options.pop("watermark", False))
    data = generate(n_per_class, seed=seed, watermark=watermark, **options)
    return GeneratedDataset(data.images, data.labels, data.regions)


def run_checks(check: Any, checks: Sequence[str] = CHECKS) -> dict[str, Any]:
    """Run the dataset-level checks on a :class:`~pytest_camcheck.session.CamCheck` at their
    default thresholds (occlusion of the ``"object"`` region)."""
    calls: dict[str, Callable[[], Any]] = {
        "randomization": lambda: check.randomization(),
        "deletion": lambda: check.deletion(),
        "insertion": lambda: check.insertion(),
        "occlusion": lambda: check.occlusion("object"),
        "spatial_bias": lambda: check.spatial_bias(),
    }
    return {name: calls[name]() for name in checks}


def detection_table(
    n_per_class: int = 40,
    *,
    names: Sequence[str] | None = None,
    checks: Sequence[str] = CHECKS,
    batch_size: int = 40,
    seed: int = TEST_SEED,
) -> dict[str, dict[str, Any]]:
    """Run every check on every planted model (Grad-CAM, default layer, label targets).

    Returns:
        model name -> ``{"accuracy": float, "results": {check: RateResult}}``; a check catches
        the model when its rate is below :data:`MIN_RATE`.
    """
    import torch

    from ..session import CamCheck
    from ..settings import Settings

    out: dict[str, dict[str, Any]] = {}
    for name in names or list(DEFECTS):
        data = dataset(name, n_per_class, seed)
        model = DEFECTS[name].factory()
        with torch.no_grad():
            accuracy = float(
                np.mean(
                    (model(data.images).argmax(1).numpy() == np.asarray(data.labels)).astype(float)
                )
            )
        check = CamCheck(model, data, Settings(batch_size=batch_size, num_workers=0), "cpu")
        out[name] = {"accuracy": accuracy, "results": run_checks(check, checks)}
    return out
