"""The sanity, faithfulness and shortcut checks through the plugin, as users write them: gated
by ``assert_pass_rate``, each drawn in the report with its plot (the JSON sidecar carries the
plot data the check computed)."""

from __future__ import annotations

import json
import textwrap

import pytest

CONFTEST = """
import torch

from pytest_camcheck.cam.methods import METHODS, register_method


def _bump(inp):
    # a map that ignores the model: the same bump for every image
    b, _, h, w = inp.activations.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    bump = torch.exp(-((yy - h / 3) ** 2 + (xx - w / 2) ** 2) / (0.1 * h * w))
    return bump.expand(b, h, w).float().clone()


def pytest_configure(config):
    register_method("fixedbump", _bump, needs_gradients=False, replace=True)


def pytest_unconfigure(config):
    METHODS.pop("fixedbump", None)
"""

TESTS = """
import pytest

from pytest_camcheck import assert_pass_rate


def test_randomization(camcheck):
    assert_pass_rate(camcheck.randomization(max_similarity=0.5), min_rate=0.8, bound="rate")


@pytest.mark.camcheck(method="fixedbump")
def test_randomization_of_a_map_that_ignores_the_model(camcheck):
    assert_pass_rate(camcheck.randomization(max_similarity=0.5), min_rate=0.8, bound="rate")


def test_deletion(camcheck):
    assert_pass_rate(camcheck.deletion(steps=10), min_rate=0.9, bound="rate")


def test_occlusion(camcheck):
    assert_pass_rate(camcheck.occlusion("object"), min_rate=0.9, bound="rate")


def test_spatial_bias(camcheck):
    result = camcheck.spatial_bias(max_share=0.7, min_samples=2)
    assert_pass_rate(result, min_rate=0.9, bound="rate")
"""


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory: pytest.TempPathFactory):
    from pytest_camcheck.demo.synthetic import write_dataset

    root = tmp_path_factory.mktemp("sanity")
    write_dataset(root / "data", n_per_class=3, seed=2024, watermark=False)
    return root / "data"


def test_checks_gate_the_run_and_the_report_draws_them(pytester, clean_data) -> None:
    (pytester.path / "data").symlink_to(clean_data, target_is_directory=True)
    pytester.makeini(
        textwrap.dedent(
            """
            [pytest]
            camcheck_model = pytest_camcheck.demo.models:clean_model
            camcheck_dataset = data
            camcheck_annotations = data/annotations.csv
            camcheck_transform = pytest_camcheck.demo.models:transform
            camcheck_device = cpu
            camcheck_batch_size = 6
            camcheck_report = report.html
            """
        )
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_planted_sanity_checks=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_randomization_of_a_map_that_ignores_the_model*",
            "*randomization[[]max_similarity=0.5[]] @ features (fixedbump): pass rate 0.0%*",
        ]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    gates = {g["name"].split("[")[0]: g for g in report["gates"]}
    kinds = {g["extra"].get("kind") for g in report["gates"]}
    assert kinds == {"randomization", "deletion", "occlusion", "spatial_bias"}
    bump = next(g for g in report["gates"] if "(fixedbump)" in g["name"])
    assert bump["outcome"] == "failed" and bump["passed"] == 0
    spearman = [step["mean"] for step in bump["extra"]["spearman"]]
    assert spearman == pytest.approx([1.0] * len(spearman))  # flat along the cascade
    assert gates["deletion"]["count"] == 3  # the circles; the squares cannot be judged
    assert set(gates["spatial_bias"]["extra"]["classes"]) == {"circle", "square"}
    html = (pytester.path / "report.html").read_text()
    for caption in (
        "similarity along the randomisation cascade",
        "deletion curves: map order vs random order",
        "probability drop: region vs background patches",
        "mean map per class, hot spot outlined",
    ):
        assert caption in html
