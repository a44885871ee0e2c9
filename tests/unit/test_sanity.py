"""Sanity, faithfulness and shortcut checks (pytest_camcheck.sanity), on tiny seeded models and
images whose right answer is known by construction."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck import assert_pass_rate
from pytest_camcheck.cam.methods import METHODS, MethodInput, register_method
from pytest_camcheck.demo import planted
from pytest_camcheck.demo.models import tiny_cnn
from pytest_camcheck.errors import CamAssertionError, DataError
from pytest_camcheck.regions import Box, Sample
from pytest_camcheck.report.records import Evidence, GateRecord
from pytest_camcheck.sanity import (
    Randomizer,
    auc,
    blur,
    cascade_steps,
    occlusion_drops,
    peak_shares,
    perturbation_curves,
    rank_correlation,
    ssim,
)
from pytest_camcheck.session import CamCheck
from pytest_camcheck.settings import Settings

# ------------------------------------------------------------------------------------------
# similarity


def test_rank_correlation_matches_scipy_and_its_limits() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.random((12, 12))
    b = a + 0.5 * rng.random((12, 12))
    b[0, :4] = b[0, 4]  # ties
    assert rank_correlation(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.zeros_like(a)) == 0.0  # a constant map shares no order
    assert math.isnan(rank_correlation(a, np.full_like(a, np.nan)))
    with pytest.raises(ValueError, match="different sizes"):
        rank_correlation(a, a[:4])


def test_ssim_is_scikit_image_on_display_maps() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a, b = rng.random((20, 20)), rng.random((20, 20))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-12)
    assert ssim(a, b) < 0.2
    assert ssim(a[:4, :4], a[:4, :4]) == pytest.approx(1.0)  # smaller than a window: one window
    assert ssim(a[:2, :2], b[:2, :2]) < 1.0


# ------------------------------------------------------------------------------------------
# the cascade


@pytest.fixture(scope="module")
def demo_net() -> nn.Module:
    torch.manual_seed(3)
    return tiny_cnn().eval()


def test_cascade_goes_from_the_head_down_to_the_layer(demo_net: nn.Module) -> None:
    x = torch.zeros(1, 3, 32, 32)
    whole = [s.name for s in cascade_steps(demo_net, "features", x)]
    assert whole == ["fc", "features.6", "features.4", "features.2", "features.0"]
    upper = cascade_steps(demo_net, "features.4", x)
    assert [s.name for s in upper] == ["fc", "features.6", "features.4"]
    assert upper[1].modules == ("features.6.0", "features.6.1")  # conv and its batch norm


class Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.relu(self.bn(self.conv(x)))


class ResNetLike(nn.Module):
    """A stem, two stages of two residual blocks (``nn.Sequential``), pooling and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(Residual(4), Residual(4))
        self.layer2 = nn.Sequential(Residual(4), Residual(4))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(self.pool(x).flatten(1))


def test_cascade_splits_a_stage_of_residual_blocks() -> None:
    net = ResNetLike().eval()
    steps = cascade_steps(net, "layer1", torch.zeros(1, 3, 8, 8))
    assert [s.name for s in steps] == ["fc", "layer2.1", "layer2.0", "layer1.1", "layer1.0"]
    assert steps[1].modules == ("layer2.1.conv", "layer2.1.bn")
    assert "stem" not in {m for s in steps for m in s.modules}  # below the layer: kept
    single = cascade_steps(net, "layer1.1.conv", torch.zeros(1, 3, 8, 8))
    names = [s.name for s in single]  # what runs after the conv inside its block comes first
    assert names == ["fc", "layer2.1", "layer2.0", "layer1.1.bn", "layer1.1.conv"]


