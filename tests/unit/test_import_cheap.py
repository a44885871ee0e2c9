"""Importing the package and the pytest plugin must not import the heavy libraries.

pytest imports ``pytest_camcheck.plugin`` (through the entry point) in EVERY run of every project
in the environment, so it has to stay cheap. Each check runs in a fresh interpreter, because this
one has long imported torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "cv2", "skimage", "captum", "jinja2")


def heavy_after(code: str) -> list[str]:
    """The heavy modules present in ``sys.modules`` after running ``code`` in a new interpreter."""
    script = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"`{code}` failed in a fresh interpreter:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    [
        "pytest_camcheck",
        "pytest_camcheck.plugin",
        "pytest_camcheck.errors",
        "pytest_camcheck.zoo",
        "pytest_camcheck.constants",
        "pytest_camcheck.settings",
        "pytest_camcheck.regions",
        "pytest_camcheck.metrics",
        "pytest_camcheck.cam",
        "pytest_camcheck.cam.names",
        "pytest_camcheck.data.readers",
        "pytest_camcheck.baseline",
        "pytest_camcheck.compare",
        "pytest_camcheck.classes",
        "pytest_camcheck.inputs",
        "pytest_camcheck.sources",
        "pytest_camcheck.layers_cli",
        "pytest_camcheck.demo.tour",
    ],
)
def test_import_does_not_pull_heavy_libraries(module: str) -> None:
    assert heavy_after(f"import {module}") == []


def test_public_names_are_listed_without_importing_them() -> None:
    assert heavy_after("import pytest_camcheck as p; assert 'compute_cams' in dir(p)") == []


def test_the_detector_sees_a_lazy_import() -> None:
    # Proves the check above can fail: touching an engine name does import torch.
    assert "torch" in heavy_after("import pytest_camcheck; pytest_camcheck.compute_cams")


def test_the_cam_package_lists_its_names_without_importing_them() -> None:
    code = "import pytest_camcheck.cam as c; assert 'select_output' in dir(c)"
    assert heavy_after(code) == []
    assert "torch" in heavy_after("import pytest_camcheck.cam as c; c.model_device_dtype")
