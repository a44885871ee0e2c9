"""The CAM engine: torch only, never pytest. Usable from a notebook.

>>> from pytest_camcheck.cam import compute_cams
>>> result = compute_cams(model, images, layers="layer4", method="gradcam")  # doctest: +SKIP

The names are imported lazily, so that importing a torch-free module of this package
(:mod:`.names`, which the settings use) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# public name -> module that defines it (relative to this package)
_LAZY: dict[str, str] = {
    "CamResult": ".engine",
    "compute_cams": ".engine",
    "as_batch": ".engine",
    "frozen_model": ".engine",
    "model_device_dtype": ".engine",
    "select_output": ".engine",
    "METHODS": ".methods",
    "CamMethod": ".methods",
    "get_method": ".methods",
    "register_method": ".methods",
    "method_key": ".names",
}

__all__ = [
    "METHODS",
    "CamMethod",
    "CamResult",
    "as_batch",
    "compute_cams",
    "frozen_model",
    "get_method",
    "method_key",
    "model_device_dtype",
    "register_method",
    "select_output",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .engine import (
        CamResult,
        as_batch,
        compute_cams,
        frozen_model,
        model_device_dtype,
        select_output,
    )
    from .methods import METHODS, CamMethod, get_method, register_method
    from .names import method_key


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
