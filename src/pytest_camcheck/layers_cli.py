"""``pytest --camcheck-layers``: the layers a CAM can be computed at, then exit.

Like ``pytest --fixtures``, it prints and ends the run: each candidate layer's dotted name, type
and output shape at the configured input size, the size in input pixels of one cell of its map,
and which layer auto-detection picks. A candidate is a module that runs once per forward and
gives a spatial ``(B, C, h, w)`` grid (or tokens camcheck arranges on one), adaptive pooling
excluded.

:func:`candidate_layers` is the engine part (torch only), usable from a notebook::

    from pytest_camcheck.layers_cli import candidate_layers, format_layers
    print(format_layers(candidate_layers(model, (224, 224))))
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .errors import CamcheckError, ConfigError

__all__ = ["LayerInfo", "candidate_layers", "format_layers", "show_layers"]

#: Beyond this many candidates, only those at most this deep are listed (``-v`` lists all).
_MANY = 60
_SHALLOW = 2


@dataclass(frozen=True)
class LayerInfo:
    """One candidate layer.

    Attributes:
        name: the dotted module name (what ``camcheck_layer`` takes).
        type: the module's class name.
        shape: its output's shape for one image, as the module returns it.
        grid: ``(h, w)`` of the map the layer gives.
        cell: ``(height, width)`` in input pixels of one map cell.
        auto: whether auto-detection picks this layer.
    """

    name: str
    type: str
    shape: tuple[int, ...]
    grid: tuple[int, int]
    cell: tuple[float, float]
    auto: bool = False

    @property
    def depth(self) -> int:
        return self.name.count(".")


def candidate_layers(model: Any, size: tuple[int, int], channels: int = 3) -> list[LayerInfo]:
    """The layers of ``model`` a CAM can be computed at, in forward order.

    Args:
        model: the model (left in the mode and on the device it is in).
        size: the input's ``(height, width)``.
        channels: the input's channels.

    Returns:
        One :class:`LayerInfo` per candidate; the one auto-detection picks has ``auto`` set
        (it may be a token layer the generic rule would not list first).
    """
    import torch
    from torch import nn

    from .cam.engine import model_device_dtype
    from .cam.layers import auto_layer, first_tensor
    from .cam.reshape import resolve_reshape

    device, dtype = model_device_dtype(model)
    if not dtype.is_floating_point:
        dtype = torch.float32
    example = torch.randn(1, channels, *size, generator=torch.Generator().manual_seed(0))
    example = example.to(device=device, dtype=dtype)
    seen: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    calls: dict[str, int] = {}
    pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)

    def make_hook(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            t = first_tensor(output)
            if t is not None and not isinstance(module, pools) and name not in seen:
                seen[name] = tuple(int(s) for s in t.shape)
                order.append(name)

        return hook

    modules = dict(model.named_modules())
    handles = [m.register_forward_hook(make_hook(n)) for n, m in modules.items() if n]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    try:
        picked: str | None = auto_layer(model, example, model)
    except CamcheckError:
        picked = None
    out: list[LayerInfo] = []
    for name in order:
        shape = seen[name]
        if calls.get(name) != 1 or len(shape) not in (3, 4):
            continue
        grid = _grid(model, name, shape, resolve_reshape, example)
        if grid is None or grid[0] * grid[1] <= 1:
            continue
        cell = (size[0] / grid[0], size[1] / grid[1])
        out.append(LayerInfo(name, type(modules[name]).__name__, shape, grid, cell, name == picked))
    return out


def _grid(
    model: Any, name: str, shape: tuple[int, ...], resolve_reshape: Any, example: Any
) -> tuple[int, int] | None:
    """The ``(h, w)`` of the map at a layer, after the reshape camcheck would apply."""
    import torch

    try:
        reshape = resolve_reshape(model, name, None, len(shape))
    except CamcheckError:
        return None
    if reshape is None:
        return (shape[2], shape[3]) if len(shape) == 4 else None
    try:
        grid = reshape(torch.zeros(shape, dtype=example.dtype))
    except (CamcheckError, RuntimeError):
        return None
    return (int(grid.shape[-2]), int(grid.shape[-1])) if grid.dim() == 4 else None


def format_layers(layers: list[LayerInfo], title: str = "", verbose: bool = False) -> list[str]:
    """The table ``--camcheck-layers`` prints (a line per layer)."""
    shown = layers
    hidden = 0
    if not verbose and len(layers) > _MANY:
        shown = [info for info in layers if info.depth < _SHALLOW or info.auto]
        hidden = len(layers) - len(shown)
    rows = [("layer", "type", "output", "map", "cell (px)", "")]
    for info in shown:
        rows.append(
            (
                info.name,
                info.type,
                " x ".join(str(s) for s in info.shape[1:]),
                f"{info.grid[0]} x {info.grid[1]}",
                _cell(info.cell),
                "<- auto-detected" if info.auto else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [title] if title else []
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if hidden:
        lines.append(
            f"  ... and {hidden} layers nested deeper (pytest --camcheck-layers -v lists them)"
        )
    if not any(info.auto for info in layers):
        lines.append("  auto-detection finds no layer: set camcheck_layer to one of these")
    return lines


def _cell(cell: tuple[float, float]) -> str:
    h, w = (f"{v:.3g}" for v in cell)
    return h if h == w else f"{h} x {w}"


def _input_size(config: Any, settings: Any) -> tuple[tuple[int, int], str]:
    """The input's ``(height, width)``: of the configured dataset's first image after its
    transform when there is a dataset, else the default transform's output size."""
    from .inputs import input_plan

    rootdir = Path(config.rootpath)
    given = config.getoption("camcheck_image_size") is not None or bool(
        str(config.getini("camcheck_image_size")).strip()
    )
    if settings.dataset:
        from .inputs import build_configured_dataset

        try:
            image = build_configured_dataset(settings, rootdir, given)[0].image
            return (int(image.shape[-2]), int(image.shape[-1])), "the first image of the dataset"
        except (CamcheckError, IndexError):
            pass
    side = input_plan(settings, rootdir, size_given=given).input_size
    return (side, side), "the default transform"


