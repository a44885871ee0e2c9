"""The batched CAM engine.

One call computes the maps of every requested layer from ONE forward and (for gradient methods)
ONE backward per batch. The forward runs without autograd until the first hooked layer; from
there on autograd records only what the backward to that layer needs, and no parameter gradient
is ever computed. Hooks live for one call and are removed in ``finally``; the model's train/eval
flags, every parameter's ``requires_grad`` and the grad mode are restored whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import EngineError
from .layers import LayerSpec, auto_layer, first_tensor, resolve_layers
from .methods import CamMethod, MethodInput, get_method
from .reshape import Reshape, resolve_reshape

__all__ = [
    "CamResult",
    "OutputSelector",
    "TargetSpec",
    "as_batch",
    "compute_cams",
    "frozen_model",
    "model_device_dtype",
    "normalise_maps",
    "postprocess",
    "select_output",
]

log = logging.getLogger("pytest_camcheck")

TargetSpec = (
    int
    | Sequence[int]
    | Tensor
    | Callable[[Tensor], Tensor]
    | Sequence[Sequence[int] | Tensor]
    | None
)
OutputSelector = int | str | Callable[[Any], Tensor] | None


@dataclass(frozen=True)
class CamResult:
    """The maps of one :func:`compute_cams` call.

    It has one row per image, or, when ``targets`` gave a list of classes per image, one row
    per (image, class) pair, in image order and then in the order the classes were given;
    ``image_index`` says which image each row comes from. ``B`` below is the number of rows.

    Attributes:
        layers: resolved layer names, in request order.
        maps: layer -> float32 ``(B, H, W)`` at input resolution, in [0, 1]: ReLU, bilinear
            upsampling (``align_corners=False``), per-row min-max. Degenerate maps are zeros.
        raw: layer -> signed float32 ``(B, h, w)`` at the layer's resolution.
        targets: ``(B,)`` int64 class explained per row (``-1`` for a callable target).
        logits: ``(B, classes)`` float32 model output of each row's image.
        degenerate: layer -> bool ``(B,)``: the map was constant, all zero or non-finite.
        method: the CAM method's name.
        auto_layer: whether the layer was chosen automatically.
        image_index: ``(B,)`` int64 index, in the input batch, of the image of each row
            (``arange(B)`` without per-image class lists; None in results built by hand).
    """

    layers: tuple[str, ...]
    maps: dict[str, Tensor]
    raw: dict[str, Tensor]
    targets: Tensor
    logits: Tensor
    degenerate: dict[str, Tensor]
    method: str
    auto_layer: bool = False
    extras: dict[str, Any] = field(default_factory=dict, compare=False)
    image_index: Tensor | None = None

    def _single(self) -> str:
        if len(self.layers) != 1:
            raise EngineError(
                f"this result holds {len(self.layers)} layers ({', '.join(self.layers)}); "
                "use result.maps[name] / result.raw[name]"
            )
        return self.layers[0]

    @property
    def map(self) -> Tensor:
        """The ``(B, H, W)`` display maps when exactly one layer was computed."""
        return self.maps[self._single()]

    @property
    def raw_map(self) -> Tensor:
        """The ``(B, h, w)`` raw maps when exactly one layer was computed."""
        return self.raw[self._single()]

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def to(self, device: torch.device | str) -> CamResult:
        """A copy with every tensor on ``device``."""

        def mv(d: dict[str, Tensor]) -> dict[str, Tensor]:
            return {k: v.to(device) for k, v in d.items()}

        return replace(
            self,
            maps=mv(self.maps),
            raw=mv(self.raw),
            targets=self.targets.to(device),
            logits=self.logits.to(device),
            degenerate=mv(self.degenerate),
            image_index=None if self.image_index is None else self.image_index.to(device),
        )

    def cpu(self) -> CamResult:
        return self.to("cpu")


# --------------------------------------------------------------------------------------------
# post-processing (shared with the cross-check)


def is_degenerate(raw: Tensor) -> Tensor:
    """``(B,)`` bool: the ReLU'd raw map is constant (all zero included) or not finite."""
    flat = raw.reshape(raw.shape[0], -1)
    finite = torch.isfinite(flat).all(dim=1)
    pos = torch.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0)
    hi = pos.amax(dim=1)
    lo = pos.amin(dim=1)
    constant = (hi - lo) <= hi.abs() * 1e-6
    return ~finite | constant


