"""Shared fixtures for the engine tests: tiny seeded models and a cached torchvision zoo.

The models here are small enough to run hundreds of CAMs per second on a CPU, and seeded so that
every run sees the same numbers. Test modules reach everything through fixtures (two conftest.py
files share the module name ``conftest``, so importing from one is not reliable).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor, nn

HAS_CUDA = torch.cuda.is_available()

# Under pytest-xdist, share the cores between the workers instead of letting every worker start
# one torch thread per core: oversubscribed CPUs spend more time spinning than computing.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
if _WORKERS > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.gpu`` tests on machines without CUDA."""
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none available)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class TinyNet(nn.Module):
    """conv-ReLU-conv-ReLU (``features``), global average pooling (``pool``), linear (``fc``).

    The CAM layer is ``features`` (or ``features.3`` / ``features.2``); the head is GAP + one
    linear layer, so the analytic identities of CAM and Grad-CAM hold exactly.
    """

    def __init__(self, classes: int = 5, width: int = 8, inplace: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(inplace=inplace),
            nn.Conv2d(width, 2 * width, 3, padding=1, stride=2),
            nn.ReLU(inplace=inplace),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def make_tiny(seed: int = 0, **kwargs: object) -> TinyNet:
    """A seeded :class:`TinyNet` in eval mode."""
    torch.manual_seed(seed)
    return TinyNet(**kwargs).eval()  # type: ignore[arg-type]


def seeded_images(*shape: int, seed: int = 0) -> Tensor:
    """A seeded standard-normal tensor of the given shape."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


@pytest.fixture
def tiny_model() -> TinyNet:
    """A fresh seeded 5-class :class:`TinyNet` (eval mode).

    Example::

        def test_x(tiny_model, tiny_images):
            result = compute_cams(tiny_model, tiny_images, layers="features")
    """
    return make_tiny()


@pytest.fixture
def tiny_images() -> Tensor:
    """Two seeded 3x16x16 images: ``(2, 3, 16, 16)`` float32."""
    return seeded_images(2, 3, 16, 16, seed=1)


@pytest.fixture
def make_tiny_model() -> Callable[..., TinyNet]:
    """Factory of seeded :class:`TinyNet` models.

    Example::

        def test_x(make_tiny_model):
            model = make_tiny_model(seed=3, classes=4, width=4, inplace=True)
    """
    return make_tiny


@pytest.fixture
def images() -> Callable[..., Tensor]:
    """Factory of seeded standard-normal tensors: ``images(2, 3, 16, 16, seed=1)``."""
    return seeded_images


_ZOO: dict[tuple[str, tuple[tuple[str, object], ...]], nn.Module] = {}


def build_zoo(name: str, **kwargs: object) -> nn.Module:
    """A torchvision model with random weights (seed 0), built once per process.

    The same object is returned to every caller: do not modify it, ``copy.deepcopy`` it first.
    """
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _ZOO:
        import torchvision.models as tvm

        torch.manual_seed(0)
        _ZOO[key] = getattr(tvm, name)(weights=None, **kwargs).eval()
    return _ZOO[key]


@pytest.fixture(scope="session")
def tv_zoo() -> Callable[..., nn.Module]:
    """Cached torchvision models with random weights: ``tv_zoo("resnet18")``.

    Shared between tests: treat the model as read-only (``copy.deepcopy`` it to change it).
    """
    return build_zoo


def pearson_r(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two tensors, flattened, in float64."""
    x = a.detach().flatten().double()
    y = b.detach().flatten().double()
    x = x - x.mean()
    y = y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()))


@pytest.fixture
def pearson() -> Callable[[Tensor, Tensor], float]:
    """``pearson(a, b)``: the correlation of two tensors (flattened)."""
    return pearson_r


def hooks_of(model: nn.Module) -> dict[str, int]:
    """Module name -> number of hooks of any kind still registered on it (non-zero only)."""
    out = {}
    for name, m in model.named_modules():
        n = (
            len(m._forward_hooks)
            + len(m._forward_pre_hooks)
            + len(m._backward_hooks)
            + len(m._backward_pre_hooks)
        )
        if n:
            out[name or "<model>"] = n
    return out


@pytest.fixture
def assert_no_hooks() -> Callable[[nn.Module], None]:
    """``assert_no_hooks(model)`` fails if any module of ``model`` still holds a hook."""

    def check(model: nn.Module) -> None:
        left = hooks_of(model)
        assert not left, f"hooks left on modules: {left}"

    return check


@pytest.fixture
def hook_count() -> Callable[[nn.Module], dict[str, int]]:
    """``hook_count(model)``: module name -> number of hooks registered on it (non-zero only)."""
    return hooks_of


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run torch on one thread for the test (tiny models are faster so on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
