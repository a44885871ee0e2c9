"""Pictures of one case for the report: the image, its CAM overlay and a per-layer strip.

Everything is drawn with numpy and OpenCV at display size: the image is downscaled first (with
``cv2.INTER_AREA``), then the map is coloured and blended, so rendering stays cheap even for
hundreds of failing cases. The pictures are photos, so they are encoded as lossy WebP (quality
75): the six pictures of a card with a four-layer strip take about 27 KB of base64 for a 480 px
photo, where PNGs took over 400 KB. Lossy codecs keep brightness at full resolution but halve
the colour resolution (4:2:0), so every drawing is a bright or coloured line on a dark halo, and
the coloured CAM-peak marker is drawn three pixels wide: box outlines stay within a few levels
of white and the marker stays magenta (``tests/report/test_report_render.py`` measures both on
real photos). ``image_format="png"`` keeps every pixel exact; ``"jpeg"`` (4:4:4, no colour
subsampling, about twice the size) is there for viewers without WebP, and is used when OpenCV
was built without a WebP encoder.

Colours are chosen so that the drawings cannot be confused with the heatmap: at the default
``alpha`` a JET colourmap blended over an image never yields a pixel with full red and a blue
above 140, so region outlines use such colours (white first) and the CAM peak is marked in
magenta. Every outline sits on a dark halo so that it also shows on bright images.

This module imports numpy and OpenCV (no torch, no pytest).
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from ..errors import DataError, LayerNotFoundError
from ..regions import Box, Region

__all__ = [
    "IMAGE_FORMATS",
    "PEAK_COLOUR",
    "REGION_COLOURS",
    "encode_image_b64",
    "encode_png_b64",
    "overlay",
    "render_case_images",
    "thumbnail_size",
]

#: RGB colours of region outlines, in the order the regions are given (cycled).
REGION_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (255, 160, 255),
    (255, 255, 170),
    (255, 200, 160),
)
#: RGB colour of the CAM peak marker.
PEAK_COLOUR: tuple[int, int, int] = (255, 0, 255)
_LABEL_BG = (0, 0, 0)
_HALO = (20, 20, 20)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# zlib level 1, run-length strategy, the "up" row filter: on photos and overlays this encodes
# about twice as fast as OpenCV's default for files ~5% larger (measured on 224 px images)
_PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_UP,
]
_FONT_SCALE = 0.35
#: Encodings :func:`encode_image_b64` writes: lossy WebP (default), JPEG, lossless PNG.
IMAGE_FORMATS: tuple[str, ...] = ("webp", "jpeg", "png")
#: Default quality (0-100) of the lossy encodings.
DEFAULT_QUALITY = 75
# the peak marker: a 3-px coloured stroke (thickness 2) on a 7-px halo (thickness 5), wide
# enough that its colour survives the halved colour resolution of lossy WebP
_PEAK_STROKE = 2
_PEAK_HALO = 5


def _as_rgb_uint8(rgb: Any, what: str = "image") -> np.ndarray:
    """Return ``rgb`` as a C-contiguous ``(H, W, 3)`` uint8 array.

    Accepts ``(H, W)`` grey, ``(H, W, 1)``, ``(H, W, 3)`` and ``(H, W, 4)`` (alpha dropped);
    floats are taken to be in [0, 1].
    """
    if hasattr(rgb, "detach"):  # a torch tensor, without importing torch
        rgb = rgb.detach().cpu().numpy()
    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(
            f"{what} must be an (H, W, 3) RGB array (or (H, W) grey), got shape {arr.shape}; "
            "convert a (C, H, W) tensor with .permute(1, 2, 0) first"
        )
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{what} has dtype {arr.dtype}; expected uint8 or float in [0, 1]")
    if np.issubdtype(arr.dtype, np.integer):
        return np.ascontiguousarray(np.clip(arr, 0, 255).astype(np.uint8))
    scaled = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.ascontiguousarray((np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def _as_map(cam: Any, what: str = "map") -> np.ndarray:
    """Return ``cam`` as a float32 ``(H, W)`` array in [0, 1] (non-finite values -> 0)."""
    if hasattr(cam, "detach"):
        cam = cam.detach().cpu().numpy()
    arr = np.asarray(cam, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"{what} must be a 2-D (H, W) array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(arr, 0.0, 1.0)


def thumbnail_size(height: int, width: int, max_side: int, min_side: int = 0) -> tuple[int, int]:
    """``(height, width)`` of a thumbnail whose long side is at most ``max_side``.

    A larger image is shrunk to exactly ``max_side``; a smaller one keeps its size, except that
    an image whose long side is under ``min_side`` is enlarged by the largest whole factor that
    keeps it within ``min_side`` (so each pixel becomes a crisp k x k block).
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    long_side = max(height, width)
    if long_side > max_side:
        scale = max_side / long_side
        return max(1, round(height * scale)), max(1, round(width * scale))
    factor = max(1, min(min_side, max_side) // long_side)
    return height * factor, width * factor


def _resize(
    arr: np.ndarray, height: int, width: int, enlarge: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """Resize: ``cv2.INTER_AREA`` to shrink, ``enlarge`` (an OpenCV interpolation) to enlarge."""
    if arr.shape[:2] == (height, width):
        return arr
    shrinking = height <= arr.shape[0] and width <= arr.shape[1]
    interp = cv2.INTER_AREA if shrinking else enlarge
    return cv2.resize(arr, (width, height), interpolation=interp)


def encode_png_b64(rgb_uint8: np.ndarray) -> str:
    """Encode an RGB (or grey) uint8 image as PNG and return it base64-encoded (ASCII).

    Args:
        rgb_uint8: ``(H, W, 3)`` RGB or ``(H, W)`` grey, uint8.

    Returns:
        The PNG file's bytes in base64, ready for ``data:image/png;base64,...``.
    """
    return _encode(rgb_uint8, "png", DEFAULT_QUALITY, "encode_png_b64")


def encode_image_b64(
    rgb_uint8: np.ndarray, image_format: str = "webp", quality: int = DEFAULT_QUALITY
) -> str:
    """Encode an RGB (or grey) uint8 image and return the file's bytes base64-encoded (ASCII).

    Args:
        rgb_uint8: ``(H, W, 3)`` RGB or ``(H, W)`` grey, uint8.
        image_format: ``"webp"`` (lossy; JPEG where OpenCV was built without WebP), ``"jpeg"``
            (lossy, full colour resolution) or ``"png"`` (lossless).
        quality: 1-100, for the lossy formats.

    Returns:
        The file's bytes in base64; its first bytes tell the format (the report reads them to
        write ``data:image/webp;base64,...`` and so on).

    Raises:
        DataError: the image is not uint8 ``(H, W, 3)`` / ``(H, W)``, or the format or quality
            is not one of those above.
    """
    return _encode(rgb_uint8, image_format, quality, "encode_image_b64")


@functools.cache
def _has_webp() -> bool:
    return bool(cv2.haveImageWriter(".webp"))


def _encode(rgb_uint8: np.ndarray, image_format: str, quality: int, caller: str) -> str:
    if image_format not in IMAGE_FORMATS:
        raise DataError(
            f"{caller}: unknown image format {image_format!r}; use one of "
            f"{', '.join(IMAGE_FORMATS)}"
        )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise DataError(f"{caller}: quality must be a whole number in 1..100, got {quality!r}")
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8:
        raise DataError(f"{caller} needs a uint8 image, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR)
    elif arr.ndim != 2:
        raise DataError(f"{caller} needs an (H, W, 3) or (H, W) image, got {arr.shape}")
    if image_format == "webp" and not _has_webp():
        image_format = "jpeg"
    if image_format == "png":
        ext, params = ".png", _PNG_PARAMS
    elif image_format == "webp":
        ext, params = ".webp", [cv2.IMWRITE_WEBP_QUALITY, quality]
    else:
        ext = ".jpg"
        params = [
            cv2.IMWRITE_JPEG_QUALITY,
            quality,
            cv2.IMWRITE_JPEG_OPTIMIZE,
            1,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:  # pragma: no cover - OpenCV only fails on impossible inputs
        raise DataError(f"OpenCV could not encode an image of shape {arr.shape} as {image_format}")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _colourise(cam01: np.ndarray) -> np.ndarray:
    """JET colours (RGB uint8) of a map in [0, 1]."""
    grey = (cam01 * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def _blend(rgb: np.ndarray, cam01: np.ndarray, alpha: float) -> np.ndarray:
    heat = _colourise(cam01)
    return cv2.addWeighted(rgb, 1.0 - alpha, heat, alpha, 0.0)


def overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a JET-coloured CAM over an image.

    Args:
        rgb: the image, ``(H, W, 3)`` uint8 RGB (grey and float [0, 1] images are converted).
        cam: ``(H, W)`` map in [0, 1]; another size is resized to the image's; values outside
            [0, 1] are clipped and non-finite values shown as 0.
        alpha: weight of the heatmap (0 = only the image, 1 = only the heatmap).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = _as_rgb_uint8(rgb)
    m = _as_map(cam)
    m = _resize(m, img.shape[0], img.shape[1])
    return _blend(img, m, alpha)


def _ascii_label(name: str, limit: int = 24) -> str:
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(name))
    return text if len(text) <= limit else text[: limit - 1] + "~"


def _box_corners(box: Box, height: int, width: int) -> tuple[int, int, int, int] | None:
    """Pixel rows/cols of a box's outline (the pixels whose centres lie inside it), clipped."""
    c0 = max(math.ceil(box.x0 - 0.5), 0)
    c1 = min(math.floor(box.x1 - 0.5), width - 1)
    r0 = max(math.ceil(box.y0 - 0.5), 0)
    r1 = min(math.floor(box.y1 - 0.5), height - 1)
    if c1 < c0 or r1 < r0:
        return None
    return c0, r0, c1, r1


def _draw_label(img: np.ndarray, text: str, x: int, y_top: int, y_bottom: int) -> None:
    """Write ``text`` on a dark tag just above ``y_top`` (or just below it when no room)."""
    if not text:
        return
    (tw, th), base = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)
    h, w = img.shape[:2]
    tag_h = th + base + 2
    if y_top - tag_h >= 0:
        top = y_top - tag_h
    elif y_top + 1 + tag_h <= h:
        top = y_top + 1
        x += 1
    else:
        top = max(0, min(y_bottom + 1, h - tag_h))
    x = max(0, min(x, w - tw - 2))
    cv2.rectangle(img, (x, top), (x + tw + 1, top + tag_h - 1), _LABEL_BG, -1)
    cv2.putText(
        img, text, (x + 1, top + th + 1), _FONT, _FONT_SCALE, (255, 255, 255), 1, cv2.LINE_AA
    )


def _draw_regions(
    img: np.ndarray,
    regions: Mapping[str, Region],
    sx: float,
    sy: float,
    *,
    labels: bool,
) -> None:
    """Draw every region (box outlines, mask contours, name tags) on ``img`` in place.

    Each outline is a 1-px line in the region's colour over a 3-px dark halo, so it shows on
    bright and dark images alike; all halos are drawn before all outlines.
    """
    h, w = img.shape[:2]
    rects: list[tuple[tuple[int, int, int, int], tuple[int, int, int]]] = []
    contours_of: list[tuple[Any, tuple[int, int, int]]] = []
    tags: list[tuple[str, int, int, int]] = []
    for index, (name, region) in enumerate(regions.items()):
        colour = REGION_COLOURS[index % len(REGION_COLOURS)]
        tag_at: tuple[int, int, int] | None = None
        for box in region.boxes:
            corners = _box_corners(box.scaled(sx, sy), h, w)
            if corners is None:
                continue
            rects.append((corners, colour))
            if tag_at is None:
                tag_at = (corners[0], corners[1], corners[3])
        if region.mask is not None:
            mask = Region(region.name, mask=region.mask).to_mask(h, w).astype(np.uint8)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            if contours:
                contours_of.append((contours, colour))
                if tag_at is None:
                    x, y, _, bh = cv2.boundingRect(np.concatenate(contours))
                    tag_at = (x, y, y + bh - 1)
        if labels and tag_at is not None:
            tags.append((_ascii_label(name or region.name), *tag_at))
    for thickness, halo in ((3, True), (1, False)):
        for (c0, r0, c1, r1), colour in rects:
            cv2.rectangle(img, (c0, r0), (c1, r1), _HALO if halo else colour, thickness)
        for contours, colour in contours_of:
            cv2.drawContours(img, contours, -1, _HALO if halo else colour, thickness)
    # tags last, so that no outline is drawn over a name
    for text, x, y_top, y_bottom in tags:
        _draw_label(img, text, x, y_top, y_bottom)


def _draw_peak(img: np.ndarray, peak: tuple[int, int], sx: float, sy: float) -> None:
    """Mark the CAM peak ``(row, col)`` (in image pixels) with a circle and a cross."""
    h, w = img.shape[:2]
    row, col = peak
    x = min(max(int((col + 0.5) * sx), 0), w - 1)
    y = min(max(int((row + 0.5) * sy), 0), h - 1)
    radius = max(5, round(max(h, w) / 32))
    arm = radius + 4
    for colour, thickness in ((_HALO, _PEAK_HALO), (PEAK_COLOUR, _PEAK_STROKE)):
        cv2.circle(img, (x, y), radius, colour, thickness)
        cv2.line(img, (max(x - arm, 0), y), (min(x + arm, w - 1), y), colour, thickness)
        cv2.line(img, (x, max(y - arm, 0)), (x, min(y + arm, h - 1)), colour, thickness)


def render_case_images(
    rgb: np.ndarray,
    maps: Mapping[str, np.ndarray],
    layer: str,
    regions: Mapping[str, Region] | Sequence[Region] | None = None,
    peak: tuple[int, int] | None = None,
    max_side: int = 256,
    *,
    min_side: int = 192,
    strip_side: int = 96,
    alpha: float = 0.45,
    image_format: str = "webp",
    quality: int = DEFAULT_QUALITY,
    full_image: bool = False,
) -> dict[str, Any]:
    """Render the pictures of one case for the report.

    Args:
        rgb: the image, ``(H, W, 3)`` uint8 RGB (grey and float [0, 1] images are converted).
        maps: layer name -> ``(H, W)`` map in [0, 1] at the image's resolution (another size
            is resized to it).
        layer: the layer whose map the main overlay shows.
        regions: the annotated regions (name -> Region, or a list of Regions), in the image's
            pixel coordinates; drawn as box outlines and mask contours with their names.
        peak: the CAM peak as ``(row, col)`` in the image's pixels, marked with a cross in a
            circle; ``None`` (e.g. a degenerate map) draws nothing.
        max_side: the long side of the original and the overlay is at most this many pixels
            (larger images are shrunk with ``cv2.INTER_AREA``; boxes and peak scale with them).
        min_side: smaller images are enlarged by a whole factor (nearest neighbour) towards
            this long side, so that tiny images and their drawings stay readable.
        strip_side: the long side of each per-layer strip tile (enlarged towards 3/4 of it).
        alpha: heatmap weight of the overlays.
        image_format: how the pictures are encoded: ``"webp"`` (default), ``"jpeg"`` or
            ``"png"`` (lossless); see :func:`encode_image_b64`.
        quality: 1-100, the quality of the lossy formats.
        full_image: also render the overlay at the image's own resolution (``"full"``), for a
            closer look; it costs about as much as the rest of the card together.

    Returns:
        ``{"original": b64, "overlay": b64, "strip": [{"layer": str, "image": b64}]}`` (each
        a base64-encoded file of ``image_format``), plus ``"full": b64`` with ``full_image``.
        The strip (one small overlay per layer, in the order of ``maps``, with the regions
        outlined) is empty when there is a single map.

    Raises:
        LayerNotFoundError: ``layer`` is not a key of ``maps``.
        DataError: the image or a map has an unusable shape or dtype, or the format or
            quality is not one of those above.
    """
    if layer not in maps:
        raise LayerNotFoundError(
            f"layer {layer!r} has no map to render; maps were given for: "
            f"{', '.join(maps) or '(none)'}"
        )
    if regions is None:
        regions = {}
    elif not isinstance(regions, Mapping):
        regions = {r.name: r for r in regions}

    def encode(picture: np.ndarray) -> str:
        return _encode(picture, image_format, quality, "render_case_images")

    img = _as_rgb_uint8(rgb)
    height, width = img.shape[:2]
    main_map = _as_map(maps[layer], f"map of {layer!r}")

    def drawn_overlay(th: int, tw: int) -> tuple[np.ndarray, np.ndarray]:
        """The image at ``th`` x ``tw`` and its overlay, with the regions and the peak."""
        thumb = _resize(img, th, tw, enlarge=cv2.INTER_NEAREST)
        sx, sy = tw / width, th / height
        out = _blend(thumb, _resize(main_map, th, tw), alpha)
        _draw_regions(out, regions, sx, sy, labels=True)
        if peak is not None:
            _draw_peak(out, (int(peak[0]), int(peak[1])), sx, sy)
        return thumb, out

    thumb, main = drawn_overlay(*thumbnail_size(height, width, max_side, min_side))
    images: dict[str, Any] = {"original": encode(thumb), "overlay": encode(main), "strip": []}

    if len(maps) > 1:
        sh, sw = thumbnail_size(height, width, strip_side, strip_side * 3 // 4)
        small = _resize(img, sh, sw, enlarge=cv2.INTER_NEAREST)
        ssx, ssy = sw / width, sh / height
        for name, cam in maps.items():
            tile = _blend(small, _resize(_as_map(cam, f"map of {name!r}"), sh, sw), alpha)
            _draw_regions(tile, regions, ssx, ssy, labels=False)
            images["strip"].append({"layer": str(name), "image": encode(tile)})

    if full_image:
        # the image's own resolution (tiny images enlarged as for the card)
        full_side = max(height, width, min_side)
        _, full = drawn_overlay(*thumbnail_size(height, width, full_side, min_side))
        images["full"] = encode(full)
    return images
