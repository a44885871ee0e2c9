"""Baselines and a reference model through pytest: the regression workflow users run.

The toy project's ``good`` model explains a coloured square by the square itself; the ``sneaky``
one explains the red class by a blue watermark in the corner. So against the good model's
baseline (or with the good model as the reference), the sneaky model's red samples move and the
green ones do not: the right answers are known by construction.
"""

from __future__ import annotations

import json
import re

import pytest

TESTS = """
from pytest_camcheck import assert_no_regression, assert_pass_rate, assert_similar_maps


def test_maps_unchanged(camcheck):
    assert_pass_rate(camcheck.baseline_comparison(min_ssim=0.9), min_rate=0.6)


def test_case_unchanged(camcheck_case):
    assert_similar_maps(camcheck_case.map, camcheck_case.baseline_map, min_ssim=0.9)
"""

GATE = """
from pytest_camcheck import assert_no_regression, assert_pass_rate


def test_no_regression(camcheck):
    assert_no_regression(camcheck.compare("pointing_game", region="object"))


def test_looks_like_the_deployed_model(camcheck):
    assert_pass_rate(camcheck.similarity_to_reference(min_ssim=0.9), min_rate=0.6)
"""

FOLDER = "tests/camcheck-baselines/features_gradcam_label_32x32"
CRASH = """
import pytest

from pytest_camcheck import baseline


@pytest.fixture(scope="session", autouse=True)
def crash_when_the_manifest_is_replaced():
    real = baseline._replace

    def replace(src, dst):
        if str(dst).endswith("manifest.json"):
            raise OSError("simulated crash between the data file and the manifest")
        real(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(baseline, "_replace", replace)
        yield
"""


def _without_summary(text: str) -> str:
    """The output without pytest's short summary lines (full length on CI, cut elsewhere)."""
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith(("FAILED ", "ERROR ")))


def test_write_compare_update(camcheck_project) -> None:
    project = camcheck_project(tests=TESTS)
    first = project.run()
    first.assert_outcomes(failed=7)
    text = _without_summary(first.stdout.str())
    assert text.count("no baseline for features, gradcam, target label, 32x32 input") == 1
    assert text.count("was missing and was written earlier in this run") == 6
    manifest = project.root / FOLDER / "manifest.json"
    data = json.loads(manifest.read_text())
    assert len(data["samples"]) == 6 and data["model"]["spec"] == "toymodel:good"
    assert data["transform"] == "toymodel:plain" and len(data["samples"][0]["sha256"]) == 64

    project.run().assert_outcomes(passed=7)

    update = project.run("--camcheck-update-baselines")
    update.assert_outcomes(failed=7)
    update.stdout.fnmatch_lines(["*--camcheck-update-baselines: rewrote *features_gradcam*"])
    assert json.loads(manifest.read_text())["run_id"] != data["run_id"]
    project.run().assert_outcomes(passed=7)


def test_a_crash_midway_leaves_the_old_baseline(camcheck_project) -> None:
    project = camcheck_project(tests=TESTS)
    project.run("-k", "maps_unchanged").assert_outcomes(failed=1)  # writes it
    manifest = project.root / FOLDER / "manifest.json"
    before = manifest.read_bytes()
    conftest = project.pytester.makeconftest(CRASH)
    crashed = project.run("-k", "maps_unchanged", "--camcheck-update-baselines")
    crashed.assert_outcomes(failed=1)
    crashed.stdout.fnmatch_lines(["*OSError: simulated crash between the data file and the*"])
    assert manifest.read_bytes() == before
    conftest.unlink()
    project.run().assert_outcomes(passed=7)  # the old baseline reads and compares


