"""Finding the layers a CAM is computed at: by name, by module, or automatically."""

from __future__ import annotations

import difflib
import logging
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import EngineError, LayerNotFoundError

__all__ = ["LayerSpec", "auto_layer", "first_tensor", "resolve_layers"]

log = logging.getLogger("pytest_camcheck")

LayerSpec = str | nn.Module

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# model -> {(C, H, W): layer name}
_AUTO_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str]] = (
    weakref.WeakKeyDictionary()
)


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a module's output (a tensor, or a tuple/list/dict holding one)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            t = first_tensor(v)
            if t is not None:
                return t
    if isinstance(value, dict):
        for v in value.values():
            t = first_tensor(v)
            if t is not None:
                return t
    return None


def _summarise_names(names: Sequence[str]) -> str:
    """'layer1', 'layer2', 'layer3', 'layer4' -> 'layer1..layer4' (keeps other names)."""
    out: list[str] = []
    i = 0
    while i < len(names):
        j = i
        stem = names[i].rstrip("0123456789")
        while (
            j + 1 < len(names)
            and stem
            and names[j + 1].rstrip("0123456789") == stem
            and names[j + 1][len(stem) :].isdigit()
            and names[j][len(stem) :].isdigit()
            and int(names[j + 1][len(stem) :]) == int(names[j][len(stem) :]) + 1
        ):
            j += 1
        out.append(names[i] if j - i < 2 else f"{names[i]}..{names[j]}")
        i = j + 1
    return ", ".join(out)


def _not_found(model: nn.Module, name: str, modules: dict[str, nn.Module]) -> LayerNotFoundError:
    candidates = [n for n in modules if n]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    prefix = name.rsplit(".", 1)[0] if "." in name else ""
    if prefix in modules and prefix:
        children = [f"{prefix}.{c}" for c, _ in modules[prefix].named_children()]
        close = list(dict.fromkeys(close + children[:8]))
    top = [n for n, _ in model.named_children()]
    msg = f"layer {name!r} not found in {type(model).__name__}"
    if close:
        msg += f"; close candidates: {', '.join(close)}"
    msg += f"; top-level modules: {_summarise_names(top) or '(none)'}"
    msg += " (nested layers use dotted names, e.g. 'layer4.1.conv2')"
    return LayerNotFoundError(msg)


def resolve_layers(
    model: nn.Module, layers: LayerSpec | Sequence[LayerSpec]
) -> list[tuple[str, nn.Module]]:
    """Turn names / modules into ``(dotted name, module)`` pairs, in request order, deduplicated."""
    specs: list[LayerSpec] = (
        [layers] if isinstance(layers, (str, nn.Module)) else list(layers)  # type: ignore[list-item]
    )
    if not specs:
        raise EngineError("layers is an empty list: name at least one layer, or pass None")
    modules = dict(model.named_modules())
    by_id = {id(m): n for n, m in modules.items()}
    out: dict[str, nn.Module] = {}
    for spec in specs:
        if isinstance(spec, nn.Module):
            name = by_id.get(id(spec))
            if name is None:
                raise LayerNotFoundError(
                    f"the {type(spec).__name__} module passed as a layer is not part of "
                    f"{type(model).__name__}; pass one of its submodules or a dotted name"
                )
            if name == "":
                raise EngineError(
                    "the model itself cannot be the CAM layer; name one of its layers"
                )
            out.setdefault(name, spec)
        elif isinstance(spec, str):
            name = spec.strip()
            if name not in modules or name == "":
                raise _not_found(model, name, modules)
            out.setdefault(name, modules[name])
        else:
            raise EngineError(
                f"a layer must be a dotted module name or an nn.Module, got {type(spec).__name__}"
            )
    return list(out.items())


def _builtin_layer(model: nn.Module) -> str | None:
    """Layers for architectures whose right CAM layer is not the last spatial output."""
    cls = type(model)
    if cls.__name__ == "VisionTransformer" and cls.__module__.startswith("torchvision"):
        # The class token is read after the last block; the patch tokens only reach it through
        # the last block's attention, so the layer is the input norm of that block.
        blocks = [n for n, _ in model.encoder.layers.named_children()]  # type: ignore[union-attr]
        return f"encoder.layers.{blocks[-1]}.ln_1"
    from .families import family_layer  # timm and Hugging Face architectures

    return family_layer(model)


def auto_layer(model: nn.Module, example: torch.Tensor, forward: Any) -> str:
    """Pick the last layer with a spatial ``(B, C, h, w)`` output that feeds the head.

    Runs one probe forward on a single image (cached per model and input shape) and takes the
    last module to finish with a 4-D output of more than one spatial position, skipping adaptive
    pooling, modules that run more than once, and the model itself.
    """
    builtin = _builtin_layer(model)
    if builtin is not None:
        return builtin
    key = tuple(example.shape[1:])
    cache = _AUTO_CACHE.setdefault(model, {})
    if key in cache:
        return cache[key]
    order: list[tuple[str, tuple[int, ...]]] = []
    calls: dict[str, int] = {}
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            t = first_tensor(output)
            if t is not None and not isinstance(module, _POOLS):
                order.append((name, tuple(t.shape)))

        return hook

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(make_hook(name)))
    try:
        with torch.no_grad():
            forward(example[:1])
    finally:
        for h in handles:
            h.remove()
    chosen = None
    for name, shape in reversed(order):
        if calls.get(name, 0) == 1 and len(shape) == 4 and shape[2] * shape[3] > 1:
            chosen = name
            break
    if chosen is None:
        shapes = ", ".join(f"{n}: {tuple(s)}" for n, s in order[-5:])
        raise EngineError(
            f"could not find a layer with a spatial (B, C, h, w) output in "
            f"{type(model).__name__} (last outputs: {shapes}); pass layers='name' and, for "
            "token models, reshape= to turn tokens into a grid"
        )
    cache[key] = chosen
    log.info("camcheck: auto-detected CAM layer %r for %s", chosen, type(model).__name__)
    return chosen
