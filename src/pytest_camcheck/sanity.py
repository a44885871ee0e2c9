"""Checks that need more than a map and a box: sanity, faithfulness and shortcuts.

* **Model randomisation** (Adebayo et al., 2018): the model is re-initialised on a COPY, cascading
  from the top (the head, then block by block down to the explained layer); a map that barely
  changes does not explain the model. Similarity: Spearman rank correlation and SSIM.
* **Deletion / insertion** (Petsiuk et al., 2018): pixels are removed from the image (or revealed
  on a blurred copy of it) in the map's order, in ``steps`` steps; the target probability traces
  a curve whose area is compared with that of a random order.
* **Occlusion**: masking an annotated region must lower the target probability, and more than
  masking patches of the background of the same shape and area.

Deletion, insertion and occlusion can only judge a sample whose target probability depends on
the image's detail: when the blurred image (the baseline) scores the target within
``min_effect`` of the image itself (a class the model answers when it sees nothing, or a model
that reads only colours), there is nothing to remove or reveal. Such samples are left out of the
rate and named in the result's notes; a check that can judge no sample fails its gate.
* **Spatial bias**: a hot spot that stays put while the objects move (the share of a class's
  samples whose map peaks in the same small window). Needs no annotations.

The first part holds pure functions over tensors (the model is run, never changed); the second
runs them over a :class:`~pytest_camcheck.store.BatchStore`'s dataset and returns
:class:`~pytest_camcheck.metrics.RateResult` s, whose ``extra`` carries what the report plots
(the cascade curve, the deletion curves, the per-class mean maps). :class:`CamCheck
<pytest_camcheck.session.CamCheck>`'s methods are thin wrappers around them.

Knows nothing of pytest or the report.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from . import metrics
from .cam.engine import compute_cams, frozen_model, model_device_dtype, select_output
from .cam.layers import resolve_layers
from .errors import ConfigError, DataError
from .regions import Region
from .store import Batch, BatchStore, MapConfig

__all__ = [
    "BLUR_FRACTION",
    "CascadeStep",
    "Drops",
    "Randomizer",
    "auc",
    "baseline_of",
    "blur",
    "cascade_steps",
    "deletion_check",
    "insertion_check",
    "map_similarity",
    "occlusion_check",
    "occlusion_drops",
    "peak_shares",
    "perturbation_curves",
    "randomization_check",
    "randomized_maps",
    "rank_correlation",
    "spatial_bias_check",
    "ssim",
    "target_probability",
]

Title = Callable[[str, str], str]

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


# ============================================================================================
# similarity of two maps


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two maps (flattened; ties get their average rank).

    Returns:
        The correlation in [-1, 1]; 0.0 when either map is constant (it has no order to share);
        nan when a map holds a non-finite value.

    Raises:
        ValueError: the maps have different sizes.
    """
    from scipy.stats import rankdata

    x = np.asarray(metrics.as_map(a), dtype=np.float64).ravel()
    y = np.asarray(metrics.as_map(b), dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"maps of different sizes: {x.size} and {y.size} pixels")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    if denom == 0.0:
        return 0.0
    return float(min(1.0, max(-1.0, float((rx * ry).sum()) / denom)))


