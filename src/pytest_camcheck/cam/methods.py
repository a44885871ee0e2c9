"""CAM methods: how a layer's activations (and gradients) become a raw map.

Every method receives a :class:`MethodInput` and returns the signed raw map ``(B, h, w)`` in
float32 at the layer's resolution. The engine does the rest (ReLU, upsampling, normalisation).
New methods can be added with :func:`register_method`; the plugin names them in config strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .names import find_method, method_key, unknown_method_message

__all__ = ["METHODS", "CamMethod", "MethodInput", "get_method", "register_method"]

_EPS = 1e-7


@dataclass
class MethodInput:
    """What a method may use.

    Attributes:
        activations: ``(B, C, h, w)`` float32 activations of the layer.
        gradients: ``(B, C, h, w)`` float32 gradients of the score, or None for gradient-free
            methods.
        targets: ``(B,)`` class indices (``-1`` where the target was a callable).
        layer: the layer's name.
        context: engine services (``head_weights(targets)`` for CAM, ``score_masked(...)`` for
            Score-CAM); see the engine.
    """

    activations: Tensor
    gradients: Tensor | None
    targets: Tensor
    layer: str
    context: Any = None


@dataclass(frozen=True)
class CamMethod:
    """A registered CAM method.

    Attributes:
        name: the name used in ``compute_cams(method=...)`` and in config strings.
        needs_gradients: whether the engine must run a backward pass to the layer.
        fn: ``MethodInput -> (B, h, w)`` signed float32 raw map.
        summary: one line for help texts and error messages.
    """

    name: str
    needs_gradients: bool
    fn: Callable[[MethodInput], Tensor]
    summary: str = ""


METHODS: dict[str, CamMethod] = {}


def register_method(
    name: str,
    fn: Callable[[MethodInput], Tensor],
    *,
    needs_gradients: bool,
    summary: str = "",
    replace: bool = False,
) -> CamMethod:
    """Register a CAM method under ``name`` (lower case) and return it.

    Names are looked up by :func:`~pytest_camcheck.cam.names.method_key`, so a method is found
    by any spelling of its name (``"Abs-GradCAM"`` finds ``"absgradcam"``).

    Args:
        name: the method's name; stored lower-cased, as given otherwise.
        fn: ``MethodInput -> (B, h, w)`` signed float32 raw map.
        needs_gradients: whether the engine must run a backward pass to the layer.
        summary: one line for help texts and error messages.
        replace: replace a method registered under a name with the same key.

    Raises:
        ValueError: the name is empty, or a method of the same key is registered and
            ``replace`` is False.
    """
    key = name.strip().lower()
    if not method_key(key):
        raise ValueError(f"a CAM method needs a name, got {name!r}")
    existing = find_method(key, METHODS)
    if existing is not None:
        if not replace:
            shown = repr(key) if existing == key else f"{key!r} (as {existing!r})"
            raise ValueError(f"CAM method {shown} is already registered (pass replace=True)")
        del METHODS[existing]
    method = CamMethod(key, needs_gradients, fn, summary)
    METHODS[key] = method
    return method


def get_method(name: str | CamMethod) -> CamMethod:
    """Look a method up by any spelling of its name (see :func:`.names.method_key`).

    Raises:
        ConfigError: no method has that name; the message lists the valid names.
    """
    if isinstance(name, CamMethod):
        return name
    found = find_method(str(name), METHODS)
    if found is None:
        raise ConfigError(unknown_method_message(name, METHODS))
    return METHODS[found]


def _weighted_sum(weights: Tensor, activations: Tensor) -> Tensor:
    """sum_c weights[b, c] * activations[b, c, :, :] -> (B, h, w)."""
    return torch.einsum("bc,bchw->bhw", weights, activations)


def _gradcam(inp: MethodInput) -> Tensor:
    assert inp.gradients is not None
    return _weighted_sum(inp.gradients.mean(dim=(2, 3)), inp.activations)


def _hirescam(inp: MethodInput) -> Tensor:
    assert inp.gradients is not None
    return (inp.gradients * inp.activations).sum(dim=1)


def _gradcam_pp(inp: MethodInput) -> Tensor:
    # Chattopadhyay et al. 2018, with the exponential-score closed form for alpha:
    # alpha = g^2 / (2 g^2 + sum(A) g^3), which for g != 0 is 1 / (2 + sum(A) g). The reduced
    # form does not underflow: an absolute epsilon on the g^2 / g^3 denominator zeroed every
    # alpha of models whose gradients are small (|g| < 2e-4), making the map degenerate.
    g = inp.gradients
    assert g is not None
    a = inp.activations
    denom = 2.0 + a.sum(dim=(2, 3), keepdim=True) * g
    ok = (g != 0) & (denom.abs() > _EPS)
    alpha = torch.where(ok, 1.0 / torch.where(ok, denom, 1.0), 0.0)
    weights = (alpha * g.clamp(min=0)).sum(dim=(2, 3))
    return _weighted_sum(weights, a)


def _xgradcam(inp: MethodInput) -> Tensor:
    g = inp.gradients
    assert g is not None
    a = inp.activations
    weights = (g * a).sum(dim=(2, 3)) / (a.sum(dim=(2, 3)) + _EPS)
    return _weighted_sum(weights, a)


def _layercam(inp: MethodInput) -> Tensor:
    assert inp.gradients is not None
    return (inp.gradients.clamp(min=0) * inp.activations).sum(dim=1)


def _cam(inp: MethodInput) -> Tensor:
    weights = inp.context.head_weights(inp.layer, inp.activations, inp.targets)
    return _weighted_sum(weights, inp.activations)


def _scorecam(inp: MethodInput) -> Tensor:
    # Wang et al. 2020: each channel, upsampled and min-max normalised, masks the input; the
    # softmax over channels of the masked inputs' target scores weighs the channels.
    scores = inp.context.score_masked(inp.activations, inp.targets)  # (B, C)
    weights = torch.softmax(scores, dim=1)
    return _weighted_sum(weights, inp.activations)


def _eigencam(inp: MethodInput) -> Tensor:
    # Muhammad & Yeasin 2020: projection of the (centred) activations on their first principal
    # component. The sign of a principal component is arbitrary: we pick the one that agrees
    # with the mean activation, so strong features map to high values.
    a = inp.activations
    b, c, h, w = a.shape
    # SVD fails on the whole batch if one image holds a NaN/inf: decompose zeros instead and
    # give those images a NaN map, which the engine flags as degenerate.
    finite = torch.isfinite(a.reshape(b, -1)).all(dim=1)
    a = torch.where(finite.view(b, 1, 1, 1), a, torch.zeros_like(a))
    flat = a.reshape(b, c, h * w).transpose(1, 2)  # (B, hw, C)
    centred = flat - flat.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    proj = torch.einsum("bnc,bc->bn", centred, vh[:, 0, :])
    mean_act = flat.mean(dim=2)
    mean_act = mean_act - mean_act.mean(dim=1, keepdim=True)
    sign = torch.sign((proj * mean_act).sum(dim=1, keepdim=True))
    sign = torch.where(sign == 0, 1.0, sign)
    out = (proj * sign).reshape(b, h, w)
    return torch.where(finite.view(b, 1, 1), out, torch.full_like(out, float("nan")))


register_method(
    "cam",
    _cam,
    needs_gradients=False,
    summary="Zhou et al.: classifier weights x features (global-pool + linear head)",
)
register_method(
    "gradcam",
    _gradcam,
    needs_gradients=True,
    summary="Selvaraju et al.: spatial mean of gradients x activations",
)
register_method(
    "gradcam++",
    _gradcam_pp,
    needs_gradients=True,
    summary="Chattopadhyay et al.: higher-order gradient weights",
)
register_method(
    "hirescam",
    _hirescam,
    needs_gradients=True,
    summary="Draelos & Carin: element-wise gradients x activations",
)
register_method(
    "xgradcam",
    _xgradcam,
    needs_gradients=True,
    summary="Fu et al.: activation-normalised gradient weights",
)
register_method(
    "layercam",
    _layercam,
    needs_gradients=True,
    summary="Jiang et al.: positive gradients x activations, element-wise",
)
register_method(
    "scorecam",
    _scorecam,
    needs_gradients=False,
    summary="Wang et al.: masked-input scores (one forward per channel, batched)",
)
register_method(
    "eigencam",
    _eigencam,
    needs_gradients=False,
    summary="Muhammad & Yeasin: first principal component of the activations",
)
