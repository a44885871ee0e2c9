"""Several classes per image ("pairs mode"): ``targets=[[3, 5], [2], [7, 1, 4]]``.

Every (image, class) row must give the maps of a call on that image alone with that class, from
one forward per chunk of images and one batched backward (or, when autograd cannot batch it,
one backward per class slot from the same forward).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck.cam import METHODS, CamResult, compute_cams
from pytest_camcheck.errors import EngineError

TARGETS = [[3, 5], [2], [7, 1, 4]]
PAIRS = [(0, 3), (0, 5), (1, 2), (2, 7), (2, 1), (2, 4)]  # (image, class) of each row
RESNET_LAYERS = ["layer3", "layer4"]


def seeded(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    """A seeded 10-class resnet18 with random weights (private: tests here count its hooks)."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.fixture(scope="module")
def x3() -> Tensor:
    return seeded(3, 3, 64, 64, seed=2)


class Tiny(nn.Module):
    """conv-ReLU-conv-ReLU (``features``), global average pooling, linear: 6 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, padding=1, stride=2),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 6)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    return Tiny()


def layers_for(method: str) -> list[str]:
    # 'cam' only explains the last spatial layer before the pooling.
    return ["layer4"] if method == "cam" else RESNET_LAYERS


def assert_row_matches(
    result: CamResult, row: int, single: CamResult, i: int = 0, tol: float = 1e-5
) -> None:
    """Row ``row`` of ``result`` equals row ``i`` of ``single`` (maps, raw, flags, logits).

    ``tol``: relative tolerance. Compare calls on the same batch with the default; a batch of
    one image against a batch of several needs more (convolutions may take another algorithm
    for another batch size or thread count, e.g. under xdist).
    """
    for name in result.layers:
        expected = single.raw[name][i]
        scale = float(expected.abs().max()) + 1e-12
        torch.testing.assert_close(result.raw[name][row], expected, rtol=tol, atol=tol * scale)
        if tol > 1e-5:  # ReLU + min-max magnify tiny differences of a nearly all-negative map
            continue
        torch.testing.assert_close(result.maps[name][row], single.maps[name][i], rtol=tol, atol=tol)
        assert bool(result.degenerate[name][row]) == bool(single.degenerate[name][i])
    assert int(result.targets[row]) == int(single.targets[i])
    torch.testing.assert_close(result.logits[row], single.logits[i], rtol=1e-5, atol=1e-5)


class Counter:
    """Counts the forwards of a model (a forward pre-hook on the top module)."""

    def __init__(self, model: nn.Module) -> None:
        self.n = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: Any) -> None:
        self.n += 1

    def remove(self) -> None:
        self.handle.remove()


@pytest.fixture
def grad_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records the keyword arguments of every ``torch.autograd.grad`` call."""
    calls: list[dict[str, Any]] = []
    real = torch.autograd.grad

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", spy)
    return calls


# -- every method: each row equals a call on that image alone with that class ---------------------


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"scorecam"}))
def test_each_pair_equals_its_single_image_call(method: str, resnet, x3) -> None:
    layers = layers_for(method)
    result = compute_cams(resnet, x3, layers, method=method, targets=TARGETS)
    assert len(result) == len(PAIRS)
    assert result.image_index is not None and result.image_index.dtype == torch.int64
    assert result.image_index.tolist() == [b for b, _ in PAIRS]
    assert result.targets.tolist() == [c for _, c in PAIRS]
    assert result.logits.shape == (len(PAIRS), 10)
    for name in result.layers:
        assert result.maps[name].shape == (len(PAIRS), 64, 64)
        assert result.degenerate[name].shape == (len(PAIRS),)
    # the same batch in normal mode, one call per class slot: equal to float precision
    slots = max(len(t) for t in TARGETS)
    for k in range(slots):
        per_image = [t[k] if k < len(t) else t[0] for t in TARGETS]
        whole = compute_cams(resnet, x3, layers, method=method, targets=per_image)
        for row, (b, c) in enumerate(PAIRS):
            if c == per_image[b]:
                assert_row_matches(result, row, whole, b)
    # each image alone with its class: equal up to the batch size's effect on the forward
    for row, (b, c) in enumerate(PAIRS):
        single = compute_cams(resnet, x3[b : b + 1], layers, method=method, targets=c)
        assert_row_matches(result, row, single, tol=2e-2)


