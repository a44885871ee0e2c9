"""Annotation readers: VOC XML, COCO JSON, CSV and mask PNGs, and format detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_camcheck.data.annotations import ImageAnnotation
from pytest_camcheck.data.images import ImageIndex
from pytest_camcheck.data.readers import detect_format, read_annotations
from pytest_camcheck.data.readers.coco import rasterise_polygons, read_coco
from pytest_camcheck.data.readers.csvfile import read_csv
from pytest_camcheck.data.readers.masks import read_masks
from pytest_camcheck.data.readers.voc import read_voc
from pytest_camcheck.errors import DataError
from pytest_camcheck.regions import Box

IMAGES = ["cat/cat_001.jpg", "cat/cat_002.jpg", "dog/dog_001.png"]


def voc_xml(filename: str | None, objects: list[tuple], size: tuple[int, int] = (64, 48)) -> str:
    """A VOC XML document; objects are (name, (xmin, ymin, xmax, ymax), [parts])."""
    objs = []
    for name, (x0, y0, x1, y1), *rest in objects:
        parts = "".join(
            f"<part><name>{pn}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
            f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></part>"
            for pn, (a, b, c, d) in (rest[0] if rest else [])
        )
        objs.append(
            f"<object><name>{name}</name><pose>Frontal</pose><difficult>0</difficult>"
            f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
            f"</bndbox>{parts}</object>"
        )
    fn = "" if filename is None else f"<filename>{filename}</filename>"
    return (
        f"<annotation><folder>OXIIIT</folder>{fn}<size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{''.join(objs)}</annotation>"
    )


# ---------------------------------------------------------------------------- image index


def test_index_resolves_relative_paths_stems_and_bare_names():
    index = ImageIndex(IMAGES)
    assert index.find("cat/cat_001.jpg") == "cat/cat_001.jpg"
    assert index.find("./cat/cat_002.jpg") == "cat/cat_002.jpg"
    assert index.find("cat\\cat_002.jpg") == "cat/cat_002.jpg"
    assert index.find("dog/dog_001") == "dog/dog_001.png"
    assert index.find("dog_001.png") == "dog/dog_001.png"
    assert index.find("dog_001") == "dog/dog_001.png"
    assert index.find("dog_001", by_stem=False) is None
    assert index.find("bird.jpg") is None


def test_index_reports_ambiguous_names():
    index = ImageIndex(["a/x.jpg", "b/x.jpg"])
    with pytest.raises(DataError, match=r"'x.jpg' is ambiguous.*'a/x.jpg', 'b/x.jpg'"):
        index.find("x.jpg")
    with pytest.raises(DataError, match=r"ann.csv:3.*'bird.jpg'.*not in the dataset folder"):
        index.resolve("bird.jpg", "ann.csv:3")


# ---------------------------------------------------------------------------- VOC


def test_voc_reads_boxes_parts_and_merges_same_name(tmp_path: Path):
    xmls = tmp_path / "xmls"
    xmls.mkdir()
    # Oxford-IIIT Pet style: one head box named by species
    (xmls / "cat_001.xml").write_text(voc_xml("cat_001.jpg", [("cat", (11, 21, 30, 40))]))
    # two objects with the same name, one with a VOC person-layout part
    (xmls / "whatever.xml").write_text(
        voc_xml(
            "dog_001.png",
            [
                ("dog", (1, 1, 10, 10), [("head", (2, 2, 5.5, 6))]),
                ("dog", (20, 5, 40, 30)),
            ],
        )
    )
    found = read_voc(xmls, IMAGES)
    assert list(found) == ["cat/cat_001.jpg", "dog/dog_001.png"]
    cat = found["cat/cat_001.jpg"]
    assert cat.label is None
    assert cat.size == (64, 48)
    assert [r.name for r in cat.regions] == ["cat"]
    # 1-based inclusive (11..30) -> continuous [10, 30)
    assert cat.regions[0].boxes == (Box(10, 20, 30, 40),)
    dog = {r.name: r for r in found["dog/dog_001.png"].regions}
    assert set(dog) == {"dog", "head"}
    assert dog["dog"].boxes == (Box(0, 0, 10, 10), Box(19, 4, 40, 30))
    assert dog["head"].boxes == (Box(1, 1, 5.5, 6),)
    assert found["dog/dog_001.png"].sources == [str(xmls / "whatever.xml")]


def test_voc_box_covers_exactly_the_annotated_pixels():
    # VOC xmin=3..xmax=5 (1-based) are 0-based columns 2, 3, 4
    from pytest_camcheck.data.readers.voc import voc_box

    mask = voc_box(3, 1, 5, 2).mask(4, 8)
    assert np.flatnonzero(mask.any(axis=0)).tolist() == [2, 3, 4]
    assert np.flatnonzero(mask.any(axis=1)).tolist() == [0, 1]


def test_voc_matches_by_xml_stem_without_filename(tmp_path: Path):
    (tmp_path / "cat_002.xml").write_text(voc_xml(None, [("cat", (1, 1, 5, 5))]))
    found = read_voc(tmp_path, IMAGES)
    assert list(found) == ["cat/cat_002.jpg"]


def test_voc_missing_image_names_the_xml_and_the_image(tmp_path: Path):
    (tmp_path / "bird_9.xml").write_text(voc_xml("bird_9.jpg", [("bird", (1, 1, 5, 5))]))
    with pytest.raises(DataError) as info:
        read_voc(tmp_path, ImageIndex(IMAGES, root="/data/pets"))
    msg = str(info.value)
    assert "bird_9.xml" in msg and "'bird_9.jpg'" in msg and "/data/pets" in msg


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (voc_xml("cat_001.jpg", [("cat", (30, 1, 10, 5))]), r"<object> #1 \('cat'\): inverted"),
        ("<annotation><object><name>cat", r"cannot parse VOC annotation"),
        (
            "<annotation><filename>cat_001.jpg</filename><object><name>cat</name></object>"
            "</annotation>",
            r"has no <bndbox>",
        ),
        (
            voc_xml("cat_001.jpg", [("cat", (1, 1, 5, 5))]).replace("<xmax>5<", "<xmax>five<"),
            r"<xmax> is 'five', not a number",
        ),
        (
            "<annotation><filename>cat_001.jpg</filename><object><bndbox/></object></annotation>",
            r"has no <name>",
        ),
    ],
    ids=["inverted", "malformed", "no-bndbox", "not-a-number", "no-name"],
)
def test_voc_bad_files(tmp_path: Path, body: str, expected: str):
    (tmp_path / "cat_001.xml").write_text(body)
    with pytest.raises(DataError, match=expected) as info:
        read_voc(tmp_path, IMAGES)
    assert "cat_001.xml" in str(info.value)


# ---------------------------------------------------------------------------- COCO


def coco_doc(annotations: list[dict], images: list[dict] | None = None) -> dict:
    return {
        "images": images
        if images is not None
        else [
            {"id": 1, "file_name": "cat_001.jpg", "width": 20, "height": 10},
            {"id": 2, "file_name": "dog/dog_001.png", "width": 20, "height": 10},
        ],
        "annotations": annotations,
        "categories": [{"id": 7, "name": "head"}, {"id": 8, "name": "body"}],
    }


def test_coco_reads_boxes_and_keeps_images_without_annotations(tmp_path: Path):
    path = tmp_path / "ann.json"
    anns = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 3, 4.5, 5]},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [10, 0, 5, 5]},
        {"id": 3, "image_id": 1, "category_id": 8, "bbox": [0, 0, 20, 10]},
    ]
    path.write_text(json.dumps(coco_doc(anns)))
    found = read_coco(path, IMAGES)
    assert list(found) == ["cat/cat_001.jpg", "dog/dog_001.png"]
    cat = {r.name: r for r in found["cat/cat_001.jpg"].regions}
    assert cat["head"].boxes == (Box(2, 3, 6.5, 8), Box(10, 0, 15, 5))
    assert cat["body"].boxes == (Box(0, 0, 20, 10),)
    assert found["cat/cat_001.jpg"].size == (20, 10)
    assert found["dog/dog_001.png"].regions == []


def test_coco_polygon_segmentation_becomes_a_mask_at_image_size(tmp_path: Path):
    path = tmp_path / "ann.json"
    # a triangle and a rectangle polygon of the same category: one region, union of masks
    seg = [[2, 2, 8, 2, 2, 8], [12, 1, 16, 1, 16, 4, 12, 4]]
    anns = [{"image_id": 2, "category_id": 8, "bbox": [2, 1, 14, 7], "segmentation": seg}]
    path.write_text(json.dumps(coco_doc(anns)))
    region = read_coco(path, IMAGES)["dog/dog_001.png"].regions[0]
    assert region.boxes == ()  # the precise mask replaces the bbox
    assert region.mask.shape == (10, 20)
    expected_rect = Box(12, 1, 16, 4).mask(10, 20)
    assert (region.mask & expected_rect).sum() == expected_rect.sum() == 12
    # triangle (2,2)-(8,2)-(2,8): pixel centres with x + y <= 10 inside the corner
    tri = region.mask[:, :10]
    rows, cols = np.nonzero(tri)
    assert ((cols + 0.5) + (rows + 0.5) <= 10 + 1e-9).all()
    assert tri[2, 2] and tri[2, 5] and not tri[7, 7] and not tri[1, 2]
    # bboxes only when asked
    plain = read_coco(path, IMAGES, use_segmentation=False)["dog/dog_001.png"].regions[0]
    assert plain.mask is None and plain.boxes == (Box(2, 1, 16, 8),)


def test_rasterised_rectangle_equals_box_mask():
    for x0, y0, x1, y1 in [(2, 3, 7, 9), (2.2, 3.6, 7.5, 9.4), (0, 0, 12, 10)]:
        poly = [[x0, y0, x1, y0, x1, y1, x0, y1]]
        assert (rasterise_polygons(poly, 10, 12) == Box(x0, y0, x1, y1).mask(10, 12)).all()


def test_coco_uncompressed_rle_is_column_major(tmp_path: Path):
    path = tmp_path / "ann.json"
    h, w = 10, 20
    # column-major runs: skip first column (10 px), then 3 px at rows 0..2 of column 1
    counts = [10, 3, h * w - 13]
    seg = {"counts": counts, "size": [h, w]}
    path.write_text(json.dumps(coco_doc([{"image_id": 1, "category_id": 7, "segmentation": seg}])))
    mask = read_coco(path, IMAGES)["cat/cat_001.jpg"].regions[0].mask
    assert np.argwhere(mask).tolist() == [[0, 1], [1, 1], [2, 1]]


@pytest.mark.parametrize(
    ("ann", "expected"),
    [
        (
            {"id": 5, "image_id": 1, "category_id": 7, "segmentation": {"counts": "abc"}},
            r"annotations\[0\] \(id 5\): compressed RLE segmentations are not supported",
        ),
        ({"image_id": 99, "category_id": 7, "bbox": [0, 0, 1, 1]}, r"image_id 99 is not in"),
        ({"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}, r"category_id 3 is not in"),
        ({"image_id": 1, "category_id": 7, "bbox": [5, 5, -2, 1]}, r"inverted bbox"),
        ({"image_id": 1, "category_id": 7, "bbox": [5, 5]}, r"bbox must be \[x, y, w, h\]"),
        ({"image_id": 1, "category_id": 7}, r"neither `bbox` nor `segmentation`"),
        ({"image_id": 1, "category_id": 7, "segmentation": [[1, 2, 3]]}, r"at least 3 points"),
    ],
    ids=["rle", "image-id", "category", "inverted", "short-bbox", "nothing", "bad-polygon"],
)
def test_coco_bad_annotations(tmp_path: Path, ann: dict, expected: str):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco_doc([ann])))
    with pytest.raises(DataError, match=expected) as info:
        read_coco(path, IMAGES)
    assert str(path) in str(info.value)


def test_coco_image_missing_from_the_folder(tmp_path: Path):
    path = tmp_path / "ann.json"
    images = [{"id": 1, "file_name": "train2017/000000139.jpg", "width": 9, "height": 9}]
    path.write_text(json.dumps(coco_doc([], images=images)))
    with pytest.raises(DataError, match=r"images\[0\] names image 'train2017/000000139.jpg'"):
        read_coco(path, IMAGES)


def test_coco_not_json(tmp_path: Path):
    path = tmp_path / "ann.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="cannot read COCO annotation"):
        read_coco(path, IMAGES)
    path.write_text("[]")
    with pytest.raises(DataError, match="has no `images` list"):
        read_coco(path, IMAGES)


# ---------------------------------------------------------------------------- CSV


def test_csv_reads_labels_and_merges_boxes(tmp_path: Path):
    path = tmp_path / "ann.csv"
    path.write_text(
        "image,label,region,x0,y0,x1,y1,note\n"
        "cat/cat_001.jpg,cat,head,1,2,3.5,4,x\n"
        "cat/cat_001.jpg,,head,5,6,7,8,\n"
        "cat/cat_001.jpg,cat,tail,0,0,1,1,\n"
        "\n"
        "dog_001.png,1,,,,,,\n"
    )
    found = read_csv(path, IMAGES)
    assert list(found) == ["cat/cat_001.jpg", "dog/dog_001.png"]
    cat = found["cat/cat_001.jpg"]
    assert cat.label == "cat"
    regions = {r.name: r for r in cat.regions}
    assert regions["head"].boxes == (Box(1, 2, 3.5, 4), Box(5, 6, 7, 8))
    assert regions["tail"].boxes == (Box(0, 0, 1, 1),)
    assert cat.sources == [f"{path}:2", f"{path}:3", f"{path}:4"]
    dog = found["dog/dog_001.png"]
    assert dog.label == 1 and dog.regions == []


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("cat/cat_001.jpg,,head,5,1,2,4", r"ann.csv:3: region 'head' has an inverted box"),
        ("cat/cat_001.jpg,,head,1,1,x,4", r"ann.csv:3: region 'head': coordinates .* numbers"),
        ("cat/cat_001.jpg,,head,1,1,,4", r"ann.csv:3: region 'head' lacks x1"),
        ("cat/cat_001.jpg,,,1,1,2,4", r"ann.csv:3: a box without a region name"),
        ("bird.jpg,,head,1,1,2,2", r"ann.csv:3 names image 'bird.jpg'.*not in the dataset"),
        (",,head,1,1,2,2", r"ann.csv:3: the `image` column is empty"),
        (
            "cat/cat_001.jpg,1,,,,,",
            r"ann.csv:3: label 1 and the label 'cat' .* mix a class name and an integer index",
        ),
        ("cat/cat_001.jpg,,head,1,1,2,2,9", r"ann.csv:3: more cells than header columns"),
        ("cat/cat_001.jpg,,head,nan,1,2,2", r"ann.csv:3: region 'head': .* not finite"),
    ],
    ids=[
        "inverted",
        "nan-text",
        "missing",
        "no-region",
        "no-image",
        "empty",
        "mixed-kinds",
        "extra",
        "nan",
    ],
)
def test_csv_bad_rows_name_file_and_line(tmp_path: Path, row: str, expected: str):
    path = tmp_path / "ann.csv"
    path.write_text("image,label,region,x0,y0,x1,y1\ncat/cat_001.jpg,cat,head,0,0,1,1\n" + row)
    with pytest.raises(DataError, match=expected):
        read_csv(path, IMAGES)


def test_csv_missing_columns(tmp_path: Path):
    path = tmp_path / "ann.csv"
    path.write_text("image,region,x0,y0,x1\ncat/cat_001.jpg,head,0,0,1\n")
    with pytest.raises(DataError, match=r"lacks the column\(s\) label, y1.*image,label,region"):
        read_csv(path, IMAGES)


# ---------------------------------------------------------------------------- masks


def write_mask(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_binary_masks_named_by_folder_or_default(tmp_path: Path):
    m1 = np.zeros((6, 8), np.uint8)
    m1[1:3, 2:5] = 255
    m2 = np.zeros((6, 8), np.uint8)
    m2[4, 7] = 1
    write_mask(tmp_path / "cat" / "cat_001.png", m1)  # same relative path as the image
    write_mask(tmp_path / "head" / "cat" / "cat_001.png", m2)  # region folder + relative path
    write_mask(tmp_path / "tail" / "dog_001.png", m2)  # region folder + bare stem
    write_mask(tmp_path / "._dog_001.png", m2)  # macOS resource fork: ignored
    found = read_masks(tmp_path, IMAGES)
    assert list(found) == ["cat/cat_001.jpg", "dog/dog_001.png"]
    assert found["cat/cat_001.jpg"].region_names == ["object", "head"]
    regions = found["cat/cat_001.jpg"].load_regions()
    assert np.argwhere(regions["object"].mask).tolist() == np.argwhere(m1).tolist()
    assert np.argwhere(regions["head"].mask).tolist() == [[4, 7]]
    assert list(found["dog/dog_001.png"].load_regions()) == ["tail"]


def test_trimaps_are_detected_and_give_pet_plus_border(tmp_path: Path):
    trimap = np.full((5, 6), 2, np.uint8)
    trimap[1:4, 1:4] = 3
    trimap[2, 2] = 1
    write_mask(tmp_path / "cat_001.png", trimap)
    write_mask(tmp_path / "cat_002.png", np.full((5, 6), 2, np.uint8))  # all background
    found = read_masks(tmp_path, IMAGES)
    region = found["cat/cat_001.jpg"].load_regions()["foreground"]
    assert (region.mask == (trimap != 2)).all()
    assert not found["cat/cat_002.jpg"].load_regions()["foreground"].mask.any()


def test_mixed_mask_kinds_are_rejected_when_loaded(tmp_path: Path):
    trimap = np.full((5, 6), 2, np.uint8)
    trimap[2, 2] = 1
    binary = np.zeros((5, 6), np.uint8)
    binary[0, 0] = 255
    write_mask(tmp_path / "cat_001.png", trimap)
    write_mask(tmp_path / "cat_002.png", binary)
    found = read_masks(tmp_path, IMAGES)
    with pytest.raises(DataError, match=r"cat_002.png' is not a trimap"):
        found["cat/cat_002.jpg"].load_regions()


def test_mask_without_image(tmp_path: Path):
    write_mask(tmp_path / "bird_7.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(DataError, match=r"mask '.*bird_7.png' matches no image"):
        read_masks(tmp_path, IMAGES)


def test_colour_masks_use_any_channel(tmp_path: Path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 2] = (0, 0, 9)
    write_mask(tmp_path / "cat_001.png", rgb)
    mask = read_masks(tmp_path, IMAGES)["cat/cat_001.jpg"].load_regions()["object"].mask
    assert np.argwhere(mask).tolist() == [[1, 2]]


# ---------------------------------------------------------------------------- detection


def test_detect_format(tmp_path: Path):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "a.csv").write_text("")
    (tmp_path / "xmls").mkdir()
    (tmp_path / "xmls" / "a.xml").write_text("<annotation/>")
    write_mask(tmp_path / "masks" / "sub" / "a.png", np.zeros((2, 2)))
    assert detect_format(tmp_path / "a.json") == "coco"
    assert detect_format(tmp_path / "a.csv") == "csv"
    assert detect_format(tmp_path / "xmls") == "voc"
    assert detect_format(tmp_path / "masks") == "masks"


def test_detect_format_errors_list_the_supported_formats(tmp_path: Path):
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(DataError, match=r"a.txt.*supported: voc: .*coco: .*csv: .*masks: "):
        detect_format(tmp_path / "a.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no \*.xml or \*.png file; supported"):
        detect_format(tmp_path / "empty")
    (tmp_path / "both").mkdir()
    (tmp_path / "both" / "a.xml").write_text("")
    write_mask(tmp_path / "both" / "a.png", np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"both \*.xml and \*.png.*sub-folder"):
        detect_format(tmp_path / "both")
    with pytest.raises(DataError, match=r"does not exist"):
        detect_format(tmp_path / "nope.json")


def test_read_annotations_merges_several_sources(tmp_path: Path):
    (tmp_path / "xmls").mkdir()
    (tmp_path / "xmls" / "cat_001.xml").write_text(voc_xml("cat_001.jpg", [("cat", (1, 1, 4, 4))]))
    trimap = np.full((48, 64), 2, np.uint8)
    trimap[10:20, 10:20] = 1
    write_mask(tmp_path / "trimaps" / "cat_001.png", trimap)
    (tmp_path / "ann.csv").write_text(
        "image,label,region,x0,y0,x1,y1\ncat_001.jpg,cat,cat,5,5,6,6\n"
    )
    found = read_annotations(
        [tmp_path / "xmls", tmp_path / "trimaps", tmp_path / "ann.csv"], ImageIndex(IMAGES)
    )
    ann = found["cat/cat_001.jpg"]
    assert isinstance(ann, ImageAnnotation)
    assert ann.label == "cat"
    regions = ann.load_regions()
    assert set(regions) == {"cat", "foreground"}
    assert regions["cat"].boxes == (Box(0, 0, 4, 4), Box(5, 5, 6, 6))
    assert regions["foreground"].mask.sum() == 100
    assert len(ann.sources) == 3


# ---------------------------------------------------------------------------- the registry


@pytest.fixture
def txt_format():
    """A throw-away ``txt`` format (``image x0 y0 x1 y1`` per line), unregistered afterwards."""
    from pytest_camcheck.data.readers import READERS, register_reader
    from pytest_camcheck.regions import Region

    def read_txt(path: Path, images: ImageIndex) -> dict[str, ImageAnnotation]:
        found: dict[str, ImageAnnotation] = {}
        for line in path.read_text().splitlines():
            name, *coords = line.split()
            rel = images.resolve(name, str(path), by_stem=False)
            box = Box(*(float(c) for c in coords))
            found.setdefault(rel, ImageAnnotation()).add_region(Region("thing", (box,)))
        return found

    reader = register_reader(
        "TXT",
        read_txt,
        detect=lambda p: p.is_file() and p.suffix == ".txt",
        description="a *.txt file of boxes",
    )
    yield reader
    READERS.pop("txt", None)


def test_builtin_readers_are_registered_in_detection_order():
    from pytest_camcheck.data.readers import READERS, Reader

    assert list(READERS)[:4] == ["voc", "coco", "csv", "masks"]
    for name, reader in list(READERS.items())[:4]:
        assert isinstance(reader, Reader)
        assert reader.name == name and reader.description
    assert READERS["coco"].read is read_coco
    with pytest.raises(AttributeError):
        READERS["coco"].name = "json"  # type: ignore[misc]


def test_a_registered_reader_is_detected_and_read(tmp_path: Path, txt_format):
    from pytest_camcheck.data.readers import READERS

    assert txt_format.name == "txt"  # names are lower-cased
    assert READERS["txt"] is txt_format
    (tmp_path / "a.txt").write_text("cat_001.jpg 1 2 3 4\n")
    assert detect_format(tmp_path / "a.txt") == "txt"
    found = read_annotations(tmp_path / "a.txt", IMAGES)
    assert found["cat/cat_001.jpg"].regions[0].boxes == (Box(1, 2, 3, 4),)
    (tmp_path / "a.bin").write_text("")
    with pytest.raises(DataError, match=r"supported: .*masks: .*; txt: a \*.txt file of boxes"):
        detect_format(tmp_path / "a.bin")


def test_register_reader_refuses_duplicates_and_empty_names(txt_format):
    from pytest_camcheck.data.readers import READERS, register_reader

    with pytest.raises(ValueError, match="'txt' is already registered"):
        register_reader("txt", txt_format.read, detect=txt_format.detect, description="again")
    again = register_reader(
        "txt", txt_format.read, detect=txt_format.detect, description="again", replace=True
    )
    assert READERS["txt"] is again and again.description == "again"
    with pytest.raises(ValueError, match="needs a name"):
        register_reader(" ", txt_format.read, detect=txt_format.detect, description="")


def test_a_path_two_formats_claim_is_refused(tmp_path: Path):
    from pytest_camcheck.data.readers import READERS, register_reader

    register_reader("json2", read_coco, detect=lambda p: p.suffix == ".json", description="x")
    try:
        (tmp_path / "a.json").write_text("{}")
        with pytest.raises(DataError, match=r"matches several formats \(coco, json2\)"):
            detect_format(tmp_path / "a.json")
    finally:
        READERS.pop("json2")


def test_the_data_package_re_exports_the_readers():
    import pytest_camcheck.data as data
    from pytest_camcheck.data import readers

    for name in (
        "read_voc",
        "read_coco",
        "read_csv",
        "read_masks",
        "read_annotations",
        "detect_format",
        "register_reader",
        "READERS",
        "Reader",
    ):
        assert getattr(data, name) is getattr(readers, name), name
    assert data.ImageAnnotation is ImageAnnotation
    assert data.MaskFile.__module__ == "pytest_camcheck.data.annotations"
