"""Real-model plumbing through the plugin: class mapping, named targets, the agreement warning,
``--camcheck-layers``, and timm and Hugging Face models built from tiny random configs.

The toy "wide" model has ten outputs, like an ImageNet model has a thousand: output 7 answers
"red" (the red squares) and output 2 "green". The dataset's class folders sort to green = 0 and
red = 1, so without a mapping the maps explain outputs 0 and 1, which nothing drives.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

WIDE_MODEL = """
import torch
from torch import nn

NAMES = ["tench", "goldfish", "green", "white shark", "tiger shark", "hammerhead",
         "electric ray", "red", "stingray", "cock"]


class WideNet(nn.Module):
    def __init__(self, categories=True):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 10)
        with torch.no_grad():
            w = torch.zeros(2, 3, 1, 1)
            w[0, 1], w[0, 0] = 1.0, -1.0  # channel 0: green
            w[1, 0], w[1, 1] = 1.0, -1.0  # channel 1: red
            self.features[0].weight.copy_(w)
            self.features[0].bias.zero_()
            self.fc.weight.zero_()
            self.fc.bias.zero_()
            self.fc.weight[2, 0] = 10.0
            self.fc.weight[7, 1] = 10.0
        if categories:
            self.categories = list(NAMES)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def wide():
    return WideNet()


def anonymous():
    return WideNet(categories=False)


def plain(img):
    import numpy as np

    arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype="float32") / 255.0)
    return arr.permute(2, 0, 1).contiguous()
"""

MAPPED = {"red": 7, "green": 2}

PEAK_TESTS = """
from pytest_camcheck import assert_peak_in_box

MAPPED = {"red": 7, "green": 2}


def test_peak_on_object(camcheck_case):
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["object"])


def test_target_is_the_mapped_output(camcheck_case):
    assert camcheck_case.label == ["green", "red"].index(camcheck_case.class_name)
    assert camcheck_case.target == MAPPED[camcheck_case.class_name]
    assert camcheck_case.prediction_name == camcheck_case.class_name
"""


def _images(root: Path, n: int = 3, size: int = 32) -> list[tuple[str, str, tuple[int, ...]]]:
    from PIL import Image, ImageDraw

    rows = []
    for cls, colour in (("red", (255, 0, 0)), ("green", (0, 255, 0))):
        (root / "data" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = Image.new("RGB", (size, size), (0, 0, 0))
            side = size // 4
            x0, y0 = (7 * i + 3) % (size - side), (11 * i + 5) % (size - side)
            ImageDraw.Draw(img).rectangle([x0, y0, x0 + side - 1, y0 + side - 1], fill=colour)
            name = f"{cls}/{cls}_{i}.png"
            img.save(root / "data" / name)
            rows.append((name, cls, (x0, y0, x0 + side, y0 + side)))
    return rows


def _project(
    pytester: pytest.Pytester,
    ini: str,
    tests: str = PEAK_TESTS,
    labels: dict[str, str] | None = None,
    model_file: bool = True,
) -> Path:
    """Writes the red/green images, their CSV (label column from ``labels``), the models and
    an ini file with the given camcheck keys."""
    root = pytester.path
    rows = ["image,label,region,x0,y0,x1,y1"]
    for name, cls, (x0, y0, x1, y1) in _images(root):
        label = (labels or {}).get(cls, cls)
        rows.append(f"{name},{label},object,{x0},{y0},{x1},{y1}")
    (root / "data" / "annotations.csv").write_text("\n".join(rows) + "\n")
    if model_file:
        (root / "widemodel.py").write_text(WIDE_MODEL)
    pytester.makeini("[pytest]\ncamcheck_device = cpu\ncamcheck_num_workers = 0\n" + ini)
    pytester.makepyfile(test_cam=textwrap.dedent(tests))
    return root


BASE = """
camcheck_dataset = data
camcheck_annotations = data/annotations.csv
camcheck_transform = widemodel:plain
camcheck_batch_size = 4
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


# ------------------------------------------------------------------------------------------
# class mapping


