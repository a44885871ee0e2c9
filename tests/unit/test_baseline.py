"""Baseline storage (pytest_camcheck.baseline): round trips, atomic writes that survive a crash,
manifests that name what is wrong, and the cross-process write lock."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pytest_camcheck import baseline
from pytest_camcheck.baseline import (
    KIND,
    MANIFEST,
    SCHEMA_VERSION,
    BaselineKey,
    Baselines,
    dequantize,
    quantize,
    read_baseline,
    write_baseline,
)
from pytest_camcheck.errors import BaselineError

KEY = BaselineKey(("layer4",), "gradcam", "label", (32, 32))


def maps(n: int = 4, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, 7, 7)) * scale).astype(np.float32)


def write(folder: Path, raw: np.ndarray, **kw) -> Path:
    ids = [f"s/{i}" for i in range(len(raw))]
    return write_baseline(
        folder,
        KEY,
        ids,
        {"layer4": raw},
        hashes=kw.pop("hashes", [f"{i:064x}" for i in range(len(raw))]),
        targets=kw.pop("targets", list(range(len(raw)))),
        provenance=kw.pop("provenance", {"model": {"spec": "toy:net"}, "torch": "x"}),
        **kw,
    )


def test_quantize_keeps_three_digits_of_any_magnitude() -> None:
    for scale in (1e-6, 1.0, 1e6):
        raw = maps(scale=scale)
        q, s = quantize(raw)
        assert q.dtype == np.float16 and s.dtype == np.float32
        back = dequantize(q, s)
        assert np.abs(back - raw).max() <= 1e-3 * np.abs(raw).max()
    zero = np.zeros((2, 3, 3), dtype=np.float32)
    zero[1, 0, 0] = np.nan
    q, s = quantize(zero)
    assert s.tolist() == [1.0, 1.0] and np.isnan(q[1, 0, 0]) and not q[0].any()


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    raw = maps()
    manifest = write(tmp_path / "b", raw, run_id="run-1", errors={"s/9": "cannot read"})
    got = read_baseline(tmp_path / "b", KEY)
    assert got is not None and got.key == KEY and got.ids == ("s/0", "s/1", "s/2", "s/3")
    assert got.run_id == "run-1" and got.row("s/2") == 2 and got.row("nope") is None
    assert np.abs(got.raw("layer4", [3, 0]) - raw[[3, 0]]).max() < 1e-3 * np.abs(raw).max()
    assert got.targets.tolist() == [0, 1, 2, 3] and got.hashes[1] == f"{1:064x}"
    data = json.loads(manifest.read_text())
    assert data["kind"] == KIND and data["schema_version"] == SCHEMA_VERSION
    assert data["config"] == {
        "layers": ["layer4"],
        "method": "gradcam",
        "target": "label",
        "input_size": [32, 32],
        "output": None,
    }
    assert data["model"] == {"spec": "toy:net"} and data["errors"] == {"s/9": "cannot read"}
    assert data["data"]["file"].startswith("maps-") and data["data"]["dtype"] == "float16"
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == sorted([MANIFEST, data["data"]["file"]])  # no temporary file left
    with pytest.raises(BaselineError, match="no maps of layer 'layer3'"):
        got.raw("layer3", [0])


def test_folder_names_are_safe_and_distinct() -> None:
    assert KEY.folder_name() == "layer4_gradcam_label_32x32"
    two = BaselineKey(("layer3", "layer4"), "gradcam++", "predicted", (224, 224), 1)
    assert two.folder_name() == "layer3+layer4_gradcam++_predicted_224x224_out-1"
    odd = BaselineKey(("blocks/0:conv",), "gradcam", "label", (32, 32))
    other = BaselineKey(("blocks/0?conv",), "gradcam", "label", (32, 32))
    assert "/" not in odd.folder_name() and ":" not in odd.folder_name()
    assert odd.folder_name() != other.folder_name()  # the hash tells them apart


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("layers", ["layer3"], "layers layer3, but the test explains layers layer4"),
        ("method", "cam", "method 'cam', but the test explains method 'gradcam'"),
        ("input_size", [64, 64], "input size 64x64, but the test explains input size 32x32"),
        ("target", "predicted", "target 'predicted'"),
    ],
)
def test_a_manifest_of_another_configuration_names_the_field(
    tmp_path: Path, field: str, value: object, named: str
) -> None:
    path = write(tmp_path, maps())
    data = json.loads(path.read_text())
    data["config"][field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match=named) as info:
        read_baseline(tmp_path, KEY)
    assert "--camcheck-update-baselines" in str(info.value)
    assert read_baseline(tmp_path) is not None  # without a key to check, it reads


def test_corrupt_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    path = write(tmp_path, maps())
    good = path.read_text()
    data = json.loads(good)
    npz = tmp_path / data["data"]["file"]

    path.write_text(good[:40])
    with pytest.raises(BaselineError, match=r"not valid JSON.*corrupt"):
        read_baseline(tmp_path, KEY)
    path.write_text(json.dumps({"cats": 3}))
    with pytest.raises(BaselineError, match="not a pytest-camcheck baseline manifest"):
        read_baseline(tmp_path, KEY)
    path.write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(BaselineError, match=r"schema 99.*upgrade pytest-camcheck"):
        read_baseline(tmp_path, KEY)
    path.write_text(good)
    blob = npz.read_bytes()
    npz.write_bytes(blob[:-10] + b"0123456789")
    with pytest.raises(BaselineError, match="sha256 differs"):
        read_baseline(tmp_path, KEY)
    npz.unlink()
    with pytest.raises(BaselineError, match=r"data file 'maps-.*' it names is missing"):
        read_baseline(tmp_path, KEY)
    assert read_baseline(tmp_path / "nowhere", KEY) is None


def test_a_crash_while_writing_leaves_the_old_baseline_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = maps(seed=1)
    write(tmp_path, old)
    before = (tmp_path / MANIFEST).read_bytes()
    real = baseline._replace
    calls: list[str] = []

    def crash_on_the_manifest(src: Path, dst: Path) -> None:
        calls.append(Path(dst).name)
        if Path(dst).name == MANIFEST:
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(baseline, "_replace", crash_on_the_manifest)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path, maps(seed=2))
    assert calls[0].startswith("maps-") and calls[1] == MANIFEST  # data first, then manifest
    assert (tmp_path / MANIFEST).read_bytes() == before
    got = read_baseline(tmp_path, KEY)
    assert got is not None
    assert np.abs(got.raw("layer4", range(4)) - old).max() < 1e-3 * np.abs(old).max()
    assert not list(tmp_path.glob(".*.tmp"))  # the failed temporary file was removed

    monkeypatch.setattr(baseline, "_replace", real)
    new = maps(seed=3)
    write(tmp_path, new)  # the next write succeeds and drops every older data file
    assert len(list(tmp_path.glob("maps-*.npz"))) == 1
    got = read_baseline(tmp_path, KEY)
    assert got is not None and np.abs(got.raw("layer4", [0])[0] - new[0]).max() < 1e-2


def test_baselines_cache_reads_and_hash_images(tmp_path: Path) -> None:
    bl = Baselines(tmp_path, run_id="r1")
    assert bl.load(KEY) is None
    bl.write(KEY, ["a", "b"], {"layer4": maps(2)})
    first = bl.load(KEY)
    assert first is not None and first.run_id == "r1" and bl.load(KEY) is first
    assert bl.load_folder(bl.folder(KEY)) is not None
    image = tmp_path / "img.png"
    image.write_bytes(b"one")
    h1 = bl.image_hash(image)
    image.write_bytes(b"two!")
    assert bl.image_hash(image) != h1 and bl.image_hash(None) is None
    assert bl.image_hash(tmp_path / "missing.png") is None


def test_the_write_lock_excludes_other_writers(tmp_path: Path) -> None:
    bl = Baselines(tmp_path)
    order: list[str] = []
    started = threading.Event()

    def other() -> None:
        started.set()
        with Baselines(tmp_path).lock(KEY):  # another holder of the same folder's lock
            order.append("other")

    with bl.lock(KEY):
        thread = threading.Thread(target=other)
        thread.start()
        started.wait(5)
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "other"]
