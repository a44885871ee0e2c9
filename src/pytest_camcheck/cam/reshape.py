"""Turning a layer's output into the ``(B, C, h, w)`` grid the CAM maths expects."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor, nn

from ..errors import EngineError

__all__ = ["Reshape", "builtin_reshape", "nhwc_to_nchw", "resolve_reshape", "tokens_to_grid"]

Reshape = Callable[[Tensor], Tensor]


def tokens_to_grid(tokens: Tensor) -> Tensor:
    """``(B, N, C)`` tokens -> ``(B, C, h, w)``.

    ``N`` must be a square (patch tokens only) or a square plus one (a leading class token,
    which is dropped), as in torchvision's and timm's vision transformers.
    """
    if tokens.dim() != 3:
        raise EngineError(f"expected (B, tokens, C) for a token layer, got {tuple(tokens.shape)}")
    b, n, c = tokens.shape
    side = math.isqrt(n)
    if side * side != n:
        side = math.isqrt(n - 1)
        if side * side != n - 1:
            raise EngineError(
                f"cannot arrange {n} tokens on a square grid (neither N nor N-1 is a square); "
                "pass reshape= a function (B, N, C) -> (B, C, h, w)"
            )
        tokens = tokens[:, 1:, :]
    return tokens.reshape(b, side, side, c).permute(0, 3, 1, 2)


def nhwc_to_nchw(t: Tensor) -> Tensor:
    """``(B, h, w, C)`` -> ``(B, C, h, w)`` (Swin and ConvNeXt-style channels-last blocks)."""
    if t.dim() != 4:
        raise EngineError(f"expected a (B, h, w, C) output, got {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2)


_NAMED: dict[str, Reshape] = {"tokens": tokens_to_grid, "nhwc": nhwc_to_nchw}


def builtin_reshape(model: nn.Module, layer: str) -> Reshape | None:
    """The reshape a known architecture needs at ``layer``, or None."""
    cls = type(model)
    if not cls.__module__.startswith("torchvision"):
        from .families import family_reshape  # timm and Hugging Face architectures

        return family_reshape(model, layer)
    if cls.__name__ == "SwinTransformer" and (
        layer == "features" or layer.startswith("features.") or layer == "norm"
    ):
        return nhwc_to_nchw
    return None


def resolve_reshape(
    model: nn.Module, layer: str, reshape: Reshape | str | None, output_dim: int
) -> Reshape | None:
    """The reshape to apply to ``layer``'s output (and gradient)."""
    if callable(reshape):
        return reshape
    if isinstance(reshape, str):
        try:
            return _NAMED[reshape]
        except KeyError:
            raise EngineError(
                f"unknown reshape {reshape!r}; use one of {sorted(_NAMED)} or a callable"
            ) from None
    builtin = builtin_reshape(model, layer)
    if builtin is not None:
        return builtin
    if output_dim == 3:
        return tokens_to_grid
    return None
