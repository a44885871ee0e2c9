"""Cross-checking the engine against Captum's ``LayerGradCam``.

Users call :func:`crosscheck_captum` (or :func:`assert_matches_captum`) in their own CI to prove
that the maps their tests gate on are the textbook Grad-CAM of their model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CamAssertionError, EngineError
from .engine import (
    OutputSelector,
    TargetSpec,
    as_batch,
    compute_cams,
    frozen_model,
    model_device_dtype,
    normalise_maps,
    select_output,
)
from .layers import LayerSpec

__all__ = ["CrosscheckResult", "assert_matches_captum", "crosscheck_captum"]


@dataclass(frozen=True)
class CrosscheckResult:
    """Differences between our Grad-CAM and Captum's.

    Attributes:
        layer: the layer compared.
        raw_max_abs_diff: max |ours - Captum| over the raw (signed, layer-resolution) maps.
        map_max_abs_diff: max |ours - Captum| over the display maps (ReLU, bilinear upsampling,
            min-max), both in [0, 1].
        scale: max |Captum raw map|, the yardstick of ``raw_max_abs_diff``.
        rtol: allowed raw difference as a fraction of ``scale``.
        map_atol: allowed display-map difference.
        ok: both differences are within their tolerance.
    """

    layer: str
    raw_max_abs_diff: float
    map_max_abs_diff: float
    scale: float
    rtol: float
    map_atol: float
    ok: bool

    def __str__(self) -> str:
        verdict = "agrees with" if self.ok else "DIFFERS from"
        return (
            f"Grad-CAM at {self.layer!r} {verdict} Captum: raw max |diff| "
            f"{self.raw_max_abs_diff:.3g} (allowed {self.rtol:g} x scale {self.scale:.3g}), "
            f"display-map max |diff| {self.map_max_abs_diff:.3g} (allowed {self.map_atol:g})"
        )


def crosscheck_captum(
    model: nn.Module,
    images: Tensor | Sequence[Tensor],
    layer: LayerSpec | None = None,
    targets: TargetSpec = None,
    *,
    output: OutputSelector = None,
    rtol: float = 1e-5,
    map_atol: float = 1e-4,
) -> CrosscheckResult:
    """Compare our Grad-CAM with ``captum.attr.LayerGradCam(relu_attributions=False)``.

    Args:
        model: the classifier.
        images: ``(B, C, H, W)`` inputs.
        layer: one layer (name or module); None auto-detects it like :func:`compute_cams`.
        targets: as in :func:`compute_cams` (class indices; callables are not supported here).
        output: selects the logits from a tuple/dict output.
        rtol: allowed raw difference, relative to the largest |Captum raw value|.
        map_atol: allowed difference of the [0, 1] display maps.

    Returns:
        A :class:`CrosscheckResult`.
    """
    try:
        from captum.attr import LayerGradCam
    except ImportError as exc:  # pragma: no cover - captum is a dependency
        raise EngineError("crosscheck_captum needs captum: pip install captum") from exc
    if callable(targets) and not isinstance(targets, Tensor):
        raise EngineError("crosscheck_captum compares class targets; pass ints, not a callable")
    if isinstance(layer, (list, tuple)):
        raise EngineError("crosscheck_captum compares one layer at a time")
    ours = compute_cams(
        model, images, layers=layer, method="gradcam", targets=targets, output=output
    )
    name = ours.layers[0]
    module = dict(model.named_modules())[name]
    device, dtype = model_device_dtype(model)
    x = as_batch(images).detach().to(device=device, dtype=dtype)

    def forward(inp: Tensor) -> Tensor:
        return select_output(model(inp), output)

    with frozen_model(model, freeze_params=False):
        torch.set_grad_enabled(True)
        attr: Any = LayerGradCam(forward, module).attribute(
            x, target=ours.targets.tolist(), relu_attributions=False
        )
    if isinstance(attr, tuple):
        attr = attr[0]
    if attr.dim() != 4:
        raise EngineError(
            f"Captum returned a {tuple(attr.shape)} attribution at {name!r}; the cross-check "
            "needs a convolutional (B, C, h, w) layer"
        )
    theirs_raw = attr[:, 0].detach().float()
    ours_raw = ours.raw[name]
    if theirs_raw.shape != ours_raw.shape:
        raise EngineError(
            f"shape mismatch at {name!r}: ours {tuple(ours_raw.shape)}, Captum "
            f"{tuple(theirs_raw.shape)}"
        )
    up = F.interpolate(
        theirs_raw.clamp(min=0)[:, None],
        size=tuple(x.shape[-2:]),
        mode="bilinear",
        align_corners=False,
    )[:, 0]
    theirs_map = normalise_maps(up, ours.degenerate[name])
    raw_diff = float((ours_raw - theirs_raw).abs().max())
    map_diff = float((ours.maps[name] - theirs_map).abs().max())
    scale = float(theirs_raw.abs().max())
    ok = raw_diff <= rtol * max(scale, 1e-12) and map_diff <= map_atol
    return CrosscheckResult(name, raw_diff, map_diff, scale, rtol, map_atol, ok)


def assert_matches_captum(
    model: nn.Module,
    images: Tensor | Sequence[Tensor],
    layer: LayerSpec | None = None,
    targets: TargetSpec = None,
    **kwargs: Any,
) -> CrosscheckResult:
    """:func:`crosscheck_captum`; raises :class:`CamAssertionError` with the numbers if not ok."""
    __tracebackhide__ = True
    result = crosscheck_captum(model, images, layer, targets, **kwargs)
    if not result.ok:
        raise CamAssertionError(
            f"{result}. Check for hooks or in-place ops on that layer, and that the model is "
            "deterministic in eval mode.",
            evidence={
                "layer": result.layer,
                "raw_max_abs_diff": result.raw_max_abs_diff,
                "map_max_abs_diff": result.map_max_abs_diff,
                "scale": result.scale,
            },
        )
    return result
