"""The engine leaves the model as it found it: hooks, gradients, flags, grad mode, memory."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import Tensor, nn

from pytest_camcheck.cam import METHODS, compute_cams
from pytest_camcheck.errors import EngineError


def seeded(*shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


class Tiny(nn.Module):
    """conv-ReLU-conv-ReLU (``features``), spatial mean, linear (``fc``); seeded, eval mode."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, stride=2),
            nn.ReLU(),
        )
        self.fc = nn.Linear(2 * width, 5)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


class Boom(Exception):
    """Raised on purpose inside a forward or a target."""


class ExplodingHead(nn.Module):
    """A :class:`Tiny` whose head raises after the CAM layer has run (and been hooked)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Tiny()

    def forward(self, x: Tensor) -> Tensor:
        self.net.features(x)
        raise Boom("forward failed")


class Spy(nn.Module):
    """Records, during the forward, the hooks on ``net.features`` and every module's mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Tiny()
        self.seen_hooks: list[int] = []
        self.seen_training: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen_hooks.append(len(self.net.features._forward_hooks))
        self.seen_training.append(any(m.training for m in self.modules()))
        return self.net(x)


def live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), Tensor))


# -- hooks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_hooks_exist_during_the_call_and_are_gone_after(method: str, assert_no_hooks) -> None:
    model = Spy()
    compute_cams(model, seeded(2, 3, 16, 16), layers="net.features", method=method)
    assert model.seen_hooks[0] >= 1  # the first forward is the CAM forward, with its hook
    assert_no_hooks(model)


def test_hooks_removed_when_the_forward_raises(assert_no_hooks) -> None:
    model = ExplodingHead()
    with pytest.raises(Boom):
        compute_cams(model, seeded(1, 3, 16, 16), layers="net.features")
    assert_no_hooks(model)
    assert torch.is_grad_enabled()


def test_hooks_removed_when_a_callable_target_raises(tiny_model, assert_no_hooks) -> None:
    def target(logits: Tensor) -> Tensor:
        raise Boom("target failed")

    with pytest.raises(Boom):
        compute_cams(tiny_model, seeded(2, 3, 16, 16), layers="features", targets=target)
    assert_no_hooks(tiny_model)
    assert all(p.requires_grad for p in tiny_model.parameters())


def test_hooks_removed_after_an_engine_error(tiny_model, assert_no_hooks) -> None:
    with pytest.raises(EngineError, match="out of range"):
        compute_cams(tiny_model, seeded(2, 3, 16, 16), layers="features", targets=99)
    assert_no_hooks(tiny_model)


def test_thousand_calls_leave_no_hook_and_no_tensor(single_thread, hook_count) -> None:
    model = Tiny(width=4)
    x = seeded(1, 3, 8, 8)
    for _ in range(3):  # warm-up: lazy initialisations inside torch
        compute_cams(model, x, layers="features")
    before = live_tensors()
    for _ in range(1000):
        result = compute_cams(model, x, layers="features")
    del result
    after = live_tensors()
    assert hook_count(model) == {}
    assert after - before <= 2, f"{after - before} tensors leaked over 1,000 calls"


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "cam", "scorecam", "eigencam"])
def test_autograd_graph_dies_with_the_call(method: str, tiny_model) -> None:
    # A tensor computed downstream of the CAM layer (the logits, which carry a grad_fn during the
    # call) must be freed by reference counting alone as soon as the call returns: no cycle, no
    # stored graph.
    refs: list[weakref.ref[Tensor]] = []
    handle = tiny_model.fc.register_forward_hook(
        lambda module, inputs, output: refs.append(weakref.ref(output))
    )
    gc.disable()
    try:
        result = compute_cams(tiny_model, seeded(2, 3, 16, 16), layers="features", method=method)
        alive = [r() is not None for r in refs]
    finally:
        gc.enable()
        handle.remove()
    assert refs and not any(alive)
    tensors = [*result.maps.values(), *result.raw.values(), result.logits, result.targets]
    assert not any(t.requires_grad or t.grad_fn is not None for t in tensors)


def test_grad_fn_during_the_call_is_released() -> None:
    # The same with the activation's own graph node: keep a weak reference to the layer's output
    # as the engine hands it on (the tensor downstream modules see).
    model = Tiny()
    refs: list[weakref.ref[Tensor]] = []
    handle = model.features[3].register_forward_hook(
        lambda module, inputs, output: refs.append(weakref.ref(output))
    )
    gc.disable()
    try:
        compute_cams(model, seeded(2, 3, 16, 16), layers="features.2")
        alive = [r() is not None for r in refs]
    finally:
        gc.enable()
        handle.remove()
    assert refs and not any(alive)


