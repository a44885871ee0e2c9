"""Settings resolution: precedence, parsing and the errors users see."""

from __future__ import annotations

import pytest

from pytest_camcheck.errors import ConfigError
from pytest_camcheck.settings import BUILTIN_METHODS, OPTIONS, Settings, settings_from


def resolve(cli: dict | None = None, ini: dict | None = None) -> Settings:
    cli = cli or {}
    ini = ini or {}
    return settings_from(lambda k: cli.get(k), lambda k: ini.get(k))


def test_defaults() -> None:
    s = resolve()
    assert s == Settings()
    assert (s.method, s.device, s.target, s.batch_size, s.min_energy) == (
        "gradcam",
        "auto",
        "label",
        32,
        0.5,
    )


def test_cli_wins_over_ini_and_ini_over_default() -> None:
    s = resolve(
        cli={"camcheck_method": "layercam"},
        ini={"camcheck_method": "hirescam", "camcheck_batch_size": "8", "camcheck_layer": "a, b"},
    )
    assert s.method == "layercam"
    assert s.batch_size == 8
    assert s.layer == ("a", "b")


def test_flags_from_ini_and_cli() -> None:
    assert resolve(ini={"camcheck_amp": True}).amp is True
    assert resolve(cli={"camcheck_amp": True}, ini={"camcheck_amp": False}).amp is True
    assert resolve(ini={"camcheck_trust_weights": "yes"}).trust_weights is True


def test_marker_wins_and_is_validated() -> None:
    s = resolve(cli={"camcheck_method": "layercam"})
    m = s.with_marker({"method": "CAM", "min_energy": 0.8, "layer": "layer3"})
    assert (m.method, m.min_energy, m.layer) == ("cam", 0.8, ("layer3",))
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) weights; valid: layer"):
        s.with_marker({"weights": "x.pt"})
    with pytest.raises(ConfigError, match=r"min_energy=...\): expected a number in \[0, 1\]"):
        s.with_marker({"min_energy": 2})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("camcheck_method", "gradkam", "unknown CAM method 'gradkam'; valid methods: cam, gradcam"),
        ("camcheck_device", "gpu", "expected one of auto, cpu, cuda, cuda:N, got 'gpu'"),
        ("camcheck_batch_size", "0", "expected an integer >= 1, got 0"),
        ("camcheck_batch_size", "many", "expected an integer >= 1, got 'many'"),
        ("camcheck_min_energy", "1.5", "expected a number in [0, 1], got 1.5"),
        ("camcheck_peak_tolerance", "-1", "expected a number >= 0, got -1"),
        (
            "camcheck_target",
            "-3",
            "expected one of label, predicted, a class index >= 0 (e.g. 285) or a class name",
        ),
        ("camcheck_model_kwargs", "{num_classes: 2}", "expected a JSON object"),
        ("camcheck_amp", "maybe", "expected a boolean (true/false), got 'maybe'"),
    ],
)
def test_bad_values_name_the_key_and_the_valid_values(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(ini={key: value})
    assert str(info.value).startswith(key)
    assert message in str(info.value)
    cli_name = "--" + key.replace("_", "-")
    with pytest.raises(ConfigError, match="^" + cli_name):
        resolve(cli={key: value})


def test_builtin_method_names_match_the_engine_registry() -> None:
    from pytest_camcheck.cam.methods import METHODS

    assert tuple(METHODS)[: len(BUILTIN_METHODS)] == BUILTIN_METHODS


def test_every_option_has_help_and_a_cli_flag() -> None:
    for opt in OPTIONS:
        assert opt.help and opt.cli.startswith("--camcheck-") and opt.ini.startswith("camcheck_")
