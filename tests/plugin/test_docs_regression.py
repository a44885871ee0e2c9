"""docs/regression.md stays true: its test files and its CI script run on the toy project.

The docs' region is "head"; the toy project's is "object"; the model and data come from the
toy project's ini instead of the docs' pyproject.toml.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "regression.md"


def block(first_line: str) -> str:
    """The fenced code block of docs/regression.md that starts with ``first_line``."""
    for body in re.findall(r"```[a-z]*\n(.*?)```", DOC.read_text(), re.S):
        if body.startswith(first_line):
            return body.replace('region="head"', 'region="object"').replace(
                "max_drop=0.02",
                "max_drop=0.05",  # 80 samples cannot show 2 points
            )
    raise AssertionError(f"docs/regression.md has no code block starting {first_line!r}")


def ci_script() -> str:
    text = DOC.read_text()
    return text.split("python - <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]


def test_the_weekly_retrain_example(camcheck_project) -> None:
    project = camcheck_project(tests=block("# tests/test_weekly_retrain.py"))
    project.run().assert_outcomes(failed=7)  # no baseline yet: written, fails
    project.run().assert_outcomes(passed=7)
    moved = project.run("--camcheck-model=toymodel:sneaky")  # red <- a watermark, not there
    moved.assert_outcomes(failed=4, passed=3)
    failed = re.findall(r"^FAILED test_cam.py::(\S+)", moved.stdout.str(), re.M)
    assert sorted(failed) == [
        "test_case_unchanged[red/red_00]",
        "test_case_unchanged[red/red_01]",
        "test_case_unchanged[red/red_02]",
        "test_maps_unchanged",
    ]


def test_the_deployment_gate_example(camcheck_project) -> None:
    project = camcheck_project(
        n_per_class=40, watermark=True, tests=block("# tests/test_deployment_gate.py")
    )
    script = ci_script().replace("gate/camcheck-report.json", "gate.json")

    def gate(model: str) -> int:
        project.run(
            f"--camcheck-model=toymodel:{model}",
            "--camcheck-reference-model=toymodel:good",
            "--camcheck-report=gate.html",
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=project.root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert "candidate" in done.stdout, done.stderr
        return done.returncode

    assert gate("good") == 0  # the same model: shown no worse (80 samples)
    assert gate("sneaky") == 1  # the retrain that looks at the watermark is blocked