def normalise_maps(maps: Tensor, degenerate: Tensor | None = None) -> Tensor:
    """Per-image min-max of ``(B, H, W)`` maps into [0, 1]; degenerate images become zeros."""
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.amin(dim=1).view(-1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1)
    span = hi - lo
    bad = ~torch.isfinite(span) | (span <= 0)
    if degenerate is not None:
        bad = bad | degenerate.view(-1, 1, 1)
    out = (maps - lo) / torch.where(bad, torch.ones_like(span), span)
    return torch.where(bad, torch.zeros_like(out), out)


def postprocess(raw: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Raw ``(B, h, w)`` -> (display maps ``(B, H, W)``, degenerate ``(B,)``)."""
    if raw.shape[0] == 0:
        empty = raw.new_zeros((0, *size))
        return empty, torch.zeros(0, dtype=torch.bool, device=raw.device)
    degenerate = is_degenerate(raw)
    pos = torch.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0)
    up = F.interpolate(pos[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return normalise_maps(up, degenerate), degenerate


# --------------------------------------------------------------------------------------------
# helpers


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and dtype inputs of ``model`` should have.

    Those of its first parameter, else of its first floating-point buffer, else CPU float32
    (a model without parameters or floating-point buffers).

    Args:
        model: the model.

    Returns:
        ``(device, dtype)``.
    """
    for t in model.parameters():
        return t.device, t.dtype
    for t in model.buffers():
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def as_batch(images: Any) -> Tensor:
    """``images`` as one floating-point ``(B, C, H, W)`` batch.

    Args:
        images: a ``(B, C, H, W)`` or ``(C, H, W)`` tensor, or a non-empty list or tuple of
            ``(C, H, W)`` tensors (or arrays) of one size, which are stacked.

    Returns:
        The batch, on the input's device: a 4-D tensor is returned as it is, a 3-D one as a
        view with a batch axis added.

    Raises:
        EngineError: empty input, images of different sizes, a shape other than
            ``(B, C, H, W)`` / ``(C, H, W)``, or an integer dtype (the message says how to
            convert it).
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise EngineError("images is empty: pass a (B, C, H, W) tensor with B >= 1")
        try:
            images = torch.stack([torch.as_tensor(i) for i in images])
        except RuntimeError as exc:
            raise EngineError(f"images of different sizes cannot be batched: {exc}") from None
    if not isinstance(images, Tensor):
        raise EngineError(f"images must be a tensor (B, C, H, W), got {type(images).__name__}")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise EngineError(f"images must be (B, C, H, W) or (C, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise EngineError("images holds no image (batch size 0)")
    if not images.is_floating_point():
        raise EngineError(
            f"images must be floating point (got {images.dtype}); convert and normalise them "
            "the way the model was trained, e.g. torchvision.transforms.v2.ToDtype(torch.float32, "
            "scale=True)"
        )
    return images


def select_output(out: Any, output: OutputSelector) -> Tensor:
    """The logits tensor in a model's output.

    Args:
        out: what the model's forward returned (a tensor, a tuple, a dict, a dataclass...).
        output: how to pick the logits: None for the first tensor found in ``out``, an index
            or a key into ``out``, or a callable ``out -> Tensor``.

    Returns:
        The selected tensor; ``(B, K, 1, 1, ...)`` is flattened to ``(B, K)``.

    Raises:
        EngineError: ``output`` selects nothing in ``out``, or selects no tensor (the message
            lists the available keys or says to pass ``output=``).
    """
    if callable(output):
        t = output(out)
    elif output is None:
        t = first_tensor(out)
    elif isinstance(out, Tensor):
        raise EngineError(
            f"output={output!r} selects from a tuple/dict output, but the model returns a plain "
            f"{tuple(out.shape)} tensor; leave output=None"
        )
    else:
        try:
            t = out[output]
        except (KeyError, IndexError, TypeError):
            keys = list(out.keys()) if isinstance(out, dict) else type(out).__name__
            raise EngineError(f"output={output!r} is not in the model's output ({keys})") from None
    if not isinstance(t, Tensor):
        raise EngineError(
            f"the model's output holds no tensor to explain ({type(out).__name__}); "
            "pass output= (an index, a key or a callable) to select the logits"
        )
    if t.dim() > 2 and all(s == 1 for s in t.shape[2:]):
        t = t.reshape(t.shape[0], -1)
    return t


def _resolve_targets(spec: TargetSpec, logits: Tensor) -> tuple[Tensor, Tensor]:
    """-> (targets (B,) int64 on logits' device, score (B,) differentiable)."""
    b = logits.shape[0]
    if callable(spec) and not isinstance(spec, Tensor):
        score = spec(logits)
        if not isinstance(score, Tensor) or score.shape != (b,):
            shape = tuple(score.shape) if isinstance(score, Tensor) else type(score).__name__
            raise EngineError(
                f"a callable target must return a (B,) = ({b},) score tensor, got {shape}"
            )
        return torch.full((b,), -1, dtype=torch.long, device=logits.device), score
    _class_logits_check(logits)
    k = logits.shape[1]
    if spec is None:
        t = logits.detach().argmax(dim=1)
    elif isinstance(spec, bool):
        raise EngineError(f"targets must be a class index, got {spec!r}")
    elif isinstance(spec, int):
        t = torch.full((b,), int(spec), dtype=torch.long, device=logits.device)
    else:
        t = torch.as_tensor(spec).to(device=logits.device).reshape(-1)
        if t.is_inference():  # e.g. argmax taken under inference_mode: autograd cannot save it
            t = t.clone()
        if t.is_floating_point() or t.dtype == torch.bool:
            raise EngineError(f"targets must be integer class indices, got dtype {t.dtype}")
        if t.numel() != b:
            raise EngineError(
                f"targets has {t.numel()} entries but the batch has {b} images; pass one target "
                "per image, a single int, or None for the predicted class"
            )
        t = t.long()
    _check_range(t, k)
    score = logits.gather(1, t[:, None])[:, 0]
    return t, score


def _check_range(t: Tensor, k: int) -> None:
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
        bad = sorted({int(v) for v in t.tolist() if v < 0 or v >= k})
        raise EngineError(
            f"target class {bad} out of range: the model has {k} classes (0..{k - 1})"
        )


def _class_logits_check(logits: Tensor) -> None:
    if logits.dim() != 2:
        raise EngineError(
            f"the model output has shape {tuple(logits.shape)}; class targets need (B, classes) "
            "logits: pass output= to select them, or a callable target returning a (B,) score"
        )


# --------------------------------------------------------------------------------------------
# several classes per image ("pairs mode")


def _is_class_list(entry: Any) -> bool:
    """Whether one entry of ``targets`` is a list of classes (not a single class)."""
    if isinstance(entry, (list, tuple)):
        return True
    if isinstance(entry, Tensor):
        return entry.dim() >= 1
    return not callable(entry) and getattr(entry, "ndim", 0) >= 1  # a NumPy array


def _class_row(entry: Any, i: int) -> Tensor:
    """One image's classes as a 1-d int64 CPU tensor."""
    if isinstance(entry, (list, tuple)):
        classes = []
        for v in entry:
            if isinstance(v, Tensor) and v.numel() == 1 and not v.is_floating_point():
                v = v.reshape(())
            if callable(v) and not isinstance(v, Tensor):
                raise EngineError(
                    f"targets[{i}] holds a callable: a list of classes per image takes class "
                    "indices only; a callable target scores the whole batch (targets=fn)"
                )
            is_bool = isinstance(v, bool) or (isinstance(v, Tensor) and v.dtype == torch.bool)
            try:
                if is_bool:
                    raise TypeError
                classes.append(operator.index(v))
            except TypeError:
                raise EngineError(
                    f"targets[{i}] must hold integer class indices, got {v!r}"
                ) from None
        return torch.tensor(classes, dtype=torch.long)
    t = entry.detach() if isinstance(entry, Tensor) else torch.as_tensor(entry)
    if t.dim() != 1:
        raise EngineError(
            f"targets[{i}] must be a 1-d list of class indices, got shape {tuple(t.shape)}"
        )
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise EngineError(f"targets[{i}] must hold integer class indices, got dtype {t.dtype}")
    return t.to(device="cpu", dtype=torch.long)


def _per_image_classes(spec: Any, total: int) -> list[Tensor] | None:
    """The classes of each image when ``spec`` is a list of per-image class lists, else None."""
    if not isinstance(spec, (list, tuple)) or not any(_is_class_list(e) for e in spec):
        return None
    if len(spec) != total:
        raise EngineError(
            f"targets has {len(spec)} lists of classes but there are {total} images; pass "
            "exactly one list of classes per image ([] for an image to skip)"
        )
    rows = []
    for i, entry in enumerate(spec):
        if callable(entry) and not isinstance(entry, Tensor):
            raise EngineError(
                f"targets[{i}] is a callable: callables are not allowed per image; a callable "
                "target scores the whole batch (targets=fn)"
            )
        if not _is_class_list(entry):
            raise EngineError(
                f"targets[{i}] is {entry!r}, but other entries are lists of classes: when "
                "targets gives several classes per image, every entry must be a list "
                "([c] for one class, [] for none)"
            )
        rows.append(_class_row(entry, i))
    return rows


@dataclass(frozen=True)
class _Pairs:
    """The (image, class) rows of one chunk of images in pairs mode (CPU int64 tensors)."""

    image: Tensor  # (R,) the chunk-local image of each row
    classes: Tensor  # (R,) the class of each row
    slot: Tensor  # (R,) the position of the class in its image's list
    width: int  # K: the most classes of one image in the chunk
    everything: Tensor  # the classes of every image of the call (range-checked)

    @classmethod
    def of(cls, rows: list[Tensor], everything: Tensor) -> _Pairs:
        counts = torch.tensor([r.numel() for r in rows], dtype=torch.long)
        image = torch.repeat_interleave(torch.arange(len(rows)), counts)
        slot = torch.cat([torch.arange(r.numel()) for r in rows])
        classes = torch.cat(rows)
        return cls(image, classes, slot, int(counts.max()) if len(rows) else 0, everything)


def _pair_gradients(
    logits: Tensor, acts: list[Tensor], image: Tensor, classes: Tensor, slot: Tensor, width: int
) -> list[Tensor]:
    """Per layer, the ``(R, ...)`` gradient of each row's class logit w.r.t. its image's layer.

    One backward: the K one-hot grad_outputs ``(K, B, classes)`` are batched by autograd
    (``is_grads_batched``). Should that fail (no batching rule for some op of the model), it
    falls back to one backward per slot k, each summing the k-th class logit of every image
    that has one, from the same forward.
    """
    onehot = torch.zeros((width, *logits.shape), dtype=logits.dtype, device=logits.device)
    onehot[slot, image, classes] = 1
    if width == 1:
        got = torch.autograd.grad(logits, acts, grad_outputs=onehot[0], allow_unused=True)
        return [
            torch.zeros_like(a).index_select(0, image) if g is None else g.index_select(0, image)
            for a, g in zip(acts, got)
        ]
    try:
        got = torch.autograd.grad(
            logits,
            acts,
            grad_outputs=onehot,
            is_grads_batched=True,
            retain_graph=True,  # a failure half-way must leave the graph for the fallback
            allow_unused=True,
        )
    except Exception as exc:  # whatever vmap cannot do: take the per-slot path
        log.debug(
            "batched backward of %d classes per image failed (%s: %s); running one backward "
            "per class slot instead",
            width,
            type(exc).__name__,
            exc,
        )
    else:
        return [
            torch.zeros((image.shape[0], *a.shape[1:]), dtype=a.dtype, device=a.device)
            if g is None
            else g[slot, image]
            for a, g in zip(acts, got)
        ]
    out = [
        torch.zeros((image.shape[0], *a.shape[1:]), dtype=a.dtype, device=a.device) for a in acts
    ]
    for k in range(width):
        rows = (slot == k).nonzero()[:, 0]
        score = logits[image[rows], classes[rows]].sum()
        got = torch.autograd.grad(score, acts, retain_graph=k < width - 1, allow_unused=True)
        for o, g in zip(out, got):
            if g is not None:
                o[rows] = g.index_select(0, image[rows]).to(o.dtype)
    return out


def _amp_context(amp: bool | torch.dtype | None, device: torch.device):
    if not amp:
        return contextlib.nullcontext()
    dtype = (
        amp
        if isinstance(amp, torch.dtype)
        else (torch.float16 if device.type == "cuda" else torch.bfloat16)
    )
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def frozen_model(model: nn.Module, freeze_params: bool) -> Iterator[None]:
    """Context manager: the model in eval mode (and its parameters frozen) for the block.

    Every module's ``training`` flag, every parameter's ``requires_grad`` (when frozen) and the
    grad mode are restored on exit, whatever happens in the block.

    Args:
        model: the model.
        freeze_params: also set ``requires_grad=False`` on every parameter, so that a backward
            pass computes no parameter gradient.
    """
    flags = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()] if freeze_params else []
    grad_mode = torch.is_grad_enabled()
    try:
        model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield
    finally:
        for m, training in flags:
            m.training = training
        for p, rg in grads:
            p.requires_grad_(rg)
        torch.set_grad_enabled(grad_mode)


class _Batch:
    """State of one batch: hooks, captured activations, and services for the methods."""

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        layers: list[tuple[str, nn.Module]],
        method: CamMethod,
        output: OutputSelector,
        chunk: int,
    ) -> None:
        self.model = model
        self.x = x
        self.layers = layers
        self.method = method
        self.output = output
        self.chunk = chunk
        self.acts: dict[str, Tensor] = {}
        self.calls: dict[str, int] = {}
        self.linears: list[nn.Linear] = []
        self.logits: Tensor | None = None
        self.act_dtypes: dict[str, torch.dtype] = {}
        # Pairs mode: the image of each row. The methods then see x and logits expanded to one
        # row per (image, class) pair; rows of the same image share their masked forwards.
        self.row_image: Tensor | None = None

    # -- hooks ---------------------------------------------------------------------------
    def _layer_hook(self, name: str) -> Callable[..., Any]:
        needs_grad = self.method.needs_gradients

        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            n = self.calls[name] = self.calls.get(name, 0) + 1
            if n > 1:
                raise EngineError(
                    f"layer {name!r} ({type(module).__name__}) runs more than once in one forward "
                    "(a module reused in the model, like a shared ReLU); its CAM would be "
                    "ambiguous: pick a layer that runs once, e.g. its parent block"
                )
            t = first_tensor(output)
            if t is None:
                raise EngineError(f"layer {name!r} returned no tensor ({type(output).__name__})")
            if needs_grad:
                # From here on autograd records; upstream of the first hooked layer it did not.
                torch.set_grad_enabled(True)
                act = t if t.requires_grad else t.detach().requires_grad_(True)
            else:
                act = t
            self.acts[name] = act
            self.act_dtypes[name] = t.dtype
            # Hand the rest of the network a copy, so in-place ops downstream (ReLU(inplace=True))
            # cannot overwrite the activations we keep.
            return _replace_first(output, act.clone())

        return hook

    def _linear_hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.linears.append(module)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def hooks(self) -> Iterator[None]:
        handles = []
        try:
            for name, module in self.layers:
                handles.append(module.register_forward_hook(self._layer_hook(name)))
            if self.method.name == "cam":
                for m in self.model.modules():
                    if isinstance(m, nn.Linear):
                        handles.append(m.register_forward_hook(self._linear_hook))
            yield
        finally:
            for h in handles:
                h.remove()

    # -- services for methods --------------------------------------------------------------
    def head_weights(self, layer: str, activations: Tensor, targets: Tensor) -> Tensor:
        """(B, C) classifier weights of the targets, after checking the head is GAP + linear."""
        assert self.logits is not None
        logits = self.logits.detach().float()
        k = logits.shape[1]
        why = "method 'cam' needs the layer to reach the logits through global average pooling "
        why += "and one nn.Linear"
        if (targets < 0).any():
            raise EngineError(
                "method 'cam' explains class indices; a callable target needs a "
                "gradient method such as 'gradcam'"
            )
        heads = [m for m in self.linears if m.out_features == k]
        if not heads:
            raise EngineError(
                f"{why}; {type(self.model).__name__} has no nn.Linear producing its {k} outputs. "
                "Use method='gradcam'."
            )
        head = heads[-1]
        c = activations.shape[1]
        if head.in_features != c:
            raise EngineError(
                f"{why}; the classifier takes {head.in_features} features but layer {layer!r} has "
                f"{c} channels. Pick the last spatial layer before the pooling, or use "
                "method='gradcam'."
            )
        w = head.weight.detach().float()
        pooled = activations.mean(dim=(2, 3))
        predicted = pooled @ w.T
        if head.bias is not None:
            predicted = predicted + head.bias.detach().float()
        # Images whose logits are not finite (NaN weights or inputs) cannot be checked; their
        # map comes out non-finite and is flagged degenerate instead of failing the batch.
        rows = torch.isfinite(logits).all(dim=1) & torch.isfinite(predicted).all(dim=1)
        diff = (predicted[rows] - logits[rows]).abs()
        err = float(diff.max()) if diff.numel() else 0.0
        scale = float(logits[rows].abs().max()) + 1.0 if diff.numel() else 1.0
        # The forward may have run in half precision (a half model, amp=True, or an external
        # autocast): compare at that precision.
        full = (torch.float32, torch.float64)
        low = self.logits.dtype not in full or self.act_dtypes.get(layer) not in full
        tol = 3e-2 if low else 1e-3
        if not err <= tol * scale:
            raise EngineError(
                f"{why}; in {type(self.model).__name__} the logits are not a linear function of "
                f"the spatial mean of layer {layer!r} (max difference {err:.3g}). Use "
                "method='gradcam', or pick the last spatial layer before the pooling."
            )
        return w[targets]

    @torch.no_grad()
    def score_masked(self, activations: Tensor, targets: Tensor) -> Tensor:
        """(B, C) target scores of the input masked by each upsampled, normalised channel."""
        if (targets < 0).any():
            raise EngineError(
                "method 'scorecam' explains class indices; a callable target needs "
                "a gradient method such as 'gradcam'"
            )
        h, w = self.x.shape[-2:]
        b, c = activations.shape[:2]
        out = torch.empty(b, c, device=activations.device)
        # Rows of one image (pairs mode) have the same activations and input: its masked
        # forwards run once and give the scores of all its classes.
        groups: dict[int, list[int]] = {}
        keys = range(b) if self.row_image is None else self.row_image.tolist()
        for row, key in enumerate(keys):
            groups.setdefault(int(key), []).append(row)
        for members in groups.values():
            i = members[0]
            up = F.interpolate(
                activations[i : i + 1], size=(h, w), mode="bilinear", align_corners=False
            )[0]
            flat = up.reshape(c, -1)
            lo = flat.amin(dim=1).view(c, 1, 1)
            hi = flat.amax(dim=1).view(c, 1, 1)
            span = hi - lo
            masks = torch.where(span > 0, (up - lo) / torch.where(span > 0, span, 1.0), 0.0)
            rows = torch.tensor(members, device=activations.device)
            t = targets[members].to(activations.device)
            for s in range(0, c, self.chunk):
                m = masks[s : s + self.chunk, None].to(self.x.dtype)
                logits = select_output(self.model(self.x[i : i + 1] * m), self.output)
                out[rows, s : s + m.shape[0]] = logits[:, t].float().T
        return out


