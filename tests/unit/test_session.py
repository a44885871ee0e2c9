"""CamCheck: lazy batched computation, caching, progress and the dataset-level rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pytest_camcheck.cam.engine import compute_cams
from pytest_camcheck.errors import DataError
from pytest_camcheck.regions import Box, Sample
from pytest_camcheck.session import CamCheck
from pytest_camcheck.settings import Settings


class SpotNet(nn.Module):
    """Class 1 <- bright pixels (channel 0 of the input), class 0 <- dark ones."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 2, 1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[[[-1.0]]], [[[1.0]]]]))
            self.features.bias.copy_(torch.tensor([1.0, 0.0]))
            self.fc.weight.copy_(torch.diag(torch.tensor([1.0, 30.0])))  # bright spots win
            self.fc.bias.zero_()
        self.forwards = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards += 1
        return self.fc(torch.relu(self.features(x)).mean(dim=(2, 3)))


class SpotData:
    """n images of 16x16 with one bright 4x4 spot; region 'spot' frames it exactly."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ids = [f"img/{i:03d}" for i in range(n)]
        self.class_names = ["dark", "bright"]
        self.loads = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        self.loads += 1
        r, c = (3 * i) % 12, (5 * i) % 12
        img = torch.zeros(1, 16, 16)
        img[0, r : r + 4, c : c + 4] = 1.0
        return Sample(self.ids[i], label=1, regions={"spot": Box(c, r, c + 4, r + 4)}, image=img)


def make(n: int = 10, batch: int = 4, **kw) -> tuple[CamCheck, SpotNet, SpotData]:
    net, data = SpotNet(), SpotData(n)
    kw.setdefault("layer", ("features",))  # no auto-detection probe: count forwards exactly
    kw.setdefault("num_workers", 0)
    return CamCheck(net, data, Settings(batch_size=batch, **kw), "cpu"), net, data


def test_a_case_computes_only_its_own_batch() -> None:
    check, net, _ = make()
    case = check.case("img/005")
    assert case.index == 5 and case.id == "img/005"
    assert check.store.computed(check.config) == [1]  # batch 1 holds samples 4..7
    assert net.forwards == 1
    check.case(6)
    assert net.forwards == 1  # served from the cache


def test_compute_all_batches_reports_progress_and_is_idempotent() -> None:
    calls = []
    check, net, _ = make(n=10, batch=4)
    check.progress = lambda done, total, elapsed: calls.append((done, total))
    check.compute_all()
    assert calls == [(4, 10), (8, 10), (10, 10)]
    assert net.forwards == 3
    check.compute_all()
    assert net.forwards == 3 and len(calls) == 3


def test_cases_equal_the_engine_run_on_the_whole_dataset() -> None:
    check, net, data = make(n=10, batch=4)
    x = torch.stack([data[i].image for i in range(10)])
    ref = compute_cams(net, x, layers="features", targets=[1] * 10)
    got = torch.stack([c.map for c in check.cases()])
    assert torch.allclose(got, ref.map, atol=1e-6)
    single = check.case(7).map
    assert torch.allclose(single, ref.map[7], atol=1e-6)


def test_case_fields_and_region_lookup() -> None:
    check, _, _ = make()
    case = check.case(2)
    assert (case.label, case.class_name, case.prediction, case.prediction_name) == (
        1,
        "bright",
        1,
        "bright",
    )
    assert 0.5 < case.probability <= 1
    assert case.map.shape == (16, 16) and not case.degenerate
    assert case.image.shape == (1, 16, 16)
    peak = case.peak()
    assert case.regions["spot"].contains_pixel(peak.row, peak.col)
    with pytest.raises(DataError, match=r"has no region 'head' \(it has: spot\)"):
        case.region("head")
    with pytest.raises(DataError, match="no sample with id 'nope'"):
        check.case("nope")


def test_dataset_level_rates_see_every_sample() -> None:
    check, _, _ = make(n=10, batch=4)
    hits = check.pointing_game(region="spot")
    assert (hits.passed, hits.count) == (10, 10)
    energy = check.energy_in_region(region="spot", min_fraction=0.5)
    assert energy.count == 10 and len(energy.values) == 10
    assert all(v > 0.5 for v in energy.values)
    outside = check.energy_outside_region(region="spot", max_fraction=0.1)
    assert outside.passed == 0
    assert set(hits.per_class) == {"bright"}
    with pytest.raises(DataError, match="no sample has a region named 'head'"):
        check.pointing_game(region="head")


def test_marker_view_shares_caches_but_not_maps() -> None:
    check, net, _ = make(n=4, batch=4)
    a = check.case(0).map
    other = check.with_options(method="hirescam")
    assert other.store is check.store
    b = other.case(0).map
    assert net.forwards == 2  # a second configuration is a second batched pass
    assert a.shape == b.shape
    assert other.case(0).method == "hirescam"
    assert np.isfinite(b.numpy()).all()


def test_localization_rate_uses_the_region() -> None:
    check, _, _ = make(n=6, batch=4)
    result = check.localization(region="spot", min_iou=0.5)
    assert (result.passed, result.count) == (6, 6)
    assert all(0.5 <= v <= 1.0 for v in result.values)
