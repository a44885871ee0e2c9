"""Bad inputs, table-driven: each gives one clear line naming the problem, the same with and
without ``-n 2``, never an INTERNALERROR or a traceback from inside torch, and leaves every input
file byte-identical."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

GOOD_TESTS = """
from pytest_camcheck import assert_energy_in_region, assert_pass_rate


def test_energy(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], 0.1)


def test_gate(camcheck):
    assert_pass_rate(camcheck.pointing_game(region="object"), min_rate=0.0)
"""


@dataclass(frozen=True)
class Bad:
    """One bad input: how to plant it, the exit code, and a fragment of the one-line message."""

    name: str
    plant: Callable[[Path], tuple[str, list[str]]]  # root -> (extra ini, extra CLI args)
    rc: int
    message: str


def _ini(text: str) -> Callable[[Path], tuple[str, list[str]]]:
    return lambda root: (text, [])


def _random_weights(root: Path) -> tuple[str, list[str]]:
    (root / "weights.pt").write_bytes(os.urandom(2048).replace(b"PK", b"pk").lstrip(b"\x80") + b"x")
    return "camcheck_weights = weights.pt\n", []


def _bad_csv(root: Path) -> tuple[str, list[str]]:
    (root / "data" / "broken.csv").write_text("picture,what\nred/red_00.png,red\n")
    return "camcheck_annotations = data/broken.csv\n", []


def _report_over_test_file(root: Path) -> tuple[str, list[str]]:
    return "", ["--camcheck-report", "test_cam.py"]


def _report_over_annotations(root: Path) -> tuple[str, list[str]]:
    return "camcheck_report = data/annotations.csv\n", []


def _report_in_a_file(root: Path) -> tuple[str, list[str]]:
    (root / "notadir").write_text("a file, not a folder\n")
    return "camcheck_report = notadir/report.html\n", []


CASES = [
    Bad("missing module", _ini("camcheck_model = nosuchmod:build\n"), 4, "cannot import module"),
    Bad("random weights", _random_weights, 4, "is not a PyTorch weights file"),
    Bad("missing dataset", _ini("camcheck_dataset = nodata\n"), 4, "nodata"),
    Bad("bad csv", _bad_csv, 4, "broken.csv"),
    Bad("no cuda", _ini("camcheck_device = cuda\n"), 4, "CUDA is not available"),
    Bad("missing layer", _ini("camcheck_layer = layer5\n"), 4, "layer5"),
    Bad("report over a test", _report_over_test_file, 4, "exists and is not a camcheck report"),
    Bad("report over input", _report_over_annotations, 4, "overwrite or mix with the run's input"),
    Bad("report in a file", _report_in_a_file, 4, "cannot write into"),
    Bad(
        "infinite tolerance", _ini("camcheck_peak_tolerance = inf\n"), 4, "camcheck_peak_tolerance"
    ),
    Bad("amp maybe", _ini("camcheck_amp = maybe\n"), 4, "camcheck_amp: expected a boolean"),
    Bad("bad output key", _ini("camcheck_output = (1)\n"), 4, "camcheck_output"),
]


def _set_ini(path: Path, text: str) -> None:
    """Set ``key = value`` lines in the ini file (replacing a key that is there already)."""
    lines = path.read_text().splitlines()
    for new in text.strip().splitlines():
        key = new.split("=")[0].strip()
        found = [i for i, ln in enumerate(lines) if ln.split("=")[0].strip() == key]
        if found:
            lines[found[0]] = new
        else:
            lines.append(new)
    path.write_text("\n".join(lines) + "\n")


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",)
    }


@pytest.mark.parametrize("mode", ["plain", "n2"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_clear_line(camcheck_project, case: Bad, mode: str) -> None:
    project = camcheck_project(tests=GOOD_TESTS)
    ini, args = case.plant(project.root)
    if ini:
        _set_ini(project.root / "tox.ini", ini)
    before = _hashes(project.root)
    extra = ["-n", "2", "-p", "xdist"] if mode == "n2" else []
    result = project.run(*extra, *args, subprocess=True)
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret == case.rc, text
    lines = [ln for ln in text.splitlines() if case.message in ln]
    assert lines, text
    assert any("camcheck" in ln for ln in lines), text
    assert "INTERNALERROR" not in text
    assert "site-packages/torch" not in text and "Traceback" not in text
    after = _hashes(project.root)
    assert {k: v for k, v in after.items() if k in before} == before


MISSING_REGION = """
def test_head(camcheck_case):
    camcheck_case.regions["head"]
"""


@pytest.mark.parametrize("mode", ["plain", "n2"])
def test_a_missing_region_names_the_sample_and_what_it_has(camcheck_project, mode) -> None:
    project = camcheck_project(tests=MISSING_REGION)
    extra = ["-n", "2", "-p", "xdist"] if mode == "n2" else []
    result = project.run(*extra, subprocess=True)
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines(
        ["*RegionNotFoundError: sample 'green/green_00' has no region 'head' (it has: object)*"]
    )


MISSING_IN_GATE = """
from pytest_camcheck import assert_pass_rate


