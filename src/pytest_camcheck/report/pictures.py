"""Pictures that compare two maps of one sample: baseline | current | difference, or the
reference model's map beside the candidate's.

The overlays are drawn by :func:`.render.render_case_images` (the regions outlined, the peak
marked), so they look like every other card's; the difference is drawn here: the current map
minus the other one over a dimmed grey copy of the image, red where the current map holds more
evidence, blue where it holds less. Numbers never come from here: the cards print the numbers
the assertions recorded.

This module imports numpy and OpenCV (no torch, no pytest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from .render import encode_png_b64, render_case_images, thumbnail_size

__all__ = ["DIFF_GAINED", "DIFF_LOST", "comparison_tiles", "difference_image"]

#: RGB of "more evidence now" and "less evidence now" in the difference picture.
DIFF_GAINED = (230, 40, 30)
DIFF_LOST = (30, 90, 230)


def _map01(cam: Any) -> np.ndarray:
    arr = np.asarray(cam, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"a map must be (H, W), got shape {arr.shape}")
    return np.clip(np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)


def _peak(cam: np.ndarray) -> tuple[int, int] | None:
    if float(cam.max()) - float(cam.min()) <= 1e-12:
        return None  # a degenerate map has no peak
    row, col = divmod(int(np.argmax(cam)), cam.shape[1])
    return row, col


def difference_image(
    rgb: Any, current: Any, other: Any, max_side: int = 256, min_side: int = 192
) -> np.ndarray:
    """``current - other`` as colour over a dimmed grey copy of the image.

    Args:
        rgb: the image, ``(H, W, 3)`` uint8.
        current: ``(h, w)`` map in [0, 1].
        other: ``(h', w')`` map in [0, 1] (resized to ``current``'s size when they differ).
        max_side / min_side: the thumbnail's long side bounds (as the case overlays).

    Returns:
        ``(H', W', 3)`` uint8 RGB: red where ``current`` is higher, blue where it is lower,
        the colour's strength the size of the difference.
    """
    img = np.asarray(rgb)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3].astype(np.uint8)
    height, width = img.shape[:2]
    th, tw = thumbnail_size(height, width, max_side, min_side)
    shrink = th <= height and tw <= width
    thumb = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)
    a, b = _map01(current), _map01(other)
    if b.shape != a.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_LINEAR)
    diff = cv2.resize(a - b, (tw, th), interpolation=cv2.INTER_LINEAR)
    grey = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)[:, :, None] * 0.5
    strength = np.clip(np.abs(diff), 0.0, 1.0)[:, :, None]
    colour = np.where(diff[:, :, None] >= 0, DIFF_GAINED, DIFF_LOST).astype(np.float32)
    out = grey * (1.0 - strength) + colour * strength
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def comparison_tiles(
    rgb: Any,
    current: Any,
    other: Any,
    regions: Mapping[str, Any] | None = None,
    *,
    other_label: str = "baseline",
    current_label: str = "current",
    difference: bool = True,
) -> list[dict[str, str]]:
    """The pictures of one compared sample, as base64 PNGs.

    Args:
        rgb: the image, ``(H, W, 3)`` uint8.
        current: the current map ``(H, W)`` in [0, 1].
        other: the map it was compared with.
        regions: the sample's regions (outlined on both overlays).
        other_label / current_label: the captions of the two overlays.
        difference: also draw ``current - other`` (see :func:`difference_image`).

    Returns:
        ``[{"caption": other_label, "png": ...}, {"caption": current_label, "png": ...}]``, then
        ``{"caption": "difference", "png": ...}`` when asked.
    """
    tiles = []
    for label, cam in ((other_label, other), (current_label, current)):
        m = _map01(cam)
        images = render_case_images(rgb, {label: m}, label, regions or {}, _peak(m))
        tiles.append({"caption": label, "png": images["overlay"]})
    if difference:
        png = encode_png_b64(difference_image(rgb, current, other))
        tiles.append({"caption": f"difference ({current_label} − {other_label})", "png": png})
    return tiles
