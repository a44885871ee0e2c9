"""Choosing layers: automatically on the zoo, by dotted name, by module, several at once.

ViT and Swin are covered in test_engine_transformers.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck.cam import compute_cams
from pytest_camcheck.errors import EngineError, LayerNotFoundError

# model -> (input side, expected automatic layer)
ZOO_AUTO = {
    "resnet18": (64, "layer4"),
    "vgg16": (64, "features"),
    "densenet121": (64, "features"),
    "mobilenet_v3_small": (64, "features"),
    "efficientnet_b0": (64, "features"),
    "convnext_tiny": (64, "features"),
    "regnet_y_400mf": (64, "trunk_output"),
}


def image(side: int, batch: int = 1, seed: int = 0) -> Tensor:
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(ZOO_AUTO))
def test_auto_layer_on_the_zoo(name: str, tv_zoo) -> None:
    side, expected = ZOO_AUTO[name]
    model = tv_zoo(name)
    result = compute_cams(model, image(side))
    assert result.auto_layer is True
    assert result.layers == (expected,)
    raw = result.raw[expected]
    assert raw.dim() == 3 and raw.shape[0] == 1 and raw.shape[1] * raw.shape[2] > 1
    assert result.maps[expected].shape == (1, side, side)
    assert torch.isfinite(raw).all()


def test_explicit_layers_are_not_auto(tv_zoo) -> None:
    result = compute_cams(tv_zoo("resnet18"), image(64), layers="layer4")
    assert result.auto_layer is False
    assert result.layers == ("layer4",)


def test_dotted_names(tv_zoo) -> None:
    resnet = tv_zoo("resnet18")
    result = compute_cams(resnet, image(64), layers="layer4.1.bn2")
    assert result.layers == ("layer4.1.bn2",)
    assert result.raw["layer4.1.bn2"].shape == (1, 2, 2)
    vgg = tv_zoo("vgg16")
    result = compute_cams(vgg, image(64), layers="features.29")  # the last ReLU, before the pool
    assert result.raw["features.29"].shape == (1, 4, 4)
    assert torch.isfinite(result.raw["features.29"]).all()


def test_module_objects_equal_names(tv_zoo) -> None:
    model = tv_zoo("resnet18")
    x = image(64)
    by_name = compute_cams(model, x, layers=["layer3", "layer4"])
    by_module = compute_cams(model, x, layers=[model.layer3, model.layer4])
    assert by_module.layers == ("layer3", "layer4")
    for layer in by_name.layers:
        torch.testing.assert_close(by_module.raw[layer], by_name.raw[layer])
    single = compute_cams(model, x, layers=model.layer4)
    torch.testing.assert_close(single.raw["layer4"], by_name.raw["layer4"])


def test_several_layers_from_one_forward_and_one_backward(tv_zoo, monkeypatch) -> None:
    model = tv_zoo("resnet18")
    x = image(64, batch=2)
    layers = ["layer2", "layer4", "layer3.0.conv1", "layer4.1.bn2"]
    singles = {name: compute_cams(model, x, layers=name).raw[name] for name in layers}

    forwards: list[int] = []
    grads: list[int] = []
    backwards: list[int] = []
    real_grad, real_backward = torch.autograd.grad, torch.autograd.backward

    def counting_grad(*args, **kwargs):
        grads.append(1)
        return real_grad(*args, **kwargs)

    def counting_backward(*args, **kwargs):
        backwards.append(1)
        return real_backward(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    monkeypatch.setattr(torch.autograd, "backward", counting_backward)
    handle = model.register_forward_pre_hook(lambda module, inputs: forwards.append(1))
    try:
        result = compute_cams(model, x, layers=layers)
    finally:
        handle.remove()
    assert result.layers == tuple(layers)
    assert len(forwards) == 1, f"{len(forwards)} forward passes"
    assert len(grads) + len(backwards) == 1, f"{len(grads)} grad + {len(backwards)} backward"
    for name in layers:
        torch.testing.assert_close(result.raw[name], singles[name])


def test_duplicate_layers_are_merged(tv_zoo) -> None:
    model = tv_zoo("resnet18")
    result = compute_cams(model, image(64), layers=["layer4", model.layer4, "layer4"])
    assert result.layers == ("layer4",)


def test_unknown_name_lists_close_candidates(tv_zoo) -> None:
    model = tv_zoo("resnet18")
    with pytest.raises(LayerNotFoundError) as info:
        compute_cams(model, image(64), layers="layer5")
    message = str(info.value)
    assert "'layer5'" in message and "layer4" in message
    assert isinstance(info.value, EngineError) and isinstance(info.value, LookupError)


def test_unknown_child_lists_the_parent_children(tv_zoo) -> None:
    model = tv_zoo("resnet18")
    with pytest.raises(LayerNotFoundError, match=r"layer4\.0.*layer4\.1|layer4\.1.*layer4\.0"):
        compute_cams(model, image(64), layers="layer4.7")


def test_foreign_module_and_the_model_itself(tv_zoo) -> None:
    model = tv_zoo("resnet18")
    with pytest.raises(LayerNotFoundError, match="not part of"):
        compute_cams(model, image(64), layers=nn.Conv2d(3, 3, 1))
    with pytest.raises(EngineError, match="model itself"):
        compute_cams(model, image(64), layers=model)
    with pytest.raises(EngineError, match="empty"):
        compute_cams(model, image(64), layers=[])
    with pytest.raises(EngineError, match=r"dotted module name or an nn\.Module"):
        compute_cams(model, image(64), layers=[4])


class Unused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.spare = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_layer_that_does_not_run(assert_no_hooks) -> None:
    model = Unused().eval()
    with pytest.raises(EngineError, match="did not run"):
        compute_cams(model, image(8), layers="spare")
    assert_no_hooks(model)


def test_layer_without_a_spatial_grid(tv_zoo) -> None:
    with pytest.raises(EngineError, match=r"\(B, C, h, w\)"):
        compute_cams(tv_zoo("resnet18"), image(64), layers="fc")


def test_auto_layer_without_any_spatial_layer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    with pytest.raises(EngineError, match="could not find a layer"):
        compute_cams(model, image(4))
