"""Images with objects of several classes: annotation objects, multi-object folder datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_camcheck.data import build_dataset
from pytest_camcheck.data.annotations import AnnotatedObject, ImageAnnotation
from pytest_camcheck.data.readers import read_coco, read_csv, read_voc
from pytest_camcheck.errors import DataError
from pytest_camcheck.regions import Box, Region, Sample

CSV_HEADER = "image,label,region,x0,y0,x1,y1\n"


def write_image(path: Path, size: tuple[int, int] = (40, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 120, 200)).save(path)
    return path


def voc_object(
    name: str,
    box: tuple[int, int, int, int],
    *,
    difficult: bool = False,
    parts: tuple[tuple[str, tuple[int, int, int, int]], ...] = (),
) -> str:
    def bnd(b: tuple[int, int, int, int]) -> str:
        return (
            f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
            f"<ymax>{b[3]}</ymax></bndbox>"
        )

    flag = "<difficult>1</difficult>" if difficult else "<difficult>0</difficult>"
    inner = "".join(f"<part><name>{p}</name>{bnd(b)}</part>" for p, b in parts)
    return f"<object><name>{name}</name>{flag}{bnd(box)}{inner}</object>"


def write_voc(folder: Path, image: str, *objects: str, size=(40, 20)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (Path(image).stem + ".xml")
    path.write_text(
        f"<annotation><filename>{Path(image).name}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{''.join(objects)}</annotation>"
    )
    return path


def boxes(region: Region) -> list[tuple[float, float, float, float]]:
    return [b.as_tuple() for b in region.boxes]


def same_boxes(region: Region, expected: list[tuple[float, float, float, float]]) -> bool:
    """Whether the region's boxes are ``expected`` (to 1e-4 px), in order."""
    got = np.asarray(boxes(region), dtype=float).reshape(-1, 4)
    want = np.asarray(expected, dtype=float).reshape(-1, 4)
    return got.shape == want.shape and bool(np.allclose(got, want, atol=1e-4))


@pytest.fixture
def voc_multi(tmp_path: Path) -> tuple[Path, Path]:
    """A flat folder of 40x20 images: a.png holds a person (with a head) and a difficult dog,
    b.png a dog only, c.png two difficult chairs and a person, d.png nothing."""
    root = tmp_path / "images"
    xmls = tmp_path / "xmls"
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(root / name)
    write_voc(
        xmls,
        "a.png",
        voc_object("person", (3, 3, 12, 18), parts=(("head", (5, 3, 8, 6)),)),
        voc_object("dog", (21, 11, 40, 20), difficult=True),
    )
    write_voc(xmls, "b.png", voc_object("dog", (1, 1, 10, 10)))
    write_voc(
        xmls,
        "c.png",
        voc_object("chair", (1, 1, 10, 10), difficult=True),
        voc_object("person", (11, 1, 20, 10)),
        voc_object("chair", (21, 1, 30, 10), difficult=True),
    )
    return root, xmls


# ------------------------------------------------------------------ annotation model


def test_voc_reader_keeps_objects_parts_and_difficult(voc_multi: tuple[Path, Path]):
    _, xmls = voc_multi
    found = read_voc(xmls, ["a.png", "b.png", "c.png", "d.png"])
    a = found["a.png"]
    assert [(o.cls, o.name, o.difficult) for o in a.objects] == [
        ("person", "person", False),
        ("person", "head", False),
        ("dog", "dog", True),
    ]
    assert all(isinstance(o, AnnotatedObject) for o in a.objects)
    assert boxes(a.objects[1].region) == [(4.0, 2.0, 8.0, 6.0)]
    assert "<part> #1 ('head')" in a.objects[1].source
    assert a.classes == ["person", "dog"]
    assert a.label is None
    # the merged regions are as before: one per name
    assert [r.name for r in a.regions] == ["person", "head", "dog"]
    c = found["c.png"]
    assert c.classes == ["chair", "person"]
    assert [r.name for r in c.regions] == ["chair", "person"]
    assert boxes(next(r for r in c.regions if r.name == "chair")) == [
        (0.0, 0.0, 10.0, 10.0),
        (20.0, 0.0, 30.0, 10.0),
    ]


