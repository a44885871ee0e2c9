"""One frozen settings object for a camcheck run.

Precedence: ``@pytest.mark.camcheck(...)`` kwargs > ``--camcheck-*`` CLI options > ini keys in
``[tool.pytest.ini_options]`` > defaults. A bad value is a :class:`pytest.UsageError` (raised by
the plugin from our :class:`ConfigError`) that names the key and the valid values.

Imports neither torch nor pytest.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .cam.names import find_method, unknown_method_message
from .errors import ConfigError

__all__ = [
    "BUILTIN_METHODS",
    "MARKER_KEYS",
    "OPTIONS",
    "Option",
    "Settings",
    "settings_from",
]

# Kept in sync with cam/methods.py by a unit test; lets us validate without importing torch.
BUILTIN_METHODS = (
    "cam",
    "gradcam",
    "gradcam++",
    "hirescam",
    "xgradcam",
    "layercam",
    "scorecam",
    "eigencam",
)
TARGETS = ("label", "predicted")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _str(key: str, value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def _paths(key: str, value: Any) -> str | None:
    """One path, or several: a TOML list or comma-separated (kept as ``"a, b"``)."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v).strip() for v in value if str(v).strip())
    return _str(key, value)


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ConfigError(f"{key}: expected a boolean (true/false), got {value!r}")


def _int(minimum: int) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        try:
            v = int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{key}: expected an integer >= {minimum}, got {value!r}") from None
        if v < minimum:
            raise ConfigError(f"{key}: expected an integer >= {minimum}, got {v}")
        return v

    return parse


def _float(lo: float, hi: float | None) -> Callable[[str, Any], float]:
    rng = f"in [{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"

    def parse(key: str, value: Any) -> float:
        try:
            v = float(str(value).strip())
        except ValueError:
            raise ConfigError(f"{key}: expected a number {rng}, got {value!r}") from None
        if not math.isfinite(v):
            raise ConfigError(f"{key}: expected a finite number {rng}, got {value!r}")
        if not (v >= lo and (hi is None or v <= hi)):
            raise ConfigError(f"{key}: expected a number {rng}, got {v:g}")
        return v

    return parse


def _workers(key: str, value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    return _int(0)(key, value)


def default_workers() -> int:
    """The default number of DataLoader workers: min(4, CPU count)."""
    import os

    return max(0, min(4, os.cpu_count() or 1))


def _output(key: str, value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text):
        raise ConfigError(
            f"{key}: expected an output index (e.g. 1 for the second element of a tuple) or a "
            f"key of a dict output (e.g. logits), got {value!r}"
        )
    return text


def _device(key: str, value: Any) -> str:
    s = str(value).strip().lower() or "auto"
    if s in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", s):
        return s
    raise ConfigError(f"{key}: expected one of auto, cpu, cuda, cuda:N, got {value!r}")


def _method(key: str, value: Any) -> str:
    # Once the engine's registry is loaded it is the truth (it holds the methods registered by
    # the user's conftest); before, the built-in names stand in for it without importing torch.
    registry = sys.modules.get("pytest_camcheck.cam.methods")
    known = list(BUILTIN_METHODS) if registry is None else list(registry.METHODS)
    found = find_method(str(value), known)
    if found is None:
        raise ConfigError(f"{key}: {unknown_method_message(value, known)}")
    return found


def _target(key: str, value: Any) -> str | int:
    """``label``, ``predicted``, a model output index (``285``) or a class name (``"cat"``,
    resolved against ``camcheck_classes`` and the model's category names when maps are made)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    s = str(value).strip()
    if s.lower() in TARGETS:
        return s.lower()
    if re.fullmatch(r"\d+", s):
        return int(s)
    if not s or isinstance(value, bool) or re.fullmatch(r"[-+]?\d+(\.\d*)?", s):
        raise ConfigError(
            f"{key}: expected one of {', '.join(TARGETS)}, a class index >= 0 (e.g. 285) or a "
            f"class name (e.g. cat), got {value!r}"
        )
    return s


def _classes(key: str, value: Any) -> str | dict[str, int] | None:
    from .classes import parse_classes

    try:
        return parse_classes(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _floats(key: str, value: Any) -> tuple[float, ...] | None:
    """Per-channel numbers: ``0.5, 0.5, 0.5``, ``[0.5, 0.5, 0.5]`` or one number for all."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value))
    texts = [str(i).strip().strip("[]()") for i in items]
    try:
        out = tuple(float(t) for t in texts if t)
    except ValueError:
        raise ConfigError(
            f"{key}: expected per-channel numbers such as 0.485, 0.456, 0.406, got {value!r}"
        ) from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ConfigError(f"{key}: expected finite per-channel numbers, got {value!r}")
    return out


def _size(key: str, value: Any) -> int | None:
    if value is None:
        return None
    return _int(8)(key, value)


def _layers(key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value))
    names = tuple(str(i).strip() for i in items if str(i).strip())
    return names or None


