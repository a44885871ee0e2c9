"""Model and device specs -> objects on a device."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._spec import import_from_spec
from .errors import ConfigError

__all__ = ["load_model", "load_weights", "resolve_device"]

_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")


def resolve_device(setting: str, worker_id: str | None = None) -> tuple[Any, str]:
    """-> (torch.device, reason shown in the report header).

    ``auto`` takes CUDA when available; under pytest-xdist with several GPUs each worker takes
    ``cuda:{worker index mod count}``.
    """
    import torch

    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    index = 0
    if worker_id and worker_id.startswith("gw") and worker_id[2:].isdigit() and count:
        index = int(worker_id[2:]) % count
    if setting == "cpu":
        return torch.device("cpu"), "cpu (configured)"
    if setting == "auto":
        if cuda:
            why = f"cuda available ({count} device(s))"
            if worker_id:
                why += f", worker {worker_id} takes cuda:{index}"
            return torch.device(f"cuda:{index}"), why
        return torch.device("cpu"), "cuda not available, using cpu"
    if setting.startswith("cuda"):
        if not cuda:
            raise ConfigError(
                f"camcheck_device: {setting!r} was requested but CUDA is not available "
                f"(torch {torch.__version__}); use auto or cpu"
            )
        if setting == "cuda":
            return torch.device(f"cuda:{index}"), "cuda (configured)" + (
                f", worker {worker_id} takes cuda:{index}" if worker_id else ""
            )
        n = int(setting.split(":")[1])
        if n >= count:
            raise ConfigError(
                f"camcheck_device: {setting!r} does not exist; this machine has {count} CUDA "
                f"device(s): cuda:0..cuda:{count - 1}"
            )
        return torch.device(setting), f"{setting} (configured)"
    if setting == "mps":
        ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        if not ok:
            raise ConfigError("camcheck_device: 'mps' requested but not available; use auto or cpu")
        return torch.device("mps"), "mps (configured)"
    raise ConfigError(f"camcheck_device: expected auto, cpu, cuda or cuda:N, got {setting!r}")


def _unwrap_state_dict(obj: Any, path: str) -> Mapping[str, Any]:
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                return _unwrap_state_dict(inner, path)
            if isinstance(inner, torch.nn.Module):
                return inner.state_dict()
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            keys = list(obj)
            if keys and all(k.startswith("module.") for k in keys):  # saved from DataParallel
                return {k[len("module.") :]: v for k, v in obj.items()}
            return obj
    raise ConfigError(
        f"camcheck_weights: {path} holds a {type(obj).__name__}, not a state_dict (a mapping of "
        "parameter names to tensors); save it with torch.save(model.state_dict(), path)"
    )


def load_weights(model: Any, path: str | os.PathLike, trust: bool = False) -> None:
    """Load a state_dict file into ``model`` (``weights_only=True`` unless ``trust``)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"camcheck_weights: file {str(p)!r} does not exist")
    if p.suffix.lower() == ".safetensors":  # timm's and Hugging Face's checkpoints
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError(
                f"camcheck_weights: {str(p)!r} needs the safetensors package: pip install "
                "safetensors"
            ) from None
        try:
            state: Mapping[str, Any] = load_file(str(p), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise ConfigError(f"camcheck_weights: cannot read {str(p)!r}: {exc}") from None
        _load_state(model, state, p)
        return
    with open(p, "rb") as fh:
        head = fh.read(4)
    # torch.save writes a zip archive ("PK\x03\x04"); older files are pickles (protocol >= 2
    # starts with 0x80). Anything else is not a weights file: no advice about pickle then.
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise ConfigError(
            f"camcheck_weights: {str(p)!r} is not a PyTorch weights file (neither a torch.save "
            "archive nor a pickle; it starts with "
            f"{head!r}); check the path, or re-save the weights with "
            "torch.save(model.state_dict(), path)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if trust:
            raise ConfigError(f"camcheck_weights: cannot unpickle {str(p)!r}: {exc}") from None
        raise ConfigError(
            f"camcheck_weights: {str(p)!r} needs pickle to load (it stores more than tensors), "
            "which can run arbitrary code, so it is refused. Re-save it with "
            "torch.save(model.state_dict(), path), or, if you trust the file, set "
            "camcheck_trust_weights = true (--camcheck-trust-weights)."
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ConfigError(f"camcheck_weights: cannot read {str(p)!r}: {exc}") from None
    _load_state(model, _unwrap_state_dict(obj, str(p)), p)


def _load_state(model: Any, state: Mapping[str, Any], p: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:4])
        raise ConfigError(
            f"camcheck_weights: {str(p)!r} does not fit the model {type(model).__name__}: "
            f"{detail}. Check camcheck_model / camcheck_model_kwargs (e.g. num_classes)."
        ) from None


def load_model(spec: str, **options: Any) -> Any:
    """Build the model a spec names (see :func:`_load_model` for specs and options).

    The build runs with torch's CPU random generator seeded to 0 (in a forked generator, so the
    caller's random state is untouched): a model without weights gets the same random
    initialisation in every process, so xdist workers and plain runs explain the same model.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _load_model(spec, **options)


def _load_model(
    spec: str,
    *,
    kwargs: Mapping[str, Any] | None = None,
    weights: str | None = None,
    trust_weights: bool = False,
    device: Any = "cpu",
    rootdir: Path | None = None,
) -> Any:
    """Build the model a spec names, load its weights, move it to ``device``, set eval().

    Specs: ``"torchvision:resnet18"`` (random weights, or ``weights`` naming a weights enum such
    as ``IMAGENET1K_V1``, loaded from the local torch cache; ``kwargs`` go to the constructor),
    ``"timm:NAME"`` (``timm.create_model``), ``"hf:FOLDER"`` (a local Hugging Face folder),
    ``"package.module:factory"`` (a callable returning an ``nn.Module``), or a TorchScript file.
    See :mod:`pytest_camcheck.sources`.
    """
    import torch

    kwargs = dict(kwargs or {})
    path = Path(spec) if rootdir is None else (rootdir / spec)
    if spec.startswith("torchvision:"):
        from .sources import is_weights_name, load_torchvision

        named = weights if is_weights_name(weights, rootdir) else None
        model = load_torchvision(spec.split(":", 1)[1], named, kwargs)
        if named:
            weights = None  # loaded from the torch cache
    elif spec.startswith("timm:"):
        from .sources import load_timm

        model = load_timm(spec.split(":", 1)[1], kwargs)
    elif spec.startswith("hf:"):
        from .sources import load_hf

        model = load_hf(spec.split(":", 1)[1], kwargs, rootdir)
    elif path.suffix.lower() in _TORCHSCRIPT_SUFFIXES and ":" not in spec:
        if not path.is_file():
            raise ConfigError(f"camcheck_model: file {str(path)!r} does not exist")
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ConfigError(
                f"camcheck_model: {str(path)!r} is not a TorchScript archive ({exc}). For a "
                "state_dict, set camcheck_model to a factory and camcheck_weights to the file."
            ) from None
    elif ":" in spec:
        factory = import_from_spec(spec, what="camcheck_model", rootdir=rootdir)
        if isinstance(factory, torch.nn.Module):
            model = factory
        elif callable(factory):
            try:
                model = factory(**kwargs)
            except TypeError as exc:
                raise ConfigError(f"camcheck_model: calling {spec!r} failed: {exc}") from None
        else:
            raise ConfigError(f"camcheck_model: {spec!r} is neither a callable nor an nn.Module")
    else:
        raise ConfigError(
            f'camcheck_model: {spec!r} is not a model spec; use "package.module:factory", '
            '"torchvision:resnet18", "timm:NAME", "hf:FOLDER" or a TorchScript file (.pt/.ts)'
        )
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(
            f"camcheck_model: {spec!r} returned a {type(model).__name__}, not a torch.nn.Module"
        )
    if weights:
        wpath = (
            Path(weights) if rootdir is None or Path(weights).is_absolute() else rootdir / weights
        )
        load_weights(model, wpath, trust_weights)
    return model.to(device).eval()