def test_coco_reader_keeps_each_annotation_as_an_object(tmp_path: Path):
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 20}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [20, 0, 10, 10]},
            {
                "id": 12,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 10, 10, 10],
                "segmentation": [[0, 10, 10, 10, 10, 20, 0, 20]],
                "iscrowd": 0,
            },
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    ann = read_coco(path, ["a.png"])["a.png"]
    assert [(o.cls, o.name) for o in ann.objects] == [
        ("cat", "cat"),
        ("dog", "dog"),
        ("cat", "cat"),
    ]
    assert ann.classes == ["cat", "dog"]
    assert boxes(ann.objects[0].region) == [(0.0, 0.0, 10.0, 10.0)]
    assert ann.objects[2].region.boxes == () and ann.objects[2].region.mask.sum() == 100
    assert "annotations[2] (id 12)" in ann.objects[2].source
    merged = {r.name: r for r in ann.regions}
    assert boxes(merged["cat"]) == [(0.0, 0.0, 10.0, 10.0)]
    assert merged["cat"].mask.sum() == 100


def test_csv_different_labels_of_one_image_are_allowed(tmp_path: Path):
    path = tmp_path / "ann.csv"
    path.write_text(
        CSV_HEADER
        + "a.png,cat,head,0,0,5,5\n"
        + "a.png,dog,,,,,\n"
        + "a.png,,watermark,30,0,40,5\n"
        + "a.png,cat,cat,0,0,10,10\n"
        + "b.png,cat,,,,,\n"
        + "b.png,cat,head,1,1,4,4\n"
    )
    found = read_csv(path, ["a.png", "b.png"])
    a = found["a.png"]
    assert a.label is None
    assert a.labels == ["cat", "dog"]
    assert a.classes == ["cat", "dog"]
    # the unlabelled region is a region of no class, not an object
    assert [(o.cls, o.name) for o in a.objects] == [("cat", "head"), ("cat", "cat")]
    assert [r.name for r in a.regions] == ["head", "watermark", "cat"]
    assert a.objects[1].source == f"{path}:5"
    b = found["b.png"]  # one label, as before
    assert b.label == "cat" and b.classes == ["cat"]
    # a third row agreeing with the first label does not bring the label back
    path.write_text(CSV_HEADER + "a.png,cat,,,,,\na.png,dog,,,,,\na.png,cat,,,,,\n")
    a = read_csv(path, ["a.png"])["a.png"]
    assert a.label is None and a.classes == ["cat", "dog"]


def test_csv_labels_of_one_image_must_not_mix_names_and_indices(tmp_path: Path):
    path = tmp_path / "ann.csv"
    path.write_text(CSV_HEADER + "a.png,cat,,,,,\na.png,3,,,,,\n")
    with pytest.raises(DataError, match=r"ann.csv:3: label 3 and the label 'cat' .* mix"):
        read_csv(path, ["a.png"])


def test_image_annotation_classes_first_seen_and_update():
    first = ImageAnnotation(sources=["x.csv"])
    first.set_label("dog", "x.csv:2")
    first.add_object(AnnotatedObject("cat", "cat", Region("cat", (Box(0, 0, 1, 1),)), "x.xml"))
    first.set_label("dog", "x.csv:3")
    assert first.classes == ["dog", "cat"]
    assert first.label == "dog"  # objects do not touch the image-level label
    other = ImageAnnotation(sources=["y.csv"])
    other.set_label("bird", "y.csv:2")
    first.update(other)
    assert first.classes == ["dog", "cat", "bird"]
    assert first.label is None
    direct = ImageAnnotation(label="cow")  # a label set directly still counts
    assert direct.classes == ["cow"]
    direct.set_label("cow", "z")
    assert direct.label == "cow"
    direct.set_label("pig", "z")
    assert direct.label is None and direct.classes == ["cow", "pig"]


# ---------------------------------------------------------------- multi-object dataset


def test_voc_multi_object_dataset_labels_and_difficult(voc_multi: tuple[Path, Path]):
    root, xmls = voc_multi
    ds = build_dataset(root, annotations=xmls, image_size=80)
    assert ds.multi_object is True
    assert ds.ids == ["a", "b", "c", "d"]
    assert ds.class_names == ["chair", "dog", "person"]
    assert [ds.sample_labels(i) for i in range(4)] == [(2, 1), (1,), (0, 2), ()]
    assert [ds.sample_difficult(i) for i in range(4)] == [(1,), (), (0,), ()]
    assert ds.labels == [None, 1, None, None]


