"""Model sources beside factories and TorchScript: torchvision weights, timm and Hugging Face.

- ``torchvision:NAME`` with ``camcheck_weights`` naming a weights enum (``IMAGENET1K_V2``,
  ``DEFAULT`` or ``ResNet50_Weights.IMAGENET1K_V2``): the weights load from the local torch cache
  (``$TORCH_HOME/hub/checkpoints``); camcheck never downloads, so weights that are not there are
  a clear error saying how to fetch them once.
- ``timm:NAME``: ``timm.create_model(NAME, pretrained=False, **camcheck_model_kwargs)``; weights
  from ``camcheck_weights`` (a state_dict, ``.pth`` or ``.safetensors``).
- ``hf:FOLDER``: a local Hugging Face folder (``config.json`` and the weights, as
  ``save_pretrained`` writes it) loaded with ``AutoModelForImageClassification`` and
  ``local_files_only=True``. The model's output holds its logits first, which camcheck explains.

Each source also tells what input the model expects (:func:`input_defaults`): the normalisation
and size of the Hugging Face folder's image processor, or of timm's pretrained configuration.

Imports nothing heavy until a model is built.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "InputDefaults",
    "cached_weights_path",
    "input_defaults",
    "is_weights_name",
    "load_hf",
    "load_timm",
    "load_torchvision",
    "torchvision_weights",
]

#: ``IMAGENET1K_V2``, ``DEFAULT``, ``ResNet50_Weights.IMAGENET1K_V2``.
_WEIGHTS_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*_Weights\.)?[A-Z][A-Z0-9_]*$")


def is_weights_name(value: str | None, rootdir: Path | None = None) -> bool:
    """Whether ``camcheck_weights`` names a torchvision weights enum rather than a file."""
    if not value or not _WEIGHTS_NAME.match(value.strip()):
        return False
    path = Path(value) if rootdir is None else Path(rootdir) / value
    return not path.exists()


def torchvision_weights(model_name: str, weights: str) -> Any:
    """The torchvision ``WeightsEnum`` member ``weights`` names for model ``model_name``.

    Raises:
        ConfigError: the model has no weights of that name (the message lists its weights).
    """
    import torchvision

    enum_cls = torchvision.models.get_model_weights(model_name)
    text = weights.strip()
    prefix, _, member = text.rpartition(".")
    if prefix and prefix != enum_cls.__name__:
        raise ConfigError(
            f"camcheck_weights: {text!r} are not weights of torchvision:{model_name}, whose "
            f"weights are {enum_cls.__name__}"
        )
    try:
        return enum_cls[member]
    except KeyError:
        names = [m for m in enum_cls.__members__] + ["DEFAULT"]
        raise ConfigError(
            f"camcheck_weights: torchvision:{model_name} has no weights {member!r}; it has "
            f"{', '.join(dict.fromkeys(names))}"
        ) from None


def cached_weights_path(weights: Any) -> Path:
    """Where torch keeps the downloaded file of ``weights`` (it may not exist)."""
    import torch

    filename = os.path.basename(weights.url.split("?", 1)[0])
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_torchvision(name: str, weights: str | None, kwargs: Mapping[str, Any]) -> Any:
    """A torchvision model, with the named weights loaded from the local torch cache.

    The model gets a ``categories`` attribute (the weights' ``meta["categories"]``), which
    ``camcheck_classes = auto`` reads.

    Raises:
        ConfigError: unknown model or weights, weights not in the cache, or a file that does not
            fit the model.
    """
    import torch
    import torchvision

    available = torchvision.models.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5)
        raise ConfigError(
            f"camcheck_model: torchvision has no model {name!r}"
            + (f"; did you mean {', '.join(close)}?" if close else "")
        )
    kwargs = dict(kwargs)
    if weights is None:
        try:
            return torchvision.models.get_model(name, weights=None, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"camcheck_model_kwargs: {exc}") from None
    member = torchvision_weights(name, weights)
    path = cached_weights_path(member)
    label = f"{type(member).__name__}.{member.name}"
    if not path.is_file():
        raise ConfigError(
            f"camcheck_weights: {label} are not in the local torch cache ({path}); camcheck "
            "never downloads. Fetch them once where there is a network, e.g. python -c "
            f'"import torchvision; torchvision.models.get_model({name!r}, weights={label!r})"'
            ", or set TORCH_HOME to a folder holding hub/checkpoints/"
            f"{path.name}; or give camcheck_weights a state_dict file"
        )
    categories = list(member.meta.get("categories") or [])
    if categories:
        kwargs.setdefault("num_classes", len(categories))
    try:
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"camcheck_model_kwargs: {exc}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, EOFError) as exc:
        first = " ".join(str(exc).strip().splitlines()[:2])
        raise ConfigError(
            f"camcheck_weights: the cached file of {label} ({path}) does not load into "
            f"torchvision:{name}: {first}. Delete it and fetch it again"
        ) from None
    if categories:
        model.categories = categories
    return model


def load_timm(name: str, kwargs: Mapping[str, Any]) -> Any:
    """``timm.create_model(name, pretrained=False, **kwargs)``.

    Raises:
        ConfigError: timm is not installed, the name is unknown, ``pretrained`` is asked for
            (camcheck never downloads: use ``camcheck_weights``), or the kwargs do not fit.
    """
    try:
        import timm
    except ImportError:
        raise ConfigError(
            f"camcheck_model timm:{name} needs timm: pip install 'pytest-camcheck[timm]'"
        ) from None
    kwargs = dict(kwargs)
    if kwargs.pop("pretrained", False):
        raise ConfigError(
            "camcheck_model_kwargs: pretrained=true would download weights, which camcheck never "
            "does; point camcheck_weights at the checkpoint file (.pth or .safetensors)"
        )
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise ConfigError(
            f"camcheck_model: timm has no model {name!r}"
            + (f"; did you mean {', '.join(close)}?" if close else "")
        )
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"camcheck_model_kwargs: timm:{name}: {exc}") from None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Without transformers' progress bars and info logging (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _hf_folder(folder: str, rootdir: Path | None) -> Path:
    path = Path(folder).expanduser()
    if rootdir is not None and not path.is_absolute():
        path = Path(rootdir) / path
    return path


def load_hf(folder: str, kwargs: Mapping[str, Any], rootdir: Path | None = None) -> Any:
    """A Hugging Face image classifier from a local folder (``local_files_only=True``).

    Raises:
        ConfigError: transformers is not installed, the folder holds no ``config.json``, or
            the model cannot be built from it.
    """
    path = _hf_folder(folder, rootdir)
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"camcheck_model: hf:{folder} needs a local folder with config.json and the weights "
            f"(as model.save_pretrained(folder) writes them); {str(path)!r} has none. camcheck "
            "never downloads: save the model to a folder once, where there is a network"
        )
    try:
        from transformers import AutoModelForImageClassification
    except ImportError:
        raise ConfigError(
            f"camcheck_model hf:{folder} needs transformers: pip install 'pytest-camcheck[hf]'"
        ) from None
    try:
        with _quiet_transformers():
            return AutoModelForImageClassification.from_pretrained(
                str(path), local_files_only=True, **dict(kwargs)
            )
    except (OSError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"camcheck_model: cannot load hf:{folder}: {first}") from None


@dataclass(frozen=True)
class InputDefaults:
    """What input a model source expects, where it says so.

    Attributes:
        mean / std: per-channel normalisation.
        size: the side of a square input.
        resize / crop: shorter-side resize and centre crop, when the source uses them.
        source: where the values came from, for the report.
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    size: int | None = None
    resize: int | None = None
    crop: int | None = None
    source: str = ""


def _side(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        h, w = value.get("height"), value.get("width")
        if isinstance(h, int) and h == w:
            return h
    return None


def _hf_defaults(folder: str, rootdir: Path | None) -> InputDefaults | None:
    path = _hf_folder(folder, rootdir) / "preprocessor_config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    mean = cfg.get("image_mean") if cfg.get("do_normalize", True) else None
    std = cfg.get("image_std") if cfg.get("do_normalize", True) else None
    size = cfg.get("size") if cfg.get("do_resize", True) else None
    crop = cfg.get("crop_size") if cfg.get("do_center_crop", False) else None
    out = InputDefaults(
        mean=tuple(float(v) for v in mean) if isinstance(mean, list) else None,
        std=tuple(float(v) for v in std) if isinstance(std, list) else None,
        source=f"hf:{folder} preprocessor_config.json",
    )
    shortest = size.get("shortest_edge") if isinstance(size, Mapping) else None
    if isinstance(shortest, int):
        return InputDefaults(out.mean, out.std, None, shortest, _side(crop) or shortest, out.source)
    return InputDefaults(out.mean, out.std, _side(size), None, _side(crop), out.source)


def _timm_defaults(name: str, kwargs: Mapping[str, Any]) -> InputDefaults | None:
    try:
        import timm
    except ImportError:
        return None
    cfg = timm.get_pretrained_cfg(name)
    data = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else dict(cfg or {})
    img = kwargs.get("img_size")
    size = img if isinstance(img, int) else None
    if size is None and isinstance(data.get("input_size"), (list, tuple)):
        size = int(data["input_size"][-1])
    mean, std = data.get("mean"), data.get("std")
    return InputDefaults(
        mean=tuple(float(v) for v in mean) if mean else None,
        std=tuple(float(v) for v in std) if std else None,
        size=size,
        source=f"timm:{name} pretrained configuration",
    )


def input_defaults(
    spec: str | None, kwargs: Mapping[str, Any] | None = None, rootdir: Path | None = None
) -> InputDefaults | None:
    """The input a model spec's source expects (None for sources that do not say)."""
    if not spec:
        return None
    if spec.startswith("hf:"):
        return _hf_defaults(spec[3:], rootdir)
    if spec.startswith("timm:"):
        return _timm_defaults(spec[5:], kwargs or {})
    return None
