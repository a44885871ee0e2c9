"""Regression checks through CamCheck: baselines written and compared, a reference model computed
in the same passes, paired comparisons and their gates, and map-to-map assertions.

The toy model sees a bright 4x4 spot: its CAM is the spot, so a model that looks elsewhere (the
"mirror" model, whose map is the image flipped left-right) moves every map by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pytest_camcheck import evidence
from pytest_camcheck.assertions import assert_no_regression, assert_similar_maps
from pytest_camcheck.baseline import MANIFEST, Baselines
from pytest_camcheck.compare import PairedComparison, SimilarityResult, paired_comparison
from pytest_camcheck.errors import BaselineError, BaselineWritten, CamAssertionError, ConfigError
from pytest_camcheck.metrics import rate_result
from pytest_camcheck.regions import Box, Sample
from pytest_camcheck.session import CamCheck
from pytest_camcheck.settings import Settings


class SpotNet(nn.Module):
    """Class 1 <- bright pixels; ``mirror`` looks at the left-right mirror image instead."""

    def __init__(self, mirror: bool = False) -> None:
        super().__init__()
        self.mirror = mirror
        self.features = nn.Conv2d(1, 2, 1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[[[-1.0]]], [[[1.0]]]]))
            self.features.bias.copy_(torch.tensor([1.0, 0.0]))
            self.fc.weight.copy_(torch.diag(torch.tensor([1.0, 30.0])))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mirror:
            x = x.flip(-1)
        return self.fc(torch.relu(self.features(x)).mean(dim=(2, 3)))


class Spots:
    """n 16x16 images, one bright 4x4 spot each (region 'spot'), off the vertical centre line so
    that the mirror model's map lies elsewhere; counts the images it loads."""

    def __init__(self, n: int, prefix: str = "img", root: Path | None = None) -> None:
        self.n = n
        self.ids = [f"{prefix}/{i:03d}" for i in range(n)]
        self.class_names = ["dark", "bright"]
        self.loads = 0
        self.root = root

    def __len__(self) -> int:
        return self.n

    def spot(self, i: int) -> tuple[int, int]:
        return (3 * i) % 12, (i % 3) * 2  # columns 0..7: never mirrored onto themselves

    def __getitem__(self, i: int) -> Sample:
        self.loads += 1
        r, c = self.spot(i)
        img = torch.zeros(1, 16, 16)
        img[0, r : r + 4, c : c + 4] = 1.0
        path = None if self.root is None else str(self.root / f"{i}.bin")
        return Sample(
            self.ids[i], path=path, label=1, regions={"spot": Box(c, r, c + 4, r + 4)}, image=img
        )


def check(data: Spots, folder: Path, *, mirror: bool = False, run: str = "r1", **kw) -> CamCheck:
    settings = Settings(batch_size=4, layer=("features",), num_workers=0)
    bl = Baselines(folder, update=kw.pop("update", False), run_id=run)
    return CamCheck(SpotNet(mirror), data, settings, "cpu", baselines=bl, **kw)


def written(data: Spots, folder: Path) -> None:
    with pytest.raises(BaselineWritten, match="no baseline for features, gradcam, target label"):
        check(data, folder, run="writer").baseline_comparison()


# ------------------------------------------------------------------------------------ baselines


def test_a_missing_baseline_is_written_and_the_check_fails_saying_so(tmp_path: Path) -> None:
    data = Spots(10)
    with pytest.raises(BaselineWritten) as info:
        check(data, tmp_path).baseline_comparison()
    folder = tmp_path / "features_gradcam_label_16x16"
    assert f"wrote {folder} from the current model's maps of 10 samples" in str(info.value)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert [s["id"] for s in manifest["samples"]] == data.ids
    assert manifest["model"]["class"].endswith("SpotNet") and manifest["run_id"] == "r1"
    assert len(manifest["model"]["weights_sha256"]) == 64 and manifest["torch"]
    # the same run never compares against what it wrote
    with pytest.raises(BaselineWritten, match="earlier in this run"):
        check(data, tmp_path, run="r1").baseline_comparison()


