"""Comparing maps with maps, and a pass rate with a pass rate over the same samples.

Two families of pure functions, used by the baseline and reference-model checks
(:mod:`pytest_camcheck.regression`) and by :func:`~pytest_camcheck.assertions.assert_similar_maps`:

**Map similarity**, vectorised over a stack of maps (``(N, H, W)`` arrays):

- :func:`ssim` -- the structural similarity of two display maps, each resized to
  ``size x size`` (default :data:`SSIM_SIZE`) with OpenCV (``INTER_AREA`` to shrink, bilinear to
  enlarge), as ``skimage.metrics.structural_similarity(a, b, data_range=1)`` computes it (its
  defaults: a 7x7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance).
- :func:`peak_shift` -- the distance in pixels between the two maps' peaks (the first maximum in
  raster order, as :func:`pytest_camcheck.metrics.find_peak` finds it).
- :func:`rank_correlation` -- Spearman's rank correlation (average ranks for ties) of two maps,
  used on the raw, signed maps at the layer's resolution.
- :func:`energy_change` -- how much of the map's mass a region gained or lost.

A DEGENERATE map (non-finite, or constant: the engine's display map of a degenerate raw map is
all zero) has no peak and no ranking. Two degenerate maps are alike (SSIM 1, shift 0, rank
correlation 1); a degenerate map against a usable one has an undefined peak shift and rank
correlation (nan), and :func:`map_differences` gives it an SSIM of nan too (a sparse map and an
empty one can reach a high SSIM, yet one model sees something and the other nothing), so such a
pair fails every threshold.

**Paired comparison** of two pass rates measured on the same samples (a candidate model and a
reference model): :func:`paired_comparison` builds a :class:`PairedComparison` with the
difference of the rates and its interval by Newcombe's hybrid score method for paired data
(:func:`newcombe_paired_interval`) and the exact McNemar test (:func:`mcnemar_exact_p`).

This module imports numpy at import time; OpenCV and scikit-image on first use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .metrics import RateResult, wilson_interval

__all__ = [
    "SSIM_SIZE",
    "MapDifferences",
    "PairedComparison",
    "SimilarityResult",
    "energy_change",
    "map_differences",
    "mcnemar_exact_p",
    "most_moved",
    "newcombe_paired_interval",
    "paired_comparison",
    "peak_shift",
    "rank_correlation",
    "resize_maps",
    "resize_to",
    "ssim",
    "within",
]

#: Side of the square the display maps are resized to before SSIM: the SSIM of two maps then
#: does not depend on the input size, and stays cheap (2,000 pairs take well under a second).
SSIM_SIZE = 64
#: How many samples a :class:`SimilarityResult` lists as the ones that moved most.
MOVED_LISTED = 10
_CONSTANT_RTOL = 1e-6


# --------------------------------------------------------------------------------------------
# inputs


def _stack(maps: Any, what: str) -> np.ndarray:
    """``maps`` as a float32 ``(N, H, W)`` array (one ``(H, W)`` map becomes ``N = 1``); float32
    keeps a dataset's worth of full-resolution maps fast to scan."""
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().float().numpy()
    arr = np.asarray(maps, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{what} must be (H, W) or (N, H, W) maps, got shape {arr.shape}")
    return arr


class _Maps:
    """A stack of maps with what every measure needs from it, each found in one scan: which
    maps are finite, which are degenerate, and the maps with non-finite values set to 0."""

    def __init__(self, maps: Any, what: str = "maps") -> None:
        arr = _stack(maps, what)
        flat = arr.reshape(arr.shape[0], -1)
        top, bottom = flat.max(axis=1), flat.min(axis=1)  # a nan or an infinity reaches these
        self.finite = np.isfinite(top) & np.isfinite(bottom)
        with np.errstate(invalid="ignore"):
            hi, lo = np.maximum(top, 0.0), np.maximum(bottom, 0.0)  # of the map clipped at 0
            constant = hi - lo <= np.abs(hi) * _CONSTANT_RTOL
        self.degenerate = ~self.finite | constant
        self.nonnegative = bool(np.all(np.where(self.finite, bottom, 0.0) >= 0.0))
        if not self.finite.all():
            arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        self.arr = arr

    def __len__(self) -> int:
        return self.arr.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.arr.shape


def _prepared(a: Any, b: Any) -> tuple[_Maps, _Maps]:
    x = a if isinstance(a, _Maps) else _Maps(a, "the first maps")
    y = b if isinstance(b, _Maps) else _Maps(b, "the second maps")
    if len(x) != len(y):
        raise ValueError(f"need as many maps on both sides, got {len(x)} and {len(y)}")
    return x, y


def _same_size(x: _Maps, y: _Maps, what: str) -> None:
    if x.shape != y.shape:
        raise ValueError(f"{what} needs maps of one size, got {x.shape[1:]} and {y.shape[1:]}")


def resize_maps(maps: Any, size: int = SSIM_SIZE) -> np.ndarray:
    """Each map resized to ``size x size`` (``INTER_AREA`` to shrink, bilinear to enlarge).

    Args:
        maps: ``(H, W)`` or ``(N, H, W)`` maps.
        size: the side of the result.

    Returns:
        A float64 ``(N, size, size)`` array (non-finite values become 0).
    """
    import cv2

    arr = (maps if isinstance(maps, _Maps) else _Maps(maps)).arr
    if arr.shape[1:] == (size, size):
        return arr.astype(np.float64)
    shrink = arr.shape[1] >= size and arr.shape[2] >= size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = np.empty((arr.shape[0], size, size), dtype=np.float64)
    for i, m in enumerate(arr):
        out[i] = cv2.resize(m, (size, size), interpolation=interp)
    return out


def resize_to(m: Any, shape: tuple[int, ...]) -> np.ndarray:
    """One ``(h, w)`` map resized (bilinear) to ``shape``'s ``(H, W)``, as float64."""
    import cv2

    arr = np.nan_to_num(np.asarray(m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    height, width = int(shape[0]), int(shape[1])
    out = cv2.resize(arr, (width, height), interpolation=cv2.INTER_LINEAR)
    return out.astype(np.float64)


# --------------------------------------------------------------------------------------------
# map similarity


def ssim(a: Any, b: Any, size: int = SSIM_SIZE) -> np.ndarray:
    """SSIM of each pair of display maps (values in [0, 1]), at ``size x size``.

    Args:
        a: ``(H, W)`` or ``(N, H, W)`` maps in [0, 1].
        b: as many maps (their size may differ from ``a``'s: both are resized).
        size: the side both are resized to (at least 7, SSIM's window).

    Returns:
        ``(N,)`` float64 SSIM values (1 for identical maps; nan for a non-finite map).
    """
    from skimage.metrics import structural_similarity

    if size < 7:
        raise ValueError(f"size must be at least 7 (the SSIM window), got {size}")
    x, y = _prepared(a, b)
    rx, ry = resize_maps(x, size), resize_maps(y, size)
    out = np.empty(len(rx), dtype=np.float64)
    for i in range(len(rx)):
        out[i] = structural_similarity(rx[i], ry[i], data_range=1.0)
    out[~(x.finite & y.finite)] = math.nan
    return out


def _peaks(arr: np.ndarray) -> np.ndarray:
    """``(N, 2)`` (row, col) of each map's first maximum in raster order."""
    idx = np.argmax(arr.reshape(arr.shape[0], -1), axis=1)
    return np.stack(np.divmod(idx, arr.shape[2]), axis=1).astype(np.float64)


def peak_shift(a: Any, b: Any) -> np.ndarray:
    """Distance in pixels between the peaks of each pair of maps (of one size).

    Returns:
        ``(N,)`` float64: the Euclidean distance between the peak pixels; 0 when both maps are
        degenerate, nan when only one is.

    Raises:
        ValueError: the maps differ in size (resize one first).
    """
    x, y = _prepared(a, b)
    _same_size(x, y, "peak shift")
    px, py = _peaks(x.arr), _peaks(y.arr)
    out = np.hypot(px[:, 0] - py[:, 0], px[:, 1] - py[:, 1])
    out[x.degenerate & y.degenerate] = 0.0
    out[x.degenerate ^ y.degenerate] = math.nan
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of each row, ties sharing the mean of their positions."""
    n, m = x.shape
    order = np.argsort(x, axis=1, kind="stable")
    sx = np.take_along_axis(x, order, axis=1)
    pos = np.broadcast_to(np.arange(m), (n, m))
    starts = np.ones((n, m), dtype=bool)
    starts[:, 1:] = sx[:, 1:] != sx[:, :-1]
    ends = np.ones((n, m), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, pos, m - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((n, m), dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks


def rank_correlation(a: Any, b: Any) -> np.ndarray:
    """Spearman's rank correlation of each pair of maps (of one size), ties averaged.

    Returns:
        ``(N,)`` float64 in [-1, 1]: 1 when both maps are constant, nan when only one is (or a
        map holds a non-finite value).

    Raises:
        ValueError: the maps differ in size.
    """
    x, y = _prepared(a, b)
    _same_size(x, y, "rank correlation")
    rx = _ranks(x.arr.reshape(len(x), -1))
    ry = _ranks(y.arr.reshape(len(y), -1))
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    sx, sy = (rx * rx).sum(1), (ry * ry).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (rx * ry).sum(1) / np.sqrt(sx * sy)
    flat_x, flat_y = sx == 0, sy == 0
    out[flat_x & flat_y] = 1.0
    out[flat_x ^ flat_y] = math.nan
    out[~(x.finite & y.finite)] = math.nan
    return np.clip(out, -1.0, 1.0)


def _share(maps: _Maps, weights: np.ndarray) -> np.ndarray:
    pos = maps.arr if maps.nonnegative else np.clip(maps.arr, 0.0, None)
    total = pos.reshape(len(maps), -1).sum(axis=1, dtype=np.float64)
    inside = np.einsum("nij,nij->n", pos, weights, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.clip(inside / total, 0.0, 1.0)
    out[maps.degenerate] = math.nan
    return out


def energy_change(a: Any, b: Any, mask: np.ndarray) -> np.ndarray:
    """How much of the map's mass the region gained: share in ``a`` minus share in ``b``.

    Args:
        a: ``(H, W)`` or ``(N, H, W)`` maps (the current ones).
        b: as many maps of the same size (the ones compared against).
        mask: a boolean ``(H, W)`` region mask (one for all), or ``(N, H, W)`` (one per pair).

    Returns:
        ``(N,)`` float64 in [-1, 1]; nan where either map is degenerate.
    """
    x, y = _prepared(a, b)
    _same_size(x, y, "energy change")
    m = np.asarray(mask, dtype=bool)
    if m.shape != x.shape[1:] and m.shape != x.shape:
        raise ValueError(f"the mask has shape {m.shape}, the maps {x.shape[1:]}")
    weights = np.broadcast_to(m.astype(np.float32), x.shape)
    return _share(x, weights) - _share(y, weights)


@dataclass(frozen=True)
class MapDifferences:
    """Per-pair differences of two stacks of maps.

    Attributes:
        ssim: SSIM of the display maps at ``size x size``.
        peak_shift: distance in pixels between their peaks (at the display maps' resolution).
        rank_corr: Spearman's rank correlation of the raw maps (of the display maps at
            ``size x size`` when no raw maps of one shape were given).
        size: the SSIM size.
        raw: whether the rank correlation used the raw maps.
        energy_change: region name -> change of the region's share of the mass (when masks
            were given).
    """

    ssim: np.ndarray
    peak_shift: np.ndarray
    rank_corr: np.ndarray
    size: int = SSIM_SIZE
    raw: bool = True
    energy_change: dict[str, np.ndarray] = field(default_factory=dict)


def map_differences(
    current: Any,
    other: Any,
    current_raw: Any = None,
    other_raw: Any = None,
    size: int = SSIM_SIZE,
    *,
    masks: Mapping[str, np.ndarray] | None = None,
) -> MapDifferences:
    """SSIM, peak shift and rank correlation of each pair of maps (see the module docstring).

    Args:
        current: ``(N, H, W)`` display maps in [0, 1].
        other: the maps compared against (resized to ``current``'s size for the peak shift and
            the energy when their size differs).
        current_raw: the raw maps behind ``current`` (``(N, h, w)``), if known.
        other_raw: the raw maps behind ``other``, if known.
        size: the SSIM size.
        masks: region name -> boolean ``(N, H, W)`` masks at ``current``'s size, for
            :func:`energy_change`.

    Returns:
        The :class:`MapDifferences` (all nan for a pair of which one map only is degenerate).
    """
    x, y = _prepared(current, other)
    values = ssim(x, y, size)
    y_at_x = (
        y if y.shape == x.shape else _Maps(np.stack([resize_to(m, x.shape[1:]) for m in y.arr]))
    )
    shift = peak_shift(x, y_at_x)
    use_raw = current_raw is not None and other_raw is not None
    if use_raw:
        rx, ry = _prepared(current_raw, other_raw)
        use_raw = rx.shape == ry.shape and len(rx) == len(x)
    if use_raw:
        corr = rank_correlation(rx, ry)
    else:
        corr = rank_correlation(resize_maps(x, size), resize_maps(y, size))
    values[x.degenerate ^ y.degenerate] = math.nan  # one model sees nothing
    energy = {}
    for name, mask in (masks or {}).items():
        energy[name] = energy_change(x, y_at_x, mask)
    return MapDifferences(values, shift, corr, size, use_raw, energy)


def within(
    diffs: MapDifferences,
    min_ssim: float | None,
    max_peak_shift: float | None = None,
    min_rank_corr: float | None = None,
) -> np.ndarray:
    """``(N,)`` flags: each pair within every threshold given (nan fails the threshold)."""
    ok = np.ones(len(diffs.ssim), dtype=bool)
    if min_ssim is not None:
        ok &= np.nan_to_num(diffs.ssim, nan=-np.inf) >= min_ssim
    if max_peak_shift is not None:
        ok &= np.nan_to_num(diffs.peak_shift, nan=np.inf) <= max_peak_shift
    if min_rank_corr is not None:
        ok &= np.nan_to_num(diffs.rank_corr, nan=-np.inf) >= min_rank_corr
    return ok


def _plain(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class SimilarityResult(RateResult):
    """A pass rate of per-sample map similarity (to a stored baseline or a reference model).

    A sample passes when its map is within every threshold of the map it is compared with. The
    inherited ``values`` are the SSIMs (``threshold`` is ``min_ssim``); ``ids`` name the
    samples, and the per-sample tuples below follow them.

    Attributes:
        against: ``"baseline"`` or ``"reference"``.
        source: the baseline folder, or a description of the reference model.
        min_ssim / max_peak_shift / min_rank_corr: the thresholds (None: not checked).
        ssim_size: the side the display maps were resized to for SSIM.
        peak_shift: per-sample peak shift in pixels.
        rank_corr: per-sample Spearman rank correlation.
        energy_change: region name -> per-sample change of the region's share of the mass
            (current minus compared; nan where the sample lacks the region).
        moved: the samples that moved most (lowest SSIM first), each a dict with ``id``,
            ``passed``, ``ssim``, ``peak_shift``, ``rank_corr``, ``energy_change`` and
            ``target_changed`` (whether the explained class differs).
        added: samples in the dataset but not in the baseline (not compared).
        removed: samples in the baseline but no longer in the dataset.
        changed: samples whose image file changed since the baseline (not compared).
    """

    against: str = "baseline"
    source: str | None = None
    min_ssim: float | None = None
    max_peak_shift: float | None = None
    min_rank_corr: float | None = None
    ssim_size: int = SSIM_SIZE
    peak_shift: tuple[float, ...] = ()
    rank_corr: tuple[float, ...] = ()
    energy_change: dict[str, tuple[float, ...]] = field(default_factory=dict)
    moved: tuple[dict[str, Any], ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @classmethod
    def build(cls, base: RateResult, **extra: Any) -> SimilarityResult:
        """The similarity result of a plain rate ``base`` and the extra fields."""
        values = {f.name: getattr(base, f.name) for f in fields(RateResult)}
        return cls(**values, **extra)

    def to_dict(self) -> dict[str, Any]:
        """The rate's dict plus ``"similarity"`` with the per-sample numbers (nan -> None)."""
        out = super().to_dict()
        out["similarity"] = {
            "against": self.against,
            "source": self.source,
            "min_ssim": _plain(self.min_ssim),
            "max_peak_shift": _plain(self.max_peak_shift),
            "min_rank_corr": _plain(self.min_rank_corr),
            "ssim_size": int(self.ssim_size),
            "peak_shift": [_plain(v) for v in self.peak_shift],
            "rank_corr": [_plain(v) for v in self.rank_corr],
            "energy_change": {k: [_plain(v) for v in vs] for k, vs in self.energy_change.items()},
            "moved": [_moved_dict(m) for m in self.moved],
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
        }
        return out


def _moved_dict(m: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in m.items():
        if isinstance(v, Mapping):
            out[k] = {str(r): _plain(x) for r, x in v.items()}
        elif isinstance(v, (bool, str)) or v is None:
            out[k] = v
        else:
            out[k] = _plain(v)
    return out


def most_moved(
    ids: Sequence[str],
    diffs: MapDifferences,
    passed: np.ndarray,
    energy: Mapping[str, np.ndarray],
    target_changed: np.ndarray,
    limit: int = MOVED_LISTED,
) -> tuple[dict[str, Any], ...]:
    """The ``limit`` samples with the lowest SSIM (nan first), with their numbers."""
    if not len(ids):
        return ()
    key = np.nan_to_num(diffs.ssim, nan=-np.inf)
    order = np.argsort(key, kind="stable")[:limit]
    out = []
    for i in order:
        out.append(
            {
                "id": str(ids[i]),
                "passed": bool(passed[i]),
                "ssim": float(diffs.ssim[i]),
                "peak_shift": float(diffs.peak_shift[i]),
                "rank_corr": float(diffs.rank_corr[i]),
                "energy_change": {r: float(v[i]) for r, v in energy.items()},
                "target_changed": bool(target_changed[i]),
            }
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# paired pass rates


def mcnemar_exact_p(fixed: int, broken: int) -> float:
    """The exact (binomial) two-sided McNemar p-value of the discordant pairs.

    Under the null hypothesis both models pass equally often, so each discordant pair is
    "fixed" or "broken" with probability 1/2: ``p = min(1, 2 * P(X <= min(b, c)))`` with
    ``X ~ Binomial(b + c, 1/2)``; 1 when there is no discordant pair.

    Args:
        fixed: pairs the candidate passes and the reference fails.
        broken: pairs the candidate fails and the reference passes.
    """
    b, c = int(fixed), int(broken)
    if b < 0 or c < 0:
        raise ValueError(f"counts must be >= 0, got {fixed} and {broken}")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    if 2 * k == n:
        return 1.0
    # log-space sum of C(n, i) / 2^n for i <= k (exact enough for any dataset size)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top + math.log(sum(math.exp(v - top) for v in logs)) - n * math.log(2.0))
    return min(1.0, 2.0 * tail)


def newcombe_paired_interval(
    both: int, fixed: int, broken: int, neither: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for the difference of two paired proportions.

    Method 10 of Newcombe (1998), "Improved confidence intervals for the difference between
    binomial proportions based on paired data", Stat Med 17:2635-50: the Wilson intervals of both
    proportions are combined with the correlation of the pairs (phi, corrected towards 0 by
    ``n / 2`` when positive, as in the paper). With ``p1 = (a + b) / n`` (the candidate's rate) and
    ``p2 = (a + c) / n`` (the reference's), it bounds ``p1 - p2 = (b - c) / n``.

    Args:
        both: ``a``, pairs both pass.
        fixed: ``b``, pairs only the candidate (the first) passes.
        broken: ``c``, pairs only the reference (the second) passes.
        neither: ``d``, pairs both fail.
        confidence: the two-sided confidence level.

    Returns:
        ``(lower, upper)`` in [-1, 1]; ``(-1.0, 1.0)`` when there is no pair.
    """
    a, b, c, d = (int(v) for v in (both, fixed, broken, neither))
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be >= 0, got {(both, fixed, broken, neither)}")
    n = a + b + c + d
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    num = float(a * d - b * c)
    if num > 0:
        num = max(num - n / 2.0, 0.0)
    phi = num / math.sqrt(margins) if margins else 0.0
    theta = p1 - p2
    lower_sq = (p1 - l1) ** 2 - 2.0 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    upper_sq = (u1 - p1) ** 2 - 2.0 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    lower = theta - math.sqrt(max(lower_sq, 0.0))
    upper = theta + math.sqrt(max(upper_sq, 0.0))
    return max(-1.0, lower), min(1.0, upper)


def _rate_dict(passed: int, count: int, confidence: float) -> dict[str, Any]:
    lower, upper = wilson_interval(passed, count, confidence)
    return {
        "passed": int(passed),
        "count": int(count),
        "rate": passed / count if count else None,
        "lower": lower,
        "upper": upper,
    }


@dataclass(frozen=True)
class PairedComparison:
    """Two pass rates of one check, by a candidate and a reference model, on the same samples.

    Attributes:
        name: the check's name (``"pointing_game[head, tol=15] @ layer4"``).
        metric: the check (``"pointing_game"``...).
        candidate / reference: each model's whole :class:`~pytest_camcheck.metrics.RateResult`.
        n: samples evaluated by both models (the pairs).
        both_passed / both_failed: concordant pairs.
        fixed: ids the candidate passes and the reference failed.
        broken: ids the candidate fails and the reference passed.
        unpaired: ids evaluated by only one of the models (left out of the comparison).
        candidate_rate / reference_rate: the rates over the pairs.
        difference: ``candidate_rate - reference_rate``.
        lower / upper: its interval (Newcombe's hybrid score method for paired data).
        confidence: the interval's level.
        p_value: the exact McNemar test of equal rates.
        layer / method: the maps measured (the candidate's).
    """

    name: str
    metric: str
    candidate: RateResult
    reference: RateResult
    n: int
    both_passed: int
    both_failed: int
    fixed: tuple[str, ...]
    broken: tuple[str, ...]
    unpaired: tuple[str, ...]
    candidate_rate: float
    reference_rate: float
    difference: float
    lower: float
    upper: float
    confidence: float
    p_value: float
    layer: str | None = None
    method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (nan becomes None); the rates are those over the pairs."""
        c = self.confidence
        return {
            "name": self.name,
            "metric": self.metric,
            "n": int(self.n),
            "candidate": _rate_dict(len(self.fixed) + self.both_passed, self.n, c),
            "reference": _rate_dict(len(self.broken) + self.both_passed, self.n, c),
            "difference": _plain(self.difference),
            "lower": _plain(self.lower),
            "upper": _plain(self.upper),
            "confidence": float(c),
            "p_value": _plain(self.p_value),
            "both_passed": int(self.both_passed),
            "both_failed": int(self.both_failed),
            "fixed": list(self.fixed),
            "broken": list(self.broken),
            "unpaired": list(self.unpaired),
            "layer": self.layer,
            "method": self.method,
        }

    def __str__(self) -> str:
        def pct(v: float) -> str:
            return "n/a" if not math.isfinite(v) else f"{v * 100:.1f}%"

        def pts(v: float) -> str:
            return "n/a" if not math.isfinite(v) else f"{v * 100:+.1f}"

        return (
            f"{self.name}: candidate {pct(self.candidate_rate)} vs reference "
            f"{pct(self.reference_rate)}, difference {pts(self.difference)} points "
            f"({self.confidence * 100:g}% CI {pts(self.lower)} to {pts(self.upper)}), exact "
            f"McNemar p = {self.p_value:.3g}; {len(self.fixed)} fixed, {len(self.broken)} broken "
            f"of {self.n} paired samples"
        )


def _outcomes(result: RateResult) -> dict[str, bool]:
    if len(result.ids) != result.count:
        raise ValueError(
            f"{result.name}: the rate carries no per-sample ids ({len(result.ids)} ids for "
            f"{result.count} samples); build it with pytest_camcheck.metrics.rate_result"
        )
    failed = set(result.failures)
    return {sid: sid not in failed for sid in result.ids}


def paired_comparison(
    candidate: RateResult,
    reference: RateResult,
    confidence: float = 0.95,
    *,
    metric: str | None = None,
) -> PairedComparison:
    """Pair two rates of one check by sample id and compare them (see :class:`PairedComparison`).

    Args:
        candidate: the candidate model's rate.
        reference: the reference model's rate on the same samples.
        confidence: the level of the difference's interval.
        metric: the check's name (default: ``candidate.metric`` or its name's first word).

    Raises:
        ValueError: a rate without per-sample ids.
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mine, theirs = _outcomes(candidate), _outcomes(reference)
    paired = [sid for sid in mine if sid in theirs]
    unpaired = tuple([s for s in mine if s not in theirs] + [s for s in theirs if s not in mine])
    both = sum(mine[s] and theirs[s] for s in paired)
    neither = sum(not mine[s] and not theirs[s] for s in paired)
    fixed = tuple(s for s in paired if mine[s] and not theirs[s])
    broken = tuple(s for s in paired if theirs[s] and not mine[s])
    n = len(paired)
    lower, upper = newcombe_paired_interval(both, len(fixed), len(broken), neither, confidence)
    cand = (both + len(fixed)) / n if n else math.nan
    ref = (both + len(broken)) / n if n else math.nan
    return PairedComparison(
        name=candidate.name,
        metric=metric or candidate.name.split("[")[0].split(" ")[0],
        candidate=candidate,
        reference=reference,
        n=n,
        both_passed=both,
        both_failed=neither,
        fixed=fixed,
        broken=broken,
        unpaired=unpaired,
        candidate_rate=cand,
        reference_rate=ref,
        difference=cand - ref if n else math.nan,
        lower=lower if n else math.nan,
        upper=upper if n else math.nan,
        confidence=float(confidence),
        p_value=mcnemar_exact_p(len(fixed), len(broken)),
        layer=candidate.layer,
        method=candidate.method,
    )