def test_without_a_mapping_the_maps_explain_the_wrong_outputs_and_the_run_says_so(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester, "camcheck_model = widemodel:wide\ncamcheck_report = r.html\n" + BASE)
    result = _run(pytester, "-W", "ignore::pytest_camcheck.errors.CamcheckWarning")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 12 and not outcomes.get("passed")
    warning = "labels and predictions agree on 0 of 6 samples: is camcheck_classes right?"
    result.stdout.fnmatch_lines(["*camcheck warning*", f"camcheck: {warning}*"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert any(w.startswith(warning) for w in report["summary"]["warnings"])
    assert warning in (pytester.path / "r.html").read_text()


def test_a_json_mapping_sends_each_class_to_its_output(pytester: pytest.Pytester) -> None:
    ini = f"camcheck_model = widemodel:wide\ncamcheck_classes = {json.dumps(MAPPED)}\n" + BASE
    _project(pytester, ini + "camcheck_report = r.html\ncamcheck_report_all = true\n")
    result = _run(pytester, "-W", "error::pytest_camcheck.errors.CamcheckWarning")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["camcheck: classes red -> 7, green -> 2 (dataset class*"])
    assert "agree on" not in result.stdout.str()
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["summary"]["classes"] == "red -> 7, green -> 2"
    assert report["summary"]["warnings"] == []
    case = next(c for c in report["cases"] if c["case_id"] == "red/red_0")
    assert (case["label"], case["class_name"], case["target"]) == (1, "red", 7)
    (peak,) = [e for e in case["evidence"] if e["check"] == "peak_in_box"]
    # the layer keeps the input's resolution: one map cell is one pixel
    assert peak["details"]["map_cell_px"] == 1.0 and peak["details"]["map_grid"] == [32, 32]
    assert peak["details"]["random_peak_hit"] == pytest.approx(64 / 1024)  # an 8 x 8 square


@pytest.mark.parametrize("form", ["lines", "json list", "json object"])
def test_a_file_of_category_names_maps_by_name(pytester: pytest.Pytester, form: str) -> None:
    names = ["tench", "goldfish", "Green", "shark", "ray", "x", "y", "RED", "z", "w"]
    if form == "lines":
        text = "\n".join(names) + "\n"
    elif form == "json list":
        text = json.dumps(names)
    else:
        text = json.dumps(MAPPED)
    ini = "camcheck_model = widemodel:anonymous\ncamcheck_classes = cats.txt\n" + BASE
    _project(pytester, ini)
    (pytester.path / "cats.txt").write_text(text)
    _run(pytester).assert_outcomes(passed=12)


def test_auto_reads_the_models_category_names(pytester: pytest.Pytester) -> None:
    _project(pytester, "camcheck_model = widemodel:wide\ncamcheck_classes = auto\n" + BASE)
    _run(pytester).assert_outcomes(passed=12)


def test_auto_without_category_names_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _project(pytester, "camcheck_model = widemodel:anonymous\ncamcheck_classes = auto\n" + BASE)
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*camcheck_classes = auto: the model (WideNet) has no category*"])


def test_classes_that_match_no_category_are_listed(pytester: pytest.Pytester) -> None:
    ini = "camcheck_model = widemodel:anonymous\ncamcheck_classes = cats.txt\n" + BASE
    _project(pytester, ini)
    (pytester.path / "cats.txt").write_text("tench\ngoldfish\ngreen\n")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*1 of 2 dataset classes match no category name*'red'*"])


def test_annotation_labels_may_be_model_indices_with_a_mapping(pytester: pytest.Pytester) -> None:
    ini = f"camcheck_model = widemodel:wide\ncamcheck_classes = {json.dumps(MAPPED)}\n" + BASE
    _project(pytester, ini, labels={"red": "7", "green": "2"})
    _run(pytester).assert_outcomes(passed=12)


def test_model_index_labels_without_a_mapping_say_what_to_set(pytester: pytest.Pytester) -> None:
    _project(pytester, "camcheck_model = widemodel:wide\n" + BASE, labels={"red": "7"})
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*label 7 of image 'red/red_0.png' is out of range for 2 classes*camcheck_classes*"]
    )


# ------------------------------------------------------------------------------------------
# named and numbered targets

TARGET_TESTS = """
def test_target(camcheck_case):
    assert camcheck_case.target == {expected}
"""


@pytest.mark.parametrize(("target", "expected"), [("red", 7), ("Green", 2), ("7", 7)])
def test_the_target_may_name_a_class_or_an_output(
    pytester: pytest.Pytester, target: str, expected: int
) -> None:
    _project(
        pytester, "camcheck_model = widemodel:wide\n" + BASE, TARGET_TESTS.format(expected=expected)
    )
    _run(pytester, f"--camcheck-target={target}").assert_outcomes(passed=6)


