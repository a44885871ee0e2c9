"""Model specs, weights loading and device resolution (hardware faked with monkeypatch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_camcheck.errors import ConfigError
from pytest_camcheck.loading import load_model, resolve_device


def test_torchvision_spec_with_kwargs() -> None:
    m = load_model("torchvision:resnet18", kwargs={"num_classes": 3})
    assert m.fc.out_features == 3 and not m.training


def test_unknown_torchvision_model_suggests_names() -> None:
    with pytest.raises(ConfigError, match="no model 'resnet81'; did you mean resnet18"):
        load_model("torchvision:resnet81")


def test_factory_spec_from_rootdir(tmp_path: Path) -> None:
    (tmp_path / "mymodels_x1.py").write_text(
        "from torch import nn\n\ndef build(width=4):\n    return nn.Conv2d(3, width, 1)\n"
    )
    m = load_model("mymodels_x1:build", kwargs={"width": 5}, rootdir=tmp_path)
    assert isinstance(m, nn.Conv2d) and m.out_channels == 5
    assert str(tmp_path) not in sys.path
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_model("mymodels_x1:nope", rootdir=tmp_path)
    with pytest.raises(ConfigError, match="cannot import module 'not_a_module_zz'"):
        load_model("not_a_module_zz:build", rootdir=tmp_path)


def test_weights_only_by_default_and_opt_in(tmp_path: Path) -> None:
    net = nn.Linear(2, 2)
    good = tmp_path / "good.pt"
    torch.save({"state_dict": net.state_dict()}, good)
    m = load_model("torchvision:resnet18", weights=None)
    assert m is not None
    (tmp_path / "lin_factory.py").write_text(
        "from torch import nn\n\ndef lin():\n    return nn.Linear(2, 2)\n"
    )
    loaded = load_model("lin_factory:lin", weights=str(good), rootdir=tmp_path)
    assert torch.equal(loaded.weight, net.weight)

    risky = tmp_path / "risky.pt"
    torch.save({"state_dict": net.state_dict(), "args": argparse.Namespace(lr=1)}, risky)
    with pytest.raises(ConfigError, match="camcheck_trust_weights"):
        load_model("lin_factory:lin", weights=str(risky), rootdir=tmp_path)
    trusted = load_model(
        "lin_factory:lin", weights=str(risky), trust_weights=True, rootdir=tmp_path
    )
    assert torch.equal(trusted.weight, net.weight)


def test_weights_that_do_not_fit_say_so(tmp_path: Path) -> None:
    torch.save(nn.Linear(3, 3).state_dict(), tmp_path / "w.pt")
    (tmp_path / "lin_factory2.py").write_text(
        "from torch import nn\n\ndef lin():\n    return nn.Linear(2, 2)\n"
    )
    with pytest.raises(ConfigError, match="does not fit the model Linear"):
        load_model("lin_factory2:lin", weights=str(tmp_path / "w.pt"), rootdir=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_model("lin_factory2:lin", weights=str(tmp_path / "missing.pt"), rootdir=tmp_path)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_file(tmp_path: Path) -> None:
    scripted = torch.jit.script(nn.Sequential(nn.Conv2d(3, 2, 1)))
    scripted.save(str(tmp_path / "m.ts"))
    m = load_model("m.ts", rootdir=tmp_path)
    assert isinstance(m, torch.jit.ScriptModule)
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(ConfigError, match="is not a TorchScript archive"):
        load_model("bad.pt", rootdir=tmp_path)


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_auto_device_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, 0)
    device, why = resolve_device("auto")
    assert device == torch.device("cpu") and why == "cuda not available, using cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize(
    ("worker", "expected"),
    [(None, "cuda:0"), ("gw0", "cuda:0"), ("gw1", "cuda:1"), ("gw2", "cuda:0"), ("gw5", "cuda:1")],
)
def test_xdist_workers_spread_over_gpus(monkeypatch, worker, expected) -> None:
    _fake_cuda(monkeypatch, 2)
    device, why = resolve_device("auto", worker)
    assert str(device) == expected
    if worker:
        assert f"worker {worker} takes {expected}" in why
    assert str(resolve_device("cuda", worker)[0]) == expected
    assert str(resolve_device("cuda:1", worker)[0]) == "cuda:1"
    with pytest.raises(ConfigError, match="has 2 CUDA device"):
        resolve_device("cuda:2", worker)
