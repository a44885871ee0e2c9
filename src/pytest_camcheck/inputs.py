"""The input pipeline the settings ask for: normalisation, resize and crop, or a weights preset.

- ``camcheck_transform = torchvision:ResNet50_Weights.IMAGENET1K_V2`` uses the weights' own
  preset (``weights.transforms()``: resize, centre crop, normalisation), run as torchvision v2
  so that boxes and masks follow the resize and the crop exactly.
- Without a transform, the default pipeline: ``camcheck_resize`` + ``camcheck_crop`` (shorter
  side, then centre crop) or a square resize to ``camcheck_image_size``, then normalisation by
  ``camcheck_mean`` / ``camcheck_std``. Values the settings leave out come from the model's
  source when it says (a Hugging Face folder's image processor, timm's pretrained
  configuration), else ImageNet's statistics and 224 px.

Imports torch and torchvision only when a pipeline is built.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .data.transforms import PairedTransform
    from .settings import Settings

__all__ = [
    "InputPlan",
    "build_configured_dataset",
    "build_input_transform",
    "default_pipeline",
    "input_plan",
    "weights_preset",
]

_PRESET = re.compile(r"^torchvision:([A-Za-z][A-Za-z0-9_]*_Weights\.[A-Z][A-Z0-9_]*)$")


@dataclass(frozen=True)
class InputPlan:
    """The default pipeline's parameters, resolved.

    Attributes:
        mean / std: per-channel normalisation.
        size: the square resize (when ``resize`` / ``crop`` are None).
        resize / crop: shorter-side resize and centre crop.
        sources: where the values came from, for the header and the report.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: int
    resize: int | None = None
    crop: int | None = None
    sources: tuple[str, ...] = ()

    @property
    def input_size(self) -> int:
        """The side of the square tensor the pipeline makes."""
        if self.crop is not None:
            return self.crop
        if self.resize is not None:
            return self.resize
        return self.size

    def describe(self) -> str:
        """``Resize(256) + CenterCrop(224), mean (...), std (...)``."""
        if self.resize is not None or self.crop is not None:
            geometry = (
                f"Resize({self.resize or self.crop}) + CenterCrop({self.crop or self.resize})"
            )
        else:
            geometry = f"Resize(({self.size}, {self.size}))"
        mean = ", ".join(f"{v:g}" for v in self.mean)
        std = ", ".join(f"{v:g}" for v in self.std)
        return f"{geometry}, normalised by mean ({mean}) and std ({std})"


