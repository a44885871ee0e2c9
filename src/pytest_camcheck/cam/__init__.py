"""The CAM engine: torch only, never pytest. Usable from a notebook.

>>> from pytest_camcheck.cam import compute_cams
>>> result = compute_cams(model, images, layers="layer4", method="gradcam")  # doctest: +SKIP
"""

from __future__ import annotations

from .engine import CamResult, compute_cams
from .methods import METHODS, CamMethod, register_method

__all__ = ["METHODS", "CamMethod", "CamResult", "compute_cams", "register_method"]