def show_layers(config: Any, out: TextIO | None = None) -> int:
    """Print the candidate layers of the configured model; the exit code (0, or 4 when the
    configuration is unusable)."""
    from .loading import load_model
    from .settings import settings_from

    out = out or sys.stdout
    try:
        settings = settings_from(config.getoption, config.getini)
        if not settings.model:
            raise ConfigError(
                "--camcheck-layers needs camcheck_model (a model overridden in a conftest.py "
                "fixture is not built outside a test)"
            )
        model = load_model(
            settings.model,
            kwargs=settings.model_kwargs,
            weights=settings.weights,
            trust_weights=settings.trust_weights,
            device="cpu",
            rootdir=Path(config.rootpath),
        )
        size, where = _input_size(config, settings)
        layers = candidate_layers(model, size)
    except CamcheckError as exc:
        print(f"ERROR: camcheck: {exc}", file=out)
        return 4
    picked = next((info.name for info in layers if info.auto), None)
    title = (
        f"camcheck layers of {settings.model} at {size[1]}x{size[0]} input ({where}); "
        + (f"auto-detection picks {picked}" if picked else "no layer is auto-detected")
        + (f"; camcheck_layer = {', '.join(settings.layer)}" if settings.layer else "")
        + ":"
    )
    verbose = bool(getattr(config.option, "verbose", 0) > 0)
    for line in format_layers(layers, title, verbose=verbose):
        print(line, file=out)
    print(
        "Set camcheck_layer to a name above (several, comma-separated, are computed in one "
        "pass); a map cell of N px cannot place a peak closer than N px.",
        file=out,
    )
    return 0
