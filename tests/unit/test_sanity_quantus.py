"""The sanity checks agree with Quantus where it has the same metric, on the same inputs.

* Model parameter randomisation (Quantus ``MPRT``, top-down cascade): Quantus re-initialises
  every module with ``reset_parameters`` after ``torch.manual_seed(seed + 1)``; ours does the
  same per module with ``seed``, so with ``seed = quantus_seed + 1`` both cascades reach the same
  models, and the Spearman correlations of the same maps agree sample by sample.
* Deletion (Quantus ``PixelFlipping``): the same order, the same baseline, the same softmax
  probability at each step.
* The pointing game (Quantus ``PointingGame``) against :func:`metrics.pointing_hit`.
* SSIM against Quantus' ``ssim`` similarity function.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck import compute_cams
from pytest_camcheck.demo import planted
from pytest_camcheck.metrics import pointing_hit, region_mask
from pytest_camcheck.regions import as_region
from pytest_camcheck.sanity import (
    Randomizer,
    perturbation_curves,
    randomized_maps,
    rank_correlation,
    ssim,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    quantus = pytest.importorskip("quantus")


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


@pytest.fixture(scope="module")
def clean_inputs() -> tuple[nn.Module, Tensor, Tensor, list]:
    data = planted.dataset("clean", n_per_class=2)
    model = planted.DEFECTS["clean"].factory()
    return model, data.images, torch.tensor(data.labels), data.regions


def _explain(model, inputs, targets, **kwargs) -> np.ndarray:
    result = compute_cams(
        model, torch.as_tensor(inputs), layers="features", targets=torch.as_tensor(targets)
    )
    return result.map[:, None].numpy()


def test_randomisation_cascade_agrees_with_quantus_mprt(clean_inputs) -> None:
    model, x, y, _ = clean_inputs
    metric = quantus.MPRT(
        similarity_func=quantus.similarity_func.correlation_spearman,
        layer_order="top_down",
        seed=41,
        abs=False,
        normalise=False,
        disable_warnings=True,
    )
    theirs = _quiet(
        metric,
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        a_batch=None,
        explain_func=_explain,
        channel_first=True,
        softmax=False,
        device="cpu",
    )
    original = compute_cams(model, x, layers="features", targets=y).map
    randomizer = Randomizer(model, "features", x[:1], seed=42)
    steps = randomized_maps(randomizer, x, "features", "gradcam", y)
    names = [s.name for s in randomizer.steps]
    assert names == ["fc", "features.6", "features.4", "features.2", "features.0"]
    # Quantus goes module by module; a block is done when its first module (the conv) is
    compared = 0
    for name, maps in zip(names, steps):
        key = name if name == "fc" else f"{name}.0"
        for i in range(len(x)):
            ours = rank_correlation(original[i], maps[i])
            if np.isnan(theirs[key][i]):  # scipy: nan for a constant map; ours: 0, no order
                assert float(maps[i].max() - maps[i].min()) == 0.0 and ours == 0.0
                continue
            assert ours == pytest.approx(theirs[key][i], abs=1e-6), (name, i)
            compared += 1
    assert compared >= 15
    assert len(theirs) == 1 + 9  # original + fc + 4 x (batch norm, conv)


def test_deletion_curve_agrees_with_quantus_pixel_flipping() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )
    model.append(nn.Linear(16, 3))
    model.eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 8, 8, generator=g)
    x[:, :, 0, 0] = 0.0  # Quantus' "black" baseline is the image's minimum: 0
    maps = torch.rand(3, 8, 8, generator=g)  # no ties: one order for both
    y = torch.tensor([0, 1, 2])
    steps = 8
    cam, _ = perturbation_curves(model, x, maps, y, steps=steps, baseline=torch.zeros_like(x))
    metric = quantus.PixelFlipping(
        features_in_step=64 // steps,
        perturb_baseline="black",
        normalise=False,
        disable_warnings=True,
    )
    theirs = _quiet(
        metric,
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        a_batch=maps[:, None].numpy(),
        channel_first=True,
        softmax=True,
        device="cpu",
    )
    assert np.asarray(theirs) == pytest.approx(cam[:, 1:].numpy(), abs=1e-6)


def test_pointing_game_agrees_with_quantus(clean_inputs) -> None:
    model, x, y, regions = clean_inputs
    maps = compute_cams(model, x, layers="features", targets=y).map
    masks = np.stack([region_mask(as_region(r["object"]), (96, 96)) for r in regions])[:, None]
    masks = masks.astype(float)
    # a second, wrong region per image: the other image's object
    wrong = np.roll(masks, 1, axis=0)
    for s_batch in (masks, wrong):
        theirs = _quiet(
            quantus.PointingGame(normalise=False, disable_warnings=True),
            model=model,
            x_batch=x.numpy(),
            y_batch=y.numpy(),
            a_batch=maps[:, None].numpy(),
            s_batch=s_batch,
            channel_first=True,
            device="cpu",
        )
        ours = [pointing_hit(maps[i], s_batch[i, 0] > 0) for i in range(len(x))]
        assert [bool(t) for t in theirs] == ours
    assert not all(pointing_hit(maps[i], wrong[i, 0] > 0) for i in range(len(x)))


def test_ssim_agrees_with_quantus() -> None:
    g = np.random.default_rng(3)
    for _ in range(3):
        a, b = g.random((24, 24)), g.random((24, 24))
        a[0, 0], a[1, 1], b[0, 0], b[1, 1] = 0.0, 1.0, 0.0, 1.0  # both span [0, 1]
        assert ssim(a, b) == pytest.approx(quantus.similarity_func.ssim(a, b), abs=1e-12)