def test_randomizer_leaves_the_users_model_bit_identical(demo_net: nn.Module) -> None:
    model = copy.deepcopy(demo_net)
    model.features[0].train()  # odd flags must survive too
    model.fc.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [(n, m.training) for n, m in model.named_modules()]
    grads = [(n, p.requires_grad) for n, p in model.named_parameters()]
    rng_state = torch.get_rng_state()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    r = Randomizer(model, "features", x[:1], seed=5)
    top = r.at(len(r.steps))
    assert not torch.equal(top.features[0][0].weight, model.features[0][0].weight)
    assert not torch.equal(top.fc.weight, model.fc.weight)
    r.at(1)  # only the head re-initialised
    assert not torch.equal(r.model.fc.weight, model.fc.weight)
    assert torch.equal(r.model.features[6][0].weight, model.features[6][0].weight)
    r.at(0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in r.model.state_dict().items())

    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert flags == [(n, m.training) for n, m in model.named_modules()]
    assert grads == [(n, p.requires_grad) for n, p in model.named_parameters()]
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_reinitialisation_is_seeded_and_as_the_module_initialises(demo_net: nn.Module) -> None:
    x = torch.zeros(1, 3, 32, 32)
    a = Randomizer(demo_net, "features", x, seed=1).at(5).state_dict()
    b = Randomizer(demo_net, "features", x, seed=1).at(5).state_dict()
    c = Randomizer(demo_net, "features", x, seed=2).at(5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc.weight"], c["fc.weight"])
    torch.manual_seed(1)
    fresh = nn.Linear(64, 2)  # reset_parameters after manual_seed(seed)
    assert torch.equal(a["fc.weight"], fresh.weight.detach())
    assert torch.equal(a["features.0.1.running_var"], torch.ones(16))  # batch norm reset


# ------------------------------------------------------------------------------------------
# the randomisation check over a dataset


@pytest.fixture(scope="module")
def clean_check() -> CamCheck:
    data = planted.dataset("clean", n_per_class=5)
    model = planted.DEFECTS["clean"].factory()
    return CamCheck(model, data, Settings(batch_size=10, num_workers=0), "cpu")


def _gaussian(inp: MethodInput) -> Tensor:
    h, w = inp.activations.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    bump = torch.exp(-((yy - h / 3) ** 2 + (xx - w / 2) ** 2) / (0.1 * h * w))
    return bump.expand(inp.activations.shape[0], h, w).float().clone()


def _edges(inp: MethodInput) -> Tensor:
    x = inp.context.x.float().mean(dim=1, keepdim=True)
    kx = torch.tensor([[[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]]])
    gx = nn.functional.conv2d(x, kx, padding=1)
    gy = nn.functional.conv2d(x, kx.transpose(-1, -2), padding=1)
    return torch.sqrt(gx * gx + gy * gy)[:, 0]


@pytest.fixture
def model_free_methods():
    """Two registered methods that ignore the model: a fixed Gaussian and an edge detector."""
    register_method("test-gaussian", _gaussian, needs_gradients=False)
    register_method("test-edges", _edges, needs_gradients=False)
    yield ("test-gaussian", "test-edges")
    for name in ("test-gaussian", "test-edges"):
        METHODS.pop(name, None)


def test_gradcam_on_a_trained_model_passes_randomisation(clean_check: CamCheck) -> None:
    before = {k: v.clone() for k, v in clean_check.model.state_dict().items()}
    result = clean_check.randomization(max_similarity=0.5)
    assert_pass_rate(result, min_rate=0.9, bound="rate")
    assert result.metric == "similarity" and len(result.values) == 10
    assert max(result.values) < 0.5
    extra = result.extra
    assert extra["kind"] == "randomization"
    assert extra["steps"] == ["fc", "features.6", "features.4", "features.2", "features.0"]
    assert len(extra["spearman"]) == len(extra["ssim"]) == 5
    assert all(e["mean"] is not None for e in extra["spearman"])
    # the user's model was never touched
    assert all(torch.equal(v, before[k]) for k, v in clean_check.model.state_dict().items())
    assert not clean_check.model.training


def test_maps_that_ignore_the_model_fail_randomisation(
    clean_check: CamCheck, model_free_methods: tuple[str, str]
) -> None:
    for method in model_free_methods:
        result = clean_check.with_options(method=method).randomization(max_similarity=0.5)
        assert result.passed == 0, method
        assert all(v == pytest.approx(1.0) for v in result.values), method
        means = [e["mean"] for e in result.extra["spearman"]]
        assert means == pytest.approx([1.0] * 5), method  # flat along the whole cascade
        with pytest.raises(CamAssertionError, match="randomization"):
            assert_pass_rate(result, min_rate=0.9)


# ------------------------------------------------------------------------------------------
# deletion / insertion and occlusion, on a model whose evidence is known


class RegionNet(nn.Module):
    """Class 1's logit is 4 x the mean of channel 0 inside rows/cols 2..7 (class 0's is 0):
    only that square matters, so a map of the square is a perfect deletion order."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.forwards = 0
        self.mask = torch.zeros(16, 16)
        self.mask[2:8, 2:8] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        self.forwards += 1
        score = 4.0 * (x[:, 0] * self.mask).sum(dim=(1, 2)) / self.mask.sum()
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_deletion_in_the_right_order_beats_random_and_the_reverse_loses() -> None:
    net = RegionNet()
    x = torch.ones(3, 1, 16, 16)
    good = net.mask.expand(3, 16, 16).clone()
    targets = torch.ones(3, dtype=torch.long)
    zeros = torch.zeros_like(x)
    net.forwards = 0
    cam, rnd = perturbation_curves(net, x, good, targets, steps=8, baseline=zeros)
    assert net.forwards == 8  # batched: one forward per step, both orders in it
    assert cam.shape == rnd.shape == (3, 9)
    assert torch.allclose(cam[:, 0], torch.sigmoid(torch.tensor(4.0)))
    assert torch.allclose(cam[:, -1], torch.tensor(0.5))
    assert torch.all(cam[:, 2] == 0.5)  # the square is 36 of 256 pixels: gone after 2 steps
    margin = auc(rnd) - auc(cam)
    assert torch.all(margin > 0.2)
    reverse = (1 - net.mask).expand(3, 16, 16).clone()
    cam_r, rnd_r = perturbation_curves(net, x, reverse, targets, steps=8, baseline=zeros)
    assert torch.all(auc(rnd_r) - auc(cam_r) < -0.05)
    ins, ins_rnd = perturbation_curves(
        net, x, good, targets, steps=8, insertion=True, baseline=zeros
    )
    assert torch.all(auc(ins) - auc(ins_rnd) > 0.1)
    assert torch.allclose(ins[:, 2], torch.sigmoid(torch.tensor(4.0)))


def test_auc_is_the_trapezoid_on_the_unit_interval() -> None:
    curves = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.0]])
    assert torch.allclose(auc(curves), torch.tensor([1.0, 0.5, 0.5]))
    with pytest.raises(ValueError):
        auc(torch.ones(2, 1))


def test_blur_keeps_flat_images_and_the_mean() -> None:
    flat = torch.full((1, 3, 20, 20), 0.7)
    assert torch.allclose(blur(flat, 3.0), flat, atol=1e-6)
    img = torch.zeros(1, 1, 21, 21)
    img[0, 0, 10, 10] = 1.0
    out = blur(img, 2.0)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert out[0, 0, 10, 10] < 0.1 and out.argmax().item() == 10 * 21 + 10


def test_occlusion_drops_on_the_region_not_on_the_background() -> None:
    net = RegionNet()
    x = torch.ones(2, 1, 16, 16)
    masks = (net.mask > 0).expand(2, 16, 16).clone()
    got = occlusion_drops(net, x, masks, torch.ones(2, dtype=torch.long), fill="mean", patches=3)
    # masking with the mean of a flat image changes nothing; make the region stand out
    assert torch.allclose(got.region, torch.zeros(2), atol=1e-6)
    x.zero_()
    x[:, 0, 2:8, 2:8] = 1.0  # p = sigmoid(4); masked with the mean (36 / 256): sigmoid(0.56)
    got = occlusion_drops(net, x, masks, torch.ones(2, dtype=torch.long), fill="mean", patches=3)
    expected = torch.sigmoid(torch.tensor(4.0)) - torch.sigmoid(torch.tensor(4 * 36 / 256))
    assert torch.allclose(got.region, expected.expand(2), atol=1e-5)
    assert torch.allclose(got.background, torch.zeros(2), atol=1e-6)  # off the square: no change
    assert torch.allclose(got.whole, got.region)
    with pytest.raises(ValueError, match="fill"):
        occlusion_drops(net, x, masks, torch.ones(2, dtype=torch.long), fill="zeros")


# ------------------------------------------------------------------------------------------
# spatial bias


def test_peak_shares_find_the_spot_that_stays_put() -> None:
    still = [(3, 3)] * 8 + [(20, 20), None]
    shares, hot, share = peak_shares(still, (32, 32), 4)
    assert share == pytest.approx(0.8) and shares[0] == pytest.approx(0.8)
    assert math.isnan(shares[-1])
    x0, y0, x1, y1 = hot
    assert x0 <= 3 < x1 and y0 <= 3 < y1 and x1 - x0 == 4
    moving = [(4 * i, 4 * i) for i in range(8)]
    shares, _, share = peak_shares(moving, (32, 32), 3)
    assert share == pytest.approx(1 / 8) and all(s == pytest.approx(1 / 8) for s in shares)
    shares, hot, share = peak_shares([None, None], (8, 8), 2)
    assert all(math.isnan(v) for v in shares) and hot is None and share == 0.0


class SpotNet(nn.Module):
    """Class 1 <- bright pixels; its CAM peaks on the brightest spot."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 2, 1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[[[-1.0]]], [[[1.0]]]]))
            self.features.bias.copy_(torch.tensor([1.0, 0.0]))
            self.fc.weight.copy_(torch.diag(torch.tensor([1.0, 30.0])))
            self.fc.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.features(x)).mean(dim=(2, 3)))


