"""build_dataset: folder layouts, ids, labels, errors, and factory datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_camcheck.data import (
    DEFAULT_IMAGE_SIZE,
    AnnotatedDataset,
    build_dataset,
    load_image,
)
from pytest_camcheck.errors import ConfigError, DataError
from pytest_camcheck.regions import Sample

CSV_HEADER = "image,label,region,x0,y0,x1,y1\n"


def write_image(path: Path, size: tuple[int, int] = (32, 24), color=(0, 0, 255)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def pets(tmp_path: Path) -> Path:
    """An ImageFolder tree: two classes, mixed extensions and case, hidden clutter."""
    root = tmp_path / "pets"
    write_image(root / "dog" / "b.PNG")
    write_image(root / "cat" / "b.jpg")
    write_image(root / "cat" / "a.jpeg")
    write_image(root / "cat" / "sub" / "c.bmp")
    write_image(root / "dog" / "a.webp")
    write_image(root / "dog" / "t.TIFF")
    (root / "cat" / "notes.txt").write_text("not an image")
    write_image(root / "cat" / ".hidden.jpg")
    write_image(root / ".ipynb_checkpoints" / "x.jpg")
    return root


def test_imagefolder_ids_order_labels(pets: Path):
    ds = build_dataset(pets, rootdir=pets.parent)
    assert isinstance(ds, AnnotatedDataset)
    assert ds.ids == ["cat/a", "cat/b", "cat/sub/c", "dog/a", "dog/b", "dog/t"]
    assert ds.class_names == ["cat", "dog"]
    assert len(ds) == 6
    sample = ds[3]
    assert isinstance(sample, Sample)
    assert (sample.id, sample.label, sample.class_name) == ("dog/a", 1, "dog")
    assert sample.path == str(pets / "dog" / "a.webp")
    assert sample.regions == {}
    assert sample.image.dtype == torch.float32
    assert tuple(sample.image.shape) == (3, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    assert sample.meta["original_size"] == (32, 24)
    assert ds[-1].id == "dog/t"
    assert ds.index_of("cat/sub/c") == 2
    assert ds.get("cat/b").label == 0
    with pytest.raises(IndexError):
        ds[6]
    with pytest.raises(KeyError, match=r"'nope'.*ids look like: 'cat/a'"):
        ds.index_of("nope")


def test_ids_are_identical_across_builds_and_relative_to_rootdir(pets: Path, monkeypatch):
    first = build_dataset("pets", rootdir=pets.parent).ids
    monkeypatch.chdir(pets.parent)
    assert build_dataset("pets").ids == first
    assert build_dataset(str(pets)).ids == first


def test_flat_folder_has_no_labels_and_ids_stay_unique(tmp_path: Path):
    write_image(tmp_path / "x.jpg")
    write_image(tmp_path / "x.png")
    write_image(tmp_path / "y.png")
    write_image(tmp_path / "sub" / "z.png")
    ds = build_dataset(tmp_path)
    assert ds.ids == ["sub/z", "x.jpg", "x.png", "y"]
    assert ds.class_names is None
    assert ds[3].label is None and ds[3].class_name is None


def test_flat_folder_labels_from_csv_class_names(tmp_path: Path):
    root = tmp_path / "imgs"
    for name in ("a.png", "b.png", "c.png"):
        write_image(root / name)
    csv = tmp_path / "ann.csv"
    csv.write_text(CSV_HEADER + "a.png,zebra,,,,,\nb.png,ant,,,,,\n")
    ds = build_dataset(root, annotations=csv)
    assert ds.class_names == ["ant", "zebra"]
    assert [ds[i].label for i in range(3)] == [1, 0, None]
    assert ds[0].class_name == "zebra"


def test_label_contradicting_class_folder(pets: Path, tmp_path: Path):
    csv = tmp_path / "ann.csv"
    csv.write_text(CSV_HEADER + "cat/a.jpeg,dog,,,,,\n")
    with pytest.raises(
        DataError, match=r"ann.csv:2: label 'dog' of image 'cat/a.jpeg' contradicts"
    ):
        build_dataset(pets, annotations=csv)
    csv.write_text(CSV_HEADER + "cat/a.jpeg,horse,,,,,\n")
    with pytest.raises(
        DataError, match=r"label 'horse' .* not a class of the dataset \(cat, dog\)"
    ):
        build_dataset(pets, annotations=csv)
    csv.write_text(CSV_HEADER + "cat/a.jpeg,0,,,,,\ndog/a.webp,1,,,,,\n")
    ds = build_dataset(pets, annotations=csv)
    assert ds[0].label == 0 and ds[3].label == 1


def test_annotation_folder_inside_dataset_is_not_scanned_for_images(tmp_path: Path):
    root = tmp_path / "ds"
    write_image(root / "a.png", size=(10, 10))
    mask = np.zeros((10, 10), np.uint8)
    mask[2:4, 3:6] = 1
    (root / "masks").mkdir()
    Image.fromarray(mask).save(root / "masks" / "a.png")
    ds = build_dataset(root, annotations=root / "masks", image_size=20)
    assert ds.ids == ["a"]
    region = ds[0].regions["object"]
    assert region.mask.shape == (20, 20)
    assert region.mask.sum() == 4 * 6


def test_voc_boxes_scaled_into_the_transformed_image(tmp_path: Path):
    root = tmp_path / "images"
    write_image(root / "Abyssinian_1.jpg", size=(40, 20))
    xmls = tmp_path / "xmls"
    xmls.mkdir()
    (xmls / "Abyssinian_1.xml").write_text(
        "<annotation><filename>Abyssinian_1.jpg</filename><object><name>cat</name><bndbox>"
        "<xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>15</ymax></bndbox></object>"
        "</annotation>"
    )
    ds = build_dataset(root, annotations=xmls, image_size=80)
    box = ds[0].regions["cat"].boxes[0]
    assert box.as_tuple() == pytest.approx((20.0, 20.0, 60.0, 60.0), abs=1e-4)
    assert ds[0].meta["annotations"] == [str(xmls / "Abyssinian_1.xml")]
    assert ds.region_names(0) == ["cat"]


# ---------------------------------------------------------------------------- errors


def test_missing_dataset_folder(tmp_path: Path):
    with pytest.raises(DataError, match=r"dataset folder '.*nope' does not exist"):
        build_dataset("nope", rootdir=tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match=r"is a file"):
        build_dataset(tmp_path / "file.txt")


def test_empty_dataset_lists_extensions(tmp_path: Path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"holds no images; looked for .*\.jpg, \.jpeg, \.png"):
        build_dataset(tmp_path)


def test_corrupt_image_fails_when_loaded_and_in_check_images(tmp_path: Path):
    write_image(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    ds = build_dataset(tmp_path)  # building does not open images
    assert ds.ids == ["bad", "good"]
    assert ds[1].id == "good"
    with pytest.raises(DataError, match=r"cannot read image '.*bad.jpg'.*corrupt"):
        ds[0]
    with pytest.raises(DataError, match=r"(?s)1 problem\(s\).*bad.jpg") as info:
        ds.check_images()
    assert "good.png" not in str(info.value)


def test_truncated_image_fails_when_loaded(tmp_path: Path):
    path = write_image(tmp_path / "t.png", size=(64, 64))
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cannot read image '.*t.png'"):
        load_image(path)


def test_box_outside_image_names_sample_region_box_and_size(tmp_path: Path):
    root = tmp_path / "ds"
    write_image(root / "a.png", size=(32, 24))
    csv = tmp_path / "ann.csv"
    csv.write_text(CSV_HEADER + "a.png,,head,10,10,32.4,24.5\na.png,,tail,0,0,33,5\n")
    ds = build_dataset(root, annotations=csv)
    with pytest.raises(DataError) as info:
        ds[0]
    msg = str(info.value)
    for part in ("'a'", "'tail'", "Box(x0=0, y0=0, x1=33, y1=5)", "32x24", "ann.csv:3"):
        assert part in msg
    with pytest.raises(DataError, match=r"(?s)problem\(s\).*'tail'"):
        ds.check_images()
    # within 0.5 px is tolerated and clipped
    csv.write_text(CSV_HEADER + "a.png,,head,-0.5,10,32.4,24.5\n")
    ds = build_dataset(root, annotations=csv, image_size=32)
    ds.check_images()
    box = ds[0].regions["head"].boxes[0]
    assert box.x0 == pytest.approx(0) and box.x1 <= 32 + 1e-6 and box.y1 <= 32 + 1e-6


def test_unknown_annotation_format(tmp_path: Path):
    root = tmp_path / "ds"
    write_image(root / "a.png", size=(32, 24))
    Image.fromarray(np.ones((10, 10), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"cannot tell the annotation format of .*a.png"):
        build_dataset(root, annotations=tmp_path / "a.png")  # a file, not a mask folder


def test_mask_size_checked(tmp_path: Path):
    root = tmp_path / "ds"
    write_image(root / "a.png", size=(32, 24))
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.ones((10, 10), np.uint8)).save(tmp_path / "masks" / "a.png")
    ds = build_dataset(root, annotations=tmp_path / "masks")
    with pytest.raises(DataError, match=r"sample 'a': region 'object' has a 10x10 mask .* 32x24"):
        ds[0]
    with pytest.raises(DataError, match=r"mask '.*a.png' is 10x10 but the image is 32x24"):
        ds.check_images()


def test_annotation_naming_missing_image(tmp_path: Path):
    root = tmp_path / "ds"
    write_image(root / "a.png")
    csv = tmp_path / "ann.csv"
    csv.write_text(CSV_HEADER + "a.png,,head,1,1,2,2\nb.png,,head,1,1,2,2\n")
    with pytest.raises(DataError, match=r"ann.csv:3 names image 'b.png'.*not in the dataset"):
        build_dataset(root, annotations=csv)


def test_bad_image_size(tmp_path: Path):
    write_image(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="image_size must be a positive integer"):
        build_dataset(tmp_path, image_size=0)


# ---------------------------------------------------------------------------- factories


FACTORY_MODULE = """
import numpy as np
import torch
from PIL import Image
from pytest_camcheck.regions import Box, Region, Sample


