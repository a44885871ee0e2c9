"""CAM method names: one spelling rule for the settings and the engine's registry."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pytest_camcheck.cam.methods import METHODS, MethodInput, get_method, register_method
from pytest_camcheck.cam.names import find_method, method_key, unknown_method_message
from pytest_camcheck.errors import ConfigError
from pytest_camcheck.settings import BUILTIN_METHODS, Settings, settings_from

# spelling -> the registered method it names (None: refused)
SPELLINGS: list[tuple[str, str | None]] = [
    ("gradcam", "gradcam"),
    ("GradCAM", "gradcam"),
    ("Grad-CAM", "gradcam"),
    ("grad_cam", "gradcam"),
    ("grad cam", "gradcam"),
    ("  GRADCAM  ", "gradcam"),
    ("Grad-CAM++", "gradcam++"),
    ("gradcam++", "gradcam++"),
    ("GradCAM++", "gradcam++"),
    ("GradCAMpp", "gradcam++"),
    ("gradcam_pp", "gradcam++"),
    ("gradcamplusplus", "gradcam++"),
    ("grad_cam_plus_plus", "gradcam++"),
    ("Grad-CAM plus plus", "gradcam++"),
    ("Score-CAM", "scorecam"),
    ("scorecam", "scorecam"),
    ("layer_cam", "layercam"),
    ("LayerCAM", "layercam"),
    ("HiResCAM", "hirescam"),
    ("hires-cam", "hirescam"),
    ("eigen-cam", "eigencam"),
    ("EIGENCAM", "eigencam"),
    ("X-Grad-CAM", "xgradcam"),
    ("xgrad_cam", "xgradcam"),
    ("CAM", "cam"),
    ("gradkam", None),
    ("grad-cam+", None),
    ("xgradcam++", None),
    ("scorecampp", None),
    ("pp", None),
    ("", None),
    ("-", None),
]


def resolve_method(value: str) -> Settings:
    return settings_from(lambda k: None, lambda k: value if k == "camcheck_method" else None)


@pytest.mark.parametrize(("spelling", "expected"), SPELLINGS)
def test_settings_and_engine_agree_on_every_spelling(spelling: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError) as from_engine:
            get_method(spelling)
        if spelling.strip():  # an empty ini value means "use the default"
            with pytest.raises(ConfigError) as from_settings:
                resolve_method(spelling)
            assert str(from_settings.value).startswith("camcheck_method: ")
            assert str(from_settings.value).endswith(str(from_engine.value))
        for name in BUILTIN_METHODS:
            assert name in str(from_engine.value)
        assert repr(spelling) in str(from_engine.value)
    else:
        assert get_method(spelling).name == expected
        assert resolve_method(spelling).method == expected
        assert Settings().with_marker({"method": spelling}).method == expected


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("Grad-CAM++", "gradcam++"),
        ("gradcam++", "gradcam++"),
        ("GradCAMpp", "gradcam++"),
        ("grad_cam_plus_plus", "gradcam++"),
        ("Grad-CAM", "gradcam"),
        ("X-Grad-CAM", "xgradcam"),
        ("Score CAM", "scorecam"),
        ("\tLayer_CAM\n", "layercam"),
        ("pp", "pp"),
        ("plusplus", "plusplus"),
        ("", ""),
    ],
)
def test_method_key(spelling: str, key: str) -> None:
    assert method_key(spelling) == key


def test_find_method_returns_the_registered_spelling() -> None:
    assert find_method("Abs-GradCAM", ["cam", "abs-gradcam"]) == "abs-gradcam"
    assert find_method("absgradcam", ["cam", "abs-gradcam"]) == "abs-gradcam"
    assert find_method("nope", ["cam"]) is None
    assert unknown_method_message("nope", ["cam", "gradcam"]) == (
        "unknown CAM method 'nope'; valid methods: cam, gradcam"
    )


def _zero(inp: MethodInput) -> torch.Tensor:
    return inp.activations.sum(1) * 0


def test_a_registered_method_is_found_by_any_spelling_in_both() -> None:
    method = register_method("Abs-GradCAM", _zero, needs_gradients=False)
    try:
        assert method.name == "abs-gradcam"  # stored as registered, lower-cased
        for spelling in ("abs-gradcam", "Abs_GradCAM", "absgradcam", "ABS GRADCAM"):
            assert get_method(spelling) is method
            assert resolve_method(spelling).method == "abs-gradcam"
        with pytest.raises(ConfigError, match=r"valid methods: .*abs-gradcam"):
            resolve_method("abs-gradkam")
    finally:
        METHODS.pop("abs-gradcam", None)


def test_register_refuses_a_name_that_spells_a_registered_one() -> None:
    with pytest.raises(ValueError, match=r"'grad-cam' \(as 'gradcam'\) is already registered"):
        register_method("Grad-CAM", _zero, needs_gradients=False)
    with pytest.raises(ValueError, match="'gradcam' is already registered"):
        register_method("gradcam", _zero, needs_gradients=False)
    with pytest.raises(ValueError, match="needs a name"):
        register_method(" - ", _zero, needs_gradients=False)
    assert get_method("gradcam").fn is not _zero


def test_register_with_replace_replaces_the_method_of_the_same_key() -> None:
    original = METHODS["scorecam"]
    try:
        method = register_method("score_cam", _zero, needs_gradients=False, replace=True)
        assert "scorecam" not in METHODS
        assert get_method("Score-CAM") is method
        assert resolve_method("scorecam").method == "score_cam"
    finally:
        METHODS.pop("score_cam", None)
        METHODS["scorecam"] = original
        # the registry's order: the built-ins first, as the settings' sync test expects
        for name in [*BUILTIN_METHODS, *(m for m in list(METHODS) if m not in BUILTIN_METHODS)]:
            METHODS[name] = METHODS.pop(name)
    assert tuple(METHODS)[: len(BUILTIN_METHODS)] == BUILTIN_METHODS
    assert get_method("Score-CAM") is original


def test_names_and_settings_do_not_import_torch() -> None:
    code = (
        "import sys, pytest_camcheck.settings, pytest_camcheck.cam.names\n"
        "print('torch' in sys.modules, 'pytest_camcheck.cam.engine' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["False", "False"]
