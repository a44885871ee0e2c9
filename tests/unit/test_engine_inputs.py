"""Inputs of every shape, layout, precision and device; batching and chunking change nothing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck.cam import METHODS, compute_cams
from pytest_camcheck.errors import EngineError

HALF_PEARSON = 0.95  # the brief's bar for half precision vs float32 maps


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages (``features``, 1/2 resolution), GAP, linear: 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)

        def stage(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(*stage(3, 16, 1), *stage(16, 32, 2), *stage(32, 32, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)
        with torch.no_grad():  # non-trivial BN statistics
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture(scope="module")
def cnn() -> SmallCNN:
    return SmallCNN()


@pytest.fixture(scope="module")
def x32() -> Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def reference(cnn: SmallCNN, x32: Tensor):
    return compute_cams(cnn, x32, layers="features", targets=[1, 2])


# -- shapes ---------------------------------------------------------------------------------------


def test_batch_of_one_and_single_image(cnn, x32, reference) -> None:
    one = compute_cams(cnn, x32[:1], layers="features", targets=1)
    assert one.raw["features"].shape == (1, 16, 16)
    assert one.maps["features"].shape == (1, 32, 32)
    assert len(one) == 1 and one.targets.shape == (1,) and one.logits.shape == (1, 10)
    torch.testing.assert_close(one.raw["features"][0], reference.raw["features"][0])
    unbatched = compute_cams(cnn, x32[0], layers="features", targets=1)  # (C, H, W)
    torch.testing.assert_close(unbatched.raw["features"], one.raw["features"])


def test_list_of_images(cnn, x32, reference) -> None:
    result = compute_cams(cnn, [x32[0], x32[1]], layers="features", targets=[1, 2])
    torch.testing.assert_close(result.raw["features"], reference.raw["features"])


def test_non_square_input_tiny(cnn) -> None:
    x = torch.randn(2, 3, 12, 40, generator=torch.Generator().manual_seed(3))
    result = compute_cams(cnn, x, layers="features", targets=[0, 5])
    assert result.raw["features"].shape == (2, 6, 20)
    assert result.maps["features"].shape == (2, 12, 40)
    # Transposing the image and every kernel transposes the map: rows and columns are not mixed
    # up anywhere in the engine.
    transposed = copy.deepcopy(cnn)
    with torch.no_grad():
        for m in transposed.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(m.weight.transpose(2, 3).clone())
    flipped = compute_cams(transposed, x.transpose(2, 3), layers="features", targets=[0, 5])
    torch.testing.assert_close(
        flipped.raw["features"], result.raw["features"].transpose(1, 2), rtol=1e-4, atol=1e-5
    )


def test_non_square_input_resnet(tv_zoo) -> None:
    model = tv_zoo("resnet18")
    x = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    result = compute_cams(model, x, targets=[1, 2])
    assert result.layers == ("layer4",)
    assert result.raw["layer4"].shape == (2, 3, 5)
    assert result.maps["layer4"].shape == (2, 96, 160)
    assert torch.isfinite(result.maps["layer4"]).all()


def test_bad_images_raise(cnn) -> None:
    with pytest.raises(EngineError, match="floating point"):
        compute_cams(cnn, torch.zeros(1, 3, 8, 8, dtype=torch.uint8), layers="features")
    with pytest.raises(EngineError, match=r"\(B, C, H, W\)"):
        compute_cams(cnn, torch.zeros(3, 8), layers="features")
    with pytest.raises(EngineError, match="batch size 0"):
        compute_cams(cnn, torch.zeros(0, 3, 8, 8), layers="features")
    with pytest.raises(EngineError, match="different sizes"):
        compute_cams(cnn, [torch.zeros(3, 8, 8), torch.zeros(3, 8, 9)], layers="features")


# -- layout and precision -------------------------------------------------------------------------


def test_channels_last_input_and_model(cnn, x32, reference) -> None:
    model = copy.deepcopy(cnn).to(memory_format=torch.channels_last)
    x = x32.contiguous(memory_format=torch.channels_last)
    result = compute_cams(model, x, layers="features", targets=[1, 2])
    torch.testing.assert_close(result.raw["features"], reference.raw["features"])
    torch.testing.assert_close(result.maps["features"], reference.maps["features"])
    mixed = compute_cams(cnn, x, layers="features", targets=[1, 2])  # channels_last input only
    torch.testing.assert_close(mixed.raw["features"], reference.raw["features"])


def half_ok(dtype: torch.dtype) -> bool:
    try:
        nn.Conv2d(3, 2, 3).to(dtype)(torch.zeros(1, 3, 4, 4, dtype=dtype))
    except RuntimeError:
        return False
    return True


def check_close_to_float32(result, reference, pearson) -> None:
    for key in ("raw", "maps"):
        ours, ref = getattr(result, key)["features"], getattr(reference, key)["features"]
        assert ours.dtype == torch.float32
        assert torch.isfinite(ours).all()
        for i in range(ours.shape[0]):
            r = pearson(ours[i], ref[i])
            assert r > HALF_PEARSON, f"{key}[{i}]: Pearson {r:.4f} vs float32"
    assert result.logits.dtype == torch.float32
    assert not result.degenerate["features"].any()


@pytest.mark.parametrize(
    "dtype",
    [
        torch.bfloat16,
        pytest.param(
            torch.float16,
            marks=pytest.mark.skipif(
                not half_ok(torch.float16), reason="float16 conv unsupported on this CPU build"
            ),
        ),
    ],
    ids=["bfloat16", "float16"],
)
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "cam", "scorecam"])
def test_half_precision_model(dtype, method, cnn, x32, pearson) -> None:
    model = copy.deepcopy(cnn).to(dtype)
    reference = compute_cams(cnn, x32, layers="features", targets=[1, 2], method=method)
    result = compute_cams(model, x32, layers="features", targets=[1, 2], method=method)
    check_close_to_float32(result, reference, pearson)


@pytest.mark.parametrize("amp", [True, torch.bfloat16], ids=["amp_true", "amp_bf16"])
@pytest.mark.parametrize("method", ["gradcam", "cam", "layercam"])
def test_amp(amp, method, cnn, x32, pearson) -> None:
    reference = compute_cams(cnn, x32, layers="features", targets=[1, 2], method=method)
    result = compute_cams(cnn, x32, layers="features", targets=[1, 2], method=method, amp=amp)
    check_close_to_float32(result, reference, pearson)
    # the forward really ran in low precision
    assert not torch.equal(result.raw["features"], reference.raw["features"])


@pytest.mark.parametrize("method", ["gradcam", "cam", "eigencam"])
def test_external_autocast(method, cnn, x32, pearson) -> None:
    reference = compute_cams(cnn, x32, layers="features", targets=[1, 2], method=method)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = compute_cams(cnn, x32, layers="features", targets=[1, 2], method=method)
        assert torch.is_autocast_enabled("cpu")
    check_close_to_float32(result, reference, pearson)


@pytest.mark.parametrize("how", ["amp", "autocast", "bf16_model"])
def test_cam_under_low_precision_on_resnet(how: str, tv_zoo, pearson) -> None:
    # CAM checks that the logits are a linear function of the pooled layer; in bf16 that check
    # must allow bf16 rounding (512 channels, 1000 classes), whichever way bf16 was asked for.
    model = tv_zoo("resnet18")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    reference = compute_cams(model, x, layers="layer4", method="cam", targets=[1, 2])
    if how == "amp":
        result = compute_cams(model, x, layers="layer4", method="cam", targets=[1, 2], amp=True)
    elif how == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            result = compute_cams(model, x, layers="layer4", method="cam", targets=[1, 2])
    else:
        half = copy.deepcopy(model).to(torch.bfloat16)
        result = compute_cams(half, x, layers="layer4", method="cam", targets=[1, 2])
    raw, ref = result.raw["layer4"], reference.raw["layer4"]
    assert torch.isfinite(raw).all()
    assert pearson(raw, ref) > HALF_PEARSON


def test_float64_model(cnn, x32, reference) -> None:
    result = compute_cams(copy.deepcopy(cnn).double(), x32, layers="features", targets=[1, 2])
    assert result.raw["features"].dtype == torch.float32
    torch.testing.assert_close(result.raw["features"], reference.raw["features"])


# -- batching --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batched_equals_one_at_a_time(method, make_tiny_model, images) -> None:
    model = make_tiny_model(width=4)
    x = images(3, 3, 12, 12, seed=5)
    targets = [0, 3, 1]
    batched = compute_cams(model, x, layers="features", method=method, targets=targets)
    for i, t in enumerate(targets):
        single = compute_cams(model, x[i : i + 1], layers="features", method=method, targets=t)
        torch.testing.assert_close(
            batched.raw["features"][i], single.raw["features"][0], rtol=1e-4, atol=1e-6
        )
        torch.testing.assert_close(
            batched.maps["features"][i], single.maps["features"][0], rtol=1e-4, atol=1e-5
        )
        assert bool(batched.degenerate["features"][i]) == bool(single.degenerate["features"][0])


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("batch_size", [1, 2])
def test_chunking_equals_unchunked(method, batch_size, make_tiny_model, images) -> None:
    model = make_tiny_model(width=4)
    x = images(5, 3, 12, 12, seed=6)
    calls: list[tuple[int, int]] = []
    whole = compute_cams(model, x, layers="features", method=method)
    chunked = compute_cams(
        model,
        x,
        layers="features",
        method=method,
        batch_size=batch_size,
        progress=lambda done, total: calls.append((done, total)),
    )
    torch.testing.assert_close(chunked.raw["features"], whole.raw["features"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(chunked.targets, whole.targets)
    torch.testing.assert_close(chunked.logits, whole.logits)
    expected = [(min(s + batch_size, 5), 5) for s in range(0, 5, batch_size)]
    assert calls == expected


def test_chunked_per_image_targets(make_tiny_model, images) -> None:
    model = make_tiny_model()
    x = images(5, 3, 16, 16, seed=7)
    targets = [4, 3, 2, 1, 0]
    whole = compute_cams(model, x, layers="features", targets=targets)
    chunked = compute_cams(model, x, layers="features", targets=targets, batch_size=2)
    assert chunked.targets.tolist() == targets
    torch.testing.assert_close(chunked.raw["features"], whole.raw["features"])


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_batch_size(bad, tiny_model, images) -> None:
    with pytest.raises(EngineError, match="batch_size"):
        compute_cams(tiny_model, images(2, 3, 16, 16), layers="features", batch_size=bad)


# -- CUDA ------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["gradcam", "cam", "scorecam", "eigencam"])
def test_cuda_model_with_cpu_inputs(method, cnn, x32) -> None:
    reference = compute_cams(cnn, x32, layers="features", targets=[1, 2], method=method)
    model = copy.deepcopy(cnn).cuda()
    result = compute_cams(model, x32, layers="features", targets=[1, 2], method=method)
    assert result.raw["features"].device.type == "cuda"
    assert result.maps["features"].device.type == "cuda"
    cpu = result.cpu()
    assert cpu.raw["features"].device.type == "cpu"
    torch.testing.assert_close(cpu.raw["features"], reference.raw["features"], rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
def test_cuda_amp_float16(cnn, x32, pearson) -> None:
    reference = compute_cams(cnn, x32, layers="features", targets=[1, 2])
    model = copy.deepcopy(cnn).cuda()
    result = compute_cams(model, x32.cuda(), layers="features", targets=[1, 2], amp=True).cpu()
    check_close_to_float32(result, reference, pearson)


@pytest.mark.gpu
def test_cuda_half_model(cnn, x32, pearson) -> None:
    reference = compute_cams(cnn, x32, layers="features", targets=[1, 2])
    model = copy.deepcopy(cnn).cuda().half()
    result = compute_cams(model, x32, layers="features", targets=[1, 2]).cpu()
    check_close_to_float32(result, reference, pearson)
