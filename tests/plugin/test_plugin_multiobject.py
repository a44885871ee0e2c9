"""Images with objects of several classes through the plugin: VOC and COCO fixtures, one item
per (image, class), the pointing game over pairs, plain and with ``-n 2``."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from pytest_camcheck.demo.multiobject import write_multiobject_set

TESTS = """
from pytest_camcheck import assert_pass_rate, assert_peak_in_box


def test_peak_in_own_class(camcheck_case):
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions[camcheck_case.class_name])


def test_pointing_game(camcheck):
    assert_pass_rate(camcheck.pointing_game(tolerance=15), min_rate=0.8)
"""


def _project(pytester: pytest.Pytester, fmt: str, swap=None):
    written = write_multiobject_set(pytester.path / "data", fmt=fmt, swap=swap)
    ann = written.annotations.relative_to(pytester.path)
    pytester.makeini(
        textwrap.dedent(
            f"""
            [pytest]
            camcheck_model = pytest_camcheck.demo.multiobject:colour_model
            camcheck_dataset = data
            camcheck_annotations = {ann.as_posix()}
            camcheck_transform = pytest_camcheck.demo.multiobject:plain_transform
            camcheck_layer = features
            camcheck_device = cpu
            camcheck_batch_size = 4
            camcheck_num_workers = 0
            """
        )
    )
    pytester.makepyfile(test_multi=TESTS)
    return written


def _item_outcomes(result: pytest.RunResult) -> dict[str, str]:
    """test_peak_in_own_class[<id>] -> PASSED/FAILED/ERROR, from the -v lines."""
    out: dict[str, str] = {}
    for line in result.outlines:
        if line.startswith(("FAILED", "ERROR")):  # the short summary repeats failures
            continue
        m = re.search(r"test_peak_in_own_class\[(.+?)\]", line)
        status = re.search(r"\b(PASSED|FAILED|ERROR)\b", line)
        if m and status:
            out[m.group(1)] = status.group(1)
    return out


def _run_mode(pytester: pytest.Pytester, workers, *extra: str) -> tuple[pytest.RunResult, str]:
    args = ["-p", "no:cacheprovider", "-v", *extra]
    if workers:
        args += ["-n", workers]
    result = pytester.runpytest_subprocess(*args)
    return result, "\n".join(result.outlines + result.errlines)


@pytest.mark.parametrize("fmt", ["voc", "coco"])
@pytest.mark.parametrize("workers", [None, "2"])
def test_every_pair_is_an_item_and_hits(pytester: pytest.Pytester, fmt: str, workers) -> None:
    written = _project(pytester, fmt)
    out = pytester.path / "out" / "report.html"
    result, _text = _run_mode(pytester, workers, f"--camcheck-report={out}")
    pairs = written.pairs()
    result.assert_outcomes(passed=len(pairs) + 1)
    got = _item_outcomes(result)
    assert sorted(got) == sorted(pairs)
    assert set(got.values()) == {"PASSED"}
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    ids = {c["case_id"]: c for c in data["cases"]}
    assert set(ids) == set(pairs)
    some = ids[pairs[0]]
    assert some["image_id"] == pairs[0].rsplit("/", 1)[0]
    assert some["class_name"] == pairs[0].rsplit("/", 1)[1]
    (gate,) = data["gates"]
    assert gate["count"] == len(pairs)
    assert gate["passed"] == len(pairs)
    assert set(gate["per_class"]) == {p.rsplit("/", 1)[1] for p in pairs}


@pytest.mark.parametrize("workers", [None, "2"])
def test_swapped_boxes_fail_only_their_pairs(pytester: pytest.Pytester, workers) -> None:
    probe = write_multiobject_set(pytester.path / "probe")
    first = [c for c, _ in probe.objects["images/scene_002"]]
    swap = {"scene_002": (first[0], first[2])}
    _project(pytester, "voc", swap=swap)
    out = pytester.path / "out" / "report.html"
    result, text = _run_mode(pytester, workers, f"--camcheck-report={out}")
    got = _item_outcomes(result)
    failed = {k for k, v in got.items() if v == "FAILED"}
    assert failed == {f"images/scene_002/{first[0]}", f"images/scene_002/{first[2]}"}
    result.stdout.fnmatch_lines(["*test_pointing_game*"])
    assert "INTERNALERROR" not in text
    html = out.read_text(encoding="utf-8")
    assert "images/scene_002" in html


def test_single_label_ids_are_unchanged(camcheck_project) -> None:
    project = camcheck_project(
        tests="""
        def test_ids(camcheck_case):
            assert camcheck_case.image_id is None
        """
    )
    result = project.run("--collect-only")
    names = sorted(
        m.group(1) for line in result.outlines if (m := re.search(r"test_ids\[(.+)\]>", line))
    )
    assert names == sorted(Path(n).with_suffix("").as_posix() for n in project.boxes)
    assert not any(n.count("/") > 1 for n in names)


@pytest.mark.parametrize("workers", [None, "2"])
def test_a_bad_box_fails_only_its_images_pairs(pytester: pytest.Pytester, workers) -> None:
    written = _project(pytester, "voc")
    xml = pytester.path / "data" / "annotations" / "scene_001.xml"
    text = xml.read_text()
    xml.write_text(text.replace("<xmax>", "<xmax>9", 1))  # a box far outside the image
    result, text = _run_mode(pytester, workers)
    assert "INTERNALERROR" not in text and "Traceback" not in text
    bad = {p for p in written.pairs() if p.startswith("images/scene_001/")}
    assert bad
    outcomes = _item_outcomes(result)
    assert set(outcomes) == set(written.pairs())
    # the bad image's items error (its sample cannot be loaded), the others all pass
    assert {k for k, v in outcomes.items() if v == "ERROR"} == bad
    assert {k for k, v in outcomes.items() if v == "PASSED"} == set(written.pairs()) - bad
    lines = [ln for ln in result.outlines if "outside" in ln and "scene_001.xml" in ln]
    assert lines and all("images/scene_001" in ln for ln in lines)


@pytest.mark.parametrize("workers", [None, "2"])
def test_a_class_that_is_no_class_folder_is_one_clear_error(
    pytester: pytest.Pytester, workers
) -> None:
    _project(pytester, "voc")
    images = pytester.path / "data" / "images"
    (pytester.path / "data" / "red").mkdir()
    (images / "scene_000.png").rename(pytester.path / "data" / "red" / "scene_000.png")
    # every image is now in a sub-folder, red/ or images/: "red" names a class, so the
    # sub-folders are class folders, and every annotated class must be one of them
    result, text = _run_mode(pytester, workers)
    assert result.ret != 0
    assert "INTERNALERROR" not in text and "Traceback" not in text
    assert "is not a class of the dataset" in text
    lines = [ln for ln in text.splitlines() if "is not a class of the dataset" in ln]
    assert lines and all("class folder" in ln for ln in lines)
