"""Every example under examples/ runs as its README says, with the outcome it promises.

Each project is copied into a fresh folder and run there by pytest in a new process, exactly as
a user would run it in the example's folder.
"""

from __future__ import annotations

import json
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def copy_example(name: str, pytester: pytest.Pytester) -> Path:
    """The example's files in pytester's folder (generated data and reports left behind)."""
    source = EXAMPLES / name
    ignore = shutil.ignore_patterns("camcheck-report.*", "__pycache__", ".pytest_cache")
    if (source / ".gitignore").is_file() and "data/" in (source / ".gitignore").read_text():
        ignore = shutil.ignore_patterns("data", "camcheck-report.*", "__pycache__")
    shutil.copytree(source, pytester.path, dirs_exist_ok=True, ignore=ignore)
    return pytester.path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in the example's folder, in a new process (torch cannot be imported twice in
    one process, which an in-process run would need)."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=600)


def report(root: Path) -> dict:
    return json.loads((root / "camcheck-report.json").read_text())


def test_the_examples_index_lists_every_example() -> None:
    index = (EXAMPLES / "README.md").read_text()
    entries = sorted(p.name for p in EXAMPLES.iterdir() if not p.name.startswith((".", "README")))
    assert entries == [
        "ci",
        "clever_hans",
        "engine_only.py",
        "imagenet_scenes",
        "pet_heads",
        "voc_scenes",
    ]
    for name in entries:
        assert f"]({name}" in index, f"examples/README.md does not link {name}"


def test_imagenet_scenes(pytester: pytest.Pytester) -> None:
    root = copy_example("imagenet_scenes", pytester)
    result = run(pytester)
    # 5 photos + 3 scenes x 4 classes = 17 images, 3 per-image tests each, and one gate
    result.assert_outcomes(passed=17 * 3 + 1)
    result.stdout.fnmatch_lines(["camcheck: classes cat -> 285, espresso -> 967, *"])
    data = report(root)
    assert data["summary"]["warnings"] == []  # labels and predictions agree
    gate = data["gates"][0]
    assert gate["name"].startswith("pointing_game[object, tol=32]") and gate["rate"] == 1.0


def test_voc_scenes(pytester: pytest.Pytester) -> None:
    root = copy_example("voc_scenes", pytester)
    result = run(pytester, "-v")
    # 3 scenes x 4 classes = 12 (scene, class) items, and two dataset-level tests
    result.assert_outcomes(passed=12 + 2)
    # the item's id (its PASSED may come on the next line, after the progress line)
    result.stdout.fnmatch_lines(["*test_peak_on_its_own_photo?scenes/scene_1/cat?*"])
    data = report(root)
    assert data["summary"]["warnings"] == []
    (gate,) = data["gates"]
    assert gate["name"].startswith("pointing_game[class, tol=15]")
    assert gate["count"] == 12 and gate["passed"] >= 10
    assert set(gate["per_class"]) == {"cat", "espresso", "motorcycle", "rocket", "tripod"}


def test_clever_hans(pytester: pytest.Pytester) -> None:
    root = copy_example("clever_hans", pytester)
    run(pytester).assert_outcomes(passed=44)  # the shipped baseline is the clean model's
    shortcut = "--camcheck-model=pytest_camcheck.demo.models:watermark_model"
    result = run(pytester, shortcut)
    result.assert_outcomes(passed=1, failed=43)  # accurate, and caught
    result.stdout.fnmatch_lines(["E * AssertionError: * of 20 peaks lie on the watermark"])
    failed = {g["name"].split("[")[0] for g in report(root)["gates"] if g["outcome"] != "passed"}
    assert failed == {"pointing_game", "baseline_comparison"}  # it also moved off the baseline


def test_pet_heads(pytester: pytest.Pytester) -> None:
    root = copy_example("pet_heads", pytester)
    assert sorted(p.name for p in (root / "data" / "images").iterdir()) == [
        f"tabby_{i}.jpg" for i in range(1, 5)
    ]
    result = run(pytester)
    result.assert_outcomes(passed=4 * 2 + 1)
    cases = report(root)["cases"]
    assert cases and all(c["target"] == c["prediction"] for c in cases)  # target = predicted


def test_pet_heads_fixture_is_what_make_fixture_writes(tmp_path: Path) -> None:
    module = runpy.run_path(str(EXAMPLES / "pet_heads" / "make_fixture.py"))
    module["write"](tmp_path)
    bundled = EXAMPLES / "pet_heads" / "data"
    for path in sorted(p for p in bundled.rglob("*") if p.is_file()):
        rel = path.relative_to(bundled)
        assert (tmp_path / rel).read_bytes() == path.read_bytes(), f"{rel} differs"


def test_ci_workflow_gates_the_deployment_on_camcheck(pytester: pytest.Pytester) -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((EXAMPLES / "ci" / "camcheck.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["deploy"]["needs"] == "camcheck"
    steps = jobs["camcheck"]["steps"]
    (command,) = [s["run"] for s in steps if str(s.get("run", "")).startswith("pytest")]
    (upload,) = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload["if"] == "always()"
    uploaded = upload["with"]["path"].split()
    # the workflow's pytest step, run on a project whose model looks at a watermark
    root = copy_example("clever_hans", pytester)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(":clean_model", ":watermark_model"))
    result = pytester.runpytest_subprocess(*shlex.split(command)[1:], timeout=600)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the job fails: no deployment
    for path in uploaded:
        assert (root / path).is_file(), f"the workflow uploads {path}, which was not written"


def test_engine_only_script(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    saved = sys.argv
    sys.argv = ["engine_only.py", "--out", str(tmp_path)]
    try:
        runpy.run_path(str(EXAMPLES / "engine_only.py"), run_name="__main__")
    finally:
        sys.argv = saved
    out = capsys.readouterr().out
    assert "layer _act_head (auto-detected), raw maps (2, 7, 7)" in out
    assert "cat: peak at row" in out and "espresso: peak at row" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png", "espresso.png"]