def ssim(a: Any, b: Any, data_range: float = 1.0) -> float:
    """The structural similarity (SSIM) of two ``(H, W)`` maps (scikit-image, 7x7 windows, or
    the largest odd window that fits a smaller map).

    Args:
        a: the first map.
        b: the second map, of the same shape.
        data_range: the range the maps' values span (1 for display maps in [0, 1]).

    Returns:
        SSIM in [-1, 1]; nan when a map holds a non-finite value.
    """
    from skimage.metrics import structural_similarity

    x, y = metrics.as_map(a), metrics.as_map(b)
    if x.shape != y.shape:
        raise ValueError(f"maps of different shapes: {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    side = min(x.shape)
    win = min(7, side if side % 2 else side - 1)
    if win < 3:  # too small for a window: compare the whole maps as one window
        return _global_ssim(x, y, data_range)
    return float(structural_similarity(x, y, win_size=win, data_range=float(data_range)))


def _global_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    num = (2 * mx * my + c1) * (2 * cov + c2)
    return float(num / ((mx * mx + my * my + c1) * (x.var() + y.var() + c2)))


def map_similarity(a: Any, b: Any) -> tuple[float, float]:
    """``(spearman, ssim)`` of two display maps in [0, 1] (see :func:`rank_correlation`,
    :func:`ssim`)."""
    return rank_correlation(a, b), ssim(a, b, data_range=1.0)


# ============================================================================================
# model randomisation


@dataclass(frozen=True)
class CascadeStep:
    """One step of the randomisation cascade.

    Attributes:
        name: the block re-initialised at this step (a module name, e.g. ``"fc"`` or
            ``"layer4.1"``).
        modules: the modules under it whose parameters are re-initialised.
    """

    name: str
    modules: tuple[str, ...]


def _owns_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(
        True for _ in module.buffers(recurse=False)
    )


def _forward_order(model: nn.Module, x: Tensor, output: Any) -> tuple[dict, dict]:
    """``(first start, last end)`` of every module's forward, as positions in one pass."""
    clock = [0]
    start: dict[str, int] = {}
    end: dict[str, int] = {}

    def pre(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any) -> None:
            clock[0] += 1
            start.setdefault(name, clock[0])

        return hook

    def post(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, out: Any) -> None:
            clock[0] += 1
            end[name] = clock[0]

        return hook

    handles = []
    try:
        for name, m in model.named_modules():
            handles.append(m.register_forward_pre_hook(pre(name)))
            handles.append(m.register_forward_hook(post(name)))
        with torch.no_grad(), frozen_model(model, freeze_params=False):
            select_output(model(x), output)
    finally:
        for h in handles:
            h.remove()
    return start, end


def _inside(name: str, ancestor: str) -> bool:
    return ancestor == "" or name == ancestor or name.startswith(ancestor + ".")


def _holds_blocks(module: nn.Module) -> bool:
    """Whether ``module`` is a plain container of blocks (children with children of their own):
    such a container is randomised child by child, a block of layers as one step."""
    return isinstance(module, _CONTAINERS) and any(
        any(True for _ in child.children()) for child in module.children()
    )


def cascade_steps(
    model: nn.Module, layer: str, example: Tensor, *, output: Any = None
) -> list[CascadeStep]:
    """The randomisation cascade of ``model`` explained at ``layer``, from the top down.

    First the blocks that run after the layer (the head), the last one first: each is the
    outermost module that does not contain the layer and runs wholly after it; a plain
    container of blocks (an ``nn.Sequential`` of residual blocks, say) is split into its
    children. Then the layer's own blocks, the last one first: its children when it is a
    container of blocks, else the layer itself.
    Modules that run before the layer are never re-initialised.

    Args:
        model: the model (run once on ``example``, in eval mode, without gradients).
        layer: the explained layer's name.
        example: one input batch (``(1, C, H, W)`` is enough) on the model's device.
        output: which model output holds the logits (as :func:`compute_cams`).

    Returns:
        The steps, head first; each step's modules own parameters or buffers.

    Raises:
        ConfigError: the layer did not run, or nothing at or above it has parameters.
    """
    ((name, target),) = resolve_layers(model, layer)
    start, end = _forward_order(model, example, output)
    if name not in start:
        raise ConfigError(f"layer {name!r} did not run in the forward pass")
    done = end[name]
    modules = dict(model.named_modules())

    def owning(prefix: str) -> tuple[str, ...]:
        return tuple(
            n for n, m in modules.items() if _inside(n, prefix) and n in start and _owns_state(m)
        )

    units: dict[str, int] = {}
    for mod_name, module in modules.items():
        if mod_name == "" or _inside(name, mod_name) or _inside(mod_name, name):
            continue  # an ancestor of the layer, or inside it
        if mod_name not in start or start[mod_name] <= done or not _owns_state(module):
            continue
        parts = mod_name.split(".")
        unit = mod_name
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if _inside(name, prefix) or prefix not in start or start[prefix] <= done:
                continue
            unit = prefix
            if _holds_blocks(modules[prefix]) and k < len(parts):
                unit = ".".join(parts[: k + 1])
            break
        units.setdefault(unit, start.get(unit, start[mod_name]))
    steps = [CascadeStep(u, owning(u)) for u, _ in sorted(units.items(), key=lambda kv: -kv[1])]
    if _holds_blocks(target):
        children = [
            (f"{name}.{child}", start[f"{name}.{child}"])
            for child, _ in target.named_children()
            if f"{name}.{child}" in start and owning(f"{name}.{child}")
        ]
        steps += [CascadeStep(c, owning(c)) for c, _ in sorted(children, key=lambda kv: -kv[1])]
    elif owning(name):
        steps.append(CascadeStep(name, owning(name)))
    steps = [s for s in steps if s.modules]
    if not steps:
        raise ConfigError(
            f"nothing to randomise: no module at or above layer {name!r} has parameters; "
            "explain a layer below the model's trainable blocks"
        )
    return steps


def _reinitialised(model: nn.Module, step: CascadeStep, seed: int) -> dict[str, Tensor]:
    """The parameters and buffers of ``step``'s modules after re-initialisation (on the CPU,
    so the draw does not depend on the device): each module with ``reset_parameters`` is reset
    after ``torch.manual_seed(seed)``; a parameter without one is drawn from a normal with its
    own mean and standard deviation. The global RNG is left as it was."""
    modules = dict(model.named_modules())
    out: dict[str, Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        for name in reversed(step.modules):  # top-down within the block, as Quantus does
            local = copy.deepcopy(modules[name]).cpu()  # the model itself is not touched
            reset = getattr(local, "reset_parameters", None)
            if callable(reset):
                torch.manual_seed(seed)
                reset()
            else:
                for p in local._parameters.values():
                    if p is None or not p.is_floating_point():
                        continue
                    torch.manual_seed(seed)
                    std = float(p.detach().float().std()) if p.numel() > 1 else 0.02
                    mean = float(p.detach().float().mean())
                    with torch.no_grad():
                        p.normal_(mean, std if math.isfinite(std) and std > 0 else 0.02)
            prefix = f"{name}." if name else ""
            for k, p in local._parameters.items():
                if p is not None:
                    out[prefix + k] = p.detach()
            for k, b in local._buffers.items():
                if b is not None:
                    out[prefix + k] = b.detach()
    return out


def _assign(model: nn.Module, tensors: Mapping[str, Tensor]) -> None:
    """Copy ``tensors`` into the model's parameters and buffers of the same names."""
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, value in tensors.items():
            dest = state[key]
            dest.copy_(value.to(device=dest.device, dtype=dest.dtype))


class Randomizer:
    """A randomisable copy of a model: :meth:`at` sets it to step ``k`` of the cascade.

    The user's model is deep-copied once; every state of the cascade is applied to the copy,
    never to the original.

    Args:
        model: the model to copy.
        layer: the explained layer.
        example: one input batch for the forward-order probe.
        seed: the re-initialisation seed.
        output: which model output holds the logits.
    """

    def __init__(
        self, model: nn.Module, layer: str, example: Tensor, *, seed: int = 0, output: Any = None
    ) -> None:
        self.model = copy.deepcopy(model)
        _, dtype = model_device_dtype(self.model)
        if dtype.is_floating_point:
            example = example.to(dtype)
        self.steps = cascade_steps(self.model, layer, example, output=output)
        self._random = [_reinitialised(self.model, s, seed) for s in self.steps]
        keys = {k for r in self._random for k in r}
        state = self.model.state_dict()
        self._original = {k: state[k].detach().clone() for k in keys}
        self._at = 0

    def at(self, k: int) -> nn.Module:
        """The copy with the first ``k`` steps of the cascade re-initialised (0: the original)."""
        if not 0 <= k <= len(self.steps):
            raise ValueError(f"step {k} outside 0..{len(self.steps)}")
        if k < self._at:
            _assign(self.model, self._original)
            self._at = 0
        for j in range(self._at, k):
            _assign(self.model, self._random[j])
        self._at = k
        return self.model


def randomized_maps(
    randomizer: Randomizer,
    images: Tensor,
    layer: str,
    method: str,
    targets: Tensor,
    *,
    amp: bool = False,
    output: Any = None,
) -> list[Tensor]:
    """The display maps of ``images`` at each step of the cascade (step 1 .. K).

    Returns:
        One ``(B, H, W)`` CPU tensor per step.
    """
    out = []
    for k in range(1, len(randomizer.steps) + 1):
        model = randomizer.at(k)
        result = compute_cams(
            model, images, layers=[layer], method=method, targets=targets, amp=amp, output=output
        )
        out.append(result.maps[result.layers[0]].detach().float().cpu())
    randomizer.at(0)
    return out


# ============================================================================================
# deletion / insertion and occlusion


def blur(images: Tensor, sigma: float) -> Tensor:
    """A Gaussian blur of ``(B, C, H, W)`` images (separable, reflected borders).

    Args:
        images: the images.
        sigma: the standard deviation in pixels (> 0).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    radius = max(1, math.ceil(3.0 * sigma))
    c, h, w = images.shape[1:]
    k = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-(k * k) / (2.0 * sigma * sigma))
    kernel = (kernel / kernel.sum()).to(images.dtype)
    mode = "reflect" if radius < min(h, w) else "replicate"
    x = F.pad(images, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


#: The baseline's blur, as a fraction of the image's longer side.
BLUR_FRACTION = 0.1


def baseline_of(images: Tensor) -> Tensor:
    """The baseline of deletion, insertion and occlusion: the images blurred with a sigma of
    :data:`BLUR_FRACTION` times their longer side (detail gone, colours kept)."""
    return blur(images, BLUR_FRACTION * max(images.shape[-2:]))


def _autocast(amp: bool, device: torch.device) -> Any:
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def target_probability(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    *,
    output: Any = None,
    amp: bool = False,
    batch_size: int | None = None,
) -> Tensor:
    """The softmax probability of each image's target class (no gradients, eval mode).

    Returns:
        ``(B,)`` float32 on the CPU.
    """
    device, dtype = model_device_dtype(model)
    step = batch_size or images.shape[0]
    out = []
    with torch.no_grad(), frozen_model(model, freeze_params=False):
        for s in range(0, images.shape[0], step):
            x = images[s : s + step].to(device=device)
            if dtype.is_floating_point:
                x = x.to(dtype)
            with _autocast(amp, device):
                logits = select_output(model(x), output)
            probs = torch.softmax(logits.float(), dim=1)
            t = targets[s : s + step].to(probs.device).long()
            out.append(probs.gather(1, t[:, None])[:, 0].cpu())
    return torch.cat(out)


def _orders(maps: Tensor, generators: Sequence[torch.Generator]) -> tuple[Tensor, Tensor]:
    """Per image, the rank of each pixel in the map's order (highest first, ties in a random
    order) and in a random order: two ``(B, H*W)`` int64 tensors."""
    b = maps.shape[0]
    n = maps[0].numel()
    flat = maps.reshape(b, n).float().cpu()
    cam_rank = torch.empty(b, n, dtype=torch.long)
    rand_rank = torch.empty(b, n, dtype=torch.long)
    positions = torch.arange(n)
    for i in range(b):
        shuffle = torch.randperm(n, generator=generators[i])
        by_cam = shuffle[torch.sort(-flat[i][shuffle], stable=True).indices]
        cam_rank[i, by_cam] = positions
        rand_rank[i, torch.randperm(n, generator=generators[i])] = positions
    return cam_rank, rand_rank


def perturbation_curves(
    model: nn.Module,
    images: Tensor,
    maps: Tensor,
    targets: Tensor,
    *,
    steps: int = 20,
    insertion: bool = False,
    baseline: Tensor | None = None,
    seeds: Sequence[int] | None = None,
    output: Any = None,
    amp: bool = False,
) -> tuple[Tensor, Tensor]:
    """Deletion (or insertion) curves of the target probability, in the map's order and in a
    random order (Petsiuk et al., 2018).

    At step ``s`` of ``steps``, the first ``round(s * N / steps)`` of the ``N`` pixels in the
    order are replaced by the baseline (deletion), or are the only ones taken from the image,
    the rest from the baseline (insertion). Each step is one batched forward of the images.

    Args:
        model: the classifier (run in eval mode without gradients; not changed).
        images: ``(B, C, H, W)``.
        maps: ``(B, H, W)`` maps at the images' resolution (higher = more important; ties are
            broken at random).
        targets: ``(B,)`` the classes whose probability is traced.
        steps: the number of steps (>= 1); the curves have ``steps + 1`` points.
        insertion: reveal pixels instead of removing them.
        baseline: what removed pixels become (default: :func:`baseline_of` the images).
        seeds: one seed per image for the random order and the tie-break (default 0..B-1).
        output: which model output holds the logits.
        amp: run the forwards under autocast.

    Returns:
        ``(cam_curves, random_curves)``, each ``(B, steps + 1)`` float32 on the CPU.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    b, _, h, w = images.shape
    if tuple(maps.shape) != (b, h, w):
        raise ValueError(f"maps must be {(b, h, w)} to match the images, got {tuple(maps.shape)}")
    device, _ = model_device_dtype(model)
    x = images.to(device)
    base = (baseline_of(x) if baseline is None else baseline.to(device)).to(x.dtype)
    seeds = list(range(b)) if seeds is None else list(seeds)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    cam_rank, rand_rank = _orders(maps, gens)
    cam_rank, rand_rank = cam_rank.to(device), rand_rank.to(device)
    n = h * w
    counts = [round(s * n / steps) for s in range(steps + 1)]
    first, last = (base, x) if insertion else (x, base)
    ends = target_probability(
        model, torch.cat([first, last]), torch.cat([targets, targets]), output=output, amp=amp
    )
    cam = torch.empty(b, steps + 1)
    rnd = torch.empty(b, steps + 1)
    cam[:, 0] = rnd[:, 0] = ends[:b]
    cam[:, steps] = rnd[:, steps] = ends[b:]
    for s in range(1, steps):
        inputs = []
        for rank in (cam_rank, rand_rank):
            chosen = (rank < counts[s]).view(b, 1, h, w)
            if insertion:
                inputs.append(torch.where(chosen, x, base))
            else:
                inputs.append(torch.where(chosen, base, x))
        probs = target_probability(
            model, torch.cat(inputs), torch.cat([targets, targets]), output=output, amp=amp
        )
        cam[:, s], rnd[:, s] = probs[:b], probs[b:]
    return cam, rnd