class SpotData:
    """n 16x16 images, class "bright", one 3x3 spot: moving, or always in the same corner."""

    def __init__(self, n: int, still: bool) -> None:
        self.n, self.still = n, still
        self.ids = [f"img/{i:02d}" for i in range(n)]
        self.class_names = ["dark", "bright"]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        r, c = (1, 1) if self.still else ((5 * i) % 13, (7 * i) % 13)
        img = torch.zeros(1, 16, 16)
        img[0, r : r + 3, c : c + 3] = 1.0
        return Sample(self.ids[i], label=1, regions={"spot": Box(c, r, c + 3, r + 3)}, image=img)


def _spot_check(still: bool) -> CamCheck:
    settings = Settings(batch_size=6, num_workers=0, layer=("features",))
    return CamCheck(SpotNet(), SpotData(12, still), settings, "cpu")


def test_spatial_bias_passes_moving_objects_and_catches_a_fixed_spot() -> None:
    moving = _spot_check(still=False).spatial_bias(max_share=0.5)
    assert (moving.passed, moving.count) == (12, 12)
    bright = moving.extra["classes"]["bright"]
    assert bright["share"] <= 0.25 and bright["count"] == 12
    still = _spot_check(still=True).spatial_bias(max_share=0.5)
    assert still.passed == 0 and still.values == pytest.approx((1.0,) * 12)
    spot = still.extra["classes"]["bright"]
    assert spot["share"] == 1.0
    x0, y0, x1, y1 = spot["hot_spot"]
    assert x0 < 4 and x1 > 1 and y0 < 4 and y1 > 1  # on the corner the spot never leaves
    mean = np.asarray(spot["mean_map"])
    assert mean.shape == (16, 16) and mean[1:4, 1:4].max() == mean.max()
    assert still.extra["window"] == 2 and still.metric == "peak_share"
    with pytest.raises(CamAssertionError, match=r"spatial_bias.*0/12 passed"):
        assert_pass_rate(still, min_rate=0.9)
    few = _spot_check(still=True).spatial_bias(max_share=0.5, min_samples=20)
    assert few.passed == 12 and not few.extra["classes"]["bright"]["judged"]