def test_schema_and_manifest_mismatches(camcheck_project) -> None:
    project = camcheck_project(tests=TESTS)
    project.run("-k", "maps_unchanged")
    manifest = project.root / FOLDER / "manifest.json"
    good = manifest.read_text()
    data = json.loads(good)

    manifest.write_text(json.dumps({**data, "config": {**data["config"], "method": "cam"}}))
    result = project.run("-k", "maps_unchanged or red_00")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*was made with method 'cam', but the test explains method 'gradcam'*"]
    )
    manifest.write_text(json.dumps({**data, "schema_version": 7}))
    project.run("-k", "maps_unchanged").stdout.fnmatch_lines(
        ["*written with baseline schema 7*this pytest-camcheck reads schema 1*"]
    )
    manifest.write_text(good)
    (project.root / FOLDER / data["data"]["file"]).write_bytes(b"PK\x03\x04 not a zip")
    project.run("-k", "maps_unchanged").stdout.fnmatch_lines(
        ["*sha256 differs from the manifest's*--camcheck-update-baselines*"]
    )


def test_samples_added_since_the_baseline_are_listed(camcheck_project) -> None:
    project = camcheck_project(tests=TESTS)
    project.run()
    from PIL import Image

    Image.new("RGB", (32, 32), (0, 255, 0)).save(project.root / "data" / "green" / "new.png")
    result = project.run()
    result.assert_outcomes(passed=7, failed=1)  # the new sample's own item fails, clearly
    result.stdout.fnmatch_lines(
        ["*green/new: not in the baseline *added to the dataset since it was written*"]
    )


def test_the_sneaky_retrain_fails_against_the_good_baseline_and_reference(
    camcheck_project,
) -> None:
    project = camcheck_project(n_per_class=6, watermark=True, tests=TESTS)
    project.run()  # the good model's baseline
    project.pytester.makepyfile(test_gate=GATE)
    result = project.run(
        "--camcheck-model=toymodel:sneaky",
        "--camcheck-reference-model=toymodel:good",
        "--camcheck-report=report.html",
    )
    reds = [f"red/red_{i:02d}" for i in range(6)]
    result.assert_outcomes(passed=6, failed=9)
    text = result.stdout.str()
    # per sample: exactly the red samples moved
    moved = re.findall(r"^FAILED test_cam.py::test_case_unchanged\[(.*?)\]", text, re.M)
    assert sorted(moved) == reds
    assert re.search(r"baseline_comparison\[ssim>=0.9\] @ features: lower 95% bound", text)
    line = next(x for x in text.splitlines() if "worse than the reference" in x)
    named = re.search(r"broken by the candidate \(pass with the reference, fail now\): (.*)", line)
    assert named is not None and set(named.group(1).split(", ")) == set(reds)

    report = json.loads((project.root / "report.json").read_text())
    gates = {g["nodeid"].split("::")[1]: g for g in report["gates"]}
    gate = gates["test_no_regression"]
    assert gate["check"] == "no_regression" and gate["outcome"] == "failed"
    comp = gate["comparison"]
    assert comp["candidate"]["rate"] == 0.5 and comp["reference"]["rate"] == 1.0
    assert comp["upper"] < 0 and comp["bound"] == "lenient" and comp["max_drop"] == 0
    assert sorted(comp["broken"]) == reds and comp["p_value"] == pytest.approx(2 / 64)
    similar = gates["test_maps_unchanged"]
    assert similar["outcome"] == "failed" and similar["similarity"]["against"] == "baseline"
    assert {m["id"] for m in similar["similarity"]["moved"] if not m["passed"]} == set(reds)
    assert "images" not in gate and "images" not in similar  # pictures stay in the HTML

    html = (project.root / "report.html").read_text()
    assert "Candidate vs reference" in html and "Map similarity to the baseline" in html
    # both models side by side for a broken sample (and reference | current | difference for
    # the similarity gate)
    assert html.count('alt="red/red_00: candidate"') == 1
    assert html.count('alt="red/red_00: reference"') == 2
    assert 'alt="green/green_00: candidate"' not in html  # not discordant: not drawn
    assert "difference (current − baseline)" in html  # a moved sample's card and gate


