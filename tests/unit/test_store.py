"""The batch store: configurations, superset serving, kept errors, wanted batches, the loader."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_camcheck.cam.engine import compute_cams
from pytest_camcheck.errors import CamcheckError, DataError
from pytest_camcheck.regions import Box, Sample
from pytest_camcheck.session import CamCheck
from pytest_camcheck.settings import Settings
from pytest_camcheck.store import BatchStore, MapConfig


class TwoStage(nn.Module):
    """Two spatial stages (``a``, ``b``) and a linear head; counts its forwards."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)
        self.forwards = 0
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards += 1
        if self.fail:
            raise RuntimeError("shape mismatch deep inside the model\nsecond line of torch noise")
        return self.fc(torch.relu(self.b(torch.relu(self.a(x)))).mean(dim=(2, 3)))


class Spots:
    """n 16x16 images with a bright spot; ``bad`` indices raise, ``odd`` ones are 12x12."""

    def __init__(self, n: int, bad: tuple[int, ...] = (), odd: tuple[int, ...] = ()) -> None:
        self.n, self.bad, self.odd = n, bad, odd
        self.ids = [f"s/{i:02d}" for i in range(n)]
        self.class_names = ["zero", "one"]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        if i in self.bad:
            raise OSError(f"cannot identify image file 'img_{i}.jpg'")
        side = 12 if i in self.odd else 16
        img = torch.zeros(1, side, side)
        r, c = (3 * i) % 8, (5 * i) % 8
        img[0, r : r + 4, c : c + 4] = 1.0
        return Sample(
            self.ids[i], label=i % 2, regions={"spot": Box(c, r, c + 4, r + 4)}, image=img
        )


def make(n: int = 10, batch: int = 4, workers: int = 0, **kw) -> tuple[CamCheck, TwoStage, Spots]:
    net = TwoStage()
    data = Spots(n, bad=kw.pop("bad", ()), odd=kw.pop("odd", ()))
    kw.setdefault("layer", ("a", "b"))
    settings = Settings(batch_size=batch, num_workers=workers, **kw)
    return CamCheck(net, data, settings, "cpu"), net, data


def test_a_subset_of_computed_layers_is_served_without_a_forward() -> None:
    check, net, _ = make()
    both = check.case(0)
    assert set(both.maps) == {"a", "b"} and net.forwards == 1
    only_b = check.with_options(layer="b").case(0)
    assert net.forwards == 1  # served by the (a, b) configuration
    assert set(only_b.maps) == {"b"} and only_b.layer == "b"
    assert torch.equal(only_b.map, both.maps["b"])
    # another method is another pass; a superset of layers too
    check.with_options(method="hirescam").case(0)
    assert net.forwards == 2


def test_the_display_maps_of_a_batch_are_made_once() -> None:
    check, _, _ = make(n=10, batch=4)
    list(check.cases())
    for i in range(10):
        check.case(i)
    check.pointing_game(region="spot")
    assert check.store.stats.display == 3  # three batches, each upsampled once
    assert check.store.stats.batches == 3


def test_maps_equal_the_engine_with_and_without_loader_workers() -> None:
    _, net, data = make(n=6, batch=4, layer=("b",))
    x = torch.stack([data[i].image for i in range(6)])
    ref = compute_cams(net, x, layers="b", targets=[i % 2 for i in range(6)])
    for workers in (0, 2):
        check, _, _ = make(n=6, batch=4, workers=workers, layer=("b",))
        got = torch.stack([c.map for c in check.cases()])
        assert torch.allclose(got, ref.map, atol=1e-6), workers


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_sample_fails_alone_and_is_not_reloaded(workers: int) -> None:
    check, net, _ = make(n=8, batch=4, workers=workers, bad=(5,))
    with pytest.raises(DataError, match=r"sample 's/05': OSError: cannot identify image file"):
        check.case(5)
    assert check.case(4).id == "s/04"  # the rest of its batch computed
    forwards = net.forwards
    with pytest.raises(DataError, match="s/05"):
        check.case(5)
    assert net.forwards == forwards  # the kept error, not a recomputation
    rate = check.pointing_game(region="spot")
    assert rate.count == 8 and "s/05" in rate.failures  # counted as failed in the gate


