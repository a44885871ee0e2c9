"""The tool's reason to exist, through the plugin: at default thresholds a clean classifier
passes and one that learnt a class-correlated watermark fails, while both are accurate.

Also checks configuration from pyproject.toml, as users write it.
"""

from __future__ import annotations

import textwrap

import pytest

TESTS = """
from pytest_camcheck import assert_pass_rate


def test_accurate(camcheck):
    cases = list(camcheck.cases())
    accuracy = sum(c.prediction == c.label for c in cases) / len(cases)
    assert accuracy >= 0.9, accuracy


def test_pointing_game(camcheck):
    assert_pass_rate(camcheck.pointing_game(region="object"), min_rate=0.8)


def test_energy_on_object(camcheck):
    assert_pass_rate(camcheck.energy_in_region(region="object"), min_rate=0.8)
"""


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory):
    from pytest_camcheck.demo.synthetic import write_dataset

    root = tmp_path_factory.mktemp("demo")
    write_dataset(root / "data", n_per_class=20, seed=31337, watermark=True)
    return root / "data"


def _project(pytester: pytest.Pytester, data, model: str) -> None:
    (pytester.path / "data").symlink_to(data, target_is_directory=True)
    pytester.makepyprojecttoml(
        textwrap.dedent(
            f"""
            [tool.pytest.ini_options]
            camcheck_model = "pytest_camcheck.demo.models:{model}_model"
            camcheck_dataset = "data"
            camcheck_annotations = "data/annotations.csv"
            camcheck_transform = "pytest_camcheck.demo.models:transform"
            camcheck_device = "cpu"
            """
        )
    )
    pytester.makepyfile(test_demo=TESTS)


def test_clean_model_passes_at_default_thresholds(pytester, demo_data) -> None:
    _project(pytester, demo_data, "clean")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["camcheck: model pytest_camcheck.demo.models:clean_model*"])
    result.assert_outcomes(passed=3)


def test_watermark_model_is_accurate_but_caught(pytester, demo_data) -> None:
    _project(pytester, demo_data, "watermark")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*pointing_game[[]object, tol=0[]] @ features: lower 95% bound*< required 80.0%*",
            "*energy_in_region[[]object, min=0.5[]] @ features: lower 95% bound*",
        ]
    )