def test_scorecam_pairs_equal_single_calls_and_share_the_masked_forwards(tiny) -> None:
    x = seeded(3, 3, 12, 12, seed=5)
    targets = [[0, 4], [], [5, 1, 2]]
    pairs = [(0, 0), (0, 4), (2, 5), (2, 1), (2, 2)]
    layers = ["features.1", "features"]
    counter = Counter(tiny)
    try:
        result = compute_cams(tiny, x, layers, method="scorecam", targets=targets, batch_size=4)
        forwards = counter.n
    finally:
        counter.remove()
    # one forward of the batch, then per layer and per image WITH classes (not per pair), the
    # masked inputs in chunks of 4: features.1 has 4 channels (1 chunk), features 6 (2 chunks)
    assert forwards == 1 + 2 * (1 + 2)
    assert result.image_index.tolist() == [b for b, _ in pairs]
    for row, (b, c) in enumerate(pairs):
        single = compute_cams(tiny, x[b : b + 1], layers, method="scorecam", targets=c)
        assert_row_matches(result, row, single)


def test_rows_equal_the_batch_call_of_their_class_under_amp(resnet, x3) -> None:
    """Under autocast the rows keep the batch's own forward: equal to ``targets=c`` on it."""
    result = compute_cams(resnet, x3, RESNET_LAYERS, method="gradcam", targets=TARGETS, amp=True)
    for row, (b, c) in enumerate(PAIRS):
        whole = compute_cams(resnet, x3, RESNET_LAYERS, method="gradcam", targets=c, amp=True)
        assert_row_matches(result, row, whole, b)


# -- chunks, empty entries, entry types -----------------------------------------------------------