def auc(curves: Tensor) -> Tensor:
    """The area under ``(B, K + 1)`` curves sampled evenly on [0, 1] (trapezoid rule)."""
    k = curves.shape[-1] - 1
    if k < 1:
        raise ValueError("a curve needs at least two points")
    return (curves.sum(dim=-1) - 0.5 * (curves[..., 0] + curves[..., -1])) / k


def _shifts(mask: np.ndarray, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``count`` offsets that move ``mask`` inside the image without touching itself
    (the fewest overlapping pixels when no offset avoids it)."""
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    grid = max(1, min(h, w) // 24)
    candidates: list[tuple[int, tuple[int, int]]] = []
    for dy in range(-r0, h - 1 - r1 + 1, grid):
        for dx in range(-c0, w - 1 - c1 + 1, grid):
            if dy == 0 and dx == 0:
                continue
            shifted = np.zeros_like(mask)
            src = mask[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            shifted[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)] = src
            candidates.append((int((shifted & mask).sum()), (dy, dx)))
    if not candidates:
        return []
    least = min(c for c, _ in candidates)
    best = [off for c, off in candidates if c == least]
    picked = rng.permutation(len(best))[:count]
    return [best[int(i)] for i in picked]


def _shift(t: Tensor, dy: int, dx: int) -> Tensor:
    """``t`` (..., H, W) moved by (dy, dx), zeros where nothing moved in."""
    h, w = t.shape[-2:]
    out = torch.zeros_like(t)
    out[..., max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)] = t[
        ..., max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)
    ]
    return out


class Drops(NamedTuple):
    """What :func:`occlusion_drops` measured, per image (probability before minus after).

    Attributes:
        region: masking the region.
        background: masking background patches of the same shape (their mean; nan when no
            patch fits).
        whole: masking the whole image (the most any masking can remove).
    """

    region: Tensor
    background: Tensor
    whole: Tensor


def occlusion_drops(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    targets: Tensor,
    *,
    patches: int = 4,
    fill: str = "blur",
    seeds: Sequence[int] | None = None,
    output: Any = None,
    amp: bool = False,
) -> Drops:
    """How much masking a region, and patches of background of the same shape, lowers the
    target probability.

    Args:
        model: the classifier (run in eval mode without gradients; not changed).
        images: ``(B, C, H, W)``.
        masks: ``(B, H, W)`` bool: the region of each image.
        targets: ``(B,)`` the classes.
        patches: background patches per image: the region's mask moved (by a random choice of
            the offsets that keep it inside the image and off the region itself).
        fill: what masked pixels become: ``"blur"`` (:func:`baseline_of` the image: the
            region's detail is gone, its colours stay) or ``"mean"`` (each channel's mean over
            the image).
        seeds: one seed per image for the patches' places (default 0..B-1).
        output: which model output holds the logits.
        amp: run the forwards under autocast.

    Returns:
        The :class:`Drops`, ``(B,)`` CPU tensors each.
    """
    if fill not in ("blur", "mean"):
        raise ValueError(f'fill must be "blur" or "mean", got {fill!r}')
    b = images.shape[0]
    device, _ = model_device_dtype(model)
    x = images.to(device)
    if fill == "blur":
        filler = baseline_of(x)
    else:
        filler = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    m = masks.to(device).bool()
    seeds = list(range(b)) if seeds is None else list(seeds)
    moved = torch.zeros(patches, *m.shape, dtype=torch.bool, device=device)
    fits = torch.zeros(patches, b, dtype=torch.bool)
    host = masks.cpu().numpy().astype(bool)
    for i in range(b):
        if not host[i].any():
            continue
        offsets = _shifts(host[i], patches, np.random.default_rng([int(seeds[i]), 7]))
        for p, (dy, dx) in enumerate(offsets):
            moved[p, i] = _shift(m[i], dy, dx)
            fits[p, i] = True
    batches = [x, filler.contiguous(), torch.where(m[:, None], filler, x)]
    batches += [torch.where(moved[p][:, None], filler, x) for p in range(patches)]
    probs = target_probability(
        model,
        torch.cat(batches),
        targets.repeat(len(batches)),
        output=output,
        amp=amp,
        batch_size=2 * b,
    ).view(len(batches), b)
    whole = probs[0] - probs[1]
    region = probs[0] - probs[2]
    if patches:
        drops = probs[0][None] - probs[3:]
        drops = torch.where(fits, drops, torch.full_like(drops, math.nan))
        count = fits.sum(dim=0)
        total = torch.nan_to_num(drops, nan=0.0).sum(dim=0)
        background = torch.where(count > 0, total / count.clamp(min=1), math.nan)
    else:
        background = torch.full((b,), math.nan)
    return Drops(region, background, whole)


# ============================================================================================
# spatial bias


def peak_shares(
    peaks: Sequence[tuple[int, int] | None], shape: tuple[int, int], window: int
) -> tuple[list[float], tuple[int, int, int, int] | None, float]:
    """For each peak, the share of ``peaks`` (one class's) inside the ``window`` x ``window``
    square centred on it (moved inside the map); and the hot spot: the square with the largest
    share.

    Args:
        peaks: ``(row, col)`` per sample; None for a sample without a peak (degenerate map),
            which counts in the denominator only.
        shape: the maps' ``(H, W)``.
        window: the square's side in pixels.

    Returns:
        ``(shares, hot_spot, hot_share)``: per sample its share (nan without a peak); the hot
        spot as ``(x0, y0, x1, y1)`` pixel bounds (None when no sample has a peak) and its share.
    """
    h, w = int(shape[0]), int(shape[1])
    side = max(1, min(int(window), h, w))
    n = len(peaks)
    found = [(i, p) for i, p in enumerate(peaks) if p is not None]
    shares = [math.nan] * n
    if not found:
        return shares, None, 0.0
    rows = np.array([p[0] for _, p in found])
    cols = np.array([p[1] for _, p in found])
    best: tuple[float, tuple[int, int, int, int] | None] = (-1.0, None)
    for i, (r, c) in found:
        y0 = min(max(int(r) - side // 2, 0), h - side)
        x0 = min(max(int(c) - side // 2, 0), w - side)
        inside = (rows >= y0) & (rows < y0 + side) & (cols >= x0) & (cols < x0 + side)
        share = float(inside.sum()) / n
        shares[i] = share
        if share > best[0]:
            best = (share, (x0, y0, x0 + side, y0 + side))
    return shares, best[1], best[0]


# ============================================================================================
# the checks over a store


@dataclass
class _Item:
    index: int
    id: str
    cls: str | None
    batch: Batch | None
    row: int
    error: str | None = None


def _class_name(store: BatchStore, meta: Any) -> str | None:
    if meta.class_name:
        return str(meta.class_name)
    names = getattr(store.dataset, "class_names", None)
    label = meta.label
    if label is None:
        return None
    if names and 0 <= int(label) < len(names):
        return str(names[int(label)])
    return str(label)


def _walk(store: BatchStore, config: MapConfig) -> Iterator[tuple[Batch | None, list[_Item]]]:
    """Every batch of ``config`` (computed now if needed) with its samples, in dataset order;
    a batch that failed comes as None with its samples' errors."""
    store.ensure(config)
    bs, n = config.batch_size, len(store)
    for number in range((n + bs - 1) // bs):
        got = store.batch(config, number)
        indices = range(number * bs, min((number + 1) * bs, n))
        items = []
        for i in indices:
            if not isinstance(got, Batch) or i in got.errors:
                meta = store.known_meta(i)
                error = str(got) if not isinstance(got, Batch) else got.errors[i]
                items.append(
                    _Item(
                        i,
                        meta.id if meta is not None else store.ids[i],
                        None if meta is None else _class_name(store, meta),
                        None,
                        -1,
                        error,
                    )
                )
                continue
            meta = store.meta(i)
            items.append(_Item(i, meta.id, _class_name(store, meta), got, got.row[i]))
        yield (got if isinstance(got, Batch) and got.indices else None), items


class _Images(Dataset):
    """The transformed images of a dataset's samples (for a second look at a batch)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Tensor:
        image = self.dataset[index].image
        if not isinstance(image, Tensor):
            raise DataError(f"sample {index}: the dataset gave no image tensor")
        return image


def _images(store: BatchStore, batches: Sequence[Batch]) -> Iterator[tuple[Batch, Tensor]]:
    """Each batch with its images, loaded again (in the store's DataLoader setting)."""
    if not batches:
        return
    workers = min(store.num_workers, len(batches))
    loader = DataLoader(
        _Images(store.dataset),
        batch_sampler=[list(b.indices) for b in batches],
        num_workers=workers,
        collate_fn=torch.stack,
        prefetch_factor=2 if workers else None,
    )
    yield from zip(batches, loader)


def _layer_of(store: BatchStore, config: MapConfig, batch: Batch) -> str:
    return (config.layers or batch.layers)[0]


def _finish(
    what: str,
    items: Sequence[_Item],
    outcomes: Mapping[int, bool],
    values: Mapping[int, float],
    *,
    layer: str,
    method: str,
    metric: str,
    threshold: float,
    threshold_name: str,
    title: Title | None,
    extra: dict[str, Any],
    missing: Sequence[str] = (),
    skipped: set[int] | None = None,
    notes: Sequence[str] = (),
) -> metrics.RateResult:
    kept = [it for it in items if skipped is None or it.index not in skipped]
    return metrics.rate_result(
        (title or _default_title)(what, layer),
        [bool(outcomes.get(it.index, False)) for it in kept],
        [it.id for it in kept],
        [it.cls for it in kept],
        values=[values.get(it.index, math.nan) for it in kept],
        threshold=threshold,
        missing=missing,
        layer=layer,
        method=method,
        metric=metric,
        threshold_name=threshold_name,
        extra=extra,
        notes=notes,
    )


def _unjudged_note(ids: Sequence[str], total: int, min_effect: float, what: str) -> str:
    shown = ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
    return (
        f"{len(ids)} of {total} samples not judged ({shown}): the blurred image scores their "
        f"target within {min_effect:g} of the image itself, so {what} cannot change it"
    )


def _default_title(what: str, layer: str) -> str:
    return f"{what} @ {layer}"


def _rounded(values: Any, digits: int = 4) -> list[float | None]:
    out: list[float | None] = []
    for v in values:
        f = float(v)
        out.append(round(f, digits) if math.isfinite(f) else None)
    return out


def _check_fraction(value: float, name: str, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and low <= v <= high):
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")
    return v


def randomization_check(
    store: BatchStore,
    config: MapConfig,
    max_similarity: float = 0.5,
    *,
    seed: int = 0,
    title: Title | None = None,
) -> metrics.RateResult:
    """Model randomisation over the dataset (see the module docstring).

    A sample passes when both the Spearman rank correlation and the SSIM between its map and
    its map on the fully randomised copy (every step of the cascade) are below
    ``max_similarity``. Its value is the larger of the two. A degenerate original map fails.
    ``extra`` holds the cascade (``steps``) and, per step, the mean and quartiles of both
    similarities (the curve the report draws).
    """
    limit = _check_fraction(max_similarity, "max_similarity", -1.0, 1.0)
    walked = list(_walk(store, config))
    items = [it for _, batch_items in walked for it in batch_items]
    batches = [b for b, _ in walked if b is not None]
    if not batches:
        raise DataError("no sample could be computed: nothing to randomise")
    layer = _layer_of(store, config, batches[0])
    outcomes: dict[int, bool] = {}
    values: dict[int, float] = {}
    per_step: list[list[tuple[float, float]]] = []
    randomizer: Randomizer | None = None
    device, _ = model_device_dtype(store.model)
    for batch, x in _images(store, batches):
        if randomizer is None:
            randomizer = Randomizer(
                store.model, layer, x[:1].to(device), seed=seed, output=config.output
            )
            per_step = [[] for _ in randomizer.steps]
        original = store.display_maps(config, batch)[layer]
        steps = randomized_maps(
            randomizer,
            x,
            layer,
            config.method,
            batch.targets,
            amp=config.amp,
            output=config.output,
        )
        for row, index in enumerate(batch.indices):
            if bool(batch.degenerate[layer][row]):
                outcomes[index], values[index] = False, math.nan
                continue
            sims = [map_similarity(original[row], maps[row]) for maps in steps]
            for k, pair in enumerate(sims):
                per_step[k].append(pair)
            worst = max(sims[-1])
            values[index] = worst
            outcomes[index] = bool(worst < limit)
    assert randomizer is not None

    def summary(k: int, which: int) -> dict[str, float | None]:
        got = np.array([p[which] for p in per_step[k]], dtype=np.float64)
        got = got[np.isfinite(got)]
        if not got.size:
            return {"mean": None, "q25": None, "q75": None}
        q25, q75 = np.quantile(got, [0.25, 0.75])
        return {
            "mean": round(float(got.mean()), 4),
            "q25": round(float(q25), 4),
            "q75": round(float(q75), 4),
        }

    extra = {
        "kind": "randomization",
        "steps": [s.name for s in randomizer.steps],
        "spearman": [summary(k, 0) for k in range(len(randomizer.steps))],
        "ssim": [summary(k, 1) for k in range(len(randomizer.steps))],
        "max_similarity": limit,
        "seed": int(seed),
    }
    return _finish(
        f"randomization[max_similarity={limit:g}]",
        items,
        outcomes,
        values,
        layer=layer,
        method=config.method,
        metric="similarity",
        threshold=limit,
        threshold_name="max_similarity",
        title=title,
        extra=extra,
    )


def _perturbation_check(
    store: BatchStore,
    config: MapConfig,
    *,
    insertion: bool,
    steps: int,
    min_margin: float,
    min_effect: float,
    seed: int,
    title: Title | None,
) -> metrics.RateResult:
    margin_limit = _check_fraction(min_margin, "min_margin", -1.0, 1.0)
    effect = _check_fraction(min_effect, "min_effect")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    walked = list(_walk(store, config))
    items = [it for _, batch_items in walked for it in batch_items]
    batches = [b for b, _ in walked if b is not None]
    if not batches:
        raise DataError("no sample could be computed: nothing to perturb")
    layer = _layer_of(store, config, batches[0])
    outcomes: dict[int, bool] = {}
    values: dict[int, float] = {}
    cam_sum = torch.zeros(steps + 1, dtype=torch.float64)
    rnd_sum = torch.zeros(steps + 1, dtype=torch.float64)
    counted = 0
    cam_aucs: list[float] = []
    rnd_aucs: list[float] = []
    unjudged: set[int] = set()
    for batch, x in _images(store, batches):
        maps = store.display_maps(config, batch)[layer]
        cam, rnd = perturbation_curves(
            store.model,
            x,
            maps,
            batch.targets,
            steps=steps,
            insertion=insertion,
            seeds=[seed * 1_000_003 + i for i in batch.indices],
            output=config.output,
            amp=config.amp,
        )
        a_cam, a_rnd = auc(cam), auc(rnd)
        margin = (a_cam - a_rnd) if insertion else (a_rnd - a_cam)
        whole = cam[:, 0] - cam[:, steps] if not insertion else cam[:, steps] - cam[:, 0]
        for row, index in enumerate(batch.indices):
            if float(whole[row]) < effect:  # the baseline scores as high: nothing to measure
                unjudged.add(index)
                continue
            if bool(batch.degenerate[layer][row]):  # no order to follow
                outcomes[index], values[index] = False, math.nan
                continue
            values[index] = float(margin[row])
            outcomes[index] = bool(float(margin[row]) >= margin_limit)
            cam_sum += cam[row].double()
            rnd_sum += rnd[row].double()
            counted += 1
            cam_aucs.append(float(a_cam[row]))
            rnd_aucs.append(float(a_rnd[row]))
    kind = "insertion" if insertion else "deletion"
    extra = {
        "kind": kind,
        "fractions": [round(s / steps, 4) for s in range(steps + 1)],
        "cam": _rounded(cam_sum / max(counted, 1)) if counted else [],
        "random": _rounded(rnd_sum / max(counted, 1)) if counted else [],
        "auc_cam": round(float(np.mean(cam_aucs)), 4) if cam_aucs else None,
        "auc_random": round(float(np.mean(rnd_aucs)), 4) if rnd_aucs else None,
        "min_margin": margin_limit,
        "min_effect": effect,
        "steps": int(steps),
        "unjudged": [it.id for it in items if it.index in unjudged][:50],
    }
    ids = [it.id for it in items if it.index in unjudged]
    notes = [_unjudged_note(ids, len(items), effect, kind)] if ids else []
    return _finish(
        f"{kind}[steps={steps}, min_margin={margin_limit:g}]",
        items,
        outcomes,
        values,
        layer=layer,
        method=config.method,
        metric="auc_margin",
        threshold=margin_limit,
        threshold_name="min_margin",
        title=title,
        extra=extra,
        skipped=unjudged,
        notes=notes,
    )


def deletion_check(
    store: BatchStore,
    config: MapConfig,
    steps: int = 20,
    min_margin: float = 0.05,
    *,
    min_effect: float = 0.1,
    seed: int = 0,
    title: Title | None = None,
) -> metrics.RateResult:
    """Deletion over the dataset: a sample passes when the area under its deletion curve in the
    map's order is below the random order's by at least ``min_margin`` (its value: random AUC
    minus map AUC). A degenerate map fails; a sample whose baseline scores within
    ``min_effect`` of the image is not judged. ``extra`` holds the mean curves."""
    return _perturbation_check(
        store,
        config,
        insertion=False,
        steps=steps,
        min_margin=min_margin,
        min_effect=min_effect,
        seed=seed,
        title=title,
    )


def insertion_check(
    store: BatchStore,
    config: MapConfig,
    steps: int = 20,
    min_margin: float = 0.0,
    *,
    min_effect: float = 0.1,
    seed: int = 0,
    title: Title | None = None,
) -> metrics.RateResult:
    """Insertion over the dataset: a sample passes when the area under its insertion curve in
    the map's order is above the random order's by more than ``min_margin`` (its value: map
    AUC minus random AUC). A degenerate map fails; a sample whose baseline scores within
    ``min_effect`` of the image is not judged. ``extra`` holds the mean curves."""
    return _perturbation_check(
        store,
        config,
        insertion=True,
        steps=steps,
        min_margin=min_margin,
        min_effect=min_effect,
        seed=seed,
        title=title,
    )


def occlusion_check(
    store: BatchStore,
    config: MapConfig,
    region: str,
    min_drop: float = 0.1,
    *,
    patches: int = 4,
    fill: str = "blur",
    min_effect: float = 0.1,
    seed: int = 0,
    missing_policy: str = "fail",
    title: Title | None = None,
) -> metrics.RateResult:
    """Occlusion of ``region`` over the dataset: a sample passes when masking the region lowers
    its target probability by at least ``min_drop`` AND by more than masking background patches
    of the same shape does (their mean). Its value is the region's drop; ``extra`` holds both
    drops per sample (the report's scatter plot). Samples without the region fail, or are left
    out with ``missing_policy="skip"``; a sample whose probability drops by less than
    ``min_effect`` when the whole image is masked is not judged."""
    if missing_policy not in ("fail", "skip"):
        raise ValueError(f'missing must be "fail" or "skip", got {missing_policy!r}')
    limit = _check_fraction(min_drop, "min_drop", -1.0, 1.0)
    effect = _check_fraction(min_effect, "min_effect")
    if isinstance(patches, bool) or not isinstance(patches, int) or patches < 1:
        raise ValueError(f"patches must be a positive int, got {patches!r}")
    walked = list(_walk(store, config))
    items = [it for _, batch_items in walked for it in batch_items]
    batches = [b for b, _ in walked if b is not None]
    if not batches:
        raise DataError("no sample could be computed: nothing to occlude")
    layer = _layer_of(store, config, batches[0])
    outcomes: dict[int, bool] = {}
    values: dict[int, float] = {}
    drops: dict[int, tuple[float, float]] = {}
    missing: list[str] = []
    skipped: set[int] = set()
    unjudged: set[int] = set()
    for batch, x in _images(store, batches):
        h, w = x.shape[-2:]
        masks = torch.zeros(len(batch.indices), h, w, dtype=torch.bool)
        has = []
        for row, index in enumerate(batch.indices):
            reg = store.meta(index).regions.get(region)
            if reg is None:
                missing.append(store.meta(index).id)
                if missing_policy == "skip":
                    skipped.add(index)
                outcomes[index], values[index] = False, math.nan
                continue
            masks[row] = torch.from_numpy(_region_mask(reg, (h, w)))
            has.append(row)
        if not has:
            continue
        rows = torch.tensor(has)
        got = occlusion_drops(
            store.model,
            x[rows],
            masks[rows],
            batch.targets[rows],
            patches=patches,
            fill=fill,
            seeds=[seed * 1_000_003 + batch.indices[r] for r in has],
            output=config.output,
            amp=config.amp,
        )
        for k, row in enumerate(has):
            index = batch.indices[row]
            if float(got.whole[k]) < effect:
                unjudged.add(index)
                continue
            rd, bd = float(got.region[k]), float(got.background[k])
            drops[index] = (rd, bd)
            values[index] = rd
            beats = not math.isfinite(bd) or rd > bd
            outcomes[index] = bool(rd >= limit and beats)
    if not drops and not unjudged:
        raise DataError(
            f"no sample has a region named {region!r} ({len(missing)} samples checked); "
            "check the annotations and the region name"
        )
    order = [it.index for it in items if it.index in drops]
    extra = {
        "kind": "occlusion",
        "region": region,
        "region_drop": _rounded([drops[i][0] for i in order]),
        "background_drop": _rounded([drops[i][1] for i in order]),
        "min_drop": limit,
        "patches": int(patches),
        "fill": fill,
        "min_effect": effect,
        "unjudged": [it.id for it in items if it.index in unjudged][:50],
    }
    ids = [it.id for it in items if it.index in unjudged]
    notes = [_unjudged_note(ids, len(items), effect, "masking the region")] if ids else []
    return _finish(
        f"occlusion[{region}, min_drop={limit:g}]",
        items,
        outcomes,
        values,
        layer=layer,
        method=config.method,
        metric="probability_drop",
        threshold=limit,
        threshold_name="min_drop",
        title=title,
        extra=extra,
        missing=missing,
        skipped=skipped | unjudged,
        notes=notes,
    )


def _region_mask(region: Region, shape: tuple[int, int]) -> np.ndarray:
    try:
        return metrics.region_mask(region, shape)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _small(mean: Tensor, limit: int = 32) -> tuple[list[list[float]], float]:
    """A mean map shrunk (area average) to at most ``limit`` pixels a side, and the scale."""
    h, w = mean.shape
    scale = min(1.0, limit / max(h, w))
    if scale < 1.0:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        mean = F.adaptive_avg_pool2d(mean[None, None], size)[0, 0]
    return [[round(float(v), 3) for v in row] for row in mean], scale


def spatial_bias_check(
    store: BatchStore,
    config: MapConfig,
    max_share: float = 0.5,
    *,
    window: float = 0.125,
    min_samples: int = 5,
    title: Title | None = None,
) -> metrics.RateResult:
    """Spatial bias over the dataset, class by class (no annotations needed).

    Each sample's map peak is taken (:func:`~pytest_camcheck.metrics.find_peak`); the window is
    a square of ``window`` times the map's shorter side. A sample fails when more than
    ``max_share`` of its class's samples peak inside the window centred on its own peak (its
    value: that share), so a class passes when no small area holds the peaks of more than
    ``max_share`` of its samples. A degenerate map fails. Classes of fewer than ``min_samples``
    samples are not judged (their samples pass). ``extra`` holds, per class, the mean map
    (shrunk to 32 px), the hot spot and its share.
    """
    limit = _check_fraction(max_share, "max_share")
    frac = _check_fraction(window, "window")
    if frac <= 0:
        raise ValueError("window must be > 0")
    walked = list(_walk(store, config))
    items = [it for _, batch_items in walked for it in batch_items]
    batches = [b for b, _ in walked if b is not None]
    if not batches:
        raise DataError("no sample could be computed: no map to look at")
    layer = _layer_of(store, config, batches[0])
    peaks: dict[int, tuple[int, int] | None] = {}
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    shape: tuple[int, int] | None = None
    klass: dict[int, str] = {}
    names = getattr(store.dataset, "class_names", None)
    cls_of = {it.index: it.cls for it in items}
    for batch in batches:
        maps = store.display_maps(config, batch)[layer]
        shape = (int(maps.shape[-2]), int(maps.shape[-1]))
        for row, index in enumerate(batch.indices):
            item_cls = cls_of[index]
            if item_cls is None:  # unlabelled: group by the explained class
                t = int(batch.targets[row])
                item_cls = str(names[t]) if names and 0 <= t < len(names) else str(t)
            klass[index] = item_cls
            peak = metrics.find_peak(maps[row])
            peaks[index] = None if peak is None else (peak.row, peak.col)
            sums[item_cls] = sums.get(item_cls, torch.zeros(shape)) + maps[row].float()
            counts[item_cls] = counts.get(item_cls, 0) + 1
    assert shape is not None
    side = max(1, round(frac * min(shape)))
    outcomes: dict[int, bool] = {}
    values: dict[int, float] = {}
    classes: dict[str, Any] = {}
    for name in sorted(counts):
        members = [i for i in peaks if klass[i] == name]
        shares, hot, share = peak_shares([peaks[i] for i in members], shape, side)
        judged = len(members) >= min_samples
        for i, s in zip(members, shares):
            values[i] = s
            if peaks[i] is None:
                outcomes[i] = False
            else:
                outcomes[i] = bool(s <= limit) or not judged
        mean_map, scale = _small(sums[name] / counts[name])
        classes[name] = {
            "count": len(members),
            "share": round(float(share), 4),
            "hot_spot": None if hot is None else [int(v) for v in hot],
            "judged": judged,
            "mean_map": mean_map,
            "scale": scale,
        }
    extra = {
        "kind": "spatial_bias",
        "size": list(shape),
        "window": side,
        "max_share": limit,
        "classes": classes,
    }
    return _finish(
        f"spatial_bias[max_share={limit:g}, window={side}px]",
        items,
        outcomes,
        values,
        layer=layer,
        method=config.method,
        metric="peak_share",
        threshold=limit,
        threshold_name="max_share",
        title=title,
        extra=extra,
    )