def test_an_unknown_target_name_is_a_usage_error_with_suggestions(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester, "camcheck_model = widemodel:wide\n" + BASE, TARGET_TESTS.format(expected=0))
    result = _run(pytester, "--camcheck-target=redd")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*camcheck_target: 'redd' is not label, predicted*'red'*"])


# ------------------------------------------------------------------------------------------
# --camcheck-layers


def test_camcheck_layers_lists_the_candidates_and_exits(pytester: pytest.Pytester) -> None:
    _project(pytester, "camcheck_model = widemodel:wide\n" + BASE)
    result = _run(pytester, "--camcheck-layers")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "camcheck layers of widemodel:wide at 32x32 input (the first image of the dataset);"
            " auto-detection picks features:",
            "*layer*type*output*map*cell (px)*",
            "*features.0*Conv2d*2 x 32 x 32*32 x 32*1*",
            "*features.1*ReLU*2 x 32 x 32*",
            "*features *Sequential*2 x 32 x 32*32 x 32*1*<- auto-detected",
        ]
    )
    assert "pool" not in result.stdout.str()  # adaptive pooling is no candidate
    assert "passed" not in result.stdout.str() and "collected" not in result.stdout.str()


def test_camcheck_layers_with_a_bad_model_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _project(pytester, "camcheck_model = widemodel:missing\n" + BASE)
    result = _run(pytester, "--camcheck-layers")
    assert result.ret == 4
    result.stdout.fnmatch_lines(["ERROR: camcheck: camcheck_model 'widemodel:missing'*"])


# ------------------------------------------------------------------------------------------
# timm and Hugging Face models, from tiny random configs

SOURCE_TESTS = """
import torch


def test_maps(camcheck_case, camcheck_dataset):
    assert tuple(camcheck_case.map.shape) == (32, 32)
    assert camcheck_case.layer == {layer!r}
    assert camcheck_case.target == {targets}[camcheck_case.class_name]
    assert camcheck_dataset.transform.normalization == ({mean}, {std})
    assert tuple(camcheck_case.raw[camcheck_case.layer].shape) == (4, 4)  # 4 x 4 patches
    assert bool(torch.isfinite(camcheck_case.map).all())
"""


def test_a_timm_vision_transformer_through_the_plugin(pytester: pytest.Pytester) -> None:
    pytest.importorskip("timm")
    kwargs = {"img_size": 32, "patch_size": 8, "depth": 2, "num_heads": 2, "embed_dim": 16}
    ini = (
        "camcheck_model = timm:vit_tiny_patch16_224\n"
        f"camcheck_model_kwargs = {json.dumps({**kwargs, 'num_classes': 2})}\n"
        "camcheck_dataset = data\ncamcheck_annotations = data/annotations.csv\n"
    )
    tests = SOURCE_TESTS.format(
        layer="blocks.1.norm1",
        targets={"green": 0, "red": 1},
        mean=(0.5, 0.5, 0.5),  # timm's pretrained configuration, not ImageNet's
        std=(0.5, 0.5, 0.5),
    )
    _project(pytester, ini, tests)
    result = _run(pytester)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["camcheck: model timm:vit_tiny_patch16_224"])


def test_a_hugging_face_folder_through_the_plugin(pytester: pytest.Pytester) -> None:
    pytest.importorskip("transformers")
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    from transformers.utils import logging as hf_logging

    folder = pytester.path / "tiny-vit"
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        id2label={0: "red", 1: "green"},  # not the folders' order
        label2id={"red": 0, "green": 1},
    )
    torch.manual_seed(0)
    hf_logging.disable_progress_bar()
    try:
        ViTForImageClassification(config).save_pretrained(folder)
    finally:
        hf_logging.enable_progress_bar()
    processor = ViTImageProcessor(
        image_mean=[0.4, 0.4, 0.4], image_std=[0.2, 0.2, 0.2], size={"height": 32, "width": 32}
    )
    processor.save_pretrained(folder)
    ini = (
        "camcheck_model = hf:tiny-vit\ncamcheck_classes = auto\n"
        "camcheck_dataset = data\ncamcheck_annotations = data/annotations.csv\n"
    )
    tests = SOURCE_TESTS.format(
        layer="vit.layers.1.layernorm_before",
        targets={"red": 0, "green": 1},
        mean=(0.4, 0.4, 0.4),  # the processor's
        std=(0.2, 0.2, 0.2),
    )
    _project(pytester, ini, tests, model_file=False)
    _run(pytester).assert_outcomes(passed=6)