# ------------------------------------------------------------------------------------------
# deletion, insertion and occlusion over a dataset


def test_dataset_checks_judge_only_samples_whose_probability_depends_on_detail(
    clean_check: CamCheck,
) -> None:
    # The clean demo model answers "square" when it sees no detail (the blurred image), so its
    # squares cannot be judged; its circles can, and its maps order them well.
    deletion = clean_check.deletion(steps=10)
    occlusion = clean_check.occlusion("object")
    for result in (deletion, occlusion):
        assert result.count == 5, result
        assert set(result.per_class) == {"circle"}
        assert result.passed == 5, result
        assert result.notes and "5 of 10 samples not judged" in result.notes[0]
        assert all(i.startswith("square/") for i in result.extra["unjudged"])
    assert deletion.extra["kind"] == "deletion" and len(deletion.extra["cam"]) == 11
    assert deletion.extra["auc_cam"] < deletion.extra["auc_random"]
    drops = occlusion.extra
    assert len(drops["region_drop"]) == len(drops["background_drop"]) == 5
    assert all(r > b for r, b in zip(drops["region_drop"], drops["background_drop"]))


def test_a_model_that_ignores_the_image_cannot_be_judged_and_fails_the_gate() -> None:
    data = planted.dataset("random", n_per_class=3)
    check = CamCheck(planted.DEFECTS["random"].factory(), data, Settings(batch_size=6), "cpu")
    result = check.insertion(steps=4)
    assert result.count == 0 and len(result.extra["unjudged"]) == 6
    with pytest.raises(CamAssertionError, match=r"no samples were evaluated.*6 of 6 samples not"):
        assert_pass_rate(result, min_rate=0.9)