def test_voc_multi_object_sample_class_regions(voc_multi: tuple[Path, Path]):
    root, xmls = voc_multi
    ds = build_dataset(root, annotations=xmls, image_size=80)  # 40x20 -> 80x80: x*2, y*4
    a = ds[0]
    assert isinstance(a, Sample)
    assert (a.label, a.class_name, a.labels) == (None, None, (2, 1))
    assert list(a.regions) == ["person", "head", "dog"]
    assert same_boxes(a.regions["dog"], [(40.0, 40.0, 80.0, 80.0)])
    assert set(a.class_regions) == {1, 2}
    person = a.class_regions[2]
    assert list(person) == ["person", "person#1", "head"]
    assert same_boxes(person["person"], [(4.0, 8.0, 24.0, 72.0)])
    assert same_boxes(person["person#1"], [(4.0, 8.0, 24.0, 72.0)])
    assert same_boxes(person["head"], [(8.0, 8.0, 16.0, 24.0)])
    assert {k: r.name for k, r in person.items()} == {k: k for k in person}
    assert list(a.class_regions[1]) == ["dog", "dog#1"]

    b = ds[1]  # one class in a multi-object dataset: that class is its label
    assert (b.label, b.class_name, b.labels) == (1, "dog", (1,))
    assert list(b.class_regions[1]) == ["dog", "dog#1"]

    c = ds[2]
    chair = c.class_regions[0]
    assert list(chair) == ["chair", "chair#1", "chair#2"]
    assert same_boxes(chair["chair"], [(0.0, 0.0, 20.0, 40.0), (40.0, 0.0, 60.0, 40.0)])
    assert same_boxes(chair["chair#2"], [(40.0, 0.0, 60.0, 40.0)])
    assert list(c.class_regions[2]) == ["person", "person#1"]
    assert boxes(c.regions["chair"]) == boxes(chair["chair"])

    d = ds[3]
    assert (d.label, d.labels, d.class_regions, d.regions) == (None, (), {}, {})
    ds.check_images()


def test_coco_multi_object_instances_keep_masks(tmp_path: Path):
    root = tmp_path / "images"
    write_image(root / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 20}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 10, 10, 10],
                "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]],
            },
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [30, 0, 10, 10]},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    ds = build_dataset(root, annotations=path, image_size=40)  # 40x20 -> 40x40: y*2
    assert ds.multi_object and ds.class_names == ["cat", "dog"]
    assert ds.sample_labels(0) == (0, 1) and ds.sample_difficult(0) == ()
    s = ds[0]
    cat = s.class_regions[0]
    assert list(cat) == ["cat", "cat#1", "cat#2"]
    assert same_boxes(cat["cat#1"], [(0.0, 0.0, 10.0, 20.0)])
    assert cat["cat#1"].mask is None
    assert cat["cat#2"].boxes == () and cat["cat#2"].mask.shape == (40, 40)
    assert cat["cat#2"].mask.sum() == 10 * 20
    union = cat["cat"].to_mask(40, 40)
    assert union.sum() == 2 * 10 * 20
    assert np.array_equal(union, s.regions["cat"].to_mask(40, 40))
    assert list(s.class_regions[1]) == ["dog", "dog#1"]


def test_empty_instance_mask_is_reported_with_its_key(tmp_path: Path):
    root = tmp_path / "images"
    write_image(root / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 20}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 9, 0, 9, 9]]},
            # a sliver that covers no pixel centre: empty on its own, hidden by the union
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[30, 0, 30.2, 0, 30, 9]]},
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [20, 0, 5, 5]},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    ds = build_dataset(root, annotations=path, image_size=40)
    expected = r"region 'cat \(object 2 of class cat\)' has an empty mask .*annotations\[1\]"
    with pytest.raises(DataError, match=expected):
        ds[0]
    # the header-only check finds it too: the merged "cat" mask alone is not empty
    with pytest.raises(DataError, match=r"(?s)1 problem.*" + expected):
        ds.check_images()


def test_object_box_outside_image_is_found_by_check_images(tmp_path: Path):
    root = tmp_path / "images"
    xmls = tmp_path / "xmls"
    write_image(root / "a.png")
    write_voc(xmls, "a.png", voc_object("cat", (1, 1, 10, 10)), voc_object("dog", (30, 1, 48, 9)))
    ds = build_dataset(root, annotations=xmls)
    with pytest.raises(DataError, match=r"(?s)1 problem.*'dog' box .* outside.*<object> #2"):
        ds.check_images()


