"""CAM layers and token reshapes for timm and Hugging Face architectures.

Auto-detection takes the last spatial ``(B, C, h, w)`` output, which is wrong or missing for
models that compute on tokens or channels-last grids. For those, the right layer is known:

- timm vision transformers (``VisionTransformer``, DeiT, EVA, BEiT: any model with ``blocks``
  and ``num_prefix_tokens``): the input norm of the last block (``blocks.11.norm1``), whose
  patch tokens reach the class token only through that block's attention; its ``(B, N, C)``
  output becomes a grid after dropping the ``num_prefix_tokens`` class/register tokens.
- timm Swin: the last stage (``layers.3``), whose ``(B, h, w, C)`` output is channels-last.
- timm ConvNeXt: the last stage (``stages.3``) rather than the identity after it.
- Hugging Face ViT-style models (ViT, DeiT, BEiT...): the last ``*.layernorm_before``, tokens
  as above (the prefix is what is left over a square number of patches).

Torch only, like the rest of ``cam/``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from torch import Tensor, nn

from ..errors import EngineError

__all__ = ["family_layer", "family_reshape", "prefix_tokens_to_grid"]

Reshape = Callable[[Tensor], Tensor]

_SWIN_GRID = re.compile(r"^(layers\.\d+(\.blocks\.\d+)?|norm)$")


def _timm(model: nn.Module) -> bool:
    return type(model).__module__.startswith("timm.")


def _hf(model: nn.Module) -> bool:
    return type(model).__module__.startswith("transformers.")


def _last_child(container: nn.Module) -> str | None:
    names = [n for n, _ in container.named_children()]
    return names[-1] if names else None


def _timm_vit(model: nn.Module) -> bool:
    blocks = getattr(model, "blocks", None)
    return (
        _timm(model)
        and isinstance(getattr(model, "num_prefix_tokens", None), int)
        and isinstance(blocks, (nn.Sequential, nn.ModuleList))
        and len(blocks) > 0
        and hasattr(blocks[-1], "norm1")
    )


def family_layer(model: nn.Module) -> str | None:
    """The CAM layer of a known timm or Hugging Face architecture, else None."""
    name = type(model).__name__
    if _timm_vit(model):
        return f"blocks.{len(model.blocks) - 1}.norm1"  # type: ignore[arg-type]
    if _timm(model) and name.startswith("SwinTransformer"):
        last = _last_child(getattr(model, "layers", nn.Module()))
        return None if last is None else f"layers.{last}"
    if _timm(model) and name == "ConvNeXt":
        last = _last_child(getattr(model, "stages", nn.Module()))
        return None if last is None else f"stages.{last}"
    if _hf(model):
        norms = [n for n, _ in model.named_modules() if n.endswith(".layernorm_before")]
        if norms:
            return norms[-1]
    return None


def _channels_first(t: Tensor) -> Tensor:
    """``(B, h, w, C)`` -> ``(B, C, h, w)`` (timm Swin's stages are channels-last)."""
    if t.dim() != 4:
        raise EngineError(f"expected a (B, h, w, C) output, got {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2)


def prefix_tokens_to_grid(prefix: int | None = None) -> Reshape:
    """A reshape ``(B, N, C)`` -> ``(B, C, h, w)`` that drops ``prefix`` leading tokens (class,
    distillation, register tokens); None: as many as lie beyond the largest square (at most 8).
    """

    def reshape(tokens: Tensor) -> Tensor:
        if tokens.dim() != 3:
            raise EngineError(
                f"expected (B, tokens, C) for a token layer, got {tuple(tokens.shape)}"
            )
        b, n, c = tokens.shape
        drop = prefix
        if drop is None:
            side = math.isqrt(n)
            drop = n - side * side
            if drop > 8:
                raise EngineError(
                    f"cannot arrange {n} tokens on a square grid; pass reshape= a function "
                    "(B, N, C) -> (B, C, h, w)"
                )
        side = math.isqrt(n - drop)
        if side * side != n - drop:
            raise EngineError(
                f"{n} tokens less {drop} prefix tokens do not fill a square grid; pass reshape= "
                "a function (B, N, C) -> (B, C, h, w)"
            )
        return tokens[:, drop:, :].reshape(b, side, side, c).permute(0, 3, 1, 2)

    return reshape


def family_reshape(model: nn.Module, layer: str) -> Reshape | None:
    """The reshape ``layer`` of a known timm or Hugging Face architecture needs, else None."""
    name = type(model).__name__
    if _timm_vit(model) and (layer.startswith("blocks.") or layer in ("norm", "fc_norm")):
        return prefix_tokens_to_grid(int(model.num_prefix_tokens))  # type: ignore[arg-type]
    if _timm(model) and name.startswith("SwinTransformer") and _SWIN_GRID.match(layer):
        return _channels_first
    if _hf(model):
        tokens = prefix_tokens_to_grid(None)

        def hf_reshape(t: Tensor) -> Tensor:  # token layers only: grids pass as they are
            return tokens(t) if t.dim() == 3 else t

        return hf_reshape
    return None
