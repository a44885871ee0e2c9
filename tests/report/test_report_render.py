"""The pictures of one case: PNG encoding, the overlay, boxes, masks, the peak, the strip."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from pytest_camcheck.errors import DataError, LayerNotFoundError
from pytest_camcheck.regions import Region
from pytest_camcheck.report.render import (
    PEAK_COLOUR,
    REGION_COLOURS,
    encode_png_b64,
    overlay,
    render_case_images,
    thumbnail_size,
)


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


def test_images_are_pngs_no_larger_than_256_with_a_strip_per_layer(rh) -> None:
    rgb = grey(300, 480)
    maps = {
        "layer4": rh.blob(300, 480, 100, 300),
        "layer3": rh.blob(300, 480, 50, 50),
        "layer2": np.zeros((300, 480)),
    }
    images = render_case_images(rgb, maps, "layer4", {}, (100, 300))
    assert set(images) == {"original", "overlay", "strip"}
    original = rh.decode_b64_png(images["original"])
    main = rh.decode_b64_png(images["overlay"])
    assert original.shape == main.shape == (160, 256, 3)
    assert [tile["layer"] for tile in images["strip"]] == ["layer4", "layer3", "layer2"]
    for tile in images["strip"]:
        small = rh.decode_b64_png(tile["png"])
        assert max(small.shape[:2]) <= 128
        assert small.shape[:2] == (80, 128)


def test_one_map_gives_no_strip(rh) -> None:
    images = render_case_images(grey(40, 40), {"layer4": rh.blob(40, 40, 5, 5)}, "layer4")
    assert images["strip"] == []


def test_the_overlay_shows_the_map_of_the_chosen_layer(rh) -> None:
    maps = {"a": rh.blob(200, 200, 30, 30, 15), "b": rh.blob(200, 200, 170, 170, 15)}
    over_a = rh.decode_b64_png(render_case_images(grey(200, 200), maps, "a")["overlay"])
    over_b = rh.decode_b64_png(render_case_images(grey(200, 200), maps, "b")["overlay"])
    # red channel is highest where the map is: near (30, 30) for "a", near (170, 170) for "b"
    assert over_a[30, 30, 0] > over_a[170, 170, 0] + 40
    assert over_b[170, 170, 0] > over_b[30, 30, 0] + 40


def test_a_box_is_outlined_exactly_on_its_border_pixels() -> None:
    # no downscaling: image 160 x 200, box (20, 30, 80, 90) covers cols 20..79, rows 30..89
    img, cam = grey(160, 200), np.zeros((160, 200))
    region = Region.from_box("head", (20, 30, 80, 90))
    main = render_case_images(img, {"l": cam}, "l", {"head": region})
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
    out = _decode(render_case_images(img, {"l": cam}, "l", [region])["overlay"])
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
    out = _decode(render_case_images(img, {"l": cam}, "l", regions)["overlay"])
    drawn = pixels_of(out, REGION_COLOURS[1])  # the second region's colour
    assert drawn.sum() > 0.8 * 2 * np.pi * 20  # about the circle's perimeter
    ys, xs = np.nonzero(drawn)
    radius = np.hypot(ys - 50, xs - 60)
    assert radius.min() >= 18.5 and radius.max() <= 21.5, "drawn pixels lie on the boundary"


def test_the_peak_is_marked_at_its_pixel_also_after_downscaling() -> None:
    img, cam = grey(200, 200), np.zeros((200, 200))
    out = _decode(render_case_images(img, {"l": cam}, "l", None, (120, 150))["overlay"])
    magenta = pixels_of(out, PEAK_COLOUR)
    assert magenta[120, 150], "the peak pixel itself is on the cross"
    ys, xs = np.nonzero(magenta)
    assert abs(ys.mean() - 120) < 1.5 and abs(xs.mean() - 150) < 1.5  # centred on it

    big, big_cam = grey(512, 1024), np.zeros((512, 1024))
    out = _decode(render_case_images(big, {"l": big_cam}, "l", None, (256, 768))["overlay"])
    assert out.shape[:2] == (128, 256)
    assert pixels_of(out, PEAK_COLOUR)[64, 192], "peak (256, 768) / 4 -> (64, 192)"


def test_no_peak_draws_no_marker() -> None:
    out = _decode(render_case_images(grey(50, 50), {"l": np.zeros((50, 50))}, "l")["overlay"])
    assert not pixels_of(out, PEAK_COLOUR).any()


def test_the_original_is_the_image_without_drawings(rh) -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(200, 160, 3), dtype=np.uint8)
    region = Region.from_box("head", (4, 4, 30, 30))
    images = render_case_images(img, {"l": rh.blob(200, 160, 5, 5)}, "l", [region], (5, 5))
    np.testing.assert_array_equal(rh.decode_b64_png(images["original"]), img)


def test_a_tiny_image_is_enlarged_with_crisp_pixels_and_its_drawings_follow(rh) -> None:
    rng = np.random.default_rng(4)
    img = rng.integers(0, 200, size=(32, 32, 3), dtype=np.uint8)
    maps = {"a": np.zeros((32, 32)), "b": np.zeros((32, 32))}
    region = Region.from_box("head", (8, 8, 16, 16))
    images = render_case_images(img, maps, "a", [region], (20, 24))
    original = rh.decode_b64_png(images["original"])
    np.testing.assert_array_equal(original, np.repeat(np.repeat(img, 6, axis=0), 6, axis=1))
    out = rh.decode_b64_png(images["overlay"])
    white = pixels_of(out, REGION_COLOURS[0])
    rows, cols = np.nonzero(white)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (48, 95, 48, 95)  # 6 x the box
    magenta = pixels_of(out, PEAK_COLOUR)
    assert magenta[20 * 6 + 3, 24 * 6 + 3], "the peak marks the centre of its 6 x 6 block"
    tiles = [rh.decode_b64_png(t["png"]) for t in images["strip"]]
    assert [t.shape for t in tiles] == [(96, 96, 3), (96, 96, 3)]  # 3 x, towards 3/4 of 128


def test_strip_tiles_outline_the_regions(rh) -> None:
    img = grey(256, 256)
    maps = {"a": np.zeros((256, 256)), "b": np.zeros((256, 256))}
    region = Region.from_box("head", (64, 64, 192, 192))
    images = render_case_images(img, maps, "a", [region], (10, 10))
    for tile in images["strip"]:
        small = rh.decode_b64_png(tile["png"])
        assert small.shape[:2] == (128, 128)
        white = pixels_of(small, REGION_COLOURS[0])
        assert white[32, 32:96].all() and white[32:96, 32].all()
        assert not pixels_of(small, PEAK_COLOUR).any(), "the peak is only on the main overlay"


def test_unicode_region_names_and_boxes_outside_the_image_do_not_break_drawing() -> None:
    regions = [
        Region.from_box("tête ✓", (5, 5, 20, 20)),
        Region.from_box("gone", (500, 500, 600, 600)),  # clipped away entirely
    ]
    images = render_case_images(grey(40, 40), {"l": np.zeros((40, 40))}, "l", regions)
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


def _decode(b64: str) -> np.ndarray:
    raw = base64.b64decode(b64)
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
