"""Hostile inputs to the data package: each is refused with one line naming the sample and the
file, or handled the way a careful user expects (16-bit images, v1 transforms, symlink loops)."""

from __future__ import annotations

import json
import os
import struct
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image, ImageDraw
from torchvision.transforms import v2

from pytest_camcheck.data import build_dataset, list_images, load_image, resolve_transform
from pytest_camcheck.data.readers.masks import read_masks
from pytest_camcheck.errors import CamcheckError, ConfigError, DataError
from pytest_camcheck.regions import Box, Region

CSV_HEADER = "image,label,region,x0,y0,x1,y1\n"


def write_image(path: Path, size: tuple[int, int] = (32, 24), color=(0, 0, 255)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def one_line(exc: BaseException) -> str:
    """The exception's message, checked to be a single line without a chained traceback."""
    text = str(exc)
    assert "\n" not in text, text
    chained = exc.__cause__ is not None or (
        exc.__context__ is not None and not exc.__suppress_context__
    )
    assert not chained, "a chained traceback would be shown"
    return text


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """data/<cls>/<cls>_<i>.png, 32x24 each, in a project folder."""
    for cls in ("cat", "dog"):
        for i in range(2):
            write_image(tmp_path / "data" / cls / f"{cls}_{i}.png")
    return tmp_path / "data"


# ------------------------------------------------------------------ 1. annotations = images


def test_the_image_folder_given_as_annotations_is_refused(folder: Path):
    with pytest.raises(DataError) as info:
        build_dataset(folder, annotations=folder, rootdir=folder.parent)
    text = one_line(info.value)
    assert "annotations point at the images" in text
    assert "is the dataset folder itself" in text
    assert "*.csv" in text and "COCO" in text and "VOC" in text  # what to pass instead


def test_a_folder_above_the_images_given_as_annotations_is_refused(folder: Path):
    with pytest.raises(DataError, match=r"annotations point at the images.*holds the dataset"):
        build_dataset(folder, annotations=folder.parent, rootdir=folder.parent)


def test_a_mask_that_links_to_its_own_image_is_refused(folder: Path):
    masks = folder.parent / "masks"
    (masks / "cat").mkdir(parents=True)
    os.symlink(folder / "cat" / "cat_0.png", masks / "cat" / "cat_0.png")
    with pytest.raises(DataError, match=r"annotations point at the images.*'cat/cat_0.png'"):
        build_dataset(folder, annotations=masks, rootdir=folder.parent)


def test_voc_files_next_to_their_images_are_still_accepted(tmp_path: Path):
    root = tmp_path / "data"
    write_image(root / "a.jpg")
    (root / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>32</width><height>24</height>"
        "</size><object><name>head</name><bndbox><xmin>3</xmin><ymin>3</ymin><xmax>10</xmax>"
        "<ymax>10</ymax></bndbox></object></annotation>"
    )
    ds = build_dataset(root, annotations=root, rootdir=tmp_path)
    assert ds.region_names(0) == ["head"]


def test_separate_mask_folder_still_works(folder: Path):
    masks = folder.parent / "masks" / "cat"
    masks.mkdir(parents=True)
    mask = np.zeros((24, 32), dtype=np.uint8)
    mask[4:10, 5:12] = 255
    Image.fromarray(mask).save(masks / "cat_0.png")
    found = read_masks(folder.parent / "masks", build_dataset(folder).images)
    assert list(found) == ["cat/cat_0.png"]


# ------------------------------------------------------------------ 2. high bit depth


def test_16_bit_png_keeps_its_brightness(tmp_path: Path):
    values = np.array([[0, 16384, 32768], [49152, 65535, 257]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"
    img = load_image(tmp_path / "g16.png")
    assert img.mode == "RGB"
    got = np.asarray(img)
    expected = np.rint(values / 65535.0 * 255.0).astype(np.uint8)
    assert (got == expected[..., None]).all()


def test_32_bit_integer_tiff_in_16_bit_range_is_scaled_by_65535(tmp_path: Path):
    values = np.array([[0, 32768], [65535, 1000]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i32.tif")
    got = np.asarray(load_image(tmp_path / "i32.tif"))[..., 0]
    assert got.tolist() == np.rint(values / 65535.0 * 255).astype(int).tolist()


def test_32_bit_integer_tiff_out_of_range_is_min_max_scaled(tmp_path: Path):
    values = np.array([[-100, 0], [100, 300]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i32.tif")
    got = np.asarray(load_image(tmp_path / "i32.tif"))[..., 0]
    assert got.tolist() == [[0, 64], [128, 255]]


def test_float_tiff_in_unit_range_is_kept(tmp_path: Path):
    values = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    with Image.open(tmp_path / "f.tif") as im:
        assert im.mode == "F"
    got = np.asarray(load_image(tmp_path / "f.tif"))
    assert got[..., 0].tolist() == [[0, 64], [128, 255]]
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 0] == got[..., 2]).all()


def test_float_tiff_out_of_range_is_min_max_scaled_and_nan_is_black(tmp_path: Path):
    values = np.array([[-2.0, 0.0], [2.0, np.nan]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    got = np.asarray(load_image(tmp_path / "f.tif"))[..., 0]
    assert got.tolist() == [[0, 128], [255, 0]]


def test_a_16_bit_dataset_is_neither_white_nor_black(tmp_path: Path):
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (24, 1))
    (tmp_path / "data").mkdir()
    Image.fromarray(ramp).save(tmp_path / "data" / "ramp.png")
    ds = build_dataset(
        tmp_path / "data",
        transform=v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]),
    )
    x = ds[0].image
    assert 0.45 < float(x.mean()) < 0.55
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0


# ------------------------------------------------------------------ 3. torchvision v1


def _object_image() -> tuple[Image.Image, Box]:
    """A 200x100 black image with a white 50x50 square, and the square's box."""
    img = Image.new("RGB", (200, 100))
    ImageDraw.Draw(img).rectangle([75, 25, 124, 74], fill=(255, 255, 255))
    return img, Box(75, 25, 125, 75)


def _object_extent(x: torch.Tensor) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the pixels brighter than half, in the transformed image."""
    on = (x[0] > 0.5).numpy()
    rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] + 1), int(rows[-1] + 1)


def test_v1_compose_moves_the_box_exactly_where_the_object_lands():
    img, box = _object_image()
    paired = resolve_transform(T.Compose([T.Resize(64), T.CenterCrop(48), T.ToTensor()]))
    assert paired.kind == "v2" and "torchvision v1" in paired.name
    x, regions = paired(img, {"obj": Region("obj", (box,))}, "s")
    assert tuple(x.shape) == (3, 48, 48)
    # Resize(64): 200x100 -> 128x64 (x0.64); CenterCrop(48): offsets (40, 8)
    (got,) = regions["obj"].boxes
    assert got.as_tuple() == pytest.approx((8.0, 8.0, 40.0, 40.0), abs=1e-4)
    assert _object_extent(x) == (8, 8, 40, 40)


def test_v1_flip_and_normalize_move_the_box_and_keep_the_values():
    img, box = _object_image()
    v1 = T.Compose(
        [
            T.Resize(64),
            T.RandomHorizontalFlip(p=1.0),
            T.ToTensor(),
            T.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    x, regions = resolve_transform(v1)(img, {"obj": Region("obj", (box,))}, "s")
    (got,) = regions["obj"].boxes
    # 128x64 after the resize; the square spans x 48..80, flipped to 48..80 around 64
    assert got.as_tuple() == pytest.approx((48.0, 16.0, 80.0, 48.0), abs=1e-4)
    assert torch.allclose(x, v1(img), atol=1e-6)  # the same pixels as torchvision v1 gives


def test_a_single_v1_transform_and_a_spec_are_converted(tmp_path: Path, monkeypatch):
    (tmp_path / "tfmod.py").write_text(
        "import torchvision.transforms as T\n"
        "pipeline = T.Compose([T.Resize(64), T.CenterCrop(48), T.ToTensor()])\n"
    )
    paired = resolve_transform("tfmod:pipeline", rootdir=tmp_path)
    monkeypatch.delitem(sys.modules, "tfmod", raising=False)
    assert paired.kind == "v2" and paired.name.startswith("tfmod:pipeline")
    img, box = _object_image()
    _, regions = paired(img, {"obj": Region("obj", (box,))}, "s")
    assert regions["obj"].boxes[0].as_tuple() == pytest.approx((8, 8, 40, 40), abs=1e-4)
    assert isinstance(resolve_transform(T.CenterCrop(10)).fn, v2.CenterCrop)


def test_the_image_classification_preset_is_converted():
    from torchvision.models import ResNet18_Weights

    preset = ResNet18_Weights.DEFAULT.transforms()
    paired = resolve_transform(preset)
    img, box = _object_image()
    x, regions = paired(img, {"obj": Region("obj", (box,))}, "s")
    assert tuple(x.shape) == (3, 224, 224)
    assert torch.allclose(x, preset(img), atol=1e-5)
    # Resize(256): 512x256 (x2.56); CenterCrop(224): offsets (144, 16)
    (got,) = regions["obj"].boxes
    assert got.as_tuple() == pytest.approx((48.0, 48.0, 176.0, 176.0), abs=1e-3)


def test_a_v1_lambda_that_resizes_is_refused_when_there_are_boxes():
    img, box = _object_image()
    paired = resolve_transform(T.Compose([T.Lambda(lambda im: im.resize((50, 50))), T.ToTensor()]))
    with pytest.raises(ConfigError) as info:
        paired(img, {"obj": Region("obj", (box,))}, "s1")
    text = one_line(info.value)
    assert "sample 's1'" in text and "Lambda" in text and "200x100 to 50x50" in text
    assert "v2" in text
    # without regions there is nothing to follow
    assert tuple(paired(img, {}, "s2")[0].shape) == (3, 50, 50)


def test_a_v1_lambda_that_keeps_the_size_runs_on_the_image_only():
    img, box = _object_image()
    paired = resolve_transform(T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 0.5)]))
    x, regions = paired(img, {"obj": Region("obj", (box,))}, "s")
    assert float(x.max()) == pytest.approx(0.5)
    assert regions["obj"].boxes == (box,)


@pytest.mark.parametrize("bad", [T.FiveCrop(10), T.Compose([T.TenCrop(10), T.ToTensor()])])
def test_v1_transforms_giving_several_images_are_refused(bad):
    with pytest.raises(ConfigError, match=r"several images.*torchvision.transforms.v2"):
        resolve_transform(bad)


# ------------------------------------------------------------------ 4. declared sizes


def _voc(filename: str, size: tuple[int, int]) -> str:
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height></size><object><name>head</name><bndbox><xmin>3</xmin>"
        "<ymin>3</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object></annotation>"
    )


def test_voc_size_differing_from_the_image_names_file_image_and_sizes(folder: Path):
    xmls = folder.parent / "xmls"
    xmls.mkdir()
    (xmls / "cat_0.xml").write_text(_voc("cat_0.png", (64, 48)))
    (xmls / "dog_1.xml").write_text(_voc("dog_1.png", (32, 24)))
    ds = build_dataset(folder, annotations=xmls, rootdir=folder.parent)
    with pytest.raises(DataError) as info:
        ds[ds.index_of("cat/cat_0")]
    text = one_line(info.value)
    assert "sample 'cat/cat_0'" in text and "cat_0.xml" in text
    assert str(folder / "cat" / "cat_0.png") in text
    assert "64x48" in text and "32x24" in text
    assert ds[ds.index_of("dog/dog_1")].regions["head"]  # a matching size loads
    with pytest.raises(DataError, match=r"cat_0.xml.*64x48.*32x24"):
        ds.check_images()


def test_coco_size_differing_from_the_image_names_the_entry(folder: Path):
    doc = {
        "images": [
            {"id": 1, "file_name": "cat/cat_0.png", "width": 32, "height": 24},
            {"id": 2, "file_name": "dog/dog_0.png", "width": 24, "height": 32},
        ],
        "annotations": [{"id": 9, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "head"}],
    }
    (folder.parent / "coco.json").write_text(json.dumps(doc))
    ds = build_dataset(folder, annotations=folder.parent / "coco.json", rootdir=folder.parent)
    ds[ds.index_of("cat/cat_0")]
    with pytest.raises(DataError) as info:
        ds[ds.index_of("dog/dog_0")]
    text = one_line(info.value)
    assert "coco.json: images[1]" in text and "dog_0.png" in text
    assert "24x32" in text and "32x24" in text


# ------------------------------------------------------------------ 5. empty regions


def test_zero_area_box_names_the_sample_and_the_csv_line(folder: Path):
    csv = folder.parent / "ann.csv"
    csv.write_text(CSV_HEADER + "cat/cat_0.png,cat,head,5,5,12,9\ncat/cat_1.png,cat,head,5,7,9,7\n")
    ds = build_dataset(folder, annotations=csv, rootdir=folder.parent)
    ds[0]
    with pytest.raises(DataError) as info:
        ds[1]
    text = one_line(info.value)
    assert "sample 'cat/cat_1'" in text and "'head'" in text and "zero height" in text
    assert f"{csv}:3" in text
    with pytest.raises(DataError, match=r"cat/cat_1.*zero height"):
        ds.check_images()


def test_empty_mask_names_the_sample_and_the_mask_file(folder: Path):
    masks = folder.parent / "masks" / "cat"
    masks.mkdir(parents=True)
    Image.fromarray(np.zeros((24, 32), dtype=np.uint8)).save(masks / "cat_0.png")
    ds = build_dataset(folder, annotations=folder.parent / "masks", rootdir=folder.parent)
    with pytest.raises(DataError) as info:
        ds[0]
    text = one_line(info.value)
    assert "sample 'cat/cat_0'" in text and "empty mask" in text
    assert str(masks / "cat_0.png") in text


def test_coco_segmentation_covering_no_pixel_names_the_annotation(folder: Path):
    doc = {
        "images": [{"id": 1, "file_name": "cat/cat_0.png", "width": 32, "height": 24}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 1.2, 1, 1.2, 1.2]]}
        ],
        "categories": [{"id": 1, "name": "head"}],
    }
    (folder.parent / "coco.json").write_text(json.dumps(doc))
    ds = build_dataset(folder, annotations=folder.parent / "coco.json", rootdir=folder.parent)
    with pytest.raises(DataError, match=r"sample 'cat/cat_0'.*empty mask.*annotations\[0\]"):
        ds[0]


def test_factory_zero_area_box_names_the_item():
    class Items:
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int):
            return Image.new("RGB", (20, 20)), 0, {"head": (4, 4, 4, 9)}

    ds = build_dataset(Items())
    with pytest.raises(DataError, match=r"sample '00000'.*'head'.*zero width.*item 0"):
        ds[0]


def test_a_region_the_transform_crops_away_names_the_sample(folder: Path):
    csv = folder.parent / "ann.csv"
    csv.write_text(CSV_HEADER + "cat/cat_0.png,cat,corner,0,0,4,4\n")
    crop = v2.Compose([v2.ToImage(), v2.CenterCrop(12), v2.ToDtype(torch.float32, scale=True)])
    ds = build_dataset(folder, annotations=csv, transform=crop, rootdir=folder.parent)
    with pytest.raises(DataError) as info:
        ds[0]
    text = one_line(info.value)
    assert "sample 'cat/cat_0'" in text and "'corner'" in text and "covers no pixel" in text


# ------------------------------------------------------------------ 6. box outside the image


def test_box_outside_names_sample_region_box_and_line(folder: Path):
    csv = folder.parent / "ann.csv"
    csv.write_text(
        CSV_HEADER + "dog/dog_1.png,dog,head,3,4,5,6\ndog/dog_1.png,dog,head,20,5,40,9\n"
    )
    ds = build_dataset(folder, annotations=csv, rootdir=folder.parent)
    with pytest.raises(DataError) as info:
        ds[ds.index_of("dog/dog_1")]
    text = one_line(info.value)
    assert "sample 'dog/dog_1'" in text and "'head'" in text
    assert "Box(x0=20, y0=5, x1=40, y1=9)" in text and "32x24" in text
    assert f"{csv}:3" in text


# ------------------------------------------------------------------ 7. unreadable images


def _bomb_png(path: Path, side: int = 20000) -> None:
    """A tiny PNG whose header declares side x side pixels (PIL refuses it on open)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_one_line_naming_the_file(folder: Path):
    bomb = folder / "cat" / "cat_1.png"
    _bomb_png(bomb)
    ds = build_dataset(folder, rootdir=folder.parent)
    with pytest.raises(DataError) as info:
        ds[1]
    text = one_line(info.value)
    assert str(bomb) in text and "too large to decode safely" in text
    assert ds[0].image.shape[0] == 3  # the other samples load
    with pytest.raises(DataError, match="too large"):
        ds.check_images()


def test_decompression_bomb_warning_turned_error_is_a_data_error(tmp_path: Path, monkeypatch):
    path = write_image(tmp_path / "big.png", (40, 30))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1200 pixels: PIL only warns
    with pytest.raises(DataError) as info:  # pytest's filterwarnings = error makes it raise
        load_image(path)
    assert "too large to decode safely" in one_line(info.value)


def test_truncated_image_is_one_line_naming_the_file(folder: Path):
    bad = folder / "dog" / "dog_0.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:-60])
    with pytest.raises(DataError) as info:
        load_image(bad)
    text = one_line(info.value)
    assert str(bad) in text and "truncated" in text


def test_garbage_image_is_one_line_naming_the_file(tmp_path: Path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(64))
    with pytest.raises(DataError) as info:
        load_image(bad)
    assert str(bad) in one_line(info.value)


# ------------------------------------------------------------------ 8. transform output shape


def _hwc(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)


def _gray(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[None]


def test_a_channels_last_transform_is_refused_naming_the_sample(folder: Path):
    ds = build_dataset(folder, transform=_hwc, rootdir=folder.parent)
    with pytest.raises(DataError) as info:
        ds[2]
    text = one_line(info.value)
    assert "sample 'dog/dog_0'" in text and "(24, 32, 3)" in text
    assert "(H, W, C)" in text and "(C, H, W)" in text


def test_a_one_channel_transform_is_left_alone(folder: Path):
    ds = build_dataset(folder, transform=_gray, rootdir=folder.parent)
    assert tuple(ds[0].image.shape) == (1, 24, 32)


def test_a_channels_last_factory_tensor_is_refused():
    class Items:
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int):
            return torch.zeros(24, 32, 3), 0

    with pytest.raises(DataError, match=r"item 0.*\(24, 32, 3\).*\(H, W, C\).*permute"):
        build_dataset(Items())[0]


# ------------------------------------------------------------------ 9. symbolic links


def test_symlink_loops_are_ignored_and_each_real_file_listed_once(folder: Path, tmp_path: Path):
    os.symlink(folder, folder / "cat" / "up")  # a loop back to the root
    os.symlink(folder / "dog", folder / "dog" / "self")  # a loop to itself
    os.symlink(folder / "cat", folder / "kitty")  # a second name for a class folder
    os.symlink(folder / "cat" / "cat_0.png", folder / "dog" / "alias.png")  # a linked file
    outside = tmp_path / "elsewhere"
    write_image(outside / "bird.png")
    os.symlink(outside, folder / "dog" / "more")  # a folder outside the root: followed
    assert list_images(folder) == [
        "cat/cat_0.png",
        "cat/cat_1.png",
        "dog/dog_0.png",
        "dog/dog_1.png",
        "dog/more/bird.png",
    ]


def test_a_loop_at_the_root_is_not_a_class(folder: Path):
    os.symlink(folder, folder / "again")
    ds = build_dataset(folder, rootdir=folder.parent)
    assert len(ds) == 4
    assert ds.class_names == ["cat", "dog"]


def test_a_linked_class_folder_outside_the_root_is_listed(tmp_path: Path):
    write_image(tmp_path / "store" / "birds" / "b.png")
    write_image(tmp_path / "data" / "cat" / "c.png")
    os.symlink(tmp_path / "store" / "birds", tmp_path / "data" / "bird")
    ds = build_dataset(tmp_path / "data", rootdir=tmp_path)
    assert ds.ids == ["bird/b", "cat/c"] and ds.class_names == ["bird", "cat"]


# ------------------------------------------------------------------ 10. factories that raise


def _write_factory(tmp_path: Path, body: str) -> None:
    (tmp_path / "facmod.py").write_text(textwrap.dedent(body))


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch):
    monkeypatch.delitem(sys.modules, "facmod", raising=False)
    yield tmp_path
    sys.modules.pop("facmod", None)


def test_a_raising_factory_is_one_paragraph_with_the_users_frames(factory_module: Path):
    _write_factory(
        factory_module,
        """
        import torch


        def load_split():
            return torch.cat([torch.zeros(2, 3), torch.zeros(2, 4)])


        def build():
            return load_split()
        """,
    )
    with pytest.raises(DataError) as info:
        build_dataset("facmod:build", rootdir=factory_module)
    text = one_line(info.value)
    assert text.startswith("dataset 'facmod:build': the factory raised RuntimeError: ")
    assert "facmod.py:10 in build" in text and "facmod.py:6 in load_split" in text
    assert "torch/" not in text and "site-packages" not in text and "pytest_camcheck" not in text
    assert len(text) < 800


def test_a_deep_factory_traceback_keeps_five_frames_and_the_first_line(factory_module: Path):
    _write_factory(
        factory_module,
        """
        def down(n):
            if n == 0:
                raise ValueError("bad split\\n" + "detail line\\n" * 500)
            return down(n - 1)


        def build():
            return down(30)
        """,
    )
    with pytest.raises(CamcheckError) as info:
        build_dataset("facmod:build", rootdir=factory_module)
    text = one_line(info.value)
    assert "ValueError: bad split" in text and "detail line" not in text
    assert text.count("facmod.py:") == 5


def test_a_dataset_item_that_raises_is_one_line_with_the_users_frame():
    class Items:
        ids = ("a",)

        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int):
            return {}["missing"]

    ds = build_dataset(Items())
    with pytest.raises(DataError) as info:
        ds[0]
    text = one_line(info.value)
    assert "loading item 0 raised KeyError: 'missing'" in text
    assert "test_data_hardening.py:" in text and "in __getitem__" in text


def test_a_dataset_whose_len_raises_is_one_line():
    class Items:
        def __len__(self) -> int:
            raise RuntimeError("index file missing\nsecond line")

        def __getitem__(self, i: int):
            raise AssertionError("not reached")

    with pytest.raises(DataError) as info:
        build_dataset(Items())
    text = one_line(info.value)
    assert "len() of the dataset raised RuntimeError: index file missing" in text
    assert "in __len__" in text and "second line" not in text