def _json_kwargs(key: str, value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        out = json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f'{key}: expected a JSON object such as {{"num_classes": 2}}, got {value!r} ({exc})'
        ) from None
    if not isinstance(out, dict):
        raise ConfigError(f'{key}: expected a JSON object such as {{"num_classes": 2}}')
    return out


@dataclass(frozen=True)
class Option:
    """One setting: its ini key, CLI flag, parser, default and help."""

    name: str
    parse: Callable[[str, Any], Any]
    default: Any
    help: str
    flag: bool = False  # a CLI switch without a value

    @property
    def ini(self) -> str:
        return f"camcheck_{self.name}"

    @property
    def cli(self) -> str:
        return "--camcheck-" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option(
        "model",
        _str,
        None,
        'model spec: "package.module:factory", "torchvision:resnet18", "timm:NAME", '
        '"hf:FOLDER" (a local Hugging Face folder) or a TorchScript file',
    ),
    Option(
        "model_kwargs",
        _json_kwargs,
        {},
        'JSON keyword arguments for the model factory, e.g. {"num_classes": 2}',
    ),
    Option(
        "weights",
        _str,
        None,
        "state_dict file (.pth, .safetensors) loaded with torch.load(weights_only=True); for "
        "torchvision:NAME also a weights name (IMAGENET1K_V1) found in the local torch cache",
    ),
    Option(
        "trust_weights",
        _bool,
        False,
        "allow pickle in the weights file (only for files you trust)",
        flag=True,
    ),
    Option(
        "dataset",
        _str,
        None,
        'image folder (ImageFolder layout gives labels) or "package.module:factory"',
    ),
    Option(
        "annotations",
        _paths,
        None,
        "annotations: VOC XML folder, COCO JSON, CSV (image,label,region,x0,y0,x1,y1), masks; "
        "several, comma-separated, are merged (e.g. annotations/xmls, annotations/trimaps)",
    ),
    Option(
        "transform",
        _str,
        None,
        "default: resize + normalisation (see camcheck_mean, _std, _resize, _crop); "
        '"torchvision:ResNet50_Weights.IMAGENET1K_V2" (that preset); or "package.module:fn"',
    ),
    Option("image_size", _int(8), 224, "side of the default transform's square resize"),
    Option(
        "resize",
        _size,
        None,
        "default transform: resize the shorter side to this many pixels (with camcheck_crop: "
        "resize then centre-crop, e.g. 256 and 224; replaces the square resize)",
    ),
    Option("crop", _size, None, "default transform: centre-crop to this square size (e.g. 224)"),
    Option(
        "mean",
        _floats,
        None,
        "default transform: per-channel normalisation mean (default: the model's, else ImageNet)",
    ),
    Option(
        "std",
        _floats,
        None,
        "default transform: per-channel normalisation std (default: the model's, else ImageNet)",
    ),
    Option(
        "layer",
        _layers,
        None,
        "layer(s) to explain, comma-separated dotted names (default: auto-detect)",
    ),
    Option("method", _method, "gradcam", "CAM method: " + ", ".join(BUILTIN_METHODS)),
    Option("device", _device, "auto", "auto | cpu | cuda | cuda:N"),
    Option("batch_size", _int(1), 32, "images per forward pass"),
    Option(
        "num_workers",
        _workers,
        None,
        "DataLoader worker processes decoding images (default: min(4, CPU count); 0: inline)",
    ),
    Option(
        "amp", _bool, False, "run the forward under autocast (CAM maths stays float32)", flag=True
    ),
    Option(
        "peak_tolerance",
        _float(0.0, None),
        0.0,
        "pixels the CAM peak may lie outside a region and still count as a hit",
    ),
    Option(
        "min_energy", _float(0.0, 1.0), 0.5, "default fraction of CAM energy a region must hold"
    ),
    Option(
        "target",
        _target,
        "label",
        "class explained: label | predicted | a class index (285) or name (cat)",
    ),
    Option(
        "classes",
        _classes,
        None,
        "the dataset's classes -> the model's output indices: a JSON object {\"cat\": 285}, "
        "a file of the model's category names (one per line, or JSON), or auto (the model's "
        "own names)",
    ),
    Option(
        "output",
        _output,
        None,
        "the model output to explain when the model returns a tuple or dict: an index or a key "
        "(default: the first tensor)",
    ),
    Option("report", _str, None, "write the HTML report (and a .json sidecar) to this path"),
    Option("report_all", _bool, False, "also show passing cases in the report", flag=True),
    Option("report_max_cases", _int(1), 200, "most cards in the report"),
    Option(
        "report_full_images",
        _bool,
        False,
        "also embed each card's overlay at the image's full resolution (one click away; "
        "makes the report larger)",
        flag=True,
    ),
    Option(
        "baseline_dir",
        _str,
        "tests/camcheck-baselines",
        "folder of the stored baseline maps (relative to the rootdir), one folder per map "
        "configuration",
    ),
    Option(
        "update_baselines",
        _bool,
        False,
        "rewrite the baselines the tests use from the current model's maps (the tests fail)",
        flag=True,
    ),
    Option(
        "reference_model",
        _str,
        None,
        "the reference (deployed) model, compared with the tested one: a model spec as for "
        "camcheck_model (default: camcheck_model, when camcheck_reference_weights is set)",
    ),
    Option(
        "reference_weights",
        _str,
        None,
        "state_dict file of the reference model (loaded with torch.load(weights_only=True))",
    ),
    Option(
        "reference_model_kwargs",
        _json_kwargs,
        None,
        "JSON keyword arguments for the reference model factory (default: camcheck_model_kwargs "
        "when the reference has the tested model's spec)",
    ),
)
_BY_NAME = {o.name: o for o in OPTIONS}
MARKER_KEYS = ("layer", "method", "target", "peak_tolerance", "min_energy")


