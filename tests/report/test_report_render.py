"""The pictures of one case: encoding (PNG, WebP, JPEG), the overlay, boxes, masks, the peak,
the strip, the full-resolution overlay, and how crisp the drawings stay through lossy encoding.

The drawing tests render with ``image_format="png"`` so that every pixel can be checked exactly;
the encoding tests check what the lossy default does to those drawings on real photos.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest
import skimage.data

from pytest_camcheck.errors import DataError, LayerNotFoundError
from pytest_camcheck.regions import Region
from pytest_camcheck.report import render
from pytest_camcheck.report.render import (
    PEAK_COLOUR,
    REGION_COLOURS,
    encode_image_b64,
    encode_png_b64,
    overlay,
    render_case_images,
    thumbnail_size,
)

PNG = {"image_format": "png"}  # lossless: the drawing tests check exact pixels


def pixels_of(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """Boolean mask of the pixels that have exactly ``colour``."""
    return np.all(img == np.asarray(colour, np.uint8), axis=2)


def grey(height: int, width: int, value: int = 90) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


# ---------------------------------------------------------------- encode_png_b64


def test_png_round_trip_keeps_pixels_and_rgb_order(rh) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)  # pure red must stay red (RGB in, RGB out)
    b64 = encode_png_b64(img)
    assert base64.b64decode(b64).startswith(rh.PNG_SIGNATURE)
    back = rh.decode_b64_png(b64)
    np.testing.assert_array_equal(back, img)
    assert tuple(back[0, 0]) == (255, 0, 0)


def test_png_of_a_grey_image() -> None:
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw = base64.b64decode(encode_png_b64(img))
    back = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize(
    ("img", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "shape|\\(H, W"),
    ],
)
def test_png_rejects_what_it_cannot_encode(img: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        encode_png_b64(img)


@pytest.mark.parametrize(
    ("image_format", "magic"),
    [("webp", b"RIFF"), ("jpeg", b"\xff\xd8\xff"), ("png", b"\x89PNG")],
)
def test_each_format_writes_its_own_file_in_rgb_order(image_format: str, magic: bytes) -> None:
    img = np.zeros((32, 48, 3), np.uint8)
    img[:, :16] = (230, 20, 20)  # red, green and blue thirds: must come back in that order
    img[:, 16:32] = (20, 230, 20)
    img[:, 32:] = (20, 20, 230)
    raw = base64.b64decode(encode_image_b64(img, image_format))
    assert raw.startswith(magic)
    back = _decode(encode_image_b64(img, image_format)).astype(int)
    assert back.shape == img.shape
    for col, colour in ((8, (230, 20, 20)), (24, (20, 230, 20)), (40, (20, 20, 230))):
        assert np.abs(back[16, col] - colour).max() <= 12, (image_format, back[16, col])


def test_lossy_quality_trades_size_for_fidelity() -> None:
    img = _photo(200, 300)
    sizes, errors = [], []
    for quality in (30, 80, 95):
        b64 = encode_image_b64(img, "webp", quality)
        sizes.append(len(b64))
        errors.append(np.abs(_decode(b64).astype(int) - img).mean())
    assert sizes[0] < sizes[1] < sizes[2]
    assert errors[0] > errors[1] > errors[2]
    # and a photo is far smaller than its PNG
    assert len(encode_image_b64(img)) * 5 < len(encode_png_b64(img))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_format": "gif"}, "unknown image format 'gif'; use one of webp, jpeg, png"),
        ({"quality": 0}, "quality must be a whole number in 1..100, got 0"),
        ({"quality": 80.5}, "quality must be a whole number in 1..100"),
        ({"quality": True}, "quality must be a whole number in 1..100"),
    ],
)
def test_unknown_formats_and_qualities_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        encode_image_b64(grey(4, 4), **kwargs)
    with pytest.raises(DataError, match=match):
        render_case_images(grey(4, 4), {"l": np.zeros((4, 4))}, "l", **kwargs)


def test_without_a_webp_encoder_the_pictures_are_jpeg(monkeypatch) -> None:
    monkeypatch.setattr(render, "_has_webp", lambda: False)
    raw = base64.b64decode(encode_image_b64(grey(8, 8)))
    assert raw.startswith(b"\xff\xd8\xff")


# ---------------------------------------------------------------- overlay


def test_overlay_blends_the_jet_colours_of_the_map() -> None:
    img = grey(10, 12, 100)
    cam = np.zeros((10, 12), np.float32)
    cam[:, 6:] = 1.0
    out = overlay(img, cam, alpha=0.5)
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    # JET: 0 -> dark blue (0, 0, 128), 1 -> dark red (128, 0, 0)
    np.testing.assert_allclose(out[0, 0], [50, 50, 114], atol=1)
    np.testing.assert_allclose(out[0, 11], [114, 50, 50], atol=1)


def test_overlay_alpha_limits_and_resizing() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    cam = rng.random((5, 6)).astype(np.float32)  # another size: resized to the image's
    np.testing.assert_array_equal(overlay(img, cam, alpha=0.0), img)
    heat = overlay(img, cam, alpha=1.0)
    assert heat.shape == img.shape
    assert not np.array_equal(heat, img)


def test_overlay_of_a_non_finite_map_shows_it_as_zero() -> None:
    img = grey(8, 8)
    cam = np.full((8, 8), np.nan, np.float32)
    np.testing.assert_array_equal(overlay(img, cam), overlay(img, np.zeros((8, 8))))


def test_overlay_accepts_float_images_and_rejects_bad_alpha() -> None:
    img = np.full((6, 6, 3), 0.5, np.float32)
    assert overlay(img, np.zeros((6, 6))).dtype == np.uint8
    with pytest.raises(ValueError, match="alpha"):
        overlay(img, np.zeros((6, 6)), alpha=1.5)


def test_the_drawing_colours_never_occur_in_an_overlay() -> None:
    # The design promise that makes outlines and the peak unmistakable: a JET heatmap blended
    # over any image never produces a region colour or the peak colour.
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    img[:64] = 255  # include white and saturated areas
    img[64:, :, 1] = 0
    cam = rng.random((128, 128)).astype(np.float32)
    out = overlay(img, cam)
    for colour in (*REGION_COLOURS, PEAK_COLOUR):
        assert not pixels_of(out, colour).any(), colour


# ---------------------------------------------------------------- render_case_images


def test_thumbnail_size_shrinks_large_and_enlarges_tiny_images_by_whole_factors() -> None:
    assert thumbnail_size(100, 200, 256) == (100, 200)
    assert thumbnail_size(300, 480, 256) == (160, 256)
    assert thumbnail_size(1000, 10, 256) == (256, 3)
    assert thumbnail_size(32, 32, 256, min_side=192) == (192, 192)
    assert thumbnail_size(48, 64, 256, min_side=192) == (144, 192)
    assert thumbnail_size(100, 120, 256, min_side=192) == (100, 120)  # 2 x would pass 192
    assert thumbnail_size(10, 10, 64, min_side=500) == (60, 60)  # never beyond max_side
    with pytest.raises(ValueError):
        thumbnail_size(10, 10, 0)


def test_images_are_webp_at_display_size_with_a_smaller_strip_per_layer(rh) -> None:
    rgb = grey(300, 480)
    maps = {
        "layer4": rh.blob(300, 480, 100, 300),
        "layer3": rh.blob(300, 480, 50, 50),
        "layer2": np.zeros((300, 480)),
    }
    images = render_case_images(rgb, maps, "layer4", {}, (100, 300))
    assert set(images) == {"original", "overlay", "strip"}, "no full-size overlay unless asked"
    for b64 in (images["original"], images["overlay"]):
        assert base64.b64decode(b64)[8:12] == b"WEBP"
    original = rh.decode_b64_image(images["original"])
    main = rh.decode_b64_image(images["overlay"])
    assert original.shape == main.shape == (160, 256, 3)
    assert [tile["layer"] for tile in images["strip"]] == ["layer4", "layer3", "layer2"]
    for tile in images["strip"]:
        assert base64.b64decode(tile["image"])[8:12] == b"WEBP"
        assert rh.decode_b64_image(tile["image"]).shape == (60, 96, 3)


def test_the_full_resolution_overlay_only_when_asked(rh) -> None:
    rgb = grey(300, 480)
    maps = {"a": rh.blob(300, 480, 100, 300, 60), "b": np.zeros((300, 480))}
    region = Region.from_box("head", (40, 30, 200, 150))
    images = render_case_images(rgb, maps, "a", [region], (100, 300), full_image=True, **PNG)
    full = rh.decode_b64_image(images["full"])
    assert full.shape == (300, 480, 3), "the image's own resolution"
    # drawn in the image's own pixels: the box outline at rows 30..149, cols 40..199
    rows, cols = np.nonzero(pixels_of(full, REGION_COLOURS[0]))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (30, 149, 40, 199)
    assert pixels_of(full, PEAK_COLOUR)[100, 300]
    # the heatmap is that of the card's layer: hottest (reddest) near the map's peak
    assert full[100, 330, 0] > full[250, 60, 0] + 40
    # the rest of the card is as without it
    plain = render_case_images(rgb, maps, "a", [region], (100, 300), **PNG)
    assert {k: v for k, v in images.items() if k != "full"} == plain
    # a tiny image is enlarged as on the card, and the default encoding is WebP
    tiny = render_case_images(grey(32, 24), {"l": np.zeros((32, 24))}, "l", full_image=True)
    assert base64.b64decode(tiny["full"])[8:12] == b"WEBP"
    assert rh.decode_b64_image(tiny["full"]).shape == (192, 144, 3)


def test_one_map_gives_no_strip(rh) -> None:
    images = render_case_images(grey(40, 40), {"layer4": rh.blob(40, 40, 5, 5)}, "layer4")
    assert images["strip"] == []


def test_the_overlay_shows_the_map_of_the_chosen_layer(rh) -> None:
    maps = {"a": rh.blob(200, 200, 30, 30, 15), "b": rh.blob(200, 200, 170, 170, 15)}
    over_a = rh.decode_b64_image(render_case_images(grey(200, 200), maps, "a")["overlay"])
    over_b = rh.decode_b64_image(render_case_images(grey(200, 200), maps, "b")["overlay"])
    # red channel is highest where the map is: near (30, 30) for "a", near (170, 170) for "b"
    assert over_a[30, 30, 0] > over_a[170, 170, 0] + 40
    assert over_b[170, 170, 0] > over_b[30, 30, 0] + 40


def test_a_box_is_outlined_exactly_on_its_border_pixels() -> None:
    # no downscaling: image 160 x 200, box (20, 30, 80, 90) covers cols 20..79, rows 30..89
    img, cam = grey(160, 200), np.zeros((160, 200))
    region = Region.from_box("head", (20, 30, 80, 90))
    main = render_case_images(img, {"l": cam}, "l", {"head": region}, **PNG)
    out = _decode(main["overlay"])
    white = pixels_of(out, REGION_COLOURS[0])
    border = np.zeros_like(white)
    border[30, 20:80] = border[89, 20:80] = True
    border[30:90, 20] = border[30:90, 79] = True
    assert white[border].all(), "every border pixel is drawn in the first region colour"
    inside = np.zeros_like(white)
    inside[32:88, 22:78] = True
    assert not white[inside].any(), "the inside of the box is left alone"
    # the name tag sits above the box: a dark patch ending just above row 30
    assert (out[20:29, 20:40] < 40).all(axis=2).sum() > 20


def test_boxes_scale_with_the_thumbnail() -> None:
    # 512 x 512 -> 256 x 256: box (100, 200, 300, 400) becomes (50, 100, 150, 200)
    img, cam = grey(512, 512), np.zeros((512, 512))
    region = Region.from_box("dog", (100, 200, 300, 400))
    out = _decode(render_case_images(img, {"l": cam}, "l", [region], **PNG)["overlay"])
    assert out.shape[:2] == (256, 256)
    white = pixels_of(out, REGION_COLOURS[0])
    rows, cols = np.nonzero(white)
    assert (rows.min(), rows.max()) == (100, 199)
    assert (cols.min(), cols.max()) == (50, 149)


def test_a_mask_region_is_drawn_as_its_contour() -> None:
    img, cam = grey(100, 100), np.zeros((100, 100))
    yy, xx = np.mgrid[:100, :100]
    disc = (yy - 50) ** 2 + (xx - 60) ** 2 <= 20**2
    regions = {
        "box": Region.from_box("box", (2, 2, 10, 10)),
        "disc": Region("disc", mask=disc),
    }
    out = _decode(render_case_images(img, {"l": cam}, "l", regions, **PNG)["overlay"])
    drawn = pixels_of(out, REGION_COLOURS[1])  # the second region's colour
    assert drawn.sum() > 0.8 * 2 * np.pi * 20  # about the circle's perimeter
    ys, xs = np.nonzero(drawn)
    radius = np.hypot(ys - 50, xs - 60)
    assert radius.min() >= 18.5 and radius.max() <= 21.5, "drawn pixels lie on the boundary"


def test_the_peak_is_marked_at_its_pixel_also_after_downscaling() -> None:
    img, cam = grey(200, 200), np.zeros((200, 200))
    out = _decode(render_case_images(img, {"l": cam}, "l", None, (120, 150), **PNG)["overlay"])
    magenta = pixels_of(out, PEAK_COLOUR)
    assert magenta[120, 150], "the peak pixel itself is on the cross"
    ys, xs = np.nonzero(magenta)
    assert abs(ys.mean() - 120) < 1.5 and abs(xs.mean() - 150) < 1.5  # centred on it

    big, big_cam = grey(512, 1024), np.zeros((512, 1024))
    out = _decode(render_case_images(big, {"l": big_cam}, "l", None, (256, 768), **PNG)["overlay"])
    assert out.shape[:2] == (128, 256)
    assert pixels_of(out, PEAK_COLOUR)[64, 192], "peak (256, 768) / 4 -> (64, 192)"


def test_no_peak_draws_no_marker() -> None:
    out = _decode(
        render_case_images(grey(50, 50), {"l": np.zeros((50, 50))}, "l", **PNG)["overlay"]
    )
    assert not pixels_of(out, PEAK_COLOUR).any()


def test_the_original_is_the_image_without_drawings(rh) -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(200, 160, 3), dtype=np.uint8)
    region = Region.from_box("head", (4, 4, 30, 30))
    images = render_case_images(img, {"l": rh.blob(200, 160, 5, 5)}, "l", [region], (5, 5), **PNG)
    np.testing.assert_array_equal(rh.decode_b64_png(images["original"]), img)


def test_a_tiny_image_is_enlarged_with_crisp_pixels_and_its_drawings_follow(rh) -> None:
    rng = np.random.default_rng(4)
    img = rng.integers(0, 200, size=(32, 32, 3), dtype=np.uint8)
    maps = {"a": np.zeros((32, 32)), "b": np.zeros((32, 32))}
    region = Region.from_box("head", (8, 8, 16, 16))
    images = render_case_images(img, maps, "a", [region], (20, 24), **PNG)
    original = rh.decode_b64_png(images["original"])
    np.testing.assert_array_equal(original, np.repeat(np.repeat(img, 6, axis=0), 6, axis=1))
    out = rh.decode_b64_png(images["overlay"])
    white = pixels_of(out, REGION_COLOURS[0])
    rows, cols = np.nonzero(white)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (48, 95, 48, 95)  # 6 x the box
    magenta = pixels_of(out, PEAK_COLOUR)
    assert magenta[20 * 6 + 3, 24 * 6 + 3], "the peak marks the centre of its 6 x 6 block"
    tiles = [rh.decode_b64_png(t["image"]) for t in images["strip"]]
    assert [t.shape for t in tiles] == [(64, 64, 3), (64, 64, 3)]  # 2 x, towards 3/4 of 96


def test_strip_tiles_outline_the_regions(rh) -> None:
    img = grey(256, 256)
    maps = {"a": np.zeros((256, 256)), "b": np.zeros((256, 256))}
    region = Region.from_box("head", (64, 64, 192, 192))
    images = render_case_images(img, maps, "a", [region], (10, 10), **PNG)
    for tile in images["strip"]:
        small = rh.decode_b64_png(tile["image"])
        assert small.shape[:2] == (96, 96)
        # the box (64, 64, 192, 192) at 96/256: (24, 24, 72, 72), outlined on rows/cols 24..71
        white = pixels_of(small, REGION_COLOURS[0])
        assert white[24, 24:72].all() and white[24:72, 24].all()
        assert white[71, 24:72].all() and not white[30:66, 30:66].any()
        assert not pixels_of(small, PEAK_COLOUR).any(), "the peak is only on the main overlay"


def test_unicode_region_names_and_boxes_outside_the_image_do_not_break_drawing() -> None:
    regions = [
        Region.from_box("tête ✓", (5, 5, 20, 20)),
        Region.from_box("gone", (500, 500, 600, 600)),  # clipped away entirely
    ]
    images = render_case_images(grey(40, 40), {"l": np.zeros((40, 40))}, "l", regions, **PNG)
    assert pixels_of(_decode(images["overlay"]), REGION_COLOURS[0]).any()


def test_an_unknown_layer_names_the_available_ones() -> None:
    maps = {"layer4": np.zeros((8, 8)), "layer3": np.zeros((8, 8))}
    with pytest.raises(LayerNotFoundError, match=r"'layer9'.*layer4, layer3"):
        render_case_images(grey(8, 8), maps, "layer9")


@pytest.mark.parametrize(
    "bad", [np.zeros((3, 8, 8), np.uint8), np.zeros((8,), np.uint8), np.zeros((8, 8, 2), np.uint8)]
)
def test_an_unusable_image_is_a_data_error(bad: np.ndarray) -> None:
    with pytest.raises(DataError, match="H, W, 3"):
        render_case_images(bad, {"l": np.zeros((8, 8))}, "l")


def test_an_unusable_map_is_a_data_error() -> None:
    with pytest.raises(DataError, match="map of 'l'"):
        render_case_images(grey(8, 8), {"l": np.zeros((2, 8, 8))}, "l")


# ---------------------------------------------------------------- lossy encoding keeps drawings


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@pytest.mark.parametrize("image_format", ["webp", "jpeg"])
@pytest.mark.parametrize("photo", PHOTOS)
def test_lossy_pictures_keep_outlines_peak_and_heatmap_crisp(photo: str, image_format) -> None:
    # a real photo, a smooth map, two boxes and the peak, rendered losslessly and lossily
    img = cv2.resize(getattr(skimage.data, photo)()[:300, :400, :3], (480, 360), cv2.INTER_AREA)
    yy, xx = np.mgrid[:360, :480]
    cam = np.exp(-((yy - 150) ** 2 + (xx - 200) ** 2) / (2 * 60.0**2))
    maps = {"l": cam, "m": cam[::-1]}
    regions = [
        Region.from_box("head", (120, 60, 330, 280)),
        Region.from_box("tail", (20, 20, 100, 120)),
    ]
    exact = render_case_images(img, maps, "l", regions, (150, 200), **PNG)
    lossy = render_case_images(img, maps, "l", regions, (150, 200), image_format=image_format)
    truth = _decode(exact["overlay"])
    seen = _decode(lossy["overlay"]).astype(int)
    brightness = seen.mean(axis=2)
    outline = pixels_of(truth, REGION_COLOURS[0])
    halo = pixels_of(truth, render._HALO)
    peak = pixels_of(truth, PEAK_COLOUR)
    assert outline.sum() > 400 and halo.sum() > 1000 and peak.sum() > 50
    # the white outline stays white, its dark halo dark: a crisp line on any photo
    assert np.percentile(brightness[outline], 1) >= 225 and brightness[outline].min() >= 200
    assert np.percentile(brightness[halo], 95) <= 50
    # the peak marker keeps its magenta (drawn 3 px wide so that 4:2:0 colour survives)
    red, green, blue = seen[peak].mean(axis=0)
    assert red >= 200 and blue >= 200 and green <= 45, (red, green, blue)
    # and the heatmap over the photo is faithful as a whole
    assert cv2.PSNR(truth, seen.astype(np.uint8)) >= 29
    for tile_exact, tile in zip(exact["strip"], lossy["strip"]):
        assert cv2.PSNR(_decode(tile_exact["image"]), _decode(tile["image"])) >= 27


def _photo(height: int, width: int) -> np.ndarray:
    return cv2.resize(skimage.data.astronaut()[:, :, :3], (width, height), cv2.INTER_AREA)


def _decode(b64: str) -> np.ndarray:
    raw = base64.b64decode(b64)
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