def test_chunks_carry_their_pairs(resnet) -> None:
    x = seeded(5, 3, 64, 64, seed=3)
    targets = [[1, 2], [], [9], [0, 8, 3], [4]]
    whole = compute_cams(resnet, x, RESNET_LAYERS, method="gradcam++", targets=targets)
    progress: list[tuple[int, int]] = []
    chunked = compute_cams(
        resnet,
        x,
        RESNET_LAYERS,
        method="gradcam++",
        targets=targets,
        batch_size=2,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert chunked.image_index.tolist() == [0, 0, 2, 3, 3, 3, 4]
    assert chunked.targets.tolist() == [1, 2, 9, 0, 8, 3, 4]
    assert len(chunked) == 7
    for row, b in enumerate(chunked.image_index.tolist()):
        assert_row_matches(chunked, row, whole, row)
        c = int(chunked.targets[row])
        single = compute_cams(resnet, x[b : b + 1], RESNET_LAYERS, method="gradcam++", targets=c)
        assert_row_matches(chunked, row, single)


def test_a_chunk_without_any_class_gives_no_row(resnet) -> None:
    x = seeded(4, 3, 64, 64, seed=4)
    result = compute_cams(resnet, x, "layer4", targets=[[], [], [6], []], batch_size=2)
    assert result.image_index.tolist() == [2]
    assert result.targets.tolist() == [6]
    single = compute_cams(resnet, x[2:3], "layer4", targets=6)
    assert_row_matches(result, 0, single)


@pytest.mark.parametrize("method", ["gradcam", "cam", "eigencam", "scorecam"])
def test_no_class_at_all_gives_an_empty_result(method: str, tiny) -> None:
    x = seeded(2, 3, 12, 12, seed=6)
    result = compute_cams(tiny, x, "features", method=method, targets=[[], []])
    assert len(result) == 0
    assert result.maps["features"].shape == (0, 12, 12)
    assert result.raw["features"].shape == (0, 6, 6)
    assert result.degenerate["features"].shape == (0,)
    assert result.targets.shape == (0,) and result.image_index.shape == (0,)
    assert result.logits.shape == (0, 6)


def test_entries_may_be_tensors_arrays_and_tuples(tiny) -> None:
    x = seeded(3, 3, 12, 12, seed=7)
    targets = [torch.tensor([2, 0]), np.array([5], dtype=np.int64), (torch.tensor(3), np.int32(1))]
    result = compute_cams(tiny, x, "features", targets=targets)
    assert result.targets.tolist() == [2, 0, 5, 3, 1]
    assert result.image_index.tolist() == [0, 0, 1, 2, 2]
    reference = compute_cams(tiny, x, "features", targets=[[2, 0], [5], [3, 1]])
    torch.testing.assert_close(result.maps["features"], reference.maps["features"])


def test_one_class_per_image_equals_the_per_image_form(resnet, x3) -> None:
    pairs = compute_cams(resnet, x3, RESNET_LAYERS, targets=[[4], [0], [9]])
    plain = compute_cams(resnet, x3, RESNET_LAYERS, targets=[4, 0, 9])
    assert pairs.image_index.tolist() == plain.image_index.tolist() == [0, 1, 2]
    for row in range(3):
        assert_row_matches(pairs, row, plain, row)


# -- errors ---------------------------------------------------------------------------------------


def test_wrong_number_of_lists_is_an_error(tiny) -> None:
    x = seeded(3, 3, 12, 12)
    with pytest.raises(EngineError, match=r"targets has 2 lists of classes but there are 3 images"):
        compute_cams(tiny, x, "features", targets=[[1], [2, 3]])


def test_out_of_range_classes_are_named(tiny) -> None:
    x = seeded(3, 3, 12, 12)
    with pytest.raises(EngineError, match=r"target class \[-1, 6, 9\] out of range.*6 classes"):
        compute_cams(tiny, x, "features", targets=[[1, 9], [], [6, -1, 2]])
    # also when the bad class is in a later chunk than the first
    with pytest.raises(EngineError, match=r"target class \[7\] out of range"):
        compute_cams(tiny, x, "features", targets=[[1], [2], [7]], batch_size=1)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([[1, 2], 3, [0]], r"targets\[1\] is 3.*every entry must be a list"),
        ([[1], lambda logits: logits[:, 0], [0]], r"targets\[1\] is a callable"),
        ([[1], [lambda logits: logits[:, 0]], [0]], r"targets\[1\] holds a callable"),
        ([[1.5], [2], [0]], r"targets\[0\] must hold integer class indices"),
        ([[True], [2], [0]], r"targets\[0\] must hold integer class indices"),
        ([[1], torch.tensor([0.0]), [0]], r"targets\[1\] must hold integer.*float32"),
        ([[1], torch.zeros(1, 2, dtype=torch.long), [0]], r"targets\[1\] must be a 1-d list"),
    ],
)
def test_malformed_class_lists_are_errors(tiny, targets: list, message: str) -> None:
    x = seeded(3, 3, 12, 12)
    with pytest.raises(EngineError, match=message):
        compute_cams(tiny, x, "features", targets=targets)


# -- cost: one forward per chunk, one batched backward --------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "cam", "eigencam"])
def test_one_forward_per_chunk(method: str, resnet, grad_calls) -> None:
    x = seeded(5, 3, 64, 64, seed=8)
    targets = [[1, 2, 3], [4], [5, 6], [], [7, 8]]
    counter = Counter(resnet)
    try:
        result = compute_cams(resnet, x, "layer4", method=method, targets=targets, batch_size=2)
        forwards = counter.n
    finally:
        counter.remove()
    assert forwards == 3
    assert len(result) == 8
    if METHODS[method].needs_gradients:
        # chunk 1: K=3 (batched), chunk 2: K=2 (batched), chunk 3: K=2 (batched)
        assert [c.get("is_grads_batched", False) for c in grad_calls] == [True, True, True]
    else:
        assert grad_calls == []