def _replace_first(output: Any, new: Tensor) -> Any:
    if isinstance(output, Tensor):
        return new
    if isinstance(output, tuple):
        items = list(output)
        for i, v in enumerate(items):
            if isinstance(v, Tensor):
                items[i] = new
                return type(output)(*items) if hasattr(output, "_fields") else tuple(items)
    if isinstance(output, list):
        items = list(output)
        for i, v in enumerate(items):
            if isinstance(v, Tensor):
                items[i] = new
                return items
    return None  # other containers: keep the module's own output


def _to_grid(t: Tensor, reshape: Reshape | None, layer: str) -> Tensor:
    g = reshape(t) if reshape is not None else t
    if g.dim() != 4:
        raise EngineError(
            f"layer {layer!r} gives a {tuple(t.shape)} output; the CAM needs (B, C, h, w). "
            "Pick a convolutional layer, or pass reshape= to turn it into a grid"
        )
    return g.float()


def _run_batch(
    model: nn.Module,
    x: Tensor,
    layers: list[tuple[str, nn.Module]],
    method: CamMethod,
    targets: TargetSpec | _Pairs,
    reshape: Reshape | str | None,
    output: OutputSelector,
    amp: bool | torch.dtype | None,
    chunk: int,
) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """One forward (and one backward) of a chunk of images.

    Returns:
        ``(raw maps per layer, targets, float32 logits, image of each row)``: one row per image,
        or one per (image, class) pair when ``targets`` is a :class:`_Pairs`.
    """
    state = _Batch(model, x, layers, method, output, chunk)
    device = x.device
    pairs = targets if isinstance(targets, _Pairs) else None
    with state.hooks():
        torch.set_grad_enabled(False)
        with _amp_context(amp, device):
            out = model(x)
        logits = select_output(out, output)
        state.logits = logits
        missing = [n for n, _ in layers if n not in state.acts]
        if missing:
            raise EngineError(
                f"layer(s) {', '.join(map(repr, missing))} did not run in the forward pass "
                f"of {type(model).__name__}"
                + (
                    " (TorchScript modules run no Python hooks: pass the eager model)"
                    if isinstance(model, torch.jit.ScriptModule)
                    else ""
                )
            )
        if pairs is None:
            tgt, score = _resolve_targets(targets, logits)  # type: ignore[arg-type]
            rows = torch.arange(logits.shape[0], device=device)
        else:
            _class_logits_check(logits)
            _check_range(pairs.everything, logits.shape[1])
            tgt, score = pairs.classes.to(logits.device), logits
            rows = pairs.image.to(logits.device)
    names = [n for n, _ in layers]
    acts = [state.acts[n] for n in names]
    grads: list[Tensor | None] = [None] * len(names)
    n_rows = int(rows.shape[0])
    if method.needs_gradients and n_rows:
        if not score.requires_grad:
            raise EngineError(
                "the target score does not depend on the layer through autograd (does the model "
                "detach its output or run under torch.no_grad() inside forward?)"
            )
        if pairs is None:
            got = torch.autograd.grad(score.sum(), acts, allow_unused=True)
            grads = [torch.zeros_like(a) if g is None else g for a, g in zip(acts, got)]
        else:
            slot = pairs.slot.to(logits.device)
            grads = list(_pair_gradients(logits, acts, rows, tgt, slot, pairs.width))
    torch.set_grad_enabled(False)
    if pairs is not None:
        # Every row becomes its own "image": the methods and their services (the logits of
        # head_weights, the input of score_masked) see one row per (image, class) pair.
        acts = [a.detach().index_select(0, rows) for a in acts]
        state.x = x.index_select(0, rows)
        state.logits = logits.detach().index_select(0, rows)
        state.row_image = rows
    raws: dict[str, Tensor] = {}
    with torch.autocast(device_type=device.type, enabled=False):
        for name, a, g in zip(names, acts, grads):
            rs = resolve_reshape(model, name, reshape, a.dim())
            grid = _to_grid(a.detach(), rs, name)
            if n_rows == 0:
                raws[name] = grid.new_zeros((0, *grid.shape[2:]))
                continue
            inp = MethodInput(
                activations=grid,
                gradients=None if g is None else _to_grid(g.detach(), rs, name),
                targets=tgt,
                layer=name,
                context=state,
            )
            raw = method.fn(inp)
            raws[name] = raw.detach().float()
    return raws, tgt.detach(), state.logits.detach().float(), rows