def test_counted(camcheck):
    result = camcheck.pointing_game(region="watermark")
    assert result.count == 6 and result.passed <= 3 and len(result.missing) == 3
    assert set(result.missing) <= set(result.failures)


def test_skipped(camcheck):
    result = camcheck.pointing_game(region="watermark", missing="skip")
    assert result.count == 3 and len(result.missing) == 3


def test_message(camcheck):
    assert_pass_rate(camcheck.pointing_game(region="watermark"), min_rate=0.9)
"""


def test_gates_count_samples_without_the_region_as_failed(camcheck_project) -> None:
    # only the red images have a watermark region
    project = camcheck_project(tests=MISSING_IN_GATE, watermark=True, model="toymodel:sneaky")
    result = project.run()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ['*3 samples lack the region and count as failed; pass missing="skip"*']
    )


def test_collect_only_and_usage_errors_leave_the_report_alone(camcheck_project) -> None:
    project = camcheck_project(tests=GOOD_TESTS, ini="camcheck_report = out/r.html\n")
    project.run().assert_outcomes(passed=7)
    html, sidecar = project.root / "out" / "r.html", project.root / "out" / "r.json"
    before = (html.read_bytes(), sidecar.read_bytes())
    project.run("--collect-only")
    project.run("-k", "nothing_matches_this")
    bad = project.run("--camcheck-method", "nonsense")
    assert bad.ret == 4
    assert (html.read_bytes(), sidecar.read_bytes()) == before


def test_a_failed_report_write_is_a_warning_and_the_summary_stays(
    camcheck_project, monkeypatch
) -> None:
    import pytest_camcheck.report.html as html_module

    def fail(files):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(html_module, "atomic_write_files", fail)
    project = camcheck_project(tests=GOOD_TESTS, ini="camcheck_report = out/r.html\n")
    result = project.run()
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        [
            "*camcheck report NOT written*",
            "*could not write the camcheck report to *r.html*No space left on device*",
            "*7 passed*",
        ]
    )
    assert result.ret == 0


TWO_OUTPUTS = """
import torch
from torch import nn

import toymodel


class WithEmbedding(nn.Module):
    def __init__(self, nan=False):
        super().__init__()
        self.inner = toymodel.good()
        self.nan = nan

    def forward(self, x):
        logits = self.inner(x)
        if self.nan:
            logits = logits * float("nan")
        return torch.zeros(x.shape[0], 5), logits


def build():
    return WithEmbedding()


def build_nan():
    return WithEmbedding(nan=True)
"""

ENERGY_TEST = """
from pytest_camcheck import assert_energy_in_region


def test_energy(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], 0.5)
"""


@pytest.mark.parametrize("mode", ["plain", "n2"])
def test_camcheck_output_chooses_the_logits(camcheck_project, mode) -> None:
    extra = ["-n", "2", "-p", "xdist"] if mode == "n2" else []
    project = camcheck_project(
        tests=ENERGY_TEST, model="twoout:build", ini="camcheck_layer = inner.features\n"
    )
    (project.root / "twoout.py").write_text(TWO_OUTPUTS)
    chosen = project.run(*extra, "--camcheck-output", "1", subprocess=True)
    chosen.assert_outcomes(passed=6)
    assert "CamcheckWarning" not in chosen.stdout.str()
    default = project.run(*extra, subprocess=True)  # the embedding does not depend on the map
    default.stdout.fnmatch_lines(
        ["*the model returns 2 outputs and camcheck explains the first tensor: choose the logits*"]
    )


def test_nan_outputs_are_named_non_finite(camcheck_project) -> None:
    project = camcheck_project(
        tests=ENERGY_TEST, model="twoout:build_nan", ini="camcheck_layer = inner.features\n"
    )
    (project.root / "twoout.py").write_text(TWO_OUTPUTS)
    result = project.run("--camcheck-output", "1")
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines(
        ["*degenerate CAM for sample *, layer inner.features: *non-finite*"]
    )
    assert "all zero" not in result.stdout.str()


def test_a_region_covering_the_whole_image_is_flagged_in_the_report(camcheck_project) -> None:
    project = camcheck_project(tests=ENERGY_TEST, ini="camcheck_report = out/r.html\n")
    rows = (project.root / "data" / "annotations.csv").read_text().splitlines()
    whole = [rows[0]] + [",".join([*r.split(",")[:3], "0", "0", "32", "32"]) for r in rows[1:]]
    (project.root / "data" / "annotations.csv").write_text("\n".join(whole) + "\n")
    project.run("--camcheck-report-all").assert_outcomes(passed=6)
    html = (project.root / "out" / "r.html").read_text()
    assert "the region covers 100.0% of the image" in html
