"""Hostile data through the whole plugin, plain and under ``-n 2``: one clear line naming the
problem (the sample and the file), no INTERNALERROR, no traceback from inside torch, only the
bad sample's items failing, and every input file left byte-identical."""

from __future__ import annotations

import hashlib
import os
import struct
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

MODES = ["plain", "n2"]

PER_SAMPLE = """
from pytest_camcheck import assert_energy_in_region, assert_peak_in_box


def test_energy(camcheck_case):
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.6)
"""

PEAK_AND_ENERGY = (
    PER_SAMPLE
    + """

def test_peak(camcheck_case):
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["object"])
"""
)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not p.is_symlink()
        and "__pycache__" not in p.parts
        and p.suffix != ".pyc"
    }


def _set_ini(root: Path, **values: str) -> None:
    """Set ``camcheck_<key> = value`` lines of the project's ini file."""
    path = root / "tox.ini"
    lines = path.read_text().splitlines()
    for key, value in values.items():
        line = f"camcheck_{key} = {value}".rstrip()
        hits = [i for i, ln in enumerate(lines) if ln.split("=")[0].strip() == f"camcheck_{key}"]
        if hits:
            lines[hits[0]] = line
        else:
            lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def _run(project, mode: str, *args: str) -> tuple[pytest.RunResult, str]:
    if mode == "n2":
        result = project.run("-n", "2", "-p", "xdist", *args, subprocess=True)
    else:
        result = project.run(*args)
    return result, "\n".join(result.outlines + result.errlines)


def _assert_unchanged(root: Path, before: dict[str, str]) -> None:
    """Every file hashed before the run is byte-identical after it (the run may add its own
    files, e.g. a subprocess run's stdout and stderr captures)."""
    after = _hashes(root)
    assert {k: v for k, v in after.items() if k in before} == before


def _clean(text: str) -> None:
    assert "INTERNALERROR" not in text, text
    assert "Traceback" not in text, text
    assert "site-packages/torch" not in text and "torch/nn/" not in text, text


# ------------------------------------------------------------------ planting bad inputs


def _bomb_png(path: Path, side: int = 20000) -> None:
    """A tiny PNG whose header declares side x side pixels: PIL refuses it as a bomb."""

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


def _append_csv(root: Path, row: str) -> int:
    """Append a row to the project's CSV; returns its line number."""
    csv = root / "data" / "annotations.csv"
    text = csv.read_text()
    csv.write_text(text + row + "\n")
    return len(text.splitlines()) + 1


def _voc(filename: str, size: tuple[int, int], box: tuple[int, int, int, int]) -> str:
    x0, y0, x1, y1 = box
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size><object><name>object</name>"
        f"<bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
        "</bndbox></object></annotation>"
    )


@dataclass(frozen=True)
class Bad:
    """A bad input: how to plant it, the exit code and the fragments its one line holds."""

    name: str
    plant: Callable[[object], list[str]]  # project -> fragments expected on one line
    rc: int
    failed_samples: int  # samples whose items fail (-1: the session ends before any runs)


def _annotations_are_images(project) -> list[str]:
    _set_ini(project.root, annotations="data")
    return ["camcheck:", "annotations point at the images", "data", "*.csv"]


def _factory_raises(project) -> list[str]:
    (project.root / "facmod.py").write_text(
        textwrap.dedent(
            """
            import torch


            def read_index():
                return torch.zeros(2, 3) @ torch.zeros(4, 5)


            def build():
                return read_index()
            """
        )
    )
    _set_ini(project.root, dataset="facmod:build", annotations="")
    return [
        "camcheck: dataset 'facmod:build': the factory raised RuntimeError:",
        "facmod.py:10 in build",
        "facmod.py:6 in read_index",
    ]


def _zero_area_box(project) -> list[str]:
    line = _append_csv(project.root, "red/red_01.png,red,head,5,5,5,9")
    return ["sample 'red/red_01'", "'head'", "zero width", f"annotations.csv:{line}"]


def _box_outside(project) -> list[str]:
    line = _append_csv(project.root, "red/red_02.png,red,head,20,20,90,40")
    return [
        "sample 'red/red_02'",
        "Box(x0=20, y0=20, x1=90, y1=40)",
        "32x32",
        f"annotations.csv:{line}",
    ]


def _voc_size_mismatch(project) -> list[str]:
    xmls = project.root / "xmls"
    xmls.mkdir()
    for name, box in project.boxes.items():
        base = name.split("/")[-1]
        size = (64, 48) if base == "red_01.png" else (32, 32)
        (xmls / base.replace(".png", ".xml")).write_text(_voc(base, size, box))
    _set_ini(project.root, annotations="xmls")
    return ["sample 'red/red_01'", "red_01.xml", "red_01.png", "64x48", "32x32"]