@dataclass(frozen=True)
class Settings:
    """Resolved settings (see the module docstring for precedence)."""

    model: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    trust_weights: bool = False
    dataset: str | None = None
    annotations: str | None = None
    transform: str | None = None
    image_size: int = 224
    resize: int | None = None
    crop: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layer: tuple[str, ...] | None = None
    method: str = "gradcam"
    device: str = "auto"
    batch_size: int = 32
    num_workers: int | None = None
    amp: bool = False
    peak_tolerance: float = 0.0
    min_energy: float = 0.5
    target: str | int = "label"
    classes: str | dict[str, int] | None = None
    output: int | str | None = None
    report: str | None = None
    report_all: bool = False
    report_max_cases: int = 200
    report_full_images: bool = False
    baseline_dir: str = "tests/camcheck-baselines"
    update_baselines: bool = False
    reference_model: str | None = None
    reference_weights: str | None = None
    reference_model_kwargs: dict[str, Any] | None = None

    @property
    def has_reference(self) -> bool:
        """Whether a reference model is configured (its spec or its weights)."""
        return bool(self.reference_model or self.reference_weights)

    def reference_spec(self) -> tuple[str | None, dict[str, Any]]:
        """The reference model's spec and kwargs: ``camcheck_reference_model`` (default: the
        tested model's spec) and ``camcheck_reference_model_kwargs`` (default: the tested
        model's kwargs when the spec is the same, else none)."""
        spec = self.reference_model or self.model
        if self.reference_model_kwargs is not None:
            return spec, dict(self.reference_model_kwargs)
        same = self.reference_model in (None, self.model)
        return spec, dict(self.model_kwargs) if same else {}

    def with_marker(self, kwargs: Mapping[str, Any]) -> Settings:
        """These settings overridden by ``@pytest.mark.camcheck(**kwargs)``."""
        unknown = sorted(set(kwargs) - set(MARKER_KEYS))
        if unknown:
            raise ConfigError(
                f"@pytest.mark.camcheck: unknown argument(s) {', '.join(unknown)}; "
                f"valid: {', '.join(MARKER_KEYS)}"
            )
        changes = {
            k: _BY_NAME[k].parse(f"@pytest.mark.camcheck({k}=...)", v) for k, v in kwargs.items()
        }
        return replace(self, **changes)

    @property
    def workers(self) -> int:
        """DataLoader workers to use (``num_workers``, or min(4, CPU count) when unset)."""
        return default_workers() if self.num_workers is None else self.num_workers

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def settings_from(cli: Callable[[str], Any], ini: Callable[[str], Any]) -> Settings:
    """Resolve every option: ``cli(dest)`` wins over ``ini(key)`` wins over the default."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = cli(opt.ini)
        source = opt.cli
        if raw is None or (opt.flag and raw is False):
            raw = ini(opt.ini)
            source = opt.ini
        if raw is None or (isinstance(raw, str) and raw.strip() == "" and not opt.flag):
            values[opt.name] = opt.default
            continue
        values[opt.name] = opt.parse(source, raw)
    return Settings(**values)