def _channels(values: Sequence[float], n: int, key: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if len(out) == 1:
        return out * n
    if len(out) != n:
        raise ConfigError(f"{key}: expected 1 or {n} per-channel numbers, got {len(out)}")
    return out


def input_plan(
    settings: Settings, rootdir: Path | None = None, size_given: bool = True
) -> InputPlan:
    """The default pipeline's parameters: the settings first, then the model's source, then
    ImageNet's statistics.

    Args:
        settings: the run's settings.
        rootdir: what a relative ``hf:`` folder is resolved against.
        size_given: whether ``camcheck_image_size`` was set (else the model's size wins).

    Raises:
        ConfigError: a mean or std with the wrong number of channels, or a zero std.
    """
    from .sources import input_defaults

    found = input_defaults(settings.model, settings.model_kwargs, rootdir)
    sources = []
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    if found is not None and found.mean is not None and found.std is not None:
        mean, std = found.mean, found.std
        sources.append(f"normalisation from {found.source}")
    if settings.mean is not None:
        mean = settings.mean
    if settings.std is not None:
        std = settings.std
    n = max(len(mean), len(std), 3) if len(mean) != 1 or len(std) != 1 else 3
    mean_t = _channels(mean, n, "camcheck_mean")
    std_t = _channels(std, n, "camcheck_std")
    if any(v == 0 for v in std_t):
        raise ConfigError(f"camcheck_std: a standard deviation of 0 divides by zero ({std_t})")
    size, resize, crop = settings.image_size, settings.resize, settings.crop
    if found is not None and resize is None and crop is None:
        if found.resize is not None or found.crop is not None:
            resize, crop = found.resize, found.crop
            sources.append(f"resize and crop from {found.source}")
        elif found.size is not None and not size_given:
            size = found.size
            sources.append(f"size from {found.source}")
    return InputPlan(mean_t, std_t, size, resize, crop, tuple(sources))


def weights_preset(spec: str) -> PairedTransform:
    """The ``PairedTransform`` of ``"torchvision:<Enum>_Weights.<NAME>"``: the weights'
    ``transforms()`` preset run as torchvision v2 (boxes follow its resize and crop).

    Raises:
        ConfigError: no such weights, or a preset camcheck cannot follow.
    """
    import torchvision

    from .data.transforms import PairedTransform, v1_to_v2

    match = _PRESET.match(spec.strip())
    if match is None:
        raise ConfigError(
            f"camcheck_transform: {spec!r} is not a weights preset; write it as "
            "torchvision:<Model>_Weights.<NAME>, e.g. torchvision:ResNet50_Weights.IMAGENET1K_V2"
        )
    try:
        weights = torchvision.models.get_weight(match.group(1))
    except (KeyError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"camcheck_transform: torchvision has no weights {match.group(1)!r} ({exc})"
        ) from None
    preset = weights.transforms()
    mean = tuple(float(v) for v in getattr(preset, "mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in getattr(preset, "std", IMAGENET_STD))
    resize = list(getattr(preset, "resize_size", []) or [])
    crop = list(getattr(preset, "crop_size", []) or [])
    geometry = f"Resize({resize[0] if resize else '?'}) + CenterCrop({crop[0] if crop else '?'})"
    name = f"{spec.strip()} ({geometry})"
    return PairedTransform(v1_to_v2(preset), name, "v2", (mean, std))


def build_input_transform(
    settings: Settings, rootdir: Path | None = None, size_given: bool = True
) -> PairedTransform | str | None:
    """What the dataset's ``transform`` argument should be for these settings.

    Returns:
        A ``PairedTransform`` for a weights preset or the default pipeline, or the
        ``camcheck_transform`` spec string as it is (the data package resolves it).

    Raises:
        ConfigError: mean, std, resize or crop set together with a transform of one's own (they
            shape the default pipeline only), or a bad preset.
    """
    from .data.transforms import PairedTransform

    spec = settings.transform
    if spec and _PRESET.match(spec.strip()):
        return weights_preset(spec)
    if spec:
        own = [k for k in ("mean", "std", "resize", "crop") if getattr(settings, k) is not None]
        if own:
            raise ConfigError(
                f"camcheck_{own[0]}: shapes the default transform only, but camcheck_transform "
                f"is set ({spec}); put the {', '.join(own)} into that transform, or unset it"
            )
        return spec
    plan = input_plan(settings, rootdir, size_given)
    pipeline = default_pipeline(plan.mean, plan.std, plan.size, plan.resize, plan.crop)
    name = f"default ({plan.describe()})"
    return PairedTransform(pipeline, name, "default", (plan.mean, plan.std))


def build_configured_dataset(
    settings: Settings, rootdir: Path | None = None, size_given: bool = True
) -> Any:
    """The dataset the settings describe, with the input pipeline they ask for.

    ``camcheck_annotations`` may name several sources, comma-separated (merged per image);
    with ``camcheck_classes`` set, integer labels in annotations are model output indices.

    Raises:
        ConfigError, DataError: as :func:`~pytest_camcheck.data.build_dataset` does.
    """
    from .data import build_dataset

    if not settings.dataset:
        raise ConfigError(
            "no dataset configured; set camcheck_dataset in [tool.pytest.ini_options] "
            '(a folder of images or "package.module:factory") or pass --camcheck-dataset'
        )
    annotations: Any = settings.annotations
    if annotations and "," in annotations:  # several sources, merged per image
        annotations = [a.strip() for a in annotations.split(",") if a.strip()]
    return build_dataset(
        settings.dataset,
        annotations=annotations,
        transform=build_input_transform(settings, rootdir, size_given),
        image_size=settings.image_size,
        rootdir=rootdir,
        model_labels=settings.classes is not None,
    )


def default_pipeline(
    mean: Sequence[float],
    std: Sequence[float],
    size: int,
    resize: int | None = None,
    crop: int | None = None,
) -> Any:
    """The default torchvision v2 pipeline: a square resize to ``size`` (or a shorter-side
    ``resize`` and a centre ``crop``), float in [0, 1], normalisation by ``mean`` / ``std``."""
    import torch
    from torchvision.transforms import v2

    if resize is None and crop is None:
        geometry: list[Any] = [v2.Resize((size, size), antialias=True)]
    else:
        geometry = [v2.Resize(resize or crop, antialias=True), v2.CenterCrop(crop or resize)]
    return v2.Compose(
        [
            v2.ToImage(),
            *geometry,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )
