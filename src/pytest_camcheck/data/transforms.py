"""Image transforms that move boxes and masks with the pixels, and their inverse for display.

Three kinds of transform, all taking a PIL RGB image to a float ``(C, H, W)`` tensor:

- the default (``transform=None``): torchvision v2 ``ToImage`` -> ``Resize((size, size))`` ->
  ``ToDtype(float32, scale=True)`` -> ``Normalize(ImageNet mean, std)``. Resizing to a square
  (instead of resizing the shorter side and cropping) keeps the whole image, so no annotated
  box can fall outside it; the aspect ratio changes, which CNNs tolerate well for tests.
- a torchvision v2 transform (an instance of ``torchvision.transforms.v2.Transform``, e.g. a
  ``v2.Compose``): boxes go in as ``tv_tensors.BoundingBoxes`` (XYXY) and masks as
  ``tv_tensors.Mask`` in the SAME call as the image, so flips, crops and resizes move them with
  the pixels. Boxes that a crop cuts are clamped to the image (a region that a crop removes
  entirely makes its sample fail with a message naming it).
- a torchvision v1 transform (``torchvision.transforms.Compose([Resize(256), CenterCrop(224),
  ToTensor(), Normalize(...)])``, any single v1 transform, or the ``ImageClassification``
  preset of ``weights.transforms()``): run through its v2 equivalent (:func:`v1_to_v2`), so that
  boxes and masks follow it as above. ``ToTensor`` becomes ``ToImage`` + ``ToDtype(float32,
  scale=True)``; every other v1 class becomes the v2 class of the same name with the same
  settings. A ``Lambda`` (or any other callable) inside a v1 pipeline runs on the image only
  and must not change its size while there are regions to follow (if it does, the sample
  fails with a message naming it); a step that moves pixels without changing the size (a flip
  written as a Lambda) cannot be detected: write such steps as v2 transforms. ``FiveCrop``,
  ``TenCrop`` and the other presets are refused.
- any other callable: called on the PIL image only. Boxes are scaled by the size ratio
  (new width / old width, new height / old height) and masks resized with nearest-neighbour
  sampling. This is right for resizes only: a plain callable that crops or flips cannot be
  followed, so write it as a v2 transform.

Whatever the kind, the output must be a float ``(C, H, W)`` tensor; a channels-last
``(H, W, C)`` tensor is refused with a message naming the sample.

The transform may be given as ``"package.module:name"``; a name that is a class or a function
without required arguments is called first to build the transform.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from .._spec import import_from_spec
from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import CamcheckError, ConfigError, DataError
from ..regions import Box, Region
from ._userframes import describe_exception

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PairedTransform",
    "default_transform",
    "is_v1_transform",
    "looks_channels_last",
    "resize_mask",
    "resolve_transform",
    "to_display",
    "v1_to_v2",
]

DEFAULT_IMAGE_SIZE = 224


def default_transform(image_size: int = DEFAULT_IMAGE_SIZE) -> v2.Compose:
    """The default v2 pipeline: square resize, float in [0, 1], ImageNet normalisation."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((image_size, image_size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)),
        ]
    )


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask, sampling at the output pixels' centres."""
    if mask.shape == (height, width):
        return mask.copy()
    rows = np.minimum(
        ((np.arange(height) + 0.5) * mask.shape[0] / height).astype(int), mask.shape[0] - 1
    )
    cols = np.minimum(
        ((np.arange(width) + 0.5) * mask.shape[1] / width).astype(int), mask.shape[1] - 1
    )
    return mask[rows][:, cols]


@dataclass(frozen=True)
class PairedTransform:
    """A transform of an image together with its regions.

    Attributes:
        fn: the underlying transform.
        name: how messages and the report name it.
        kind: ``"default"``, ``"v2"`` (regions go through ``fn``; also a torchvision v1
            transform, converted by :func:`v1_to_v2`) or ``"plain"`` (regions are scaled by
            the size ratio).
        normalization: ``(mean, std)`` when the output is normalised by known statistics (the
            default transform), so that :func:`to_display` can invert it exactly.
    """

    fn: Callable[..., Any]
    name: str
    kind: str
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def __call__(
        self, image: Image.Image, regions: dict[str, Region], sample_id: str = "?"
    ) -> tuple[Tensor, dict[str, Region]]:
        """Transform ``image`` and move ``regions`` (given in its pixels) along.

        Raises:
            ConfigError: the transform fails or returns something other than a float
                ``(C, H, W)`` tensor, or moves the image but not the boxes; the message names
                the transform and the sample.
            DataError: the transform returns a channels-last ``(H, W, C)`` tensor; the message
                names the sample and the expected ``(C, H, W)`` shape.
        """
        if self.kind == "plain":
            out = self._call(image, sample_id)
            tensor = self._check_image(out, sample_id)
            width, height = image.size
            new_h, new_w = tensor.shape[-2:]
            return tensor, _scale_regions(regions, new_w / width, new_h / height, new_h, new_w)
        return self._call_v2(image, regions, sample_id)

    def _call(self, inputs: Any, sample_id: str) -> Any:
        try:
            return self.fn(inputs)
        except _StepError as exc:
            raise ConfigError(f"transform {self.name}, sample {sample_id!r}: {exc}") from None
        except CamcheckError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"transform {self.name} failed on sample {sample_id!r}: "
                f"{describe_exception(exc, 3)}"
            ) from None

    def _check_image(self, out: Any, sample_id: str) -> Tensor:
        ok = isinstance(out, Tensor) and out.ndim == 3 and out.is_floating_point()
        if ok and looks_channels_last(tuple(out.shape)):
            raise DataError(
                f"transform {self.name} returned a tensor of shape {tuple(out.shape)} for sample "
                f"{sample_id!r}, which looks like (H, W, C) (channels last); the model's input "
                "is a (C, H, W) float tensor: end the transform with v2.ToImage() and "
                "v2.ToDtype(torch.float32, scale=True) (or permute(2, 0, 1) in your own code)"
            )
        if not ok:
            if isinstance(out, Tensor):
                got = f"a {out.dtype} tensor of shape {tuple(out.shape)}"
            else:
                got = f"a {type(out).__module__}.{type(out).__qualname__}"
            raise ConfigError(
                f"transform {self.name} returned {got} for sample {sample_id!r}; it must return "
                "a float (C, H, W) tensor: end it with v2.ToImage() and "
                "v2.ToDtype(torch.float32, scale=True)"
            )
        return out.as_subclass(Tensor).to(torch.float32).contiguous()

    def _call_v2(
        self, image: Image.Image, regions: dict[str, Region], sample_id: str
    ) -> tuple[Tensor, dict[str, Region]]:
        width, height = image.size
        box_owner: list[str] = []
        boxes: list[tuple[float, float, float, float]] = []
        mask_owner: list[str] = []
        masks: list[np.ndarray] = []
        for name, region in regions.items():
            for b in region.boxes:
                box_owner.append(name)
                boxes.append(b.as_tuple())
            if region.mask is not None:
                mask_owner.append(name)
                masks.append(region.mask)
        inputs: dict[str, Any] = {"image": image}
        if boxes:
            inputs["boxes"] = tv_tensors.BoundingBoxes(
                torch.tensor(boxes, dtype=torch.float64),
                format="XYXY",
                canvas_size=(height, width),
            )
        if masks:
            inputs["masks"] = tv_tensors.Mask(torch.from_numpy(np.stack(masks).astype(np.uint8)))
        out = self._call(inputs, sample_id)
        if not isinstance(out, dict) or "image" not in out:
            raise ConfigError(
                f"transform {self.name} did not return the dict it was given (image, boxes, "
                f"masks) for sample {sample_id!r}; use torchvision.transforms.v2 transforms"
            )
        tensor = self._check_image(out["image"], sample_id)
        new_h, new_w = (int(s) for s in tensor.shape[-2:])
        new_boxes: dict[str, list[Box]] = {name: [] for name in regions}
        new_masks: dict[str, np.ndarray] = {}
        if boxes:
            ob = out.get("boxes")
            if (
                not isinstance(ob, tv_tensors.BoundingBoxes)
                or tuple(ob.canvas_size) != (new_h, new_w)
                or ob.shape[0] != len(boxes)
            ):
                raise ConfigError(
                    f"transform {self.name} changed the image of sample {sample_id!r} to "
                    f"{new_w}x{new_h} but did not move its {len(boxes)} box(es) along; use v2 "
                    "transforms that handle tv_tensors.BoundingBoxes (and do not drop boxes)"
                )
            xyxy = v2.functional.convert_bounding_box_format(
                ob, new_format=tv_tensors.BoundingBoxFormat.XYXY
            )
            for name, row in zip(box_owner, xyxy.as_subclass(Tensor).tolist()):
                x0, y0, x1, y1 = (min(max(v, 0.0), lim) for v, lim in zip(row, (new_w, new_h) * 2))
                new_boxes[name].append(Box(x0, y0, max(x1, x0), max(y1, y0)))
        if masks:
            om = out.get("masks")
            if not isinstance(om, Tensor) or tuple(om.shape) != (len(masks), new_h, new_w):
                raise ConfigError(
                    f"transform {self.name} changed the image of sample {sample_id!r} to "
                    f"{new_w}x{new_h} but did not move its mask(s) along; use v2 transforms that "
                    "handle tv_tensors.Mask"
                )
            arr = om.as_subclass(Tensor).cpu().numpy() != 0
            for name, m in zip(mask_owner, arr):
                new_masks[name] = m
        return tensor, {
            name: Region(name, tuple(new_boxes[name]), new_masks.get(name)) for name in regions
        }


def looks_channels_last(shape: tuple[int, ...]) -> bool:
    """Whether a 3-D image shape looks like ``(H, W, C)``: last dimension 1, 3 or 4 channels
    and a first dimension too large to be a channel count."""
    return len(shape) == 3 and shape[-1] in (1, 3, 4) and shape[0] > 4


def _scale_regions(
    regions: dict[str, Region], sx: float, sy: float, height: int, width: int
) -> dict[str, Region]:
    return {
        name: Region(
            name,
            tuple(b.scaled(sx, sy) for b in r.boxes),
            None if r.mask is None else resize_mask(r.mask, height, width),
        )
        for name, r in regions.items()
    }


# --- torchvision v1 transforms, run as their v2 equivalents ---------------------------------

#: Modules that define torchvision's v1 transforms.
_V1_MODULES = ("torchvision.transforms.transforms", "torchvision.transforms.autoaugment")
#: v1 transforms that give several images (or none) and so cannot be checked.
_V1_REFUSED = ("FiveCrop", "TenCrop")


class _StepError(ConfigError):
    """A step of a converted v1 pipeline moved pixels that camcheck cannot follow."""


def is_v1_transform(fn: Any) -> bool:
    """Whether ``fn`` is a torchvision v1 transform (or the ``ImageClassification`` preset)
    that :func:`v1_to_v2` converts (or refuses), rather than a plain callable."""
    module = type(fn).__module__
    return module in _V1_MODULES or module == "torchvision.transforms._presets"


def _spatial_size(value: Any) -> tuple[int, int] | None:
    """``(height, width)`` of a PIL image, an image tensor or an ``(H, W[, C])`` array."""
    if isinstance(value, Image.Image):
        return (value.height, value.width)
    if isinstance(value, Tensor) and value.ndim >= 2:
        return (int(value.shape[-2]), int(value.shape[-1]))
    if isinstance(value, np.ndarray) and value.ndim >= 2:
        return (int(value.shape[0]), int(value.shape[1]))
    return None


class _ImageOnly(v2.Transform):
    """A callable of a v1 pipeline (a ``Lambda``, a user's own class) run on the image only.

    Boxes and masks pass through unchanged, so the callable must not move pixels: when the
    sample has regions and the callable changes the image's size, it raises.

    Args:
        fn: the callable, called with the image (PIL or tensor).
        label: how messages name the step.
    """

    def __init__(self, fn: Callable[[Any], Any], label: str) -> None:
        super().__init__()
        self.fn = fn
        self.label = label

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        follow = any(
            isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask)) for x in flat_inputs
        )
        return {"follow": follow}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.TVTensor) and not isinstance(inpt, tv_tensors.Image):
            return inpt  # boxes, masks: the callable does not know them
        before = _spatial_size(inpt)
        out = self.fn(inpt.as_subclass(Tensor) if isinstance(inpt, tv_tensors.Image) else inpt)
        after = _spatial_size(out)
        if params["follow"] and before is not None and after != before:
            shown = "an unknown size" if after is None else f"{after[1]}x{after[0]}"
            raise _StepError(
                f"step {self.label} of the torchvision v1 transform changed the image from "
                f"{before[1]}x{before[0]} to {shown}, and camcheck cannot move boxes and masks "
                "through it; write that step as a torchvision.transforms.v2 transform (or the "
                "whole pipeline with torchvision.transforms.v2)"
            )
        if isinstance(out, Tensor) and not isinstance(out, tv_tensors.TVTensor):
            return tv_tensors.Image(out)
        return out

    def extra_repr(self) -> str:
        return self.label


def _refuse_v1(t: Any, why: str) -> ConfigError:
    return ConfigError(
        f"torchvision v1 transform {type(t).__name__} {why}; camcheck cannot move boxes and "
        "masks through it. Write the transform with torchvision.transforms.v2 (the same class "
        "names: v2.Compose([v2.Resize(...), v2.CenterCrop(...), v2.ToImage(), "
        "v2.ToDtype(torch.float32, scale=True), v2.Normalize(...)])), or pass a function "
        "PIL image -> (C, H, W) float tensor that only resizes"
    )


def _v1_same_name(t: Any) -> v2.Transform:
    """The v2 class of the same name as ``t``'s, built with ``t``'s settings."""
    name = type(t).__name__
    cls = getattr(v2, name, None)
    if not (isinstance(cls, type) and issubclass(cls, v2.Transform)):
        raise _refuse_v1(t, "has no torchvision.transforms.v2 equivalent")
    kwargs: dict[str, Any] = {}
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if hasattr(t, param.name):
            kwargs[param.name] = getattr(t, param.name)
        elif param.default is inspect.Parameter.empty:
            raise _refuse_v1(t, f"lacks the setting {param.name!r} its v2 equivalent needs")
    try:
        return cls(**kwargs)
    except Exception as exc:
        why = f"could not be rebuilt as v2.{name} ({describe_exception(exc, 0)})"
        raise _refuse_v1(t, why) from None


def _v1_steps(t: Any) -> list[Any]:
    """The v2 steps equivalent to one element of a v1 pipeline."""
    if isinstance(t, v2.Transform):
        return [t]
    name = type(t).__name__
    if not is_v1_transform(t):  # a Lambda-like callable of the user's
        if not callable(t):
            raise ConfigError(
                f"a step of the torchvision v1 transform is a {type(t).__name__}, not a callable"
            )
        return [_ImageOnly(t, _step_label(t))]
    if type(t).__module__ == "torchvision.transforms._presets":
        if name != "ImageClassification":
            raise _refuse_v1(t, "is a preset other than ImageClassification")
        return [
            v2.Resize(t.resize_size, interpolation=t.interpolation, antialias=t.antialias),
            v2.CenterCrop(t.crop_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(t.mean), std=list(t.std)),
        ]
    if name == "Compose":
        return [s for sub in t.transforms for s in _v1_steps(sub)]
    if name == "Lambda":
        return [_ImageOnly(t.lambd, _step_label(t.lambd, "Lambda"))]
    if name in ("ToTensor", "PILToTensor"):
        out: list[Any] = [v2.ToImage()]
        if name == "ToTensor":
            out.append(v2.ToDtype(torch.float32, scale=True))
        return out
    if name == "ConvertImageDtype":
        return [v2.ToDtype(t.dtype, scale=True)]
    if name == "ToPILImage":
        return [v2.ToPILImage(mode=t.mode)]
    if name in ("RandomApply", "RandomOrder", "RandomChoice"):
        inner = [_as_one(_v1_steps(sub)) for sub in t.transforms]
        if name == "RandomApply":
            return [v2.RandomApply(inner, p=t.p)]
        if name == "RandomChoice":
            return [v2.RandomChoice(inner, p=t.p)]
        return [v2.RandomOrder(inner)]
    if name in _V1_REFUSED:
        raise _refuse_v1(t, "gives several images")
    return [_v1_same_name(t)]


def _as_one(steps: list[Any]) -> Any:
    if not steps:
        return v2.Identity()
    return steps[0] if len(steps) == 1 else v2.Compose(steps)


def _step_label(fn: Any, kind: str | None = None) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{kind}({name})" if kind else str(name)


def v1_to_v2(fn: Any) -> v2.Transform:
    """The torchvision v2 equivalent of a v1 transform, so that boxes and masks follow it.

    ``Compose``, ``RandomApply``, ``RandomChoice`` and ``RandomOrder`` are converted with their
    contents; ``ToTensor`` becomes ``ToImage`` + ``ToDtype(float32, scale=True)``,
    ``PILToTensor`` ``ToImage``, ``ConvertImageDtype`` ``ToDtype(dtype, scale=True)``; the
    ``ImageClassification`` preset (``weights.transforms()``) becomes ``Resize``,
    ``CenterCrop``, ``ToImage``, ``ToDtype``, ``Normalize``; every other v1 class the v2 class
    of the same name, with the same settings. A ``Lambda`` or another callable runs on the
    image only (see the module docstring); a v2 transform inside a v1 pipeline is kept.

    Raises:
        ConfigError: a step cannot be converted (``FiveCrop``, ``TenCrop``, a v1 class without
            a v2 equivalent); the message says how to pass the transform instead.
    """
    return _as_one(_v1_steps(fn))


def _required_args(fn: Callable[..., Any]) -> int | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return sum(
        1
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def resolve_transform(
    spec: str | Callable[..., Any] | None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    rootdir: str | os.PathLike[str] | None = None,
) -> PairedTransform:
    """Turn the ``transform`` argument of :func:`~.dataset.build_dataset` into a transform.

    Args:
        spec: None (the default transform), ``"package.module:name"``, or a callable.
        image_size: output size of the default transform.
        rootdir: put on ``sys.path`` while importing a spec.

    Raises:
        ConfigError: bad ``image_size``, unimportable spec, or not a callable.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    if isinstance(spec, PairedTransform):  # built already (e.g. by pytest_camcheck.inputs)
        return spec
    if spec is None:
        return PairedTransform(
            default_transform(image_size),
            f"default (Resize(({image_size}, {image_size})) + ImageNet normalisation)",
            "default",
            (IMAGENET_MEAN, IMAGENET_STD),
        )
    name = spec if isinstance(spec, str) else _callable_name(spec)
    fn: Any = spec
    if isinstance(spec, str):
        fn = import_from_spec(spec, what="transform", rootdir=rootdir)
        if isinstance(fn, type) or (inspect.isfunction(fn) and _required_args(fn) == 0):
            try:
                fn = fn()
            except CamcheckError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"transform {spec!r}: building it raised {describe_exception(exc, 5, rootdir)}"
                ) from None
    if not callable(fn):
        raise ConfigError(
            f"transform {name!r} is a {type(fn).__name__}, not a callable; give a torchvision "
            "v2 transform or a function PIL image -> (C, H, W) float tensor"
        )
    if is_v1_transform(fn):
        if not isinstance(spec, str):
            name = _v1_name(fn)
        try:
            converted = v1_to_v2(fn)
        except ConfigError as exc:
            raise ConfigError(f"transform {name}: {exc}") from None
        return PairedTransform(converted, f"{name} (torchvision v1, run as v2)", "v2")
    kind = "v2" if isinstance(fn, v2.Transform) else "plain"
    return PairedTransform(fn, str(name), kind)


def _v1_name(fn: Any) -> str:
    inner = getattr(fn, "transforms", None)
    if type(fn).__name__ == "Compose" and isinstance(inner, (list, tuple)):
        return "Compose(" + ", ".join(type(t).__name__ for t in inner) + ")"
    return type(fn).__name__


def _callable_name(fn: Any) -> str:
    if isinstance(fn, v2.Compose):
        return "Compose(" + ", ".join(type(t).__name__ for t in fn.transforms) + ")"
    if isinstance(fn, v2.Transform):
        return type(fn).__name__
    return str(getattr(fn, "__qualname__", None) or type(fn).__qualname__)


def to_display(
    image: Tensor, normalization: tuple[Sequence[float], Sequence[float]] | None = None
) -> np.ndarray:
    """A ``(C, H, W)`` tensor as an RGB ``uint8`` ``(H, W, 3)`` array for overlays.

    Args:
        image: the transformed image.
        normalization: ``(mean, std)`` to invert exactly (the default transform); without it
            each channel is min-max scaled to 0..255 (a constant channel keeps its value
            clipped to [0, 1]).

    A one-channel image is repeated to three channels; of more than three, the first three are
    shown.
    """
    x = image.detach().to("cpu", torch.float32)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(f"expected a (C, H, W) image, got shape {tuple(x.shape)}")
    if normalization is not None:
        mean = torch.tensor(list(normalization[0]), dtype=torch.float32)[:, None, None]
        std = torch.tensor(list(normalization[1]), dtype=torch.float32)[:, None, None]
        x = (x * std + mean) * 255.0
    else:
        flat = x.reshape(x.shape[0], -1)
        lo = flat.min(dim=1).values[:, None, None]
        hi = flat.max(dim=1).values[:, None, None]
        span = hi - lo
        stretched = (x - lo) / torch.where(span > 0, span, torch.ones_like(span))
        x = torch.where(span > 0, stretched, x.clamp(0.0, 1.0)) * 255.0
    x = torch.nan_to_num(x, nan=0.0).round().clamp(0, 255).to(torch.uint8)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] == 2:
        x = x[:1].expand(3, -1, -1)
    else:
        x = x[:3]
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy())