def test_occlusion_of_a_missing_region_fails_or_skips(clean_check: CamCheck) -> None:
    data = planted.dataset("watermark", n_per_class=3)  # only the squares carry it
    check = CamCheck(planted.DEFECTS["watermark"].factory(), data, Settings(batch_size=6), "cpu")
    failed = check.occlusion("watermark", missing="fail")
    circles = [i for i in data.ids if i.startswith("circle/")]
    assert failed.count == 6 and list(failed.missing) == circles
    assert set(circles) <= set(failed.failures)
    skipped = check.occlusion("watermark", missing="skip")
    assert skipped.count == 3 and skipped.passed == 3  # the watermark model needs its mark
    assert all(v > 0.3 for v in skipped.values)
    with pytest.raises(DataError, match="no sample has a region named 'head'"):
        clean_check.occlusion("head")
    with pytest.raises(ValueError, match="missing"):
        clean_check.occlusion("object", missing="maybe")
    with pytest.raises(ValueError, match="min_drop"):
        clean_check.occlusion("object", min_drop=2.0)


def test_rate_results_carry_their_plot_data_into_the_gate_record() -> None:
    result = _spot_check(still=True).spatial_bias()
    data = result.to_dict()
    assert data["extra"]["kind"] == "spatial_bias"
    assert result.per_class["bright"].extra == {}
    ev = Evidence("pass_rate", False, details={"result": data})
    gate = GateRecord.from_evidence("t::x", ev, "failed")
    assert gate.extra["classes"]["bright"]["share"] == 1.0
    assert GateRecord.from_dict(gate.to_dict()).extra == gate.extra
