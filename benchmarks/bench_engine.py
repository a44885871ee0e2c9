"""Benchmark of the CAM engine against its physical floor and its peers.

The floor of a Grad-CAM is one forward plus the backward from the score to the target layer,
with autograd recording only from that layer on and no parameter gradient; the floor of a plain
CAM is one forward. This script times, in ONE process and round-robin over the contenders:

* ``inference``: ``model(x)`` under ``torch.inference_mode()`` (the floor);
* ``fwd+bwd``: forward + full ``.backward()`` of the summed target logits, parameters requiring
  grad (what a naive implementation pays);
* ``ours cam``, ``ours gradcam L4``, ``ours gradcam L1-4``, ``ours gradcam L1``:
  :func:`pytest_camcheck.cam.compute_cams`;
* ``pytorch-grad-cam``, ``captum`` (+ ReLU, bilinear upsampling, per-image min-max) and
  ``torchcam`` (+ bilinear upsampling), each returning ``(B, H, W)`` maps in [0, 1].

Before timing a configuration it checks that every contender returns the same maps (see
:func:`check_equivalence`), then reports images/s, paired ratios (median over rounds of the
per-round ratio), the bytes autograd saves for backward, the CUDA peak memory, and one
PASS/FAIL line per target.

Run ``python benchmarks/bench_engine.py --help``; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from pytest_camcheck.cam import compute_cams

MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
LAYER = "layer4"
LAYERS4 = ("layer1", "layer2", "layer3", "layer4")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# Largest allowed max |difference| between two [0, 1] maps of the same image.
#
# fp32: the contenders compute the same maths in a different order (numpy vs torch reductions,
# einsum vs nansum, cv2 vs torch bilinear kernels) and with different epsilons in the min-max
# (1e-7 in pytorch-grad-cam, 1e-8 in torchcam, none here). Rounding in float32 is ~1e-7
# relative per operation, ~1e-6 after the reductions, and min-max divides by the map's range,
# which can be ~10x smaller than its largest value: a few 1e-5 at worst. 1e-3 leaves a wide
# margin above that and stays far below the smallest real bug we want to catch: the
# ``align_corners`` control printed with the check (a resize-convention slip) differs by
# several 1e-2, a wrong layer, target or missing ReLU by ~1.
#
# bf16: the peers do the CAM maths in bfloat16 (8-bit mantissa, 4e-3 relative per operation)
# while the engine does it in float32, so the maps only agree to a few 1e-2.
MAP_TOL = {"fp32": 1e-3, "bf16": 8e-2}

# Targets, checked at batch 16 (or the largest batch run when 16 is not among --batches).
TARGET_BATCH = 16
GRADCAM_OVER_FORWARD = 1.10
PGC_SPEEDUP = 2.5
CAM_OVER_FORWARD = 1.05
FOUR_OVER_ONE = 1.3
SAVED_FRACTION = 0.10


# --------------------------------------------------------------------------------------------
# setup


def build_model(name: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """A torchvision ResNet with seeded random weights, in eval mode, on ``device``/``dtype``.

    Args:
        name: a torchvision ResNet name, e.g. ``"resnet18"``.
        device: where the model lives.
        dtype: its parameter dtype.
        seed: seed of the random initialisation.

    Returns:
        The model; its parameters require grad (as a user's would).
    """
    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None)
    return model.eval().to(device=device, dtype=dtype)


def make_images(
    batch: int, size: int, device: torch.device, dtype: torch.dtype, seed: int = 1
) -> Tensor:
    """``(batch, 3, size, size)`` seeded standard-normal images."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=gen).to(device=device, dtype=dtype)


def predicted_classes(model: nn.Module, x: Tensor) -> Tensor:
    """``(B,)`` int64 arg-max classes: every contender explains these."""
    with torch.no_grad():  # not inference_mode: its tensors cannot index a graph later
        return model(x).argmax(dim=1)


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``."""
    return dict(model.named_modules())[name]


def minmax(maps: Tensor) -> Tensor:
    """Per-image min-max of ``(B, H, W)`` maps into [0, 1]; constant maps become zeros."""
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.amin(dim=1).view(-1, 1, 1)
    span = (flat.amax(dim=1) - flat.amin(dim=1)).view(-1, 1, 1)
    out = (maps - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, out, torch.zeros_like(out))


def upsample(maps: Tensor, size: tuple[int, int], align_corners: bool = False) -> Tensor:
    """Bilinear resize of ``(B, h, w)`` maps to ``size``."""
    return F.interpolate(
        maps.float()[:, None], size=size, mode="bilinear", align_corners=align_corners
    )[:, 0]


# --------------------------------------------------------------------------------------------
# peers, each called the way its documentation shows


def pgc_gradcam(model: nn.Module, x: Tensor, targets: Tensor) -> Tensor:
    """pytorch-grad-cam's ``GradCAM`` on ``model.layer4[-1]``: ``(B, H, W)`` maps in [0, 1]."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wanted = [ClassifierOutputTarget(int(t)) for t in targets.tolist()]
    with GradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
        out = cam(input_tensor=x, targets=wanted)
    return torch.from_numpy(out)


def pgc_postprocess(raw: Tensor, size: tuple[int, int]) -> Tensor:
    """pytorch-grad-cam's own post-processing applied to signed ``(B, h, w)`` raw maps.

    It clips at zero, min-max normalises at layer resolution (epsilon 1e-7), resizes with
    ``cv2.resize`` and min-max normalises again (its single-layer "aggregation").
    """
    from pytorch_grad_cam.utils.image import scale_cam_image

    cam = raw.detach().float().cpu().numpy().clip(min=0)
    per_layer = scale_cam_image(cam, (size[1], size[0]))
    return torch.from_numpy(scale_cam_image(per_layer))


def captum_raw(model: nn.Module, x: Tensor, targets: Tensor, layer: str = LAYER) -> Tensor:
    """Captum's ``LayerGradCam``: signed ``(B, h, w)`` maps at the layer's resolution."""
    from captum.attr import LayerGradCam

    attr = LayerGradCam(model, get_layer(model, layer)).attribute(x, target=targets.tolist())
    return attr[:, 0].detach().float()


def captum_maps(model: nn.Module, x: Tensor, targets: Tensor, layer: str = LAYER) -> Tensor:
    """Captum's Grad-CAM + ReLU + bilinear upsampling + per-image min-max: ``(B, H, W)``."""
    raw = captum_raw(model, x, targets, layer)
    return minmax(upsample(raw.clamp(min=0), tuple(x.shape[-2:])))


def torchcam_layer_maps(model: nn.Module, x: Tensor, targets: Tensor, layer: str = LAYER) -> Tensor:
    """torchcam's ``GradCAM``: ``(B, h, w)`` maps in [0, 1] at the layer's resolution."""
    from torchcam.methods import GradCAM

    with GradCAM(model, layer) as extractor:
        scores = model(x)
        cams = extractor(class_idx=targets.tolist(), scores=scores)
    return cams[0].detach().float()


def torchcam_maps(model: nn.Module, x: Tensor, targets: Tensor, layer: str = LAYER) -> Tensor:
    """torchcam's maps upsampled (bilinear) to the input size, like every other contender's."""
    return upsample(torchcam_layer_maps(model, x, targets, layer), tuple(x.shape[-2:]))


def torchcam_postprocess(raw: Tensor) -> Tensor:
    """torchcam's post-processing applied to raw maps: ReLU, then ``(m - min) / (max + 1e-8)``."""
    cam = raw.float().clamp(min=0)
    cam = cam - cam.amin(dim=(1, 2), keepdim=True)
    return cam / (cam.amax(dim=(1, 2), keepdim=True) + 1e-8)


# --------------------------------------------------------------------------------------------
# contenders


def forward_inference(model: nn.Module, x: Tensor) -> Tensor:
    """The floor: one forward under ``torch.inference_mode()``."""
    with torch.inference_mode():
        return model(x)


def forward_full_backward(model: nn.Module, x: Tensor, targets: Tensor) -> None:
    """Forward with grad, then ``.backward()`` of the summed target logits (all param grads)."""
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        logits = model(x)
        logits.gather(1, targets[:, None]).sum().backward()


@dataclass
class Contender:
    """One thing timed: a zero-argument callable and whether it can run here."""

    key: str
    label: str
    fn: Callable[[], Any]
    available: bool = True
    why: str = ""


def make_contenders(model: nn.Module, x: Tensor, targets: Tensor) -> list[Contender]:
    """Every contender of one configuration, in table order."""
    layers4 = list(LAYERS4)
    return [
        Contender("inference", "forward, inference_mode", lambda: forward_inference(model, x)),
        Contender(
            "fwd+bwd", "forward + full backward", lambda: forward_full_backward(model, x, targets)
        ),
        Contender(
            "ours cam",
            "ours: cam (auto layer)",
            lambda: compute_cams(model, x, method="cam", targets=targets),
        ),
        Contender(
            "ours gradcam L4",
            "ours: gradcam layer4",
            lambda: compute_cams(model, x, layers=LAYER, method="gradcam", targets=targets),
        ),
        Contender(
            "ours gradcam L1-4",
            "ours: gradcam layer1..4",
            lambda: compute_cams(model, x, layers=layers4, method="gradcam", targets=targets),
        ),
        Contender(
            "ours gradcam L1",
            "ours: gradcam layer1",
            lambda: compute_cams(model, x, layers="layer1", method="gradcam", targets=targets),
        ),
        Contender(
            "pytorch-grad-cam",
            "pytorch-grad-cam GradCAM",
            lambda: pgc_gradcam(model, x, targets),
        ),
        Contender("captum", "captum LayerGradCam", lambda: captum_maps(model, x, targets)),
        Contender("torchcam", "torchcam GradCAM", lambda: torchcam_maps(model, x, targets)),
    ]


# --------------------------------------------------------------------------------------------
# equivalence


@dataclass
class Comparison:
    """One map comparison of the equivalence check."""

    pair: str
    where: str
    max_abs_diff: float
    tol: float
    ok: bool
    note: str = ""


def _diff(a: Tensor, b: Tensor) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def check_equivalence(
    model: nn.Module,
    x: Tensor,
    targets: Tensor,
    dtype_name: str = "fp32",
    unavailable: dict[str, str] | None = None,
) -> list[Comparison]:
    """Check that every contender returns the same maps for the same images and classes.

    Our display maps are compared with Captum's (same post-processing: ReLU, bilinear
    ``align_corners=False``, per-image min-max). pytorch-grad-cam and torchcam post-process
    differently (cv2 resize after a layer-resolution min-max; no resize), so their post-processing
    is replayed on our raw maps and compared with their output. Our 4-layer call must agree with
    the single-layer calls, and our CAM with our Grad-CAM (for a global-average-pool + linear
    head, the last block's Grad-CAM is its CAM scaled by ``1/(h*w)``). A control row shows the
    difference a resize-convention slip (``align_corners=True``) would make, which must exceed
    the tolerance for the check to mean anything.

    Args:
        model: the classifier (eval mode).
        x: ``(B, 3, H, W)`` images.
        targets: ``(B,)`` classes to explain.
        dtype_name: ``"fp32"`` or ``"bf16"``: picks the tolerance.
        unavailable: filled with ``key -> reason`` for peers that cannot run here.

    Returns:
        One :class:`Comparison` per pair; all ``ok`` when the contenders agree.
    """
    tol = MAP_TOL[dtype_name]
    size = (int(x.shape[-2]), int(x.shape[-1]))
    rows: list[Comparison] = []
    skipped = unavailable if unavailable is not None else {}

    ours = compute_cams(model, x, layers=LAYER, method="gradcam", targets=targets)
    ours_map, ours_raw = ours.maps[LAYER].cpu(), ours.raw[LAYER].cpu()

    def add(pair: str, where: str, a: Tensor, b: Tensor, note: str = "") -> None:
        d = _diff(a, b)
        rows.append(Comparison(pair, where, d, tol, d <= tol, note))

    def peer(key: str, fn: Callable[[], Tensor]) -> Tensor | None:
        try:
            return fn().cpu()
        except Exception as exc:  # a peer failing here is reported, not fatal
            skipped[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            return None

    theirs = peer("captum", lambda: captum_raw(model, x, targets))
    if theirs is not None:
        scale = float(theirs.abs().max()) or 1.0
        rows.append(
            Comparison(
                "ours vs captum",
                f"raw, layer res {tuple(ours_raw.shape[-2:])}, relative to max|raw|",
                _diff(ours_raw, theirs) / scale,
                tol,
                _diff(ours_raw, theirs) / scale <= tol,
            )
        )
        add(
            "ours vs captum",
            f"[0,1] maps at input res {size}",
            ours_map,
            minmax(upsample(theirs.clamp(min=0), size)),
            "captum + ReLU + bilinear(align_corners=False) + min-max",
        )

    theirs = peer("pytorch-grad-cam", lambda: pgc_gradcam(model, x, targets))
    if theirs is not None:
        add(
            "ours vs pytorch-grad-cam",
            f"[0,1] maps at input res {size}",
            pgc_postprocess(ours_raw, size),
            theirs,
            "their post-processing replayed on our raw maps",
        )
        rows.append(
            Comparison(
                "ours vs pytorch-grad-cam",
                "as returned (info only)",
                _diff(ours_map, theirs),
                math.inf,
                True,
                "min-max before vs after the resize: not an error",
            )
        )

    theirs = peer("torchcam", lambda: torchcam_layer_maps(model, x, targets))
    if theirs is not None:
        add(
            "ours vs torchcam",
            f"[0,1] maps at layer res {tuple(ours_raw.shape[-2:])}",
            torchcam_postprocess(ours_raw),
            theirs,
            "their ReLU + min-max replayed on our raw maps",
        )

    four = compute_cams(model, x, layers=list(LAYERS4), method="gradcam", targets=targets)
    one = compute_cams(model, x, layers="layer1", method="gradcam", targets=targets)
    add("ours L1-4 vs ours L4", "layer4 [0,1] maps", four.maps[LAYER], ours.maps[LAYER])
    add("ours L1-4 vs ours L1", "layer1 [0,1] maps", four.maps["layer1"], one.maps["layer1"])

    cam = compute_cams(model, x, method="cam", targets=targets)
    add(
        "ours cam vs ours gradcam",
        f"{cam.layers[0]} [0,1] maps",
        cam.map,
        ours.maps[LAYER],
        "GAP + linear head: equal after min-max",
    )

    control = _diff(ours_map, minmax(upsample(ours_raw.clamp(min=0), size, align_corners=True)))
    rows.append(
        Comparison(
            "control: align_corners=True",
            "[0,1] maps at input res",
            control,
            tol,
            control > tol,
            "must EXCEED the tolerance, else the check is too loose; "
            f"{int(ours.degenerate[LAYER].sum())} of {len(ours)} maps constant",
        )
    )
    return rows


def print_equivalence(rows: Sequence[Comparison], skipped: dict[str, str]) -> None:
    """Print the equivalence rows, one per line."""
    print("  equivalence (max |diff|):")
    for r in rows:
        verdict = "ok" if r.ok else "MISMATCH"
        tol = "info" if math.isinf(r.tol) else f"tol {r.tol:g}"
        note = f"  [{r.note}]" if r.note else ""
        print(f"    {r.pair:<28} {r.where:<44} {r.max_abs_diff:10.3g} {tol:>10}  {verdict}{note}")
    for key, why in skipped.items():
        print(f"    {key:<28} NOT RUN: {why}")


# --------------------------------------------------------------------------------------------
# memory


class SavedTensorMeter:
    """Counts the bytes autograd saves for backward, once per storage.

    Use as ``with torch.autograd.graph.saved_tensors_hooks(m.pack, m.unpack):``.
    """

    def __init__(self, params: Sequence[Tensor] = ()) -> None:
        self.sizes: dict[tuple[str, int], int] = {}
        self.param_keys = {self._key(p) for p in params}

    @staticmethod
    def _key(t: Tensor) -> tuple[str, int]:
        try:
            return (str(t.device), t.untyped_storage().data_ptr())
        except (RuntimeError, NotImplementedError):  # tensors without a plain storage
            return ("id", id(t))

    def pack(self, t: Tensor) -> Tensor:
        key = self._key(t)
        n = t.numel() * t.element_size()
        if n > self.sizes.get(key, 0):
            self.sizes[key] = n
        # Hand autograd a detached alias (same storage, no copy), never ``t`` itself: a saved
        # output that still points at its grad_fn closes a cycle through the C++ graph that
        # no garbage collection frees, and every graph a peer leaves un-backpropagated
        # (retain_graph, or a backward that stops at the layer) would then leak.
        return t.detach()

    @staticmethod
    def unpack(t: Tensor) -> Tensor:
        return t

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    @property
    def params(self) -> int:
        return sum(n for k, n in self.sizes.items() if k in self.param_keys)


def saved_bytes(fn: Callable[[], Any], model: nn.Module) -> tuple[int, int]:
    """(all bytes, parameter bytes) that autograd saves for backward during ``fn()``."""
    meter = SavedTensorMeter(list(model.parameters()))
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        fn()
    return meter.total, meter.params


def full_graph_forward(model: nn.Module, x: Tensor) -> None:
    """A plain forward with grad enabled and parameters requiring grad (graph then dropped)."""
    with torch.enable_grad():
        model(x)


def cuda_peak_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak CUDA bytes allocated by ``fn()`` above what was allocated before."""
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


def rss_peak_bytes(fn: Callable[[], Any]) -> int | None:
    """Peak resident memory of ``fn()`` above the resident memory before it (Linux; else None).

    Freed heap is returned to the OS first (``malloc_trim``) and the kernel's high-water mark is
    reset (``/proc/self/clear_refs``), so the figure is what the call itself needed at its
    peak, allocator slack included.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        gc.collect()
        libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        base = _proc_status_bytes("VmRSS:")
    except (OSError, AttributeError):
        return None
    fn()
    return max(_proc_status_bytes("VmHWM:") - base, 0)


def measure_memory(
    fn: Callable[[], Any], device: torch.device, model: nn.Module
) -> tuple[int, int, int | None]:
    """(saved-for-backward bytes, of which parameters, peak bytes or None) of ``fn()``.

    The peak is the CUDA allocator's on CUDA and the resident set's on CPU; it is the smaller
    of two calls (the larger holds allocator noise, not need). The saved-tensor hooks return
    the tensors as they are, so they do not change the peak.
    """
    peaks: list[int] = []
    saved = params = 0
    for i in range(2):
        model.zero_grad(set_to_none=True)  # gradients left by an earlier contender
        meter = SavedTensorMeter(list(model.parameters()) if i == 0 else ())
        with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
            peak = cuda_peak_bytes(fn, device) if device.type == "cuda" else rss_peak_bytes(fn)
        if i == 0:
            saved, params = meter.total, meter.params
        if peak is not None:
            peaks.append(peak)
    model.zero_grad(set_to_none=True)
    return saved, params, min(peaks) if peaks else None


# --------------------------------------------------------------------------------------------
# timing


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def time_round_robin(
    contenders: Sequence[Contender],
    rounds: int,
    warmup: int,
    min_time: float,
    sync: Callable[[], None],
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per call of each available contender, one entry per round.

    Each contender is warmed up ``warmup`` times (a failure marks it unavailable), then every
    round times each contender once, in an order that rotates from round to round. A
    measurement repeats the call until it spans about ``min_time`` seconds (fixed per contender
    after the warm-up) and records the mean.

    Args:
        contenders: what to time; unavailable ones are skipped.
        rounds: timed rounds.
        warmup: untimed calls per contender before the rounds (at least one).
        min_time: seconds one measurement should span at least.
        sync: waits for the device (``torch.cuda.synchronize`` on CUDA, a no-op on CPU).
        clock: ``time.perf_counter`` (wall clock) or ``time.process_time`` (the process's CPU
            time: on a CPU shared with other jobs it is not inflated by their turns).

    Returns:
        ``key -> [seconds per call in round r]`` for the contenders that ran.
    """
    inner: dict[str, int] = {}
    for c in contenders:
        if not c.available:
            continue
        try:
            for _ in range(max(warmup, 1)):
                sync()
                start = clock()
                c.fn()
                sync()
                once = clock() - start
        except Exception as exc:  # e.g. a peer that cannot run with this torch or dtype
            c.available = False
            c.why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            continue
        inner[c.key] = max(1, math.ceil(min_time / max(once, 1e-6)))
    live = [c for c in contenders if c.available]
    times: dict[str, list[float]] = {c.key: [] for c in live}
    for r in range(rounds):
        shift = r % max(len(live), 1)
        for c in live[shift:] + live[:shift]:
            n = inner[c.key]
            gc.collect()
            gc.disable()
            try:
                sync()
                start = clock()
                for _ in range(n):
                    c.fn()
                sync()
                times[c.key].append((clock() - start) / n)
            finally:
                gc.enable()
    return times


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over rounds of ``num[r] / den[r]`` (both timed in the same round)."""
    return statistics.median(a / b for a, b in zip(num, den))


# --------------------------------------------------------------------------------------------
# one configuration


@dataclass
class ConfigResult:
    """Everything measured for one (model, batch)."""

    model: str
    batch: int
    size: int
    median_s: dict[str, float]
    rounds_s: dict[str, list[float]]
    saved_bytes: dict[str, int]
    saved_param_bytes: dict[str, int]
    full_graph_saved_bytes: int
    peak_bytes: dict[str, int]
    equivalence: list[Comparison]
    unavailable: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def equivalent(self) -> bool:
        return all(r.ok for r in self.equivalence)

    def ratio(self, num: str, den: str) -> float | None:
        if num not in self.rounds_s or den not in self.rounds_s:
            return None
        return paired_ratio(self.rounds_s[num], self.rounds_s[den])


def run_config(
    model_name: str,
    batch: int,
    *,
    size: int,
    device: torch.device,
    dtype_name: str,
    rounds: int,
    warmup: int,
    min_time: float,
    clock: str = "wall",
) -> ConfigResult:
    """Check equivalence, then time and measure every contender on one (model, batch)."""
    dtype = DTYPES[dtype_name]
    model = build_model(model_name, device, dtype)
    x = make_images(batch, size, device, dtype)
    targets = predicted_classes(model, x)
    unavailable: dict[str, str] = {}
    rows = check_equivalence(model, x, targets, dtype_name, unavailable)

    contenders = make_contenders(model, x, targets)
    for c in contenders:
        if c.key in unavailable:
            c.available, c.why = False, unavailable[c.key]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = time_round_robin(contenders, rounds, warmup, min_time, sync, CLOCKS[clock])
    for c in contenders:
        if not c.available:
            unavailable[c.key] = c.why

    saved: dict[str, int] = {}
    saved_params: dict[str, int] = {}
    peaks: dict[str, int] = {}
    for c in contenders:
        if not c.available:
            continue
        saved[c.key], saved_params[c.key], peak = measure_memory(c.fn, device, model)
        if peak is not None:
            peaks[c.key] = peak
    full, _ = saved_bytes(lambda: full_graph_forward(model, x), model)
    model.zero_grad(set_to_none=True)
    return ConfigResult(
        model=model_name,
        batch=batch,
        size=size,
        median_s={k: statistics.median(v) for k, v in times.items()},
        rounds_s=times,
        saved_bytes=saved,
        saved_param_bytes=saved_params,
        full_graph_saved_bytes=full,
        peak_bytes=peaks,
        equivalence=rows,
        unavailable=unavailable,
        labels={c.key: c.label for c in contenders},
    )


# --------------------------------------------------------------------------------------------
# targets and printing


@dataclass
class TargetCheck:
    """One PASS/FAIL line (SKIP when a contender it needs could not run: ``value`` is None)."""

    model: str
    batch: int
    name: str
    value: float | None
    limit: float
    passed: bool
    detail: str


def evaluate_targets(res: ConfigResult) -> list[TargetCheck]:
    """The five targets of the brief on one configuration (None value: could not measure)."""

    def le(name: str, value: float | None, limit: float, detail: str) -> TargetCheck:
        ok = value is not None and value <= limit
        return TargetCheck(res.model, res.batch, name, value, limit, ok, detail)

    pgc = res.ratio("pytorch-grad-cam", "ours gradcam L4")
    full = res.full_graph_saved_bytes
    ours = res.saved_bytes.get("ours gradcam L4")
    frac = None if ours is None or full <= 0 else ours / full
    return [
        le(
            "gradcam L4 time / inference forward",
            res.ratio("ours gradcam L4", "inference"),
            GRADCAM_OVER_FORWARD,
            "<=",
        ),
        TargetCheck(
            res.model,
            res.batch,
            "pytorch-grad-cam time / ours gradcam L4",
            pgc,
            PGC_SPEEDUP,
            pgc is not None and pgc >= PGC_SPEEDUP,
            ">=",
        ),
        le(
            "cam time / inference forward",
            res.ratio("ours cam", "inference"),
            CAM_OVER_FORWARD,
            "<=",
        ),
        le(
            "gradcam layer1..4 time / layer1 alone",
            res.ratio("ours gradcam L1-4", "ours gradcam L1"),
            FOUR_OVER_ONE,
            "<=",
        ),
        TargetCheck(
            res.model,
            res.batch,
            "saved-for-backward bytes: gradcam L4 / full-graph forward",
            frac,
            SAVED_FRACTION,
            frac is not None and frac < SAVED_FRACTION,
            "<",
        ),
    ]


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:9.1f}"


def print_config(res: ConfigResult, device: torch.device) -> None:
    """The table of one configuration."""
    floor = res.median_s.get("inference")
    peak_label = "peak CUDA MB" if device.type == "cuda" else "peak RSS MB"
    head = (
        f"  {'contender':<26}{'img/s':>9}{'median ms':>11}{'x fwd':>8}"
        f"{'saved MB':>10}{'(params)':>10}{peak_label:>12}"
    )
    print(head)
    for key, label in res.labels.items():
        if key not in res.median_s:
            print(f"  {label:<26} not run: {res.unavailable.get(key, '?')}")
            continue
        t = res.median_s[key]
        rel = res.ratio(key, "inference") if floor else None
        peak = _mb(res.peak_bytes.get(key))
        print(
            f"  {label:<26}{res.batch / t:9.2f}{t * 1e3:11.1f}"
            f"{'' if rel is None else f'{rel:8.2f}'}"
            f"{_mb(res.saved_bytes.get(key)):>10}{_mb(res.saved_param_bytes.get(key)):>10}"
            f"{peak:>12}"
        )
    print(f"  full-graph forward saves {_mb(res.full_graph_saved_bytes).strip()} MB for backward")
    print("  'x fwd' and the target ratios are medians over rounds of per-round ratios")


def print_targets(checks: Sequence[TargetCheck]) -> None:
    """One PASS / FAIL / SKIP line per target."""
    for c in checks:
        value = "n/a (a contender did not run)" if c.value is None else f"{c.value:.3f}"
        verdict = "SKIP" if c.value is None else "PASS" if c.passed else "FAIL"
        print(f"{verdict} {c.model} b{c.batch}: {c.name} = {value} (target {c.detail} {c.limit:g})")


# --------------------------------------------------------------------------------------------
# CLI


def cpu_name() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time the pytest-camcheck CAM engine against its floor and its peers."
    )
    p.add_argument("--models", nargs="+", default=["resnet18", "resnet50"], choices=MODELS)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16, 32])
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (medians; default 7)")
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed calls per contender before the rounds (after the equivalence check's)",
    )
    p.add_argument(
        "--min-time",
        type=float,
        default=0.2,
        help="repeat a call within a measurement until it spans this many seconds",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time (default); cpu: this process's CPU time, steadier on a CPU "
        "shared with other jobs (CPU device only; use with --threads 1)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: resnet18, batch 16, 3 rounds")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when a speed or memory target fails"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.batches, args.rounds = ["resnet18"], [16], 3
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.device == "cuda" and args.clock == "cpu":
        p.error("--clock cpu times the host, not the GPU: use --clock wall with --device cuda")
    if args.rounds < 1 or any(b < 1 for b in args.batches) or args.size < 32:
        p.error("--rounds and --batches must be >= 1 and --size >= 32")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (1: maps differ, or --strict and a FAIL)."""
    args = parse_args(argv)
    device = torch.device(args.device)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    print(
        f"pytest-camcheck engine benchmark | torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, python {platform.python_version()}"
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    cores = len(os.sched_getaffinity(0))
    print(
        f"device {device} ({name}, {cores} cores), torch.set_num_threads({threads}) -> "
        f"{torch.get_num_threads()} threads, dtype {args.dtype}, {args.size}x{args.size}, "
        f"rounds {args.rounds}, warm-up {args.warmup}, {args.clock} clock"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device.type == "cpu" and load > cores * 0.5:
        print(
            f"note: the CPU is busy (load {load:.1f} on {cores} cores): timings will be noisy; "
            "on a shared machine use --threads 1 --clock cpu and more --rounds"
        )
    target_batch = TARGET_BATCH if TARGET_BATCH in args.batches else max(args.batches)
    results: list[ConfigResult] = []
    checks: list[TargetCheck] = []
    # The objects alive now (modules, above all) are never garbage: freezing them makes the
    # gc.collect() before each measurement take milliseconds instead of a large fraction of a
    # second.
    gc.collect()
    gc.freeze()
    try:
        for model_name in args.models:
            for batch in args.batches:
                print(f"\n== {model_name}, batch {batch}")
                res = run_config(
                    model_name,
                    batch,
                    size=args.size,
                    device=device,
                    dtype_name=args.dtype,
                    rounds=args.rounds,
                    warmup=args.warmup,
                    min_time=args.min_time,
                    clock=args.clock,
                )
                print_equivalence(res.equivalence, res.unavailable)
                print_config(res, device)
                results.append(res)
                if batch == target_batch:
                    checks.extend(evaluate_targets(res))
                sys.stdout.flush()
    finally:
        gc.unfreeze()
    print(f"\n== targets (batch {target_batch})")
    equivalent = all(r.equivalent for r in results)
    print(f"{'PASS' if equivalent else 'FAIL'} every contender returns the same maps")
    print_targets(checks)
    if args.json:
        payload = {
            "torch": torch.__version__,
            "device": str(device),
            "threads": threads,
            "clock": args.clock,
            "cpu": cpu_name(),
            "dtype": args.dtype,
            "size": args.size,
            "rounds": args.rounds,
            "results": [asdict(r) for r in results],
            "targets": [asdict(c) for c in checks],
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1, default=str)
    if not equivalent:
        return 1
    if args.strict and any(c.value is not None and not c.passed for c in checks):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
