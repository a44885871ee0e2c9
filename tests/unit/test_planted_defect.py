"""The planted defect: two accurate demo models, and only the CAM checks tell them apart.

Both shipped models classify a fresh watermarked test set (40 images per class, a seed used
neither for training nor by the training script's own evaluation) almost perfectly. The clean
model's Grad-CAM (default layer) sits on the object; the watermark model's sits on the corner
that holds the watermark, so the same object checks pass for one and fail for the other.

Thresholds (measured on this test set in brackets: clean / watermark):

* accuracy >= 0.9 for both (1.00 / 1.00): accuracy alone cannot reveal the defect.
* pointing game on ``"object"`` with tolerance 0 px, hit rate >= 0.8 (1.00 / 0.04): the strict
  pointing game (a tie at the maximum counts only when every tied pixel is on the object); 0.8
  is the usual "most images" bar and leaves the clean model a wide margin.
* mean energy fraction in ``"object"`` >= 0.5 (0.62 / 0.05): most of the map's mass on the object.
  The object covers about a quarter of the image (40-56 px in 96 px) and the 12x12 CAM grid,
  upsampled bilinearly, spills a few pixels past the box, so even a perfect map keeps only about
  two thirds of its mass inside; 0.5 is a default-ish "more than half" bar, twice the chance level.
* the peak lies within 16 px (two cells of the 8-px CAM grid, about half the last layer's 38-px
  receptive field) of the watermark box on >= 90% of images for the watermark model (1.00), on
  <= 10% for the clean model (0.01): the defect is located, not just detected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_camcheck import compute_cams
from pytest_camcheck.demo import models as demo_models
from pytest_camcheck.demo.synthetic import CLASS_NAMES, WATERMARK_BOX, WATERMARK_CLASS, generate
from pytest_camcheck.errors import DataError
from pytest_camcheck.metrics import energy_fraction, pointing_hit

TEST_SEED = 424242  # training uses 1001 / 2002, the training script evaluates on 9009
N_PER_CLASS = 40

MIN_ACCURACY = 0.9
POINTING_TOLERANCE = 0.0
MIN_HIT_RATE = 0.8
MIN_MEAN_ENERGY = 0.5
WATERMARK_TOLERANCE = 16.0
MIN_WATERMARK_RATE = 0.9
MAX_CLEAN_WATERMARK_RATE = 0.1

WEIGHTS = Path(demo_models.__file__).parent / "weights"


@pytest.fixture(scope="module")
def test_set():
    return generate(N_PER_CLASS, seed=TEST_SEED, watermark=True)


@pytest.fixture(scope="module")
def measured(test_set):
    """Per model: accuracy, CAM result and the per-image metrics (computed once)."""
    out = {}
    for name, factory in (
        ("clean", demo_models.clean_model),
        ("watermark", demo_models.watermark_model),
    ):
        model = factory()
        result = compute_cams(model, test_set.images, targets=test_set.labels)
        maps = result.map
        objects = [r["object"] for r in test_set.regions]
        out[name] = {
            "result": result,
            "accuracy": float((result.logits.argmax(1) == test_set.labels).float().mean()),
            "hits": np.array(
                [pointing_hit(m, b, POINTING_TOLERANCE) for m, b in zip(maps, objects)]
            ),
            "energy": np.array([energy_fraction(m, b) for m, b in zip(maps, objects)]),
            "near_watermark": np.array(
                [pointing_hit(m, WATERMARK_BOX, WATERMARK_TOLERANCE) for m in maps]
            ),
        }
    return out


def test_shipped_weights_are_small_and_load_safely() -> None:
    for name in ("clean", "watermark"):
        path = WEIGHTS / f"{name}.pt"
        assert path.stat().st_size < 500 * 1024, f"{path} is too large to ship"
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert set(state) == set(demo_models.tiny_cnn().state_dict()), path


def test_factories_return_eval_models_with_distinct_weights() -> None:
    clean, marked = demo_models.clean_model(), demo_models.watermark_model()
    assert not clean.training and not marked.training
    assert not torch.equal(clean.fc.weight, marked.fc.weight)


def test_missing_weights_raise_a_data_error_naming_the_file() -> None:
    with pytest.raises(DataError, match=r"no_such_model\.pt.*train_demo_models"):
        demo_models.load_weights("no_such_model")


def test_default_layer_is_the_conv_trunk(measured) -> None:
    for name, m in measured.items():
        result = m["result"]
        assert result.auto_layer and result.layers == ("features",), name
        assert result.map.shape == (2 * N_PER_CLASS, 96, 96)
        assert not bool(result.degenerate["features"].any()), f"{name}: degenerate maps"


@pytest.mark.parametrize("name", ["clean", "watermark"])
def test_both_models_are_accurate(measured, name: str) -> None:
    acc = measured[name]["accuracy"]
    assert acc >= MIN_ACCURACY, f"{name} model accuracy {acc:.3f} < {MIN_ACCURACY}"


def test_clean_model_passes_the_object_checks(measured) -> None:
    m = measured["clean"]
    hit_rate, energy = float(m["hits"].mean()), float(np.mean(m["energy"]))
    assert hit_rate >= MIN_HIT_RATE, f"clean pointing game {hit_rate:.3f} < {MIN_HIT_RATE}"
    assert energy >= MIN_MEAN_ENERGY, f"clean energy in object {energy:.3f} < {MIN_MEAN_ENERGY}"


def test_watermark_model_fails_the_object_checks(measured) -> None:
    m = measured["watermark"]
    hit_rate, energy = float(m["hits"].mean()), float(np.mean(m["energy"]))
    assert hit_rate < MIN_HIT_RATE, f"watermark model passed the pointing game ({hit_rate:.3f})"
    assert energy < MIN_MEAN_ENERGY, f"watermark model passed the energy check ({energy:.3f})"
    # Not a near miss: it almost never looks at the object at all.
    assert hit_rate <= 0.2 and energy <= 0.2, (hit_rate, energy)


def test_the_watermark_model_looks_at_the_watermark(measured, test_set) -> None:
    near = measured["watermark"]["near_watermark"]
    marked = (test_set.labels == WATERMARK_CLASS).numpy()
    cls = CLASS_NAMES[WATERMARK_CLASS]
    assert near[marked].mean() >= MIN_WATERMARK_RATE, (
        f"watermark model: peak near the watermark on only {near[marked].mean():.3f} of the "
        f"{cls!r} images that carry it"
    )
    assert near.mean() >= MIN_WATERMARK_RATE, f"overall {near.mean():.3f}"
    clean_near = measured["clean"]["near_watermark"].mean()
    assert clean_near <= MAX_CLEAN_WATERMARK_RATE, f"clean model near watermark: {clean_near:.3f}"