def test_an_image_of_another_size_fails_alone() -> None:
    check, _, _ = make(n=4, batch=4, odd=(2,))
    with pytest.raises(DataError, match=r"s/02.*\(1, 12, 12\).*\(1, 16, 16\)"):
        check.case(2)
    assert check.case(3).map.shape == (16, 16)


def test_a_failing_model_fails_once_with_one_line() -> None:
    check, net, _ = make(n=12, batch=4)
    net.fail = True
    with pytest.raises(CamcheckError) as info:
        check.case(0)
    text = str(info.value)
    assert "RuntimeError: shape mismatch deep inside the model" in text
    assert "second line" not in text
    calls = net.forwards
    for i in range(12):  # every item of every batch reports the kept error
        with pytest.raises(CamcheckError, match="shape mismatch"):
            check.case(i)
    with pytest.raises(CamcheckError, match="shape mismatch"):
        check.pointing_game(region="spot")
    assert net.forwards == calls


def test_wanted_samples_are_computed_together_and_nothing_else() -> None:
    check, net, _ = make(n=20, batch=4)
    check.store.want([1, 13, 14])
    check.case(13)
    assert check.store.computed(check.config) == [0, 3]
    assert check.store.stats.passes == 1 and net.forwards == 2
    check.case(1)
    assert net.forwards == 2
    check.compute_all()  # a dataset-level check computes the rest
    assert check.store.computed(check.config) == [0, 1, 2, 3, 4]


def test_progress_counts_images_of_the_pass() -> None:
    calls = []
    store = BatchStore(TwoStage(), Spots(10), "cpu", progress=lambda d, t, s: calls.append((d, t)))
    store.ensure(MapConfig(("b",), "gradcam", "label", False, 4))
    assert calls == [(4, 10), (8, 10), (10, 10)]


def test_images_for_the_report_are_kept_from_the_batch() -> None:
    class Counting(Spots):
        loads = 0

        def __getitem__(self, i: int) -> Sample:
            Counting.loads += 1
            return super().__getitem__(i)

    data = Counting(4)
    store = BatchStore(TwoStage(), data, "cpu", keep_images=True)
    config = MapConfig(("b",), "gradcam", "label", False, 4)
    store.ensure(config)
    loads = Counting.loads
    img = store.display_image(2)
    assert img.shape == (16, 16, 3) and img.dtype.name == "uint8"
    assert Counting.loads == loads  # no reload, no re-transform


def test_map_config_from_settings_and_same_pass() -> None:
    a = MapConfig.from_settings(Settings(layer=("x", "y"), batch_size=8))
    b = MapConfig.from_settings(Settings(layer=("x",), batch_size=8))
    assert a.same_pass(b) and a != b
    assert not a.same_pass(MapConfig.from_settings(Settings(layer=("x",), batch_size=4)))


def test_a_grey_transform_before_an_rgb_model_gets_a_hint() -> None:
    rgb = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    store = BatchStore(rgb, Spots(4), "cpu")
    with pytest.raises(CamcheckError, match=r"1-channel \(1, H, W\) images.*num_output_channels=3"):
        store.entry(MapConfig(("0",), "gradcam", "predicted", False, 4), 0)


def test_an_output_wider_than_the_class_count_warns_once() -> None:
    from pytest_camcheck.errors import CamcheckWarning

    wide = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    store = BatchStore(wide, Spots(8), "cpu")
    config = MapConfig(("0",), "gradcam", "label", False, 4)
    with pytest.warns(CamcheckWarning, match="which has 3 values, but the dataset has 2 classes"):
        store.ensure(config)