def test_the_same_model_matches_its_baseline(tmp_path: Path) -> None:
    data = Spots(10)
    written(data, tmp_path)
    result = check(data, tmp_path, run="r2").baseline_comparison(
        min_ssim=0.99, max_peak_shift=0, min_rank_corr=0.99
    )
    assert isinstance(result, SimilarityResult)
    assert (result.passed, result.count) == (10, 10) and result.ids == tuple(data.ids)
    assert min(result.values) > 0.999 and set(result.peak_shift) == {0.0}
    assert result.energy_change["spot"] == pytest.approx([0.0] * 10, abs=1e-3)
    assert result.name == "baseline_comparison[ssim>=0.99, shift<=0px, rank>=0.99] @ features"
    assert len(result.moved) == 10 and result.against == "baseline" and not result.notes


def test_a_model_that_looks_elsewhere_fails_and_the_movers_are_listed(tmp_path: Path) -> None:
    data = Spots(10)
    written(data, tmp_path)
    mirrored = check(data, tmp_path, mirror=True, run="r2")
    result = mirrored.baseline_comparison(min_ssim=None, max_peak_shift=2)
    assert result.passed == 0 and result.failures == tuple(data.ids)
    # the peak jumps to the mirrored spot: 12 - 2 * column px (columns 0, 2, 4)
    shifts = [12 - 2 * data.spot(i)[1] for i in range(10)]
    assert list(result.peak_shift) == pytest.approx(shifts)
    worst = result.moved[0]
    assert not worst["passed"] and worst["ssim"] < 0.95
    assert worst["energy_change"]["spot"] < -0.5  # the spot lost most of its share
    as_dict = result.to_dict()["similarity"]
    assert as_dict["against"] == "baseline" and len(as_dict["peak_shift"]) == 10