def compute_cams(
    model: nn.Module,
    images: Tensor | Sequence[Tensor],
    layers: LayerSpec | Sequence[LayerSpec] | None = None,
    method: str | CamMethod = "gradcam",
    targets: TargetSpec = None,
    reshape: Reshape | str | None = None,
    batch_size: int | None = None,
    *,
    output: OutputSelector = None,
    amp: bool | torch.dtype | None = False,
    progress: Callable[[int, int], None] | None = None,
) -> CamResult:
    """Compute class activation maps for a batch of images.

    Args:
        model: any ``nn.Module`` classifier. It is run in eval mode for the call; its flags,
            ``requires_grad`` and gradients are left as they were.
        images: ``(B, C, H, W)`` (or one ``(C, H, W)``) float tensor, already normalised the way
            the model expects. Moved to the model's device and dtype.
        layers: None (auto-detect the last spatial layer feeding the head), a dotted module name
            (``"layer4"``, ``"features.29"``), a module, or a list of these. All layers come from
            one forward and one backward.
        method: a name from :data:`~pytest_camcheck.cam.methods.METHODS` (``"cam"``,
            ``"gradcam"``, ``"gradcam++"``, ``"hirescam"``, ``"xgradcam"``, ``"layercam"``,
            ``"scorecam"``, ``"eigencam"``).
        targets: None (predicted class), one class for the whole batch (an int, a 0-d tensor or
            a NumPy integer), one index per image (list, tensor, array), or a callable
            ``logits -> (B,) score``. The score is the raw logit of the target class. A list
            with one list of classes per image (``[[3, 5], [2], []]``; entries may also be 1-d
            tensors or arrays) explains several classes per image: the result then has one
            row per (image, class) pair, in image order and then in the given order
            (``image_index`` names each row's image; an empty list gives no row). All classes
            of an image come from one forward and one batched backward.
        reshape: for token models, a callable ``(B, N, C) -> (B, C, h, w)`` or ``"tokens"`` /
            ``"nhwc"``; torchvision ViT and Swin are handled without it.
        batch_size: split the images into chunks of this size (None: one batch). Score-CAM also
            uses it as the number of masked images per forward (default 64).
        output: selects the logits when the model returns a tuple/dict: an index, a key or a
            callable (default: the first tensor).
        amp: run the forward under autocast (True: bf16 on CPU, fp16 on CUDA; or a dtype). The
            CAM maths always runs in float32.
        progress: called as ``progress(done, total)`` after each chunk.

    Returns:
        A :class:`CamResult` whose tensors live on the model's device: one row per image, or
        per (image, class) pair with per-image lists of classes.

    Raises:
        EngineError: bad layers, targets, images, or a model the method cannot explain.
    """
    if not isinstance(model, nn.Module):
        raise EngineError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise EngineError(
            "a TorchScript model runs no Python hooks, so its layer activations cannot be "
            "captured; compute CAMs on the eager model (e.g. camcheck_model = "
            '"mypkg.models:build" with camcheck_weights = a state_dict file)'
        )
    m = get_method(method)
    if m.needs_gradients and torch.is_inference_mode_enabled():
        raise EngineError(
            f"method {m.name!r} needs gradients, which torch.inference_mode() forbids; call "
            "compute_cams outside inference_mode (torch.no_grad() is fine), or use a "
            "gradient-free method ('cam', 'eigencam', 'scorecam')"
        )
    x_all = as_batch(images).detach()
    device, dtype = model_device_dtype(model)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise EngineError(f"batch_size must be a positive int or None, got {batch_size!r}")
    total = x_all.shape[0]
    step = batch_size or total
    chunk = batch_size or 64
    per_image = _per_image_classes(targets, total)
    everything = torch.cat(per_image) if per_image is not None else None

    def prepare(x: Tensor) -> Tensor:
        x = x.to(device=device, dtype=dtype if dtype.is_floating_point else x.dtype)
        if x.is_inference():
            x = x.clone()
        return x

    if (
        per_image is None
        and targets is not None
        and not isinstance(targets, int)
        and not callable(targets)
    ):
        as_tensor = torch.as_tensor(targets)
        integer = not as_tensor.is_floating_point() and as_tensor.dtype != torch.bool
        if as_tensor.dim() == 0 and integer:
            targets = int(as_tensor)  # a 0-d tensor or NumPy integer: one class for all images
    auto = layers is None
    with frozen_model(model, freeze_params=m.needs_gradients):
        if auto:
            name = auto_layer(model, prepare(x_all[:1]), model)
            pairs = resolve_layers(model, name)
        else:
            pairs = resolve_layers(model, layers)  # type: ignore[arg-type]
        raws: dict[str, list[Tensor]] = {n: [] for n, _ in pairs}
        maps: dict[str, list[Tensor]] = {n: [] for n, _ in pairs}
        degens: dict[str, list[Tensor]] = {n: [] for n, _ in pairs}
        tgts: list[Tensor] = []
        logits: list[Tensor] = []
        images: list[Tensor] = []
        size = (int(x_all.shape[-2]), int(x_all.shape[-1]))
        for start in range(0, total, step):
            x = prepare(x_all[start : start + step])
            t: TargetSpec | _Pairs = targets
            if per_image is not None:
                assert everything is not None
                t = _Pairs.of(per_image[start : start + step], everything)
            elif t is not None and not isinstance(t, int) and not callable(t):
                t = torch.as_tensor(t).reshape(-1)
                if t.numel() != total:
                    raise EngineError(
                        f"targets has {t.numel()} entries but there are {total} images; pass one "
                        "target per image, a single int, or None for the predicted class"
                    )
                t = t[start : start + step]
            r, tg, lg, rows = _run_batch(model, x, pairs, m, t, reshape, output, amp, chunk)
            for n, raw in r.items():
                dm, dg = postprocess(raw, size)
                raws[n].append(raw)
                maps[n].append(dm)
                degens[n].append(dg)
            tgts.append(tg)
            logits.append(lg)
            images.append(rows + start)
            if progress is not None:
                progress(min(start + step, total), total)
    names = tuple(n for n, _ in pairs)
    return CamResult(
        layers=names,
        maps={n: torch.cat(maps[n]) for n in names},
        raw={n: torch.cat(raws[n]) for n in names},
        targets=torch.cat(tgts),
        logits=torch.cat(logits),
        degenerate={n: torch.cat(degens[n]) for n in names},
        method=m.name,
        auto_layer=auto,
        image_index=torch.cat(images),
    )
