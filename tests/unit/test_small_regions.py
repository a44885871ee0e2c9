"""What limits a small region's verdict, in every assertion's evidence: the map's cell size and
grid (when the map is one of camcheck's) and the chance a random peak would hit the region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_camcheck import evidence
from pytest_camcheck.assertions import (
    assert_energy_in_region,
    assert_localization_iou,
    assert_peak_in_box,
)
from pytest_camcheck.cam.engine import postprocess
from pytest_camcheck.errors import CamAssertionError
from pytest_camcheck.regions import Box, Region


def camcheck_map(grid: tuple[int, int], size: tuple[int, int], hot: tuple[int, int]):
    """A display map made from a raw map with one hot cell, as camcheck makes it."""
    raw = torch.zeros(1, *grid)
    raw[0, hot[0], hot[1]] = 1.0
    return postprocess(raw, size)[0][0], raw[0]


def test_camchecks_maps_report_their_cell_size_grid_and_chance() -> None:
    cam, raw = camcheck_map((4, 4), (32, 64), (1, 2))  # cells of 8 x 16 px
    box = Box(32, 8, 48, 16)  # exactly the hot cell: 1/16 of the map
    with evidence.collecting("s1", maps={"layer4": cam}, raw={"layer4": raw}) as scope:
        assert_peak_in_box(cam, box)
        assert_energy_in_region(cam, box, min_fraction=0.1)
        assert_localization_iou(cam, box, min_iou=0.1)
    for item in scope.items:
        assert item.details["map_cell_px"] == [8.0, 16.0]
        assert item.details["map_grid"] == [4, 4]
        assert item.details["random_peak_hit"] == pytest.approx(1 / 16)
        assert item.region is not None and item.region.area_fraction == pytest.approx(1 / 16)


def test_the_chance_of_a_hit_grows_with_the_tolerance() -> None:
    cam, raw = camcheck_map((7, 7), (224, 224), (3, 3))
    rocket = Box(100, 90, 120, 150)
    with evidence.collecting("s1", maps={"l": cam}, raw={"l": raw}) as scope:
        assert_peak_in_box(cam, rocket, tolerance=16)
    (item,) = scope.items
    assert item.details["map_cell_px"] == 32.0
    rows, cols = np.mgrid[0:224, 0:224] + 0.5
    dx = np.maximum(np.maximum(100 - cols, 0), cols - 120)
    dy = np.maximum(np.maximum(90 - rows, 0), rows - 150)
    expected = float((np.hypot(dx, dy) <= 16).mean())
    assert item.details["random_peak_hit"] == pytest.approx(expected)
    assert item.details["random_peak_hit"] > 3 * item.region.area_fraction


def test_a_mask_region_grows_by_its_pixels() -> None:
    cam, _ = camcheck_map((4, 4), (16, 16), (0, 0))
    mask = np.zeros((16, 16), dtype=bool)
    mask[0:2, 0:2] = True
    with evidence.collecting("s1") as scope:
        assert_peak_in_box(cam, Region("spot", mask=mask), tolerance=1)
    (item,) = scope.items
    # the 2 x 2 corner and the 4 pixels beside it whose centres lie 1 px from a mask pixel's
    assert item.details["random_peak_hit"] == pytest.approx(8 / 256)
    assert "map_cell_px" not in item.details  # not one of camcheck's maps: the cell is unknown


def test_a_failure_carries_the_same_numbers() -> None:
    cam, raw = camcheck_map((7, 7), (224, 224), (3, 3))
    with evidence.collecting("s1", maps={"l": cam}, raw={"l": raw}) as scope:
        with pytest.raises(CamAssertionError) as info:
            assert_energy_in_region(cam, Box(100, 90, 120, 150), min_fraction=0.5)
    assert info.value.evidence["details"]["map_cell_px"] == 32.0
    assert scope.items[0].details["map_grid"] == [7, 7]
