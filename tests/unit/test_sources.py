"""Model sources (torchvision weights from the cache, timm, Hugging Face folders), their layers
and token reshapes, and the layer listing of ``--camcheck-layers``. Every model is built from a
tiny random config; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_camcheck import compute_cams
from pytest_camcheck.errors import ConfigError
from pytest_camcheck.layers_cli import candidate_layers, format_layers
from pytest_camcheck.loading import load_model
from pytest_camcheck.sources import cached_weights_path, input_defaults, is_weights_name

VIT = {"img_size": 32, "patch_size": 8, "depth": 2, "num_heads": 2, "embed_dim": 16}


@pytest.fixture(scope="module")
def timm():
    return pytest.importorskip("timm")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ViT saved as Hugging Face saves it, with its image processor."""
    pytest.importorskip("transformers")
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    from transformers.utils import logging as hf_logging

    folder = tmp_path_factory.mktemp("hf") / "tiny-vit"
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    torch.manual_seed(0)
    hf_logging.disable_progress_bar()
    try:
        ViTForImageClassification(config).save_pretrained(folder)
    finally:
        hf_logging.enable_progress_bar()
    ViTImageProcessor(
        image_mean=[0.5] * 3, image_std=[0.5] * 3, size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder


def images(n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------------
# torchvision weights by name, from the local cache only


def test_weights_names_are_told_from_files(tmp_path: Path) -> None:
    assert is_weights_name("IMAGENET1K_V1") and is_weights_name("DEFAULT")
    assert is_weights_name("ResNet18_Weights.IMAGENET1K_V1")
    assert not is_weights_name("weights/best.pt") and not is_weights_name(None)
    (tmp_path / "BEST").write_bytes(b"")
    assert not is_weights_name("BEST", tmp_path)  # an existing file stays a file


def test_cached_torchvision_weights_load_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    path = cached_weights_path(weights)
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = load_model("torchvision:resnet18", weights="ResNet18_Weights.DEFAULT")
    assert torch.equal(model.fc.weight, reference.fc.weight)
    assert len(model.categories) == 1000 and model.categories[0] == "tench"
    assert not model.training


def test_torchvision_weights_not_in_the_cache_are_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_model("torchvision:resnet18", weights="IMAGENET1K_V1")
    text = str(info.value)
    assert "ResNet18_Weights.IMAGENET1K_V1 are not in the local torch cache" in text
    assert str(tmp_path / "hub" / "checkpoints") in text and "never downloads" in text
    with pytest.raises(ConfigError, match="has no weights 'IMAGENET9K'; it has IMAGENET1K_V1"):
        load_model("torchvision:resnet18", weights="IMAGENET9K")
    with pytest.raises(ConfigError, match="are not weights of torchvision:resnet18"):
        load_model("torchvision:resnet18", weights="ResNet50_Weights.IMAGENET1K_V1")


# ------------------------------------------------------------------------------------------
# timm


def test_timm_models_are_built_without_weights_and_load_a_checkpoint(timm, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = load_model("timm:vit_tiny_patch16_224", kwargs={**VIT, "num_classes": 3})
    assert type(model).__module__.startswith("timm.") and not model.training
    torch.manual_seed(1)
    other = timm.create_model("vit_tiny_patch16_224", **VIT, num_classes=3)
    save_file(other.state_dict(), str(tmp_path / "model.safetensors"))
    loaded = load_model(
        "timm:vit_tiny_patch16_224",
        kwargs={**VIT, "num_classes": 3},
        weights="model.safetensors",
        rootdir=tmp_path,
    )
    assert torch.equal(loaded.head.weight, other.head.weight)


def test_timm_errors_say_what_to_do(timm) -> None:
    with pytest.raises(ConfigError, match="timm has no model 'resnet1'; did you mean resnet18"):
        load_model("timm:resnet1")
    with pytest.raises(ConfigError, match="pretrained=true would download weights"):
        load_model("timm:resnet18", kwargs={"pretrained": True})
    with pytest.raises(ConfigError, match="camcheck_model_kwargs: timm:resnet18"):
        load_model("timm:resnet18", kwargs={"no_such_argument": 1})


def test_timm_tells_its_normalisation_and_size(timm) -> None:
    found = input_defaults("timm:vit_tiny_patch16_224", {"img_size": 48})
    assert found is not None
    assert (found.mean, found.std, found.size) == ((0.5,) * 3, (0.5,) * 3, 48)


@pytest.mark.parametrize(
    ("name", "kwargs", "size", "layer", "grid"),
    [
        ("vit_tiny_patch16_224", {**VIT, "num_classes": 3}, 32, "blocks.1.norm1", (4, 4)),
        (
            "vit_tiny_patch16_224",
            {**VIT, "num_classes": 3, "reg_tokens": 4},
            32,
            "blocks.1.norm1",
            (4, 4),
        ),
        (
            "swin_tiny_patch4_window7_224",
            {
                "img_size": 32,
                "embed_dim": 16,
                "depths": (1, 1),
                "num_heads": (1, 1),
                "window_size": 2,
                "num_classes": 3,
            },
            32,
            "layers.1",
            (4, 4),
        ),
        ("convnext_atto", {"num_classes": 3}, 64, "stages.3", (2, 2)),
    ],
    ids=["vit", "vit-registers", "swin", "convnext"],
)
def test_timm_layers_are_detected_and_reshaped(
    timm, name: str, kwargs: dict, size: int, layer: str, grid: tuple[int, int]
) -> None:
    model = load_model(f"timm:{name}", kwargs=kwargs)
    result = compute_cams(model, images(2, size), targets=[0, 1])
    assert result.layers == (layer,)
    assert tuple(result.raw[layer].shape) == (2, *grid)
    assert tuple(result.maps[layer].shape) == (2, size, size)
    assert bool(torch.isfinite(result.raw[layer]).all())


# ------------------------------------------------------------------------------------------
# Hugging Face


def test_a_hugging_face_folder_loads_offline_with_its_processor(hf_folder: Path) -> None:
    model = load_model(f"hf:{hf_folder.name}", rootdir=hf_folder.parent)
    assert type(model).__name__ == "ViTForImageClassification" and not model.training
    found = input_defaults(f"hf:{hf_folder.name}", rootdir=hf_folder.parent)
    assert found is not None and (found.mean, found.std, found.size) == ((0.5,) * 3, (0.5,) * 3, 32)
    result = compute_cams(model, images(), targets=[0, 2])
    assert result.layers == ("vit.layers.1.layernorm_before",)
    assert tuple(result.raw[result.layers[0]].shape) == (2, 4, 4)  # 16 patches, CLS dropped
    assert tuple(result.logits.shape) == (2, 3)  # the output's logits


def test_a_missing_hugging_face_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hf:nowhere needs a local folder with config\.json"):
        load_model("hf:nowhere", rootdir=tmp_path)


# ------------------------------------------------------------------------------------------
# --camcheck-layers


def test_candidate_layers_of_a_cnn(tv_zoo) -> None:
    layers = candidate_layers(tv_zoo("resnet18"), (64, 64))
    by_name = {info.name: info for info in layers}
    assert [info.name for info in layers if info.auto] == ["layer4"]
    assert by_name["layer4"].grid == (2, 2) and by_name["layer4"].cell == (32.0, 32.0)
    assert by_name["layer3"].shape == (1, 256, 4, 4)
    assert "avgpool" not in by_name and "fc" not in by_name
    lines = format_layers(layers, "title")
    assert lines[0] == "title"
    assert any(
        line.split()[:2] == ["layer4", "Sequential"] and "<- auto-detected" in line
        for line in lines
    )
    assert len(format_layers(layers * 5)) < len(layers * 5)  # many: the deep ones are folded
    assert len(format_layers(layers * 5, verbose=True)) > len(layers * 5)


def test_candidate_layers_of_a_vision_transformer_show_its_token_grid(tv_zoo) -> None:
    model = tv_zoo("vit_b_16", image_size=32, num_classes=3)
    layers = candidate_layers(model, (32, 32))
    picked = [info for info in layers if info.auto]
    assert [info.name for info in picked] == ["encoder.layers.encoder_layer_11.ln_1"]
    assert picked[0].shape == (1, 5, 768) and picked[0].grid == (2, 2)