# -- gradients, flags, requires_grad, grad mode ------------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam", "scorecam"])
def test_param_grads_untouched(method: str) -> None:
    model = Tiny()
    params = list(model.parameters())
    preset = {i: torch.full_like(p, 0.5 + i) for i, p in enumerate(params) if i % 2 == 0}
    for i, p in enumerate(params):
        p.grad = preset[i].clone() if i in preset else None
    compute_cams(model, seeded(2, 3, 16, 16), layers="features", method=method)
    for i, p in enumerate(params):
        if i in preset:
            assert p.grad is not None and torch.equal(p.grad, preset[i]), f"param {i} grad changed"
        else:
            assert p.grad is None, f"param {i} got a gradient"


def test_weights_and_buffers_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    compute_cams(model, seeded(4, 3, 12, 12), layers="2")
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed (the forward must run in eval mode)"


def mixed_flags(model: nn.Module) -> dict[str, bool]:
    model.train()
    for i, m in enumerate(model.modules()):
        m.training = i % 2 == 0
    return {name: m.training for name, m in model.named_modules()}


@pytest.mark.parametrize("method", ["gradcam", "cam", "scorecam"])
def test_train_eval_flags_restored_and_eval_used(method: str) -> None:
    model = Spy()
    flags = mixed_flags(model)
    assert len(set(flags.values())) == 2
    compute_cams(model, seeded(2, 3, 16, 16), layers="net.features", method=method)
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert model.seen_training and not any(model.seen_training), "forward ran in train mode"


def test_train_eval_flags_restored_after_an_error() -> None:
    model = ExplodingHead()
    flags = mixed_flags(model)
    with pytest.raises(Boom):
        compute_cams(model, seeded(1, 3, 16, 16), layers="net.features")
    assert {name: m.training for name, m in model.named_modules()} == flags


def test_requires_grad_restored_mixed() -> None:
    model = Tiny()
    wanted = {}
    for i, (name, p) in enumerate(model.named_parameters()):
        p.requires_grad_(i % 2 == 1)
        wanted[name] = i % 2 == 1
    compute_cams(model, seeded(2, 3, 16, 16), layers="features")
    assert {n: p.requires_grad for n, p in model.named_parameters()} == wanted


def test_all_parameters_frozen() -> None:
    x = seeded(2, 3, 16, 16)
    reference = compute_cams(Tiny(), x, layers="features")
    model = Tiny().requires_grad_(False)
    result = compute_cams(model, x, layers="features")
    assert not any(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(result.raw["features"], reference.raw["features"])
    assert not result.degenerate["features"].any()


@pytest.mark.parametrize("method", ["gradcam", "xgradcam"])
def test_inside_no_grad(method: str) -> None:
    model = Tiny()
    x = seeded(2, 3, 16, 16)
    reference = compute_cams(model, x, layers="features", method=method)
    with torch.no_grad():
        result = compute_cams(model, x, layers="features", method=method)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    torch.testing.assert_close(result.raw["features"], reference.raw["features"])


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "layercam"])
def test_inference_mode_gradient_method_raises(method: str, assert_no_hooks) -> None:
    model = Tiny()
    with torch.inference_mode(), pytest.raises(EngineError, match="inference_mode") as info:
        compute_cams(model, seeded(1, 3, 16, 16), layers="features", method=method)
    assert method in str(info.value)
    assert_no_hooks(model)


@pytest.mark.parametrize("method", ["cam", "eigencam"])
def test_inference_mode_gradient_free_method_works(method: str) -> None:
    model = Tiny()
    x = seeded(2, 3, 16, 16)
    reference = compute_cams(model, x, layers="features", method=method)
    with torch.inference_mode():
        result = compute_cams(model, x, layers="features", method=method)
    torch.testing.assert_close(result.raw["features"], reference.raw["features"])
    assert not result.degenerate["features"].any()


def test_grad_mode_restored_when_enabled_and_disabled(tiny_model: nn.Module) -> None:
    x = seeded(1, 3, 16, 16)
    compute_cams(tiny_model, x, layers="features")
    assert torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        compute_cams(tiny_model, x, layers="features")
        assert not torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)