def test_baselines_are_written_once_under_xdist(camcheck_project) -> None:
    pytest.importorskip("xdist")
    project = camcheck_project(tests=TESTS)
    args = ("-n", "2", "--camcheck-num-workers=0")  # workers load their images inline
    first = project.run(*args)
    first.assert_outcomes(failed=7)
    text = _without_summary(first.stdout.str())
    assert text.count("no baseline for features") == 1  # one process wrote it
    assert text.count("was missing and was written earlier in this run") == 6
    assert len(list((project.root / FOLDER).glob("maps-*.npz"))) == 1
    project.run().assert_outcomes(passed=7)  # and it compares (in this process: faster)


def test_reference_settings(camcheck_project) -> None:
    project = camcheck_project(tests=GATE)
    result = project.run("--camcheck-reference-weights=missing.pt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # one line for the run, not per test
    result.stdout.fnmatch_lines(["*camcheck_reference_weights: file*missing.pt*does not exist*"])
    plain = project.run("-k", "no_regression")
    plain.assert_outcomes(failed=1)
    plain.stdout.fnmatch_lines(["*no reference model is configured*"])
    header = project.run("--camcheck-reference-model=toymodel:good", "-k", "no_regression")
    header.stdout.fnmatch_lines(["camcheck: reference model toymodel:good"])
    header.assert_outcomes(passed=1)


DEMO_TESTS = """
from pytest_camcheck import assert_no_regression, assert_pass_rate


def test_maps_unchanged(camcheck):
    assert_pass_rate(camcheck.baseline_comparison(min_ssim=0.8), min_rate=0.9)


def test_no_regression(camcheck):
    assert_no_regression(camcheck.compare("pointing_game", region="object"))
"""


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory):
    from pytest_camcheck.demo.synthetic import write_dataset

    root = tmp_path_factory.mktemp("demo")
    write_dataset(root / "data", n_per_class=20, seed=31337, watermark=True)
    return root / "data"


def test_the_demo_watermark_retrain_is_caught(pytester: pytest.Pytester, demo_data) -> None:
    """The weekly retrain: the clean demo model is the last good one; retrained with the same
    seed it reproduces its weights (scripts/train_demo_models.py is deterministic) and passes
    against its own baseline; the retrain that learnt the class-correlated watermark fails
    against the clean model's baseline and against the clean model as the reference."""
    (pytester.path / "data").symlink_to(demo_data, target_is_directory=True)
    models = "pytest_camcheck.demo.models"
    pytester.makeini(
        f"""
        [pytest]
        camcheck_model = {models}:clean_model
        camcheck_dataset = data
        camcheck_annotations = data/annotations.csv
        camcheck_transform = {models}:transform
        camcheck_device = cpu
        camcheck_num_workers = 0
        """
    )
    pytester.makepyfile(test_demo=DEMO_TESTS)
    run = ("-p", "no:cacheprovider", "-k", "maps_unchanged")
    pytester.runpytest(*run).assert_outcomes(failed=1)  # the clean model's baseline
    pytester.runpytest(*run).assert_outcomes(passed=1)  # the same seed: the same weights
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--camcheck-model={models}:watermark_model",
        f"--camcheck-reference-model={models}:clean_model",
        "--camcheck-report=report.html",
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*baseline_comparison[[]ssim>=0.8[]] @ features: lower 95% bound*",
            "*pointing_game[[]object, tol=0[]] @ features: the candidate is worse than the "
            "reference*broken by the candidate (pass with the reference, fail now): circle/*",
        ]
    )
    gates = json.loads((pytester.path / "report.json").read_text())["gates"]
    comp = next(g for g in gates if g["check"] == "no_regression")["comparison"]
    # every sample the clean model got right, the watermark model gets wrong
    assert comp["candidate"]["passed"] == 0 and comp["fixed"] == []
    assert len(comp["broken"]) == comp["reference"]["passed"] >= 30
    assert comp["upper"] < -0.5 and comp["p_value"] < 1e-6
