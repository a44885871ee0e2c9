"""The one region coercer, pytest_camcheck.regions.as_region: every accepted kind, every refusal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_camcheck import metrics
from pytest_camcheck.regions import REGION_KINDS, Box, Region, Sample, as_region

H, W = 10, 12
BOX = Box(2, 3, 6, 8)


def expected_mask() -> np.ndarray:
    return BOX.mask(H, W)


# -------------------------------------------------------------------------------- accepted


def test_metrics_re_exports_the_same_function() -> None:
    assert metrics.as_region is as_region


def test_a_region_is_returned_as_it_is() -> None:
    region = Region("x", (BOX,))
    assert as_region(region, "head") is region
    assert as_region(region, "x", rename=True) is region  # same name: nothing to copy


def test_rename_gives_a_renamed_copy() -> None:
    mask = expected_mask()
    region = Region("x", (BOX,), mask)
    renamed = as_region(region, "head", rename=True)
    assert renamed is not region and region.name == "x"
    assert renamed.name == "head"
    assert renamed.boxes == region.boxes
    assert renamed.mask is region.mask


@pytest.mark.parametrize(
    "value",
    [
        BOX,
        (2, 3, 6, 8),
        [2.0, 3.0, 6.0, 8.0],
        np.array([2, 3, 6, 8]),
        np.array([2, 3, 6, 8], dtype=np.float32),
        torch.tensor([2.0, 3.0, 6.0, 8.0]),
        torch.tensor([2.0, 3.0, 6.0, 8.0], dtype=torch.bfloat16),
        (np.float64(2), np.int64(3), 6, 8.0),
        [torch.tensor(2.0), torch.tensor(3.0), torch.tensor(6.0), torch.tensor(8.0)],
        range(2, 6),  # any iterable of 4 numbers: (2, 3, 4, 5)
    ],
    ids=[
        "Box",
        "tuple",
        "list",
        "int-array",
        "float32-array",
        "tensor",
        "bfloat16-tensor",
        "numpy-scalars",
        "0-d-tensors",
        "range",
    ],
)
def test_one_box(value) -> None:
    region = as_region(value, "head")
    assert region.name == "head"
    assert region.mask is None
    assert len(region.boxes) == 1
    expected = Box(2, 3, 4, 5) if isinstance(value, range) else BOX
    assert region.boxes[0] == expected


@pytest.mark.parametrize(
    "value",
    [
        [(0, 0, 2, 2), Box(3, 3, 4, 4)],
        [Box(0, 0, 2, 2), Box(3, 3, 4, 4)],
        [(0, 0, 2, 2), (3, 3, 4, 4)],
        [[0, 0, 2, 2], [3, 3, 4, 4]],
        np.array([[0, 0, 2, 2], [3, 3, 4, 4]]),
        np.array([[0, 0, 2, 2], [3, 3, 4, 4]], dtype=np.float32),
        torch.tensor([[0.0, 0.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]]),
        [torch.tensor([0, 0, 2, 2]), torch.tensor([3, 3, 4, 4])],
        [np.array([0, 0, 2, 2]), (3, 3, 4, 4)],
    ],
    ids=[
        "tuple-and-Box",
        "Boxes",
        "tuples",
        "lists",
        "(N,4)-array",
        "(N,4)-float-array",
        "(N,4)-tensor",
        "list-of-tensors",
        "array-and-tuple",
    ],
)
def test_a_list_of_boxes_is_one_region_of_several_boxes(value) -> None:
    region = as_region(value, "two")
    assert region.name == "two"
    assert region.mask is None
    assert region.boxes == (Box(0, 0, 2, 2), Box(3, 3, 4, 4))


@pytest.mark.parametrize(
    "value",
    [
        expected_mask(),
        expected_mask().astype(np.uint8),
        expected_mask().astype(np.float32),
        expected_mask().astype(int).tolist(),
        torch.from_numpy(expected_mask()),
        torch.from_numpy(expected_mask()).float(),
        torch.from_numpy(expected_mask()).to(torch.bfloat16),
    ],
    ids=["bool", "uint8-0/1", "float-0/1", "nested-list", "bool-tensor", "float-tensor", "bf16"],
)
def test_masks(value) -> None:
    region = as_region(value, "head")
    assert region.name == "head"
    assert region.boxes == ()
    assert region.mask is not None and region.mask.dtype == np.bool_
    np.testing.assert_array_equal(region.mask, expected_mask())


def test_a_boolean_mask_is_copied() -> None:
    mask = expected_mask()
    region = as_region(mask, "head")
    mask[:] = False
    assert region.mask is not None and region.mask.sum() == BOX.mask(H, W).sum()


def test_nonzero_masks_read_any_number_as_the_region() -> None:
    values = expected_mask().astype(np.uint8) * 255
    values[0, 0] = 7
    region = as_region(values, "head", nonzero_masks=True)
    assert region.mask is not None
    assert region.mask.sum() == expected_mask().sum() + 1
    soft = np.array([[0.0, 0.3], [0.7, 1.0]])
    assert as_region(soft, "soft", nonzero_masks=True).mask.tolist() == [
        [False, True],
        [True, True],
    ]
    # a tensor too, and an (N, 4) array stays a list of boxes
    assert as_region(torch.tensor(values), "t", nonzero_masks=True).mask.sum() == 21
    boxes = as_region(np.array([[0, 0, 1, 1]]), "b", nonzero_masks=True)
    assert boxes.boxes == (Box(0, 0, 1, 1),) and boxes.mask is None


def test_a_four_column_array_is_a_mask_when_it_holds_only_0_and_1() -> None:
    mask = np.array([[0, 1, 1, 0], [0, 1, 0, 0]])
    region = as_region(mask, "thin")
    assert region.boxes == () and region.mask is not None
    assert region.mask.tolist() == mask.astype(bool).tolist()
    # a boolean array is always a mask
    assert as_region(mask.astype(bool), "b", nonzero_masks=True).mask is not None


def test_sample_coerces_its_region_values() -> None:
    mask = expected_mask()
    kept = Region("other", (BOX,))
    sample = Sample(
        "s",
        regions={"box": (2, 3, 6, 8), "two": [(0, 0, 2, 2), BOX], "mask": mask, "kept": kept},
    )
    assert sample.regions["box"].boxes == (BOX,)
    assert sample.regions["box"].name == "box"
    assert len(sample.regions["two"].boxes) == 2
    np.testing.assert_array_equal(sample.regions["mask"].mask, mask)
    assert sample.regions["kept"] is kept  # a Region keeps its name in a Sample
    listed = Sample("t", regions=[Region("a", (BOX,)), Region("b", (BOX,))])
    assert list(listed.regions) == ["a", "b"]


# -------------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        ((1, 2, 3), ValueError, "4 numbers"),
        ([], ValueError, "got 0 values"),
        ((1, 2, 3, 4, 5), ValueError, "got 5 values"),
        (np.array([1.0, 2.0]), ValueError, "4 numbers"),
        ((5, 5, 1, 1), ValueError, "inverted"),
        ((0, 0, float("nan"), 1), ValueError, "non-finite"),
        (np.array([[0, 0, 2, 2], [5, 5, 1, 1]]), ValueError, "head (box 1): box"),
        ([(0, 0, 2, 2), (3, 3, 4)], ValueError, "head (box 1): a box is 4 numbers"),
        ([Box(0, 0, 1, 1), "x"], TypeError, "head (box 1): a box is a Box or 4 numbers"),
        ([Box(0, 0, 1, 1), (0, "a", 1, 1)], TypeError, "a box is 4 numbers"),
        (np.array([[0.0, 0.3], [0.7, 1.0]]), ValueError, "boolean"),
        (np.array([[0, 2], [1, 0]], dtype=np.uint8), ValueError, "threshold it first"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), ValueError, "boolean"),
        (np.zeros((2, 3, 3), dtype=bool), ValueError, "2-D"),
        (torch.zeros(1, 4, 4), ValueError, "2-D"),
        (np.zeros(()), ValueError, "2-D"),
        ("head", TypeError, "str"),
        (b"head", TypeError, "bytes"),
        (3.0, TypeError, "float"),
        (None, TypeError, "NoneType"),
        ({"x0": 1}, TypeError, "got dict"),
        (["x0", "y0", "x1", "y1"], TypeError, "got ['x0', 'y0', 'x1', 'y1']"),
        (np.array(["a", "b", "c", "d"]), TypeError, "dtype <U1"),
        (np.array([1 + 1j, 2, 3, 4]), TypeError, "real numbers"),
        ([1 + 1j, 2, 3, 4], TypeError, "got [(1+1j), 2, 3, 4]"),
        ([[0, 1], [1]], ValueError, "head (box 0): a box is 4 numbers"),
        ([object(), object()], TypeError, "expected a Region"),
    ],
)
def test_refusals_name_the_region_and_say_what_is_accepted(value, error, text) -> None:
    with pytest.raises(error) as info:
        as_region(value, "head")
    message = str(info.value)
    assert text in message
    assert "head" in message


def test_type_errors_list_every_accepted_kind() -> None:
    with pytest.raises(TypeError) as info:
        as_region(object(), "head")
    assert REGION_KINDS in str(info.value)
    for kind in ("Region", "Box", "(x0, y0, x1, y1)", "list of boxes", "mask"):
        assert kind in REGION_KINDS


def test_an_empty_list_of_boxes_under_nonzero_masks_is_refused() -> None:
    with pytest.raises(ValueError, match="'head' has neither boxes nor a mask"):
        as_region(np.zeros((0, 4)), "head", nonzero_masks=True)
