"""The Clever Hans story's pytest project: its test module and its ini file.

Run by ``python -m pytest_camcheck.demo`` (part 2 of the tour, or ``--part clever-hans``) on
the synthetic circles and squares, once per model: ``INI.format(model="clean")`` and
``INI.format(model="watermark")``.
"""

from __future__ import annotations

__all__ = ["INI", "TEST_FILE"]

TEST_FILE = '''\
"""Demo camcheck tests: does the model look at the object, not at the watermark?"""

from pytest_camcheck import assert_energy_in_region, assert_pass_rate, assert_peak_in_box


def test_peak_on_object(camcheck_case):
    """The pointing game, one test item per image."""
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["object"], tolerance=4)


def test_object_holds_the_energy(camcheck_case):
    """A large share of the CAM energy lies on the object (objects cover ~25% of the image)."""
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.4)


def test_pointing_game_rate(camcheck):
    """Dataset-level gate on the lower 95% confidence bound."""
    assert_pass_rate(camcheck.pointing_game(region="object", tolerance=4), min_rate=0.8)
'''

INI = """\
[pytest]
camcheck_model = pytest_camcheck.demo.models:{model}_model
camcheck_dataset = data
camcheck_annotations = data/annotations.csv
camcheck_transform = pytest_camcheck.demo.models:transform
camcheck_method = gradcam
camcheck_batch_size = 32
camcheck_report = report-{model}.html
"""