def test_csv_multi_label_dataset(tmp_path: Path):
    root = tmp_path / "images"
    for name in ("a.png", "b.png", "c.png"):
        write_image(root / name)
    csv = tmp_path / "ann.csv"
    csv.write_text(
        CSV_HEADER
        + "a.png,zebra,,,,,\n"
        + "a.png,ant,head,0,0,10,10\n"
        + "a.png,ant,head,20,0,30,10\n"
        + "a.png,,sky,0,0,40,5\n"
        + "b.png,ant,,,,,\n"
    )
    ds = build_dataset(root, annotations=csv, image_size=40)
    assert ds.multi_object and ds.class_names == ["ant", "zebra"]
    assert [ds.sample_labels(i) for i in range(3)] == [(1, 0), (0,), ()]
    s = ds[0]
    assert (s.label, s.class_name, s.labels) == (None, None, (1, 0))
    assert list(s.regions) == ["head", "sky"]
    assert s.class_regions[1] == {}  # a label-only class has no region
    ant = s.class_regions[0]
    assert list(ant) == ["ant", "head"]  # no object is named like the class: no "#k" keys
    assert same_boxes(ant["ant"], [(0.0, 0.0, 10.0, 20.0), (20.0, 0.0, 30.0, 20.0)])
    assert boxes(ant["head"]) == boxes(ant["ant"])
    assert (ds[1].label, ds[1].class_name) == (0, "ant")
    assert ds[2].label is None and ds[2].labels == ()


def test_csv_integer_classes_without_names(tmp_path: Path):
    root = tmp_path / "images"
    write_image(root / "a.png")
    write_image(root / "b.png")
    csv = tmp_path / "ann.csv"
    csv.write_text(CSV_HEADER + "a.png,281,281,0,0,10,10\na.png,7,,,,,\nb.png,7,,,,,\n")
    ds = build_dataset(root, annotations=csv, image_size=40)
    assert ds.multi_object and ds.class_names is None
    assert ds.sample_labels(0) == (281, 7) and ds.sample_labels(1) == (7,)
    s = ds[0]
    assert s.label is None and s.labels == (281, 7)
    assert list(s.class_regions[281]) == ["281", "281#1"]
    assert ds[1].label == 7 and ds[1].class_name is None


def test_mixed_names_and_integer_classes_fail(tmp_path: Path):
    root = tmp_path / "images"
    write_image(root / "a.png")
    write_image(root / "b.png")
    csv = tmp_path / "ann.csv"
    csv.write_text(CSV_HEADER + "a.png,cat,,,,,\na.png,dog,,,,,\nb.png,4,,,,,\n")
    with pytest.raises(DataError, match=r"mix class names and integer labels .*'b.png' has 4"):
        build_dataset(root, annotations=csv)


def test_class_folders_every_object_class_must_be_a_folder(tmp_path: Path):
    root = tmp_path / "images"
    write_image(root / "cat" / "a.png")
    write_image(root / "dog" / "b.png")
    xmls = tmp_path / "xmls"
    write_voc(xmls, "a.png", voc_object("cat", (1, 1, 10, 10)), voc_object("dog", (20, 1, 30, 9)))
    write_voc(xmls, "b.png", voc_object("dog", (1, 1, 10, 10)))
    ds = build_dataset(root, annotations=xmls, image_size=40)
    assert ds.multi_object and ds.class_names == ["cat", "dog"]
    assert ds.sample_labels(0) == (0, 1) and ds.sample_labels(1) == (1,)
    assert ds.labels == [None, 1]
    assert ds[0].class_name is None and ds[1].class_name == "dog"

    write_voc(xmls, "b.png", voc_object("dog", (1, 1, 10, 10)), voc_object("horse", (2, 2, 9, 9)))
    with pytest.raises(
        DataError,
        match=r"b.xml: <object> #2 \('horse'\): class 'horse' of image 'dog/b.png' is not a "
        r"class of the dataset \(cat, dog\)",
    ):
        build_dataset(root, annotations=xmls)


def test_sub_folders_named_like_no_class_are_not_class_folders(tmp_path: Path):
    root = tmp_path / "ds"
    write_image(root / "images" / "a.png")
    write_image(root / "images" / "b.png")
    csv = root / "ann.csv"
    csv.write_text(
        CSV_HEADER
        + "images/a.png,red,red,0,0,10,10\nimages/a.png,blue,blue,20,0,30,9\n"
        + "images/b.png,blue,blue,0,0,5,5\n"
    )
    ds = build_dataset(root, annotations=csv, image_size=40)
    assert ds.multi_object and ds.class_names == ["blue", "red"]
    assert ds.ids == ["images/a", "images/b"]
    assert ds.labels == [None, 0]
    assert [ds.sample_labels(i) for i in range(2)] == [(1, 0), (0,)]
    # single-label: the sub-folder still is a class folder, as before
    csv.write_text(CSV_HEADER + "images/a.png,,red,0,0,10,10\n")
    ds = build_dataset(root, annotations=csv, image_size=40)
    assert not ds.multi_object and ds.class_names == ["images"] and ds.labels == [0, 0]


