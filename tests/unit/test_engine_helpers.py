"""The engine helpers other modules use, public API of ``pytest_camcheck.cam``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pytest_camcheck.cam as cam
from pytest_camcheck.cam import engine
from pytest_camcheck.errors import EngineError


@pytest.mark.parametrize(
    "name", ["as_batch", "frozen_model", "model_device_dtype", "select_output"]
)
def test_exported_from_the_package_and_the_engine(name: str) -> None:
    assert getattr(cam, name) is getattr(engine, name)
    assert name in cam.__all__ and name in engine.__all__
    assert getattr(engine, name).__doc__
    assert not hasattr(engine, "_" + name)


def test_model_device_dtype() -> None:
    assert cam.model_device_dtype(nn.Linear(2, 2).double()) == (torch.device("cpu"), torch.float64)
    buffers_only = nn.BatchNorm2d(3, affine=False).half()
    assert cam.model_device_dtype(buffers_only) == (torch.device("cpu"), torch.float16)
    assert cam.model_device_dtype(nn.ReLU()) == (torch.device("cpu"), torch.float32)


def test_as_batch() -> None:
    x = torch.rand(2, 3, 4, 4)
    assert cam.as_batch(x) is x
    assert cam.as_batch(x[0]).shape == (1, 3, 4, 4)
    assert cam.as_batch([x[0], x[1]]).shape == (2, 3, 4, 4)
    with pytest.raises(EngineError, match="images is empty"):
        cam.as_batch([])
    with pytest.raises(EngineError, match="floating point"):
        cam.as_batch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(EngineError, match=r"\(B, C, H, W\) or \(C, H, W\)"):
        cam.as_batch(torch.zeros(4, 4))


def test_select_output() -> None:
    logits = torch.rand(2, 5)
    assert cam.select_output(logits, None) is logits
    assert cam.select_output((logits, "aux"), None) is logits
    assert cam.select_output({"aux": 1, "logits": logits}, "logits") is logits
    assert cam.select_output(logits[:, :, None, None], None).shape == (2, 5)
    assert cam.select_output({"x": logits}, lambda out: out["x"] * 2).shape == (2, 5)
    with pytest.raises(EngineError, match=r"output='y' is not in the model's output \(\['x'\]\)"):
        cam.select_output({"x": logits}, "y")
    with pytest.raises(EngineError, match="leave output=None"):
        cam.select_output(logits, 0)


def test_frozen_model_restores_flags_and_grad_mode() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    model.train()
    with torch.enable_grad():
        with cam.frozen_model(model, freeze_params=True):
            assert not model.training and not model[1].training
            assert not any(p.requires_grad for p in model.parameters())
            torch.set_grad_enabled(False)
        assert torch.is_grad_enabled()
    assert model.training and model[1].training
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(RuntimeError, match="boom"), cam.frozen_model(model, freeze_params=False):
        assert all(p.requires_grad for p in model.parameters())
        raise RuntimeError("boom")
    assert model.training
