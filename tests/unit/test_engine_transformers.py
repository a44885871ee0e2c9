"""Token models: torchvision's ViT-B/16 and Swin-T with random weights."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from pytest_camcheck.cam import compute_cams
from pytest_camcheck.cam.reshape import tokens_to_grid
from pytest_camcheck.errors import EngineError

VIT_LAYER = "encoder.layers.encoder_layer_11.ln_1"


def seeded(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    import torchvision.models as tvm

    torch.manual_seed(0)
    model = tvm.vit_b_16(weights=None).eval()
    # torchvision initialises the classification head to zeros: every logit is 0 and every
    # gradient vanishes. Give it random weights so that classes have evidence.
    with torch.no_grad():
        model.heads.head.weight.normal_(0.0, 0.02)
    return model


@pytest.fixture(scope="module")
def vit_result(vit):
    return compute_cams(vit, seeded(1, 3, 224, 224), method="gradcam")


def test_vit_gradcam_auto_layer(vit_result) -> None:
    result = vit_result
    assert result.auto_layer is True
    assert result.layers == (VIT_LAYER,)
    raw = result.raw[VIT_LAYER]
    assert raw.shape == (1, 14, 14)  # 196 patch tokens; the class token is dropped
    assert result.maps[VIT_LAYER].shape == (1, 224, 224)
    assert torch.isfinite(raw).all() and torch.isfinite(result.maps[VIT_LAYER]).all()
    assert not result.degenerate[VIT_LAYER].any()
    assert float(raw.clamp(min=0).sum()) > 0  # positive evidence for the predicted class
    assert float(result.maps[VIT_LAYER].max()) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def small_vit() -> torch.nn.Module:
    """torchvision's VisionTransformer class, shrunk: 32x32 images, 4x4 patches of 8 pixels."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=6,
    ).eval()
    with torch.no_grad():
        model.heads.head.weight.normal_(0.0, 0.2)
    return model


def test_small_vit_auto_layer_and_explicit_reshapes_agree(small_vit) -> None:
    x = seeded(2, 3, 32, 32, seed=3)
    layer = "encoder.layers.encoder_layer_1.ln_1"
    auto = compute_cams(small_vit, x, targets=[1, 4])
    assert auto.layers == (layer,) and auto.raw[layer].shape == (2, 4, 4)
    assert not auto.degenerate[layer].any()
    by_name = compute_cams(small_vit, x, layers=layer, targets=[1, 4], reshape="tokens")
    by_callable = compute_cams(small_vit, x, layers=layer, targets=[1, 4], reshape=tokens_to_grid)
    torch.testing.assert_close(by_name.raw[layer], auto.raw[layer])
    torch.testing.assert_close(by_callable.raw[layer], auto.raw[layer])


def test_small_vit_several_token_layers_at_once(small_vit) -> None:
    x = seeded(1, 3, 32, 32, seed=3)
    layers = ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1.ln_1"]
    both = compute_cams(small_vit, x, layers=layers, targets=2)
    for layer in layers:
        alone = compute_cams(small_vit, x, layers=layer, targets=2)
        torch.testing.assert_close(both.raw[layer], alone.raw[layer])
        assert both.raw[layer].shape == (1, 4, 4)


def test_vit_zero_head_is_degenerate_not_a_crash(small_vit) -> None:
    # torchvision's own init (a zero head): no evidence anywhere, flagged, maps all zero.
    import copy

    model = copy.deepcopy(small_vit)
    with torch.no_grad():
        model.heads.head.weight.zero_()
    layer = "encoder.layers.encoder_layer_1.ln_1"
    result = compute_cams(model, seeded(2, 3, 32, 32), layers=layer, targets=0)
    assert result.degenerate[layer].all()
    assert float(result.maps[layer].abs().max()) == 0.0


@pytest.fixture(scope="module")
def swin(tv_zoo) -> torch.nn.Module:
    return tv_zoo("swin_t")


def test_swin_gradcam(swin) -> None:
    x = seeded(2, 3, 96, 96, seed=1)
    result = compute_cams(swin, x, method="gradcam")
    (layer,) = result.layers
    assert result.auto_layer is True
    raw = result.raw[layer]
    assert raw.shape == (2, 3, 3)  # 96 / 32 per side
    assert result.maps[layer].shape == (2, 96, 96)
    assert torch.isfinite(raw).all()
    assert not result.degenerate[layer].any()
    assert (raw.clamp(min=0).flatten(1).sum(dim=1) > 0).all()


def test_swin_channels_last_layers_match_the_permuted_one(swin) -> None:
    # `norm` is (B, h, w, C); `permute` is the same tensor as (B, C, h, w). With the built-in
    # reshape both give the same Grad-CAM, from one forward.
    x = seeded(1, 3, 96, 96, seed=2)
    result = compute_cams(swin, x, layers=["norm", "permute"], targets=5)
    torch.testing.assert_close(result.raw["norm"], result.raw["permute"])
    features = compute_cams(swin, x, layers="features", targets=5)
    assert features.raw["features"].shape == (1, 3, 3)


def test_token_reshape_errors(swin) -> None:
    with pytest.raises(EngineError, match="unknown reshape 'grid'"):
        compute_cams(swin, seeded(1, 3, 64, 64), layers="norm", reshape="grid")
    with pytest.raises(EngineError, match=r"expected \(B, tokens, C\)"):
        compute_cams(swin, seeded(1, 3, 64, 64), layers="permute", reshape="tokens")
    with pytest.raises(EngineError, match="square grid"):
        tokens_to_grid(torch.zeros(1, 7, 4))
    assert tokens_to_grid(torch.zeros(2, 17, 4)).shape == (2, 4, 4, 4)  # class token dropped