def test_one_class_image_contradicting_its_folder_fails(tmp_path: Path):
    root = tmp_path / "images"
    write_image(root / "cat" / "a.png")
    write_image(root / "dog" / "b.png")
    xmls = tmp_path / "xmls"
    write_voc(xmls, "a.png", voc_object("cat", (1, 1, 10, 10)), voc_object("dog", (20, 1, 30, 9)))
    write_voc(xmls, "b.png", voc_object("cat", (1, 1, 10, 10)))
    with pytest.raises(DataError, match=r"class 'cat'.*image 'dog/b.png', contradicts its class"):
        build_dataset(root, annotations=xmls)


def test_an_instance_smaller_than_a_pixel_grows_to_its_pixel(tmp_path: Path):
    root = tmp_path / "images"
    write_image(root / "a.png", size=(100, 100))
    xmls = tmp_path / "xmls"
    write_voc(
        xmls,
        "a.png",
        voc_object("cat", (1, 1, 40, 40)),
        voc_object("cat", (99, 99, 100, 100)),  # merged with the first, alone it is tiny
        voc_object("dog", (50, 50, 90, 90)),
        size=(100, 100),
    )
    ds = build_dataset(root, annotations=xmls, image_size=4)
    sample = ds[0]  # not an error: the model's input shows the object in one pixel
    cat = ds.class_names.index("cat")
    tiny = sample.class_regions[cat]["cat#2"].to_mask(4, 4)
    assert tiny.sum() == 1 and tiny[3, 3]
    assert "not_visible" not in sample.meta


# ---------------------------------------------------------------- single-label: unchanged


def test_single_label_voc_dataset_is_unchanged(tmp_path: Path):
    root = tmp_path / "images"
    xmls = tmp_path / "xmls"
    write_image(root / "a.png")
    write_image(root / "b.png")
    # two cats (and a part) in one image are still one class
    write_voc(
        xmls,
        "a.png",
        voc_object("cat", (1, 1, 10, 10), parts=(("head", (2, 2, 5, 5)),)),
        voc_object("cat", (21, 1, 30, 10), difficult=True),
    )
    write_voc(xmls, "b.png", voc_object("dog", (1, 1, 10, 10)))
    ds = build_dataset(root, annotations=xmls, image_size=40)
    assert ds.multi_object is False
    assert ds.class_names is None and ds.labels == [None, None]
    assert ds.sample_labels(0) == () and ds.sample_difficult(0) == ()
    s = ds[0]
    assert (s.label, s.class_name, s.labels, s.class_regions) == (None, None, (), {})
    assert list(s.regions) == ["cat", "head"]
    assert same_boxes(s.regions["cat"], [(0.0, 0.0, 10.0, 20.0), (20.0, 0.0, 30.0, 20.0)])


def test_single_label_csv_dataset_is_unchanged(tmp_path: Path):
    root = tmp_path / "images"
    for name in ("a.png", "b.png", "c.png"):
        write_image(root / name)
    csv = tmp_path / "ann.csv"
    csv.write_text(
        CSV_HEADER + "a.png,zebra,,,,,\na.png,zebra,head,0,0,10,10\nb.png,ant,tail,1,1,5,5\n"
    )
    ds = build_dataset(root, annotations=csv, image_size=40)
    assert ds.multi_object is False
    assert ds.class_names == ["ant", "zebra"]
    assert ds.labels == [1, 0, None]
    assert [ds.sample_labels(i) for i in range(3)] == [(), (), ()]
    s = ds[0]
    assert (s.label, s.class_name, s.labels, s.class_regions) == (1, "zebra", (), {})
    assert list(s.regions) == ["head"]


def test_factory_dataset_is_not_multi_object():
    samples = [Sample(id="x", label=0, image=Image.new("RGB", (8, 8)))]

    class Source:
        ids = ("x",)

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return samples[i]

    ds = build_dataset(Source(), image_size=8)
    assert ds.multi_object is False
    assert ds.sample_labels(0) == () and ds.sample_difficult(0) == ()
    assert ds[0].labels == () and ds[0].class_regions == {}