def test_samples_added_removed_or_changed_are_listed_not_compared(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    for i in range(8):
        (root / f"{i}.bin").write_bytes(bytes([i]))
    written(Spots(6, root=root), tmp_path)
    (root / "2.bin").write_bytes(b"edited")
    grown = Spots(8, root=root)
    result = check(grown, tmp_path, run="r2").baseline_comparison()
    assert result.added == ("img/006", "img/007") and result.changed == ("img/002",)
    assert result.count == 5 and result.passed == 5 and result.removed == ()
    assert "2 samples added since the baseline, not compared" in result.notes[0]
    assert "1 image changed since the baseline" in result.notes[1]
    renamed = check(Spots(6, prefix="new", root=root), tmp_path, run="r3").baseline_comparison()
    assert renamed.count == 0 and len(renamed.removed) == 6 and len(renamed.added) == 6


def test_update_rewrites_the_baseline_once_per_run(tmp_path: Path) -> None:
    data = Spots(6)
    written(data, tmp_path)
    manifest = tmp_path / "features_gradcam_label_16x16" / MANIFEST
    with pytest.raises(BaselineWritten, match=r"--camcheck-update-baselines: rewrote .* had 6"):
        check(data, tmp_path, mirror=True, run="u1", update=True).baseline_comparison()
    assert json.loads(manifest.read_text())["run_id"] == "u1"
    with pytest.raises(BaselineWritten, match="was rewritten earlier in this run"):
        check(data, tmp_path, run="u1", update=True).baseline_comparison()
    # the mirror model is now the baseline: the plain model moved away from it
    moved = check(data, tmp_path, run="r3").baseline_comparison(min_ssim=None, max_peak_shift=2)
    assert moved.passed == 0
    manifest.write_text("{ corrupt")
    with pytest.raises(BaselineError, match="not valid JSON"):
        check(data, tmp_path, run="r4").baseline_comparison()
    with pytest.raises(BaselineWritten, match="no baseline"):  # update repairs it
        check(data, tmp_path, run="u2", update=True).baseline_comparison()


def test_a_changed_prediction_is_noted_under_target_predicted(tmp_path: Path) -> None:
    data = Spots(6)
    settings = Settings(batch_size=4, layer=("features",), num_workers=0, target="predicted")

    def run(net: SpotNet, run_id: str):
        return CamCheck(
            net, data, settings, "cpu", baselines=Baselines(tmp_path, run_id=run_id)
        ).baseline_comparison(min_ssim=None, max_peak_shift=100)

    with pytest.raises(BaselineWritten):
        run(SpotNet(), "w")
    dark = SpotNet()
    with torch.no_grad():
        dark.fc.weight.copy_(torch.diag(torch.tensor([30.0, 1.0])))  # now "dark" wins
    result = run(dark, "r")
    assert all(m["target_changed"] for m in result.moved)
    assert result.notes == (
        "6 samples now explained for another class than in the baseline: " + ", ".join(data.ids),
    )
    assert not any(m["target_changed"] for m in run(SpotNet(), "r2").moved)


def test_case_baseline_map_matches_the_case_map_and_is_known_to_assertions(
    tmp_path: Path,
) -> None:
    data = Spots(6)
    written(data, tmp_path)
    case = check(data, tmp_path, run="r2").case(3)
    with evidence.collecting(case.id, maps=case.maps, method="gradcam", raw=case.raw) as scope:
        stored = case.baseline_map
        assert stored.shape == case.map.shape
        assert float((stored - case.map).abs().max()) < 1e-3
        got = assert_similar_maps(case.map, case.baseline_map, min_ssim=0.99, max_peak_shift=0)
    assert got["ssim"] > 0.999 and got["peak_shift"] == 0.0
    (ev,) = scope.items
    assert ev.check == "similar_maps" and ev.passed and ev.sample == "img/003"
    assert ev.details["against"] == "baseline" and ev.details["rank_corr_of"] == "raw maps"
    assert case.compared["baseline"] is stored


def test_a_sample_missing_from_the_baseline_fails_clearly(tmp_path: Path) -> None:
    written(Spots(4), tmp_path)
    case = check(Spots(6), tmp_path, run="r2").case(5)
    with pytest.raises(CamAssertionError, match=r"img/005: not in the baseline .*added"):
        _ = case.baseline_map


def test_a_reference_view_keeps_no_baselines(tmp_path: Path) -> None:
    chk = check(Spots(4), tmp_path, reference=SpotNet())
    with pytest.raises(ConfigError, match="kept for the tested model only"):
        chk.reference.baseline_comparison()
    with pytest.raises(ConfigError, match="has no baseline map: baselines are kept"):
        _ = chk.reference.case(0).baseline_map
    with pytest.raises(ConfigError, match="has no reference map: no reference model"):
        _ = check(Spots(4), tmp_path).case(0).reference_map


# ------------------------------------------------------------------------------------ reference


def test_the_reference_is_computed_in_the_same_passes(tmp_path: Path) -> None:
    data = Spots(10)
    chk = check(data, tmp_path, reference=SpotNet(mirror=True))
    result = chk.similarity_to_reference(min_ssim=None, max_peak_shift=2)
    assert data.loads == 10 and chk.store.stats.passes == 1  # each image decoded once
    assert chk.reference.store.stats.batches == 3 and chk.store.stats.batches == 3
    assert result.passed == 0 and result.against == "reference"
    assert result.source is not None and result.source.startswith("reference model SpotNet")
    alone = CamCheck(SpotNet(mirror=True), Spots(10), chk.settings, "cpu")
    assert torch.equal(chk.reference.case(7).map, alone.case(7).map)
    same = check(Spots(10), tmp_path, reference=SpotNet()).similarity_to_reference(min_ssim=0.99)
    assert same.passed == 10


def test_compare_pairs_the_models_by_sample(tmp_path: Path) -> None:
    data = Spots(10)
    candidate = check(data, tmp_path, mirror=True, reference=SpotNet())
    cmp = candidate.compare("pointing_game", region="spot")
    assert isinstance(cmp, PairedComparison)
    assert cmp.n == 10 and cmp.broken == tuple(data.ids) and cmp.fixed == ()
    assert cmp.reference_rate == 1.0 and cmp.candidate_rate == 0.0
    assert cmp.p_value == pytest.approx(2 / 1024) and cmp.upper < -0.6
    assert data.loads == 10  # one pass for both models
    assert candidate.compare(lambda c: c.pointing_game("spot")).broken == cmp.broken
    with pytest.raises(ValueError, match="unknown metric 'accuracy'"):
        candidate.compare("accuracy")
    with pytest.raises(ConfigError, match="no reference model is configured"):
        check(data, tmp_path).compare("pointing_game", region="spot")


def test_reference_map_of_a_case(tmp_path: Path) -> None:
    chk = check(Spots(6), tmp_path, reference=SpotNet(mirror=True))
    case = chk.case(2)
    other = case.reference_map
    assert torch.equal(torch.flip(other, dims=[-1]), case.map)  # the mirror sees the mirror
    with pytest.raises(CamAssertionError, match=r"differs from its reference map: .*peak moved"):
        with evidence.collecting(case.id, maps=case.maps, raw=case.raw):  # loaded before it
            assert_similar_maps(case.map, case.reference_map, min_ssim=None, max_peak_shift=2)


# ------------------------------------------------------------------------------------ gates


def comparison(fixed: int, broken: int, both: int, neither: int) -> PairedComparison:
    ids = [f"s{i:03d}" for i in range(fixed + broken + both + neither)]
    mine = [True] * fixed + [False] * broken + [True] * both + [False] * neither
    theirs = [False] * fixed + [True] * broken + [True] * both + [False] * neither
    cls = ["c"] * len(ids)
    return paired_comparison(
        rate_result("pointing_game[head, tol=0] @ l4", mine, ids, cls),
        rate_result("pointing_game[head, tol=0] @ l4", theirs, ids, cls),
    )


def test_assert_no_regression_lenient_and_strict() -> None:
    close = comparison(fixed=2, broken=4, both=80, neither=14)  # -2 points, CI spans 0
    assert close.lower < 0 < close.upper
    assert assert_no_regression(close) is close
    with pytest.raises(CamAssertionError, match=r"not shown to be at most 1 points worse"):
        assert_no_regression(close, max_drop=0.01, bound="strict")
    assert_no_regression(close, max_drop=0.2, bound="strict")  # shown within 20 points

    worse = comparison(fixed=1, broken=15, both=70, neither=14)
    assert worse.upper < 0
    with evidence.collecting() as scope, pytest.raises(CamAssertionError) as info:
        assert_no_regression(worse)
    text = str(info.value)
    assert "worse than the reference by more than 0 points with 95% confidence" in text
    assert "broken by the candidate (pass with the reference, fail now): s001, s002" in text
    assert "(+5 more)" in text and "fixed by the candidate: s000" in text
    assert "exact McNemar p = 0.000" in text
    (ev,) = scope.items
    assert ev.check == "no_regression" and not ev.passed and ev.threshold == 0.0
    assert ev.details["comparison"]["broken"][0] == "s001" and ev.value == worse.upper
    assert_no_regression(worse, max_drop=0.3)  # a 14-point drop is allowed by 30 points


def test_assert_no_regression_arguments() -> None:
    close = comparison(1, 1, 5, 3)
    with pytest.raises(ValueError, match="bound must be one of"):
        assert_no_regression(close, bound="lower")
    with pytest.raises(ValueError, match="max_drop must be a fraction"):
        assert_no_regression(close, max_drop=5)
    with pytest.raises(TypeError, match="PairedComparison"):
        assert_no_regression(rate_result("r", [True], ["a"], [None]))  # type: ignore[arg-type]
    empty = comparison(0, 0, 0, 0)
    with pytest.raises(CamAssertionError, match="no sample was evaluated by both models"):
        assert_no_regression(empty)


def test_assert_similar_maps_on_plain_arrays() -> None:
    r, c = np.mgrid[0:32, 0:32]
    a = np.exp(-((r - 8) ** 2 + (c - 8) ** 2) / 18.0)
    b = np.exp(-((r - 8) ** 2 + (c - 20) ** 2) / 18.0)
    assert assert_similar_maps(a, a)["ssim"] == pytest.approx(1.0)
    with pytest.raises(CamAssertionError, match=r"the other map: SSIM 0\.\d+ < 0\.8") as info:
        assert_similar_maps(a, b, max_peak_shift=5, regions={"left": (0, 0, 16, 32)})
    assert "the peak moved 12.0 px (at most 5 allowed)" in str(info.value)
    with pytest.raises(ValueError, match="at least one of"):
        assert_similar_maps(a, b, min_ssim=None)
    with pytest.raises(ValueError, match="min_rank_corr must be in"):
        assert_similar_maps(a, b, min_rank_corr=2)
