"""Class mapping: the dataset's classes -> the model's output indices (``camcheck_classes``),
targets by name or index, and the warning when labels and predictions disagree."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_camcheck.classes import (
    agreement_warning,
    build_class_map,
    model_categories,
    name_key,
    parse_classes,
    resolve_target,
)
from pytest_camcheck.errors import ConfigError
from pytest_camcheck.settings import Settings, settings_from

IMAGENET_LIKE = ["tench", "goldfish", "tabby, tabby cat", "Egyptian cat", "cup", "crane", "crane"]


def resolve(**ini: str) -> Settings:
    return settings_from(lambda k: None, lambda k: ini.get(k))


# ------------------------------------------------------------------------------------------
# the setting


def test_the_setting_takes_json_auto_or_a_path() -> None:
    assert resolve(camcheck_classes='{"cat": 285, "cup": 968}').classes == {"cat": 285, "cup": 968}
    assert resolve(camcheck_classes="AUTO").classes == "auto"
    assert resolve(camcheck_classes="imagenet_classes.txt").classes == "imagenet_classes.txt"
    assert resolve().classes is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"cat": 285', "expected a JSON object such as"),
        ('{"cat": -1}', "class 'cat' maps to -1; each class needs a model output index >= 0"),
        ('{"cat": "285"}', "class 'cat' maps to '285'"),
        ('{"cat": true}', "class 'cat' maps to True"),
        ("{}", "the mapping is empty"),
    ],
)
def test_bad_json_names_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(camcheck_classes=value)
    assert str(info.value).startswith("camcheck_classes: ")
    assert message in str(info.value)


def test_targets_take_label_predicted_an_index_or_a_name() -> None:
    assert resolve(camcheck_target="Predicted").target == "predicted"
    assert resolve(camcheck_target="285").target == 285
    assert resolve(camcheck_target="tabby cat").target == "tabby cat"
    assert Settings().with_marker({"target": 7}).target == 7
    with pytest.raises(ConfigError, match="a class index >= 0"):
        resolve(camcheck_target="1.5")


def test_names_match_ignoring_case_and_separators() -> None:
    assert name_key("Egyptian_cat") == name_key("egyptian  cat") == name_key("Egyptian-Cat")
    assert parse_classes(None) is None and parse_classes("  ") is None


# ------------------------------------------------------------------------------------------
# building the map


def test_a_json_mapping_maps_by_class_name() -> None:
    cmap = build_class_map({"Cat": 285, "cup": 968}, ["cat", "cup"])
    assert cmap is not None
    assert cmap.to_model == {0: 285, 1: 968}
    assert cmap.model_index(1) == 968
    assert cmap.output_name(285) == "cat" and cmap.output_name(3) is None
    assert cmap.describe() == "cat -> 285, cup -> 968"


def test_a_json_mapping_missing_a_class_lists_it_and_the_unused_names() -> None:
    with pytest.raises(ConfigError) as info:
        build_class_map({"cat": 285, "mug": 504}, ["cat", "cup", "dog"])
    text = str(info.value)
    assert "2 of 3 dataset classes are not in the JSON mapping: 'cup', 'dog'" in text
    assert "the mapping names 'mug', which no class is" in text


@pytest.mark.parametrize("form", ["lines", "json list", "json object"])
def test_a_file_of_category_names(tmp_path: Path, form: str) -> None:
    path = tmp_path / "classes.txt"
    if form == "lines":
        path.write_text("\n".join(IMAGENET_LIKE[:5]) + "\n\n")
    elif form == "json list":
        path.write_text(json.dumps(IMAGENET_LIKE[:5]))
    else:
        path.write_text(json.dumps({"tabby": 2, "cup": 4}))
    cmap = build_class_map("classes.txt", ["Tabby", "cup"], rootdir=tmp_path)
    assert cmap is not None and cmap.to_model == {0: 2, 1: 4}
    assert cmap.source == "camcheck_classes (classes.txt)"


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a JSON object, 'auto', nor an existing file"):
        build_class_map("nope.txt", ["cat"], rootdir=tmp_path)


def test_auto_matches_synonyms_and_lists_what_it_cannot_match() -> None:
    model = SimpleNamespace(categories=IMAGENET_LIKE)
    cmap = build_class_map("auto", ["tabby cat", "Egyptian_cat", "cup"], model)
    assert cmap is not None and cmap.to_model == {0: 2, 1: 3, 2: 4}
    assert cmap.model_names[0] == "tench"
    with pytest.raises(ConfigError) as info:
        build_class_map("auto", ["cat", "cup", "crane", "dgo"], model)
    text = str(info.value)
    assert "2 of 4 dataset classes match no category name of the model: 'cat'" in text
    assert "'dgo'" in text
    assert "ambiguous names, matching several outputs: 'crane' (5 'crane', 6 'crane')" in text
    assert 'give the mapping as JSON, e.g. camcheck_classes = {"cat": 285}' in text


def test_auto_without_names_and_a_dataset_without_classes_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"the model \(SimpleNamespace\) has no category names"):
        build_class_map("auto", ["cat"], SimpleNamespace())
    with pytest.raises(ConfigError, match="the dataset has no class names"):
        build_class_map({"cat": 1}, None)


def test_an_index_beyond_the_models_outputs_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"out of range for a model with 10 outputs: 'cat' -> 285"
    ):
        build_class_map({"cat": 285}, ["cat"], width=10)


# ------------------------------------------------------------------------------------------
# the model's own names: torchvision, timm, Hugging Face


def test_torchvision_weights_categories_come_with_the_cached_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    import torchvision

    from pytest_camcheck.sources import cached_weights_path, load_torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1
    path = cached_weights_path(weights)
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    model = load_torchvision("squeezenet1_1", "IMAGENET1K_V1", {})
    categories = model_categories(model)
    assert categories is not None and len(categories) == 1000
    cmap = build_class_map("auto", ["Egyptian cat", "tench"], model)
    assert cmap is not None and cmap.to_model == {0: 285, 1: 0}


def test_timm_models_name_their_imagenet_outputs() -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_heads=2, embed_dim=16
    )
    names = model_categories(model)
    assert names is not None and len(names) == 1000
    assert names[281].startswith("tabby")  # timm's descriptions, e.g. "tabby, tabby cat"
    cmap = build_class_map("auto", ["tabby cat", "Egyptian cat"], model)
    assert cmap is not None and cmap.to_model == {0: 281, 1: 285}


def test_hugging_face_models_name_their_outputs_by_id2label() -> None:
    pytest.importorskip("transformers")
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label={0: "tabby, tabby cat", 1: "cup"},
        label2id={"tabby, tabby cat": 0, "cup": 1},
    )
    model = ViTForImageClassification(config)
    assert model_categories(model) == ["tabby, tabby cat", "cup"]
    cmap = build_class_map("auto", ["cup", "tabby"], model)
    assert cmap is not None and cmap.to_model == {0: 1, 1: 0}
    unnamed = ViTForImageClassification(ViTConfig(**{**config.to_dict(), "id2label": None}))
    assert model_categories(unnamed) is None  # LABEL_0, LABEL_1 placeholders name nothing


# ------------------------------------------------------------------------------------------
# targets


def test_targets_by_index_and_by_name() -> None:
    model = SimpleNamespace(categories=IMAGENET_LIKE)
    cmap = build_class_map({"kitty": 3}, ["kitty"], model)
    assert resolve_target(4, None, width=10) == 4
    assert resolve_target("kitty", cmap, model) == 3  # the dataset's mapped class first
    assert resolve_target("goldfish", cmap, model) == 1  # then the model's names
    assert resolve_target("Tabby Cat", None, model) == 2
    with pytest.raises(ConfigError, match="out of range for a model with 10 outputs"):
        resolve_target(10, None, width=10)
    with pytest.raises(ConfigError, match=r"names several model outputs \(\[5, 6\]\)"):
        resolve_target("crane", None, model)
    with pytest.raises(ConfigError, match="did you mean 'goldfish'"):
        resolve_target("goldfsh", cmap, model)
    with pytest.raises(ConfigError, match="the model has no category names"):
        resolve_target("cat", None, SimpleNamespace())


# ------------------------------------------------------------------------------------------
# the agreement warning


def test_agreement_below_chance_warns() -> None:
    pairs = [(0, 500), (1, 500), (2, 7), (3, 9)] * 3  # 12 samples of 4 classes, none agree
    text = agreement_warning(pairs)
    assert text is not None
    assert text.startswith(
        "labels and predictions agree on 0 of 12 samples: is camcheck_classes right?"
    )
    assert "chance is 3.0 for 4 classes" in text and "map them with camcheck_classes" in text
    assert "the mapping may send the classes" in (agreement_warning(pairs, mapped=True) or "")


def test_agreement_at_chance_or_with_one_class_is_quiet() -> None:
    at_chance = [(0, 0), (1, 0), (0, 1), (1, 1)]  # 2 of 4 agree, chance is 2
    assert agreement_warning(at_chance) is None
    assert agreement_warning([(0, 1), (0, 2)]) is None  # one class: no chance level
    assert agreement_warning([]) is None
    assert agreement_warning([(0, 0), (1, 0), (0, 1), (1, 0)]) is not None  # 1 of 4 < 2