class Pairs:
    classes = ["circle", "square"]

    def __init__(self):
        self.calls = 0

    def __len__(self):
        return 2

    def __getitem__(self, i):
        self.calls += 1
        img = Image.new("RGB", (40, 20), (255, 255, 255))
        return img, i, {"thing": (4, 2, 20, 10), "two": [(0, 0, 2, 2), Box(3, 3, 4, 4)]}


def pairs():
    return Pairs()


def samples():
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    return [
        Sample("s/one", image=torch.rand(3, 8, 8), label=1, regions={"m": Region("m", mask=mask)}),
        Sample(id="s/two", image=torch.full((8, 8), 7, dtype=torch.uint8), regions={}),
    ]


def strings():
    return [(Image.new("RGB", (4, 4)), "square", None)]


def broken():
    raise RuntimeError("disk on fire")


def outside():
    return [(Image.new("RGB", (10, 10)), 0, {"head": (0, 0, 12, 5)})]


def empty():
    return []


class WithIds(Pairs):
    ids = ["left", "right"]


not_callable = 3
"""


@pytest.fixture
def factories(tmp_path: Path):
    name = f"camcheck_factories_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(FACTORY_MODULE)
    yield name, tmp_path
    sys.modules.pop(name, None)


def test_factory_tuples_get_the_transform_and_index_ids(factories):
    name, root = factories
    ds = build_dataset(f"{name}:pairs", rootdir=root, image_size=80)
    assert str(root) not in sys.path  # put there for the import only
    assert ds.ids == ["00000", "00001"]
    assert ds.class_names == ["circle", "square"]
    assert ds.source.calls == 1  # ids known after one peek
    s = ds[1]
    assert (s.label, s.class_name, s.path) == (1, "square", None)
    assert tuple(s.image.shape) == (3, 80, 80)
    assert s.regions["thing"].boxes[0].as_tuple() == pytest.approx((8, 8, 40, 40), abs=1e-4)
    assert len(s.regions["two"].boxes) == 2
    assert s.meta["original_size"] == (40, 20)
    assert s.meta["normalization"]["mean"][0] == pytest.approx(0.485)


def test_factory_samples_keep_ids_and_tensor_images(factories):
    name, root = factories
    ds = build_dataset(f"{name}:samples", rootdir=root)
    assert ds.ids == ["s/one", "s/two"]
    one = ds[0]
    assert tuple(one.image.shape) == (3, 8, 8)  # tensors are used as they are
    assert one.regions["m"].mask.sum() == 4
    assert "normalization" not in one.meta and one.meta["transform"] is None
    two = ds[1]
    assert tuple(two.image.shape) == (1, 8, 8)
    assert two.image.dtype == torch.float32
    assert torch.allclose(two.image, torch.full((1, 8, 8), 7 / 255))
    disp = ds.display_image(1)
    assert disp.shape == (8, 8, 3) and disp.dtype == np.uint8


def test_factory_with_ids_attribute_loads_nothing(factories):
    name, root = factories
    ds = build_dataset(f"{name}:WithIds", rootdir=root)
    assert ds.ids == ["left", "right"]
    assert ds.source.calls == 0


def test_factory_string_label_uses_class_names(factories):
    name, root = factories
    ds = build_dataset(f"{name}:strings", rootdir=root)
    with pytest.raises(DataError, match=r"label 'square' is not a known class name"):
        ds[0]


@pytest.mark.parametrize(
    ("attr", "error", "expected"),
    [
        (
            "broken",
            DataError,
            r"dataset '.*:broken': the factory raised RuntimeError: disk on fire",
        ),
        ("missing", ConfigError, r"dataset '.*:missing': module .* has no attribute 'missing'"),
        ("not_callable", DataError, r"returned a int without len\(\)"),
        ("empty", DataError, r"is empty"),
    ],
)
def test_factory_errors_name_the_spec(factories, attr, error, expected):
    name, root = factories
    with pytest.raises(error, match=expected):
        build_dataset(f"{name}:{attr}", rootdir=root)


def test_factory_box_outside(factories):
    name, root = factories
    ds = build_dataset(f"{name}:outside", rootdir=root)
    with pytest.raises(DataError, match=r"sample '00000': region 'head' box .* 10x10"):
        ds[0]
    with pytest.raises(DataError, match=r"1 problem\(s\) in dataset"):
        ds.check_images()


def test_factory_module_not_found(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"dataset 'no_such_mod_xyz:f': cannot import module"):
        build_dataset("no_such_mod_xyz:f", rootdir=tmp_path)


def test_factory_rejects_annotations(factories):
    name, root = factories
    with pytest.raises(ConfigError, match="annotations apply to folder datasets only"):
        build_dataset(f"{name}:pairs", annotations="x.csv", rootdir=root)


def test_existing_folder_wins_over_spec_syntax(tmp_path: Path):
    write_image(tmp_path / "a:b" / "x.png")
    assert build_dataset("a:b", rootdir=tmp_path).ids == ["x"]


def test_dataset_object_is_accepted_directly():
    items = [(Image.new("RGB", (10, 10)), 0, {"head": (1, 1, 5, 5)})]
    ds = build_dataset(items, image_size=20)
    assert ds.ids == ["00000"]
    assert ds.region_names(0) is None
    assert ds[0].regions["head"].boxes[0].as_tuple() == pytest.approx((2, 2, 10, 10), abs=1e-4)
    with pytest.raises(ConfigError, match="dataset must be a folder path"):
        build_dataset(3.5)