def _bomb(project) -> list[str]:
    _bomb_png(project.root / "data" / "red" / "red_01.png")
    return ["red_01.png", "too large to decode safely"]


def _truncated(project) -> list[str]:
    path = project.root / "data" / "green" / "green_02.png"
    path.write_bytes(path.read_bytes()[:-40])
    return ["green_02.png", "truncated"]


def _channels_last(project) -> list[str]:
    (project.root / "hwcmod.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            import torch


            def hwc(img):
                return torch.from_numpy(np.asarray(img, dtype="float32") / 255.0)
            """
        )
    )
    _set_ini(project.root, transform="hwcmod:hwc")
    return ["sample 'green/green_00'", "(32, 32, 3)", "(H, W, C)", "(C, H, W)"]


CASES = [
    Bad("annotations are the images", _annotations_are_images, 4, -1),
    Bad("factory raises", _factory_raises, 4, -1),
    Bad("zero-area box", _zero_area_box, 1, 1),
    Bad("box outside", _box_outside, 1, 1),
    Bad("voc size differs", _voc_size_mismatch, 1, 1),
    Bad("decompression bomb", _bomb, 1, 1),
    Bad("truncated image", _truncated, 1, 1),
    Bad("channels-last transform", _channels_last, 1, 6),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_data_gives_one_line_and_fails_only_its_samples(camcheck_project, case, mode):
    project = camcheck_project(tests=PER_SAMPLE)
    fragments = case.plant(project)
    before = _hashes(project.root)
    result, text = _run(project, mode)
    assert result.ret == case.rc, text
    assert any(all(f in ln for f in fragments) for ln in text.splitlines()), (fragments, text)
    _clean(text)
    if case.failed_samples >= 0:
        result.assert_outcomes(passed=6 - case.failed_samples, errors=case.failed_samples)
    _assert_unchanged(project.root, before)


# ------------------------------------------------------------------ inputs now handled right


V1_TRANSFORM = """
import torchvision.transforms as T

flip = T.Compose([T.Resize(48), T.RandomHorizontalFlip(p=1.0), T.ToTensor()])
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_v1_transform_moves_the_boxes_with_the_pixels(camcheck_project, mode):
    # A flip the boxes did not follow would put every peak in the mirrored place.
    project = camcheck_project(tests=PEAK_AND_ENERGY)
    (project.root / "v1tf.py").write_text(V1_TRANSFORM)
    _set_ini(project.root, transform="v1tf:flip")
    before = _hashes(project.root)
    result, text = _run(project, mode)
    assert result.ret == 0, text
    result.assert_outcomes(passed=12)
    _clean(text)
    _assert_unchanged(project.root, before)


BRIGHTNESS = """
def test_brightness(camcheck_dataset):
    assert len(camcheck_dataset) == 6
    for i in range(len(camcheck_dataset)):
        x = camcheck_dataset[i].image
        assert tuple(x.shape) == (3, 32, 32)
        assert abs(float(x.max()) - 156 / 255) < 1e-6, float(x.max())
        assert abs(float(x.min()) - 31 / 255) < 1e-6, float(x.min())
"""


@pytest.mark.parametrize("mode", MODES)
def test_16_bit_images_keep_their_brightness(camcheck_project, mode):
    from PIL import Image

    project = camcheck_project(tests=BRIGHTNESS)
    for name, (x0, y0, x1, y1) in project.boxes.items():
        values = np.full((32, 32), 8000, dtype=np.uint16)  # 8000 / 65535 * 255 -> 31
        values[y0:y1, x0:x1] = 40000  # -> 156
        Image.fromarray(values).save(project.root / "data" / name)
    before = _hashes(project.root)
    result, text = _run(project, mode)
    assert result.ret == 0, text
    result.assert_outcomes(passed=1)
    _clean(text)
    _assert_unchanged(project.root, before)


COUNT = """
def test_count(camcheck_dataset):
    assert sorted(camcheck_dataset.ids) == [
        "green/green_00", "green/green_01", "green/green_02",
        "red/red_00", "red/red_01", "red/red_02",
    ]
"""


@pytest.mark.parametrize("mode", MODES)
def test_symlink_loops_neither_hang_nor_multiply_samples(camcheck_project, mode):
    project = camcheck_project(tests=PER_SAMPLE + COUNT)
    data = project.root / "data"
    os.symlink(data, data / "red" / "loop")
    os.symlink(data / "green", data / "green" / "again")
    before = _hashes(project.root)
    result, text = _run(project, mode, "test_cam.py")
    assert result.ret == 0, text
    result.assert_outcomes(passed=7)
    _clean(text)
    _assert_unchanged(project.root, before)