def test_one_class_per_image_needs_no_batched_backward(resnet, x3, grad_calls) -> None:
    compute_cams(resnet, x3, "layer4", targets=[[1], [2], [3]])
    assert len(grad_calls) == 1 and not grad_calls[0].get("is_grads_batched", False)


def test_fallback_without_batched_backward_gives_the_same_maps(
    resnet, x3, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    batched = compute_cams(resnet, x3, RESNET_LAYERS, method="hirescam", targets=TARGETS)
    real = torch.autograd.grad
    calls: list[bool] = []

    def no_vmap(*args: Any, **kwargs: Any) -> Any:
        calls.append(bool(kwargs.get("is_grads_batched", False)))
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("Batching rule not implemented for aten::something")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_vmap)
    counter = Counter(resnet)
    try:
        with caplog.at_level(logging.DEBUG, logger="pytest_camcheck"):
            slow = compute_cams(resnet, x3, RESNET_LAYERS, method="hirescam", targets=TARGETS)
        forwards = counter.n
    finally:
        counter.remove()
    assert forwards == 1
    assert calls == [True, False, False, False]  # the batched try, then one per class slot
    assert "batched backward" in caplog.text and "Batching rule" in caplog.text
    assert slow.image_index.tolist() == batched.image_index.tolist()
    for row in range(len(PAIRS)):
        assert_row_matches(slow, row, batched, row)


# -- image_index in the normal mode, CamResult.to -------------------------------------------------


@pytest.mark.parametrize(
    "targets",
    [None, 2, [0, 1, 2], torch.tensor([1, 1, 0]), lambda logits: logits[:, 0]],
    ids=["none", "int", "list", "tensor", "callable"],
)
def test_normal_mode_rows_are_the_images(tiny, targets: Any) -> None:
    x = seeded(3, 3, 12, 12, seed=9)
    result = compute_cams(tiny, x, "features", targets=targets, batch_size=2)
    assert result.image_index is not None
    assert result.image_index.dtype == torch.int64
    assert result.image_index.tolist() == [0, 1, 2]


def test_to_and_cpu_carry_the_image_index(tiny) -> None:
    x = seeded(2, 3, 12, 12)
    result = compute_cams(tiny, x, "features", targets=[[1, 2], [3]])
    moved = result.to("cpu")
    assert moved.image_index is not None and moved.image_index.tolist() == [0, 0, 1]
    assert result.cpu().image_index.tolist() == [0, 0, 1]
    bare = CamResult(
        layers=("f",),
        maps={"f": torch.zeros(1, 2, 2)},
        raw={"f": torch.zeros(1, 1, 1)},
        targets=torch.zeros(1, dtype=torch.long),
        logits=torch.zeros(1, 3),
        degenerate={"f": torch.zeros(1, dtype=torch.bool)},
        method="gradcam",
    )
    assert bare.image_index is None and bare.cpu().image_index is None


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "cam", "scorecam"])
def test_pairs_on_cuda_match_the_cpu(method: str, tiny) -> None:
    import copy

    x = seeded(3, 3, 12, 12, seed=7)
    targets = [[0, 4], [], [5, 1, 2]]
    on_cpu = compute_cams(tiny, x, "features", method=method, targets=targets)
    model = copy.deepcopy(tiny).cuda()
    on_gpu = compute_cams(model, x, "features", method=method, targets=targets)
    assert on_gpu.raw["features"].device.type == "cuda"
    assert on_gpu.image_index.tolist() == on_cpu.image_index.tolist() == [0, 0, 2, 2, 2]
    got = on_gpu.cpu()
    torch.testing.assert_close(got.raw["features"], on_cpu.raw["features"], rtol=1e-3, atol=1e-4)
    assert got.targets.tolist() == [0, 4, 5, 1, 2]
