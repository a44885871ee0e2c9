"""Every bad configuration ends in a clear message naming the problem and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

SIMPLE = """
def test_case(camcheck_case):
    assert camcheck_case.map.shape[0] > 0
"""


def _usage(result: pytest.RunResult, *lines: str) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    pytest.LineMatcher(text.splitlines()).fnmatch_lines(list(lines))


def test_unknown_method(camcheck_project):
    project = camcheck_project(tests=SIMPLE, ini="camcheck_method = gradkam\n")
    _usage(
        project.run(),
        "*camcheck_method: unknown CAM method 'gradkam'; valid methods: cam, gradcam*",
    )


def test_bad_number(camcheck_project):
    project = camcheck_project(tests=SIMPLE)
    _usage(
        project.run("--camcheck-min-energy", "1.5"),
        "*--camcheck-min-energy: expected a number in [[]0, 1], got 1.5*",
    )


def test_unknown_layer_lists_candidates(camcheck_project):
    project = camcheck_project(tests=SIMPLE, ini="camcheck_layer = featurs\n")
    _usage(project.run(), "*layer 'featurs' not found in ColourNet; close candidates: features*")


def test_missing_dataset_path(camcheck_project):
    project = camcheck_project(tests=SIMPLE)
    _usage(project.run("--camcheck-dataset", "nowhere"), "*nowhere*")


def test_annotation_names_missing_image(camcheck_project):
    project = camcheck_project(tests=SIMPLE)
    csv = project.root / "data" / "annotations.csv"
    csv.write_text(csv.read_text() + "red/ghost.png,red,object,1,1,5,5\n")
    _usage(project.run(), "*ghost*")


def test_box_outside_image_names_sample_and_box(camcheck_project):
    project = camcheck_project(tests=SIMPLE)
    csv = project.root / "data" / "annotations.csv"
    csv.write_text(csv.read_text() + "red/red_01.png,red,head,20,20,90,40\n")
    result = project.run()
    text = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert "red/red_01" in text and "head" in text and "90" in text


def test_empty_dataset(camcheck_project):
    project = camcheck_project(tests=SIMPLE)
    empty = project.root / "empty"
    empty.mkdir()
    _usage(project.run("--camcheck-dataset", "empty", "--camcheck-annotations", ""), "*empty*")


def test_unreadable_image(camcheck_project):
    project = camcheck_project(tests=SIMPLE)
    Path(project.root / "data" / "red" / "red_01.png").write_bytes(b"not a png at all")
    result = project.run()
    text = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert "red_01" in text


def test_weights_needing_pickle_are_refused(camcheck_project):
    import argparse

    import torch

    project = camcheck_project(tests=SIMPLE)
    # a training checkpoint that pickles its argparse options: loading it could run code
    torch.save({"args": argparse.Namespace(lr=0.1), "state_dict": {}}, project.root / "w.pt")
    _usage(project.run("--camcheck-weights", "w.pt"), "*camcheck_trust_weights*")


def test_bad_marker_argument(camcheck_project):
    project = camcheck_project(
        tests="""
        import pytest

        @pytest.mark.camcheck(methd="cam")
        def test_case(camcheck_case):
            pass
    """
    )
    result = project.run()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unknown argument(s) methd; valid: layer, method*"])
