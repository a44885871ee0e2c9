"""Map similarity and paired pass rates (pytest_camcheck.compare), against values known by
construction, by hand, from the literature, or from scipy / scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_camcheck.compare import (
    SSIM_SIZE,
    MapDifferences,
    energy_change,
    map_differences,
    mcnemar_exact_p,
    newcombe_paired_interval,
    paired_comparison,
    peak_shift,
    rank_correlation,
    resize_maps,
    ssim,
    within,
)
from pytest_camcheck.metrics import rate_result


def blob(size: int, row: float, col: float, sigma: float = 3.0) -> np.ndarray:
    """A Gaussian bump in [0, 1] peaking at (row, col)."""
    r, c = np.mgrid[0:size, 0:size]
    return np.exp(-((r - row) ** 2 + (c - col) ** 2) / (2 * sigma**2))


# ------------------------------------------------------------------------------------ McNemar


def test_mcnemar_exact_p_by_hand() -> None:
    # b = 1, c = 7: 2 * P(X <= 1 | n = 8, p = 1/2) = 2 * (1 + 8) / 256
    assert mcnemar_exact_p(1, 7) == pytest.approx(18 / 256, rel=1e-12)
    assert mcnemar_exact_p(7, 1) == pytest.approx(18 / 256, rel=1e-12)
    # b = 0, c = 5: 2 / 32
    assert mcnemar_exact_p(0, 5) == pytest.approx(1 / 16, rel=1e-12)
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(4, 4) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 3)


@pytest.mark.parametrize("b, c", [(3, 9), (12, 12), (40, 61), (300, 350), (0, 1)])
def test_mcnemar_exact_p_matches_scipy_binomtest(b: int, c: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    expected = stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------------------------ Newcombe


def test_newcombe_paired_interval_matches_the_published_examples() -> None:
    # Newcombe (1998), Stat Med 17:2635, method 10 on (a, b, c, d) = (20, 12, 2, 16)
    lower, upper = newcombe_paired_interval(20, 12, 2, 16)
    assert (round(lower, 4), round(upper, 4)) == (0.0562, 0.3292)
    # Fagerland, Lydersen & Laake (2014), Stat Med 33:2850, Bentur et al. data (1, 1, 7, 12)
    lower, upper = newcombe_paired_interval(1, 1, 7, 12)
    assert (round(lower, 3), round(upper, 3)) == (-0.507, -0.026)


def test_newcombe_interval_is_mirrored_when_the_models_swap() -> None:
    lower, upper = newcombe_paired_interval(30, 4, 9, 7)
    back_lower, back_upper = newcombe_paired_interval(30, 9, 4, 7)
    assert (lower, upper) == pytest.approx((-back_upper, -back_lower), abs=1e-12)
    assert lower < (4 - 9) / 50 < upper


def test_newcombe_interval_edges() -> None:
    assert newcombe_paired_interval(0, 0, 0, 0) == (-1.0, 1.0)
    lower, upper = newcombe_paired_interval(50, 0, 0, 0)  # identical models, all pass
    assert lower < 0.0 < upper and -1.0 <= lower and upper <= 1.0
    lower, upper = newcombe_paired_interval(0, 0, 40, 0)  # the candidate broke everything
    assert upper < -0.85 and lower == -1.0
    with pytest.raises(ValueError):
        newcombe_paired_interval(1, -1, 0, 0)


def test_newcombe_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    probs = [0.7, 0.1, 0.15, 0.05]  # strongly correlated pairs: phi matters
    truth = probs[1] - probs[2]
    covered = 0
    runs = 2000
    for a, b, c, d in rng.multinomial(60, probs, size=runs):
        lower, upper = newcombe_paired_interval(a, b, c, d)
        covered += lower <= truth <= upper
    assert 0.93 <= covered / runs <= 0.975


# ------------------------------------------------------------------------------------ pairing


def rates(outcomes: dict[str, bool], name: str = "pointing_game[head, tol=0] @ layer4"):
    ids = list(outcomes)
    return rate_result(name, [outcomes[i] for i in ids], ids, ["c"] * len(ids), layer="layer4")


def test_paired_comparison_counts_fixed_and_broken_samples() -> None:
    candidate = rates({"a": True, "b": True, "c": False, "d": False, "e": True, "x": True})
    reference = rates({"a": True, "b": False, "c": True, "d": False, "e": True, "y": False})
    cmp = paired_comparison(candidate, reference)
    assert cmp.n == 5 and cmp.unpaired == ("x", "y")
    assert cmp.fixed == ("b",) and cmp.broken == ("c",)
    assert (cmp.both_passed, cmp.both_failed) == (2, 1)
    assert cmp.candidate_rate == pytest.approx(3 / 5) and cmp.reference_rate == pytest.approx(3 / 5)
    assert cmp.difference == pytest.approx(0.0)
    assert (cmp.lower, cmp.upper) == pytest.approx(newcombe_paired_interval(2, 1, 1, 1))
    assert cmp.p_value == 1.0 and cmp.metric == "pointing_game" and cmp.layer == "layer4"
    d = cmp.to_dict()
    assert d["candidate"]["passed"] == 3 and d["reference"]["count"] == 5
    assert d["broken"] == ["c"] and d["fixed"] == ["b"]
    assert "1 fixed, 1 broken of 5 paired samples" in str(cmp)


def test_paired_comparison_needs_per_sample_ids() -> None:
    from pytest_camcheck.metrics import RateResult

    bare = RateResult("r", 1, 2, 0.5, 0.1, 0.9)
    with pytest.raises(ValueError, match="no per-sample ids"):
        paired_comparison(bare, bare)


# ------------------------------------------------------------------------------------ maps


def test_ssim_matches_scikit_image_at_the_fixed_size() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = rng.random((3, SSIM_SIZE, SSIM_SIZE))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    got = ssim(a, b)
    for i in range(3):
        assert got[i] == pytest.approx(structural_similarity(a[i], b[i], data_range=1.0))
    # larger maps are resized first (INTER_AREA), so the input size does not matter
    big = np.kron(a, np.ones((1, 2, 2)))
    assert resize_maps(big).shape == (3, SSIM_SIZE, SSIM_SIZE)
    assert ssim(big, np.kron(b, np.ones((1, 2, 2)))) == pytest.approx(got, abs=1e-6)
    assert ssim(a, a) == pytest.approx(np.ones(3))


def test_peak_shift_is_the_distance_between_the_peaks() -> None:
    a = np.stack([blob(32, 3, 4), blob(32, 10, 10), np.zeros((32, 32)), np.zeros((32, 32))])
    b = np.stack([blob(32, 6, 8), blob(32, 10, 10), blob(32, 1, 1), np.zeros((32, 32))])
    got = peak_shift(a, b)
    assert got[0] == pytest.approx(5.0) and got[1] == 0.0
    assert math.isnan(got[2])  # one degenerate map: no shift to speak of
    assert got[3] == 0.0  # both degenerate: alike
    with pytest.raises(ValueError, match="one size"):
        peak_shift(a, b[:, :16, :16])


def test_rank_correlation_matches_scipy_spearman_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, (4, 7, 7)).astype(float)  # many ties
    b = a + rng.integers(-2, 3, a.shape)
    got = rank_correlation(a, b)
    for i in range(4):
        assert got[i] == pytest.approx(stats.spearmanr(a[i].ravel(), b[i].ravel()).statistic)
    base = rng.normal(size=(1, 6, 6))
    assert rank_correlation(base, np.exp(base))[0] == pytest.approx(1.0)
    assert rank_correlation(base, -base)[0] == pytest.approx(-1.0)
    flat = np.zeros((1, 6, 6))
    assert rank_correlation(flat, flat + 3)[0] == 1.0
    assert math.isnan(rank_correlation(flat, base)[0])


def test_energy_change_in_a_region() -> None:
    a = np.zeros((1, 10, 10))
    a[0, :5, :] = 1.0  # all its mass in the top half
    b = np.zeros((1, 10, 10))
    b[0, :, :5] = 1.0  # half of it there
    mask = np.zeros((10, 10), dtype=bool)
    mask[:5] = True
    assert energy_change(a, b, mask)[0] == pytest.approx(0.5)
    assert energy_change(b, a, mask)[0] == pytest.approx(-0.5)
    assert math.isnan(energy_change(np.zeros((1, 10, 10)), b, mask)[0])


def test_map_differences_use_raw_maps_when_they_match() -> None:
    a = np.stack([blob(16, 4, 4), blob(16, 8, 8)])
    b = np.stack([blob(16, 4, 4), blob(16, 2, 13)])
    raw_a = np.stack([blob(4, 1, 1, 1.0), blob(4, 2, 2, 1.0)])
    raw_b = np.stack([blob(4, 1, 1, 1.0), blob(4, 0, 3, 1.0)])
    got = map_differences(a, b, raw_a, raw_b)
    assert got.raw and got.rank_corr[0] == pytest.approx(1.0) and got.rank_corr[1] < 0.5
    assert got.ssim[0] == pytest.approx(1.0) and got.ssim[1] < 0.5
    # raw maps of another shape (another architecture): ranked at the SSIM size instead
    other = map_differences(a, b, raw_a, raw_b[:, :3, :3])
    assert not other.raw and other.rank_corr[0] == pytest.approx(1.0)
    # a usable map against a degenerate one never looks alike
    lonely = map_differences(a[:1], np.zeros((1, 16, 16)))
    assert math.isnan(lonely.ssim[0]) and math.isnan(lonely.peak_shift[0])


def test_within_fails_nan_on_every_checked_threshold() -> None:
    d = MapDifferences(
        np.array([0.9, 0.9, np.nan, 0.95]),
        np.array([1.0, 20.0, 0.0, np.nan]),
        np.array([0.8, 0.8, 0.8, 0.8]),
    )
    assert within(d, 0.8).tolist() == [True, True, False, True]
    assert within(d, 0.8, max_peak_shift=5).tolist() == [True, False, False, False]
    assert within(d, None, min_rank_corr=0.9).tolist() == [False] * 4
