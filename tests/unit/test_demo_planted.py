"""The planted defects: their data, their shipped weights, and the checks that catch them at
default thresholds (the full table, on more images: ``scripts/detection_table.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_camcheck.demo import models as demo_models
from pytest_camcheck.demo import planted
from pytest_camcheck.demo import synthetic as syn
from pytest_camcheck.metrics import RateResult
from pytest_camcheck.session import CamCheck
from pytest_camcheck.settings import Settings

WEIGHTS = Path(demo_models.__file__).parent / "weights"
N_PER_CLASS = 5


def test_new_options_off_leave_every_image_as_it_was() -> None:
    plain = syn.generate(4, seed=77, watermark=True, shape_noise=0.5)
    again = syn.generate(4, seed=77, watermark=True, shape_noise=0.5, class_background=False)
    assert torch.equal(plain.images, again.images) and plain.regions == again.regions


def test_background_tint_follows_the_class_and_spares_the_object() -> None:
    rng = syn.sample_rng(3, 0, 0)
    base, regions = syn.make_sample(syn.sample_rng(3, 0, 0), 0, False)
    tinted, same = syn.make_sample(rng, 0, False, class_background=True)
    assert regions == same
    a, b = np.asarray(base, float), np.asarray(tinted, float)
    box = regions["object"]
    cy, cx = int((box.y0 + box.y1) / 2), int((box.x0 + box.x1) / 2)
    inside = (slice(cy - 8, cy + 8), slice(cx - 8, cx + 8))
    assert np.array_equal(a[inside], b[inside])  # the object's flat colour is untouched
    corner = (slice(0, 3), slice(0, 3))
    shift = (b[corner] - a[corner]).reshape(-1, 3).mean(axis=0)
    assert np.allclose(shift, syn.BACKGROUND_TINTS[0], atol=3.0)  # clipping aside


@pytest.mark.parametrize("label", [0, 1])
def test_distractor_is_the_class_glyph_away_from_the_object(label: int) -> None:
    for i in range(6):
        image, regions = syn.make_sample(syn.sample_rng(9, label, i), label, True, distractor=True)
        d, o = regions["distractor"], regions["object"]
        assert d.iou(o) == 0.0 and d.iou(syn.WATERMARK_BOX) == 0.0
        assert d.x1 - d.x0 <= syn.DISTRACTOR_SIZE and d.y1 - d.y0 <= syn.DISTRACTOR_SIZE
        pixels = np.asarray(image)[int(d.y0) : int(d.y1), int(d.x0) : int(d.x1)]
        glyph = syn.distractor_glyph(label)
        rows, cols = np.nonzero(glyph)
        crop = glyph[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        colour = pixels[crop][0]
        assert (pixels[crop] == colour).all()  # one flat colour on the glyph's pixels
    assert not np.array_equal(syn.distractor_glyph(0), syn.distractor_glyph(1))


def test_planted_weights_are_small_and_load_safely() -> None:
    for name in ("background", "wrong_object", "random"):
        path = WEIGHTS / f"{name}.pt"
        assert path.stat().st_size < 500 * 1024, path
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert set(state) == set(demo_models.tiny_cnn().state_dict()), path
    torch.manual_seed(55)  # the random model is the seeded, untrained network
    fresh = demo_models.tiny_cnn().state_dict()
    shipped = demo_models.random_model().state_dict()
    assert all(torch.equal(fresh[k], shipped[k]) for k in fresh)


@pytest.fixture(scope="module")
def checks() -> dict[str, CamCheck]:
    out = {}
    for name, defect in planted.DEFECTS.items():
        data = planted.dataset(name, N_PER_CLASS)
        settings = Settings(batch_size=2 * N_PER_CLASS, num_workers=0)
        out[name] = CamCheck(defect.factory(), data, settings, "cpu")
    return out


def caught(result: RateResult) -> bool:
    """What the detection table calls caught: fewer than MIN_RATE of the judged samples pass
    (no sample judged counts as caught)."""
    return result.count == 0 or result.rate < planted.MIN_RATE


def test_the_trained_models_are_accurate_on_their_own_data(checks) -> None:
    for name, check in checks.items():
        cases = list(check.cases())
        accuracy = np.mean([c.prediction == c.label for c in cases])
        if name == "random":
            assert accuracy <= 0.7, accuracy
        else:
            assert accuracy >= 0.9, (name, accuracy)


def test_the_clean_model_passes_every_check_at_default_thresholds(checks) -> None:
    results = planted.run_checks(checks["clean"])
    assert list(results) == list(planted.CHECKS)
    for name, result in results.items():
        assert not caught(result), (name, str(result))


@pytest.mark.parametrize(
    ("model", "check"),
    [
        ("watermark", "occlusion"),
        ("watermark", "spatial_bias"),
        ("background", "occlusion"),
        ("random", "occlusion"),
        ("wrong_object", "occlusion"),
    ],
)
def test_each_planted_defect_is_caught(checks, model: str, check: str) -> None:
    (result,) = planted.run_checks(checks[model], [check]).values()
    assert caught(result), str(result)
