"""End-to-end runs of the plugin through pytester: what a user meets."""

from __future__ import annotations

import pytest

PER_SAMPLE = """
from pytest_camcheck import assert_energy_in_region, assert_peak_in_box


def test_peak(camcheck_case):
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["object"])


def test_energy(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.6)
"""

GATE = """
from pytest_camcheck import assert_pass_rate


def test_gate(camcheck):
    assert_pass_rate(camcheck.pointing_game(region="object"), min_rate=0.8, bound="rate")
"""


def test_one_item_per_sample_named_by_id(camcheck_project):
    project = camcheck_project(tests=PER_SAMPLE)
    result = project.run("-v")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(
        ["*test_peak?red/red_00? PASSED*", "*test_energy?green/green_02? PASSED*"]
    )


def test_watermark_model_fails_with_numbers(camcheck_project):
    project = camcheck_project(tests=PER_SAMPLE, watermark=True, model="toymodel:sneaky")
    result = project.run()
    # The sneaky model explains "red" by the blue watermark: every red image fails both checks.
    result.assert_outcomes(passed=6, failed=6)
    result.stdout.fnmatch_lines(
        [
            "*CamAssertionError: sample red/red_00, layer features: CAM peak*region 'object'*",
            "*sample red/red_00, layer features:*energy*object*",
        ]
    )


def test_dataset_gate(camcheck_project):
    project = camcheck_project(tests=GATE, watermark=True)
    project.run().assert_outcomes(passed=1)
    result = project.run("--camcheck-model", "toymodel:sneaky")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pointing_game[[]object*3/6*"])


def test_cli_overrides_ini(camcheck_project):
    project = camcheck_project(
        tests="""
        def test_settings(camcheck_settings, camcheck_case):
            assert camcheck_settings.method == "layercam"
            assert camcheck_case.method == "layercam"
            assert camcheck_settings.min_energy == 0.7
        """,
        ini="camcheck_method = hirescam\ncamcheck_min_energy = 0.7\n",
    )
    project.run("--camcheck-method", "layercam").assert_outcomes(passed=6)


def test_marker_overrides_cli(camcheck_project):
    project = camcheck_project(
        tests="""
        import pytest

        @pytest.mark.camcheck(method="eigencam", target="predicted")
        def test_marked(camcheck_case):
            assert camcheck_case.method == "eigencam"
            assert camcheck_case.target == camcheck_case.prediction

        def test_unmarked(camcheck_case):
            assert camcheck_case.method == "xgradcam"
        """,
    )
    project.run("--camcheck-method", "xgradcam").assert_outcomes(passed=12)


def test_header_names_device_and_reason(camcheck_project):
    project = camcheck_project(tests=GATE)
    result = project.run("--camcheck-device", "auto")
    result.stdout.fnmatch_lines(
        [
            "camcheck: model toymodel:good*",
            "camcheck: device * (*), layer auto, method gradcam, target label, torch *",
        ]
    )


def test_disabled_with_no_camcheck(camcheck_project):
    project = camcheck_project(tests=PER_SAMPLE)
    result = project.run("-p", "no:camcheck")
    result.stdout.fnmatch_lines(["*fixture 'camcheck_case' not found*"])


def test_cases_expose_sample_fields(camcheck_project):
    project = camcheck_project(
        tests="""
        import torch

        def test_fields(camcheck_case):
            c = camcheck_case
            assert c.id.startswith(("red/", "green/"))
            assert c.class_name == c.id.split("/")[0]
            assert c.label == (1 if c.class_name == "red" else 0)  # ImageFolder: sorted classes
            assert c.prediction == c.label and 0.5 < c.probability <= 1.0
            assert c.image.shape == (3, 32, 32)
            assert c.map.shape == (32, 32) and float(c.map.max()) == 1.0
            assert set(c.maps) == {c.layer} and c.degenerate is False
            assert "object" in c.regions
        """
    )
    project.run().assert_outcomes(passed=6)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_same_outcomes_under_xdist(camcheck_project, workers):
    project = camcheck_project(tests=PER_SAMPLE + GATE, watermark=True, model="toymodel:sneaky")
    result = project.run("-n", workers, subprocess=True)
    result.assert_outcomes(passed=6, failed=7)


SHARDING = """
import json


def test_case(camcheck_case, camcheck_session, request):
    computed = camcheck_session.store.computed(camcheck_session.config)
    wid = getattr(request.config, "workerinput", {}).get("workerid", "main")
    with open(f"batches-{wid}-{camcheck_case.index}.json", "w") as f:
        json.dump({"index": camcheck_case.index, "batches": computed}, f)
    # the case's own batch is computed, in a batch of camcheck_batch_size images
    assert camcheck_case.index // 4 in computed


def test_gate_sees_every_sample(camcheck):
    result = camcheck.pointing_game(region="object")
    assert result.count == 12 and not result.missing
"""


def test_xdist_workers_compute_their_own_batches_and_gates_see_everything(camcheck_project):
    import json

    project = camcheck_project(n_per_class=6, tests=SHARDING)
    result = project.run("-n", "2", "-p", "xdist", subprocess=True)
    result.assert_outcomes(passed=13)
    files = sorted(project.root.glob("batches-gw*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert len(files) == 12
    # Lazy, batched computation on workers: a worker's first item computes its own batch of 4
    # and nothing else (the gate, which needs every sample, is the last item dispatched).
    for worker in ("gw0", "gw1"):
        mine = [json.loads(p.read_text()) for p in files if p.name.startswith(f"batches-{worker}")]
        assert mine, f"worker {worker} ran no per-sample item"
        assert mine[0]["batches"] == [mine[0]["index"] // 4]


def test_plain_run_computes_everything_in_one_batched_pass(camcheck_project):
    project = camcheck_project(n_per_class=6, tests=SHARDING)
    project.run().assert_outcomes(passed=13)
    first = min(project.root.glob("batches-main-*.json"), key=lambda p: p.stat().st_mtime)
    import json

    assert json.loads(first.read_text())["batches"] == [0, 1, 2]


def test_fixtures_can_be_overridden_in_conftest(camcheck_project):
    project = camcheck_project(
        tests="""
        def test_uses_my_model(camcheck_case, camcheck_model):
            assert camcheck_model.marker == "from conftest"
            assert camcheck_case.prediction == camcheck_case.label
        """,
        model="",  # no camcheck_model in the ini: the conftest provides the model
    )
    project.pytester.makeconftest(
        """
        import pytest
        import toymodel

        @pytest.fixture(scope="session")
        def camcheck_model(camcheck_device):
            model = toymodel.good().to(camcheck_device).eval()
            model.marker = "from conftest"
            return model
        """
    )
    project.run().assert_outcomes(passed=6)
