"""Stored maps for regression checks: one folder per map configuration, written atomically.

A baseline is the last good model's raw maps, kept with the tests so that a retrained model can
be compared with it. ``camcheck_baseline_dir`` (default ``tests/camcheck-baselines``) holds one
folder per map configuration, named after it (``layer4_gradcam_label_224x224``)::

    <baseline_dir>/<configuration>/manifest.json
    <baseline_dir>/<configuration>/maps-<sha256 prefix>.npz

The ``.npz`` file (numpy, compressed) holds, per layer, the raw maps at the layer's resolution as
float16 (each map divided by its largest absolute value, which is kept as a float32 ``scale``:
float16 then keeps ~3 significant digits of every map, whatever its magnitude), and the
explained class of each sample. The manifest (JSON, :data:`SCHEMA_VERSION`) names the data file
and its sha256, repeats the configuration, and records where the maps came from: the model spec
and kwargs, the sha256 of its weights, the transform, the dataset's sample ids with the sha256 of
each image file, the torch version and the run that wrote it.

Writes are atomic: the data file is written to a temporary file in the same folder, synced and
renamed (its name carries its content hash, so it never overwrites the file the current manifest
names); then the manifest is replaced the same way; only then are older data files removed. A
crash at any point leaves the previous baseline readable. Under pytest-xdist the writers take a
per-folder lock (:meth:`Baselines.lock`), so one process writes a folder at a time.

Knows nothing of pytest or torch (numpy only).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import fsync_dir, temp_file
from .errors import BaselineError

__all__ = [
    "DEFAULT_DIR",
    "KIND",
    "SCHEMA_VERSION",
    "Baseline",
    "BaselineKey",
    "Baselines",
    "dequantize",
    "file_sha256",
    "quantize",
    "read_baseline",
    "write_baseline",
]

#: Version of the manifest layout; a reader refuses a newer one.
SCHEMA_VERSION = 1
#: The manifest's ``kind``: tells a camcheck baseline from any other JSON file.
KIND = "camcheck-baseline"
#: The default ``camcheck_baseline_dir`` (relative to the rootdir).
DEFAULT_DIR = "tests/camcheck-baselines"
MANIFEST = "manifest.json"
_DATA_GLOB = "maps-*.npz"
_UPDATE_HINT = "rewrite it with `pytest --camcheck-update-baselines`"

# indirections the crash tests replace
_replace = os.replace


# --------------------------------------------------------------------------------------------
# the configuration key


@dataclass(frozen=True)
class BaselineKey:
    """The map configuration a baseline belongs to (its folder's name is made from it).

    Attributes:
        layers: the explained layers (resolved names).
        method: the CAM method.
        target: ``"label"`` or ``"predicted"``.
        input_size: the transformed images' ``(H, W)``.
        output: which model output was explained (None: the first).
    """

    layers: tuple[str, ...]
    method: str
    target: str
    input_size: tuple[int, int]
    output: int | str | None = None

    def folder_name(self) -> str:
        """``"layer3+layer4_gradcam_label_224x224"``; a short hash is appended when a name had
        to be changed to be a safe file name (or is very long), so names never collide."""
        h, w = self.input_size
        parts = ["+".join(self.layers), self.method, str(self.target), f"{h}x{w}"]
        if self.output is not None:
            parts.append(f"out-{self.output}")
        raw = "_".join(parts)
        safe = "_".join(re.sub(r"[^A-Za-z0-9._+=-]+", "-", p) for p in parts).lstrip(".")
        if safe != raw or len(safe) > 80:
            digest = hashlib.sha256(json.dumps(self.to_dict()).encode()).hexdigest()[:8]
            safe = f"{safe[:80]}_{digest}"
        return safe

    def describe(self) -> str:
        """``"layer4, gradcam, target label, 224x224 input"``."""
        h, w = self.input_size
        out = "" if self.output is None else f", output {self.output}"
        return f"{'+'.join(self.layers)}, {self.method}, target {self.target}, {h}x{w} input{out}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "method": self.method,
            "target": self.target,
            "input_size": [int(self.input_size[0]), int(self.input_size[1])],
            "output": self.output,
        }


#: Manifest fields checked against the test's configuration, with how messages name them.
_FIELDS = (
    ("layers", "layers"),
    ("method", "method"),
    ("target", "target"),
    ("input_size", "input size"),
    ("output", "output"),
)


# --------------------------------------------------------------------------------------------
# the data


def quantize(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw maps ``(N, h, w)`` -> (float16 maps divided by their largest |value|, float32 scales).

    A map that is all zero or non-finite keeps scale 1 (non-finite values stay non-finite).
    """
    arr = np.asarray(raw, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"raw maps must be (N, h, w), got shape {arr.shape}")
    flat = np.abs(np.where(np.isfinite(arr), arr, 0.0)).reshape(len(arr), -1)
    scale = flat.max(axis=1) if flat.size else np.ones(len(arr), dtype=np.float32)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return (arr / scale[:, None, None]).astype(np.float16), scale


def dequantize(maps: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The float32 raw maps back from :func:`quantize`'s output."""
    return maps.astype(np.float32) * np.asarray(scale, dtype=np.float32)[:, None, None]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Baseline:
    """A baseline read from its folder.

    Attributes:
        folder: where it lives.
        manifest: the manifest as read.
        key: its map configuration.
        ids: sample ids, in row order.
        hashes: sha256 of each sample's image file (None when the sample had no file).
        targets: ``(N,)`` the explained classes.
        maps: layer -> ``(N, h, w)`` float16 maps (see :func:`quantize`).
        scales: layer -> ``(N,)`` float32 scales.
    """

    folder: Path
    manifest: dict[str, Any]
    key: BaselineKey
    ids: tuple[str, ...]
    hashes: tuple[str | None, ...]
    targets: np.ndarray
    maps: dict[str, np.ndarray]
    scales: dict[str, np.ndarray]
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._rows = {sid: r for r, sid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def run_id(self) -> str | None:
        """The id of the test run that wrote it."""
        return self.manifest.get("run_id")

    def row(self, sample_id: str) -> int | None:
        """The row of a sample, or None when the baseline does not have it."""
        return self._rows.get(sample_id)

    def raw(self, layer: str, rows: Sequence[int]) -> np.ndarray:
        """Float32 raw maps ``(len(rows), h, w)`` of ``layer`` for the given rows."""
        if layer not in self.maps:
            raise BaselineError(
                f"{self.folder / MANIFEST}: the baseline has no maps of layer {layer!r} (it has "
                f"{', '.join(self.maps)}); {_UPDATE_HINT}"
            )
        idx = np.asarray(list(rows), dtype=np.int64)
        return dequantize(self.maps[layer][idx], self.scales[layer][idx])


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target``: a synced temporary file in the same folder, then a rename
    (through ``_replace``, which tests swap to simulate a crash)."""
    tmp = temp_file(target, lambda fh: fh.write(data), binary=True)
    try:
        _replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_baseline(
    folder: str | os.PathLike[str],
    key: BaselineKey,
    ids: Sequence[str],
    raw: Mapping[str, np.ndarray],
    *,
    hashes: Sequence[str | None] | None = None,
    targets: Sequence[int] | None = None,
    provenance: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Path:
    """Write (or replace) the baseline in ``folder`` atomically (see the module docstring).

    Args:
        folder: the configuration's folder (created when missing).
        key: the map configuration.
        ids: sample ids, one per map row.
        raw: layer -> ``(N, h, w)`` raw maps, for every layer of ``key``.
        hashes: sha256 of each sample's image file (None: unknown).
        targets: the explained class of each sample.
        provenance: model, transform, dataset and version facts for the manifest.
        errors: sample id -> why it has no map (kept in the manifest).
        run_id: the id of the writing test run.

    Returns:
        The manifest's path.

    Raises:
        ValueError: the arrays do not match ``ids`` or ``key.layers``.
    """
    target = Path(folder)
    n = len(ids)
    if len(set(ids)) != n:
        raise ValueError("sample ids must be unique")
    missing = [layer for layer in key.layers if layer not in raw]
    if missing:
        raise ValueError(f"no raw maps for layer(s) {', '.join(missing)}")
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    for i, layer in enumerate(key.layers):
        maps = np.asarray(raw[layer])
        if maps.ndim != 3 or len(maps) != n:
            raise ValueError(f"layer {layer!r}: expected ({n}, h, w) maps, got {maps.shape}")
        q, scale = quantize(maps)
        arrays[f"map{i}"] = q
        arrays[f"scale{i}"] = scale
        shapes[layer] = [int(maps.shape[1]), int(maps.shape[2])]
    arrays["targets"] = np.asarray(
        [-1] * n if targets is None else [int(t) for t in targets], dtype=np.int64
    )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    data_name = f"maps-{digest[:16]}.npz"
    hash_list = [None] * n if hashes is None else list(hashes)
    if len(hash_list) != n:
        raise ValueError(f"expected {n} image hashes, got {len(hash_list)}")
    from . import __version__

    manifest = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "generator": f"pytest-camcheck {__version__}",
        "created": _now(),
        "run_id": run_id,
        "config": key.to_dict(),
        "data": {
            "file": data_name,
            "sha256": digest,
            "dtype": "float16",
            "scaled": True,
            "layers": shapes,
        },
        **dict(provenance or {}),
        "samples": [{"id": str(s), "sha256": h} for s, h in zip(ids, hash_list)],
        "errors": dict(errors or {}),
    }
    text = json.dumps(manifest, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    target.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(target / data_name, data)  # the data first: the old manifest still
    _atomic_write_bytes(target / MANIFEST, text.encode("utf-8"))  # names the old file
    for old in target.glob(_DATA_GLOB):
        if old.name != data_name:
            old.unlink(missing_ok=True)
    return target / MANIFEST


def _corrupt(path: Path, what: str) -> BaselineError:
    return BaselineError(f"{path}: {what}; the baseline is corrupt: {_UPDATE_HINT}")


def read_baseline(
    folder: str | os.PathLike[str], key: BaselineKey | None = None
) -> Baseline | None:
    """Read the baseline in ``folder``; None when there is none (no manifest).

    Args:
        folder: the configuration's folder.
        key: the configuration the test expects; a manifest made for another one (layer,
            method, target, input size, output) is an error naming the field.

    Raises:
        BaselineError: the manifest is not a camcheck baseline, is from a newer schema, belongs to
            another configuration, or the data file is missing, altered or unreadable.
    """
    root = Path(folder)
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(path, f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise BaselineError(
            f'{path}: not a pytest-camcheck baseline manifest (no "kind": "{KIND}"); the '
            "folder holds a file camcheck did not write. Move it out of the baseline folder, or "
            f"{_UPDATE_HINT}"
        )
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _corrupt(path, f"schema_version is {version!r}, not an integer")
    if version > SCHEMA_VERSION:
        raise BaselineError(
            f"{path}: written with baseline schema {version} by {manifest.get('generator')}, but "
            f"this pytest-camcheck reads schema {SCHEMA_VERSION}; upgrade pytest-camcheck, or "
            f"{_UPDATE_HINT}"
        )
    config = manifest.get("config")
    samples = manifest.get("samples")
    data = manifest.get("data")
    if not isinstance(config, dict) or not isinstance(samples, list) or not isinstance(data, dict):
        raise _corrupt(path, "the manifest lacks config, samples or data")
    try:
        stored = BaselineKey(
            layers=tuple(str(x) for x in config["layers"]),
            method=str(config["method"]),
            target=str(config["target"]),
            input_size=(int(config["input_size"][0]), int(config["input_size"][1])),
            output=config.get("output"),
        )
        ids = tuple(str(s["id"]) for s in samples)
        hashes = tuple(s.get("sha256") for s in samples)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _corrupt(path, f"malformed config or samples ({type(exc).__name__}: {exc})") from None
    if key is not None:
        ours, theirs = key.to_dict(), stored.to_dict()
        for name, label in _FIELDS:
            if ours[name] != theirs[name]:
                raise BaselineError(
                    f"{path}: this baseline was made with {label} {_show(theirs[name])}, but the "
                    f"test explains {label} {_show(ours[name])}: the folder belongs to another map "
                    "configuration (renamed or copied by hand?). Move it back, or "
                    f"{_UPDATE_HINT}"
                )
    data_path = root / str(data.get("file", ""))
    if not data.get("file") or not data_path.is_file():
        raise _corrupt(path, f"the data file {data.get('file')!r} it names is missing")
    if file_sha256(data_path) != data.get("sha256"):
        raise _corrupt(data_path, "its sha256 differs from the manifest's (the file was altered)")
    maps: dict[str, np.ndarray] = {}
    scales: dict[str, np.ndarray] = {}
    try:
        with np.load(data_path, allow_pickle=False) as npz:
            for i, layer in enumerate(stored.layers):
                maps[layer] = np.asarray(npz[f"map{i}"])
                scales[layer] = np.asarray(npz[f"scale{i}"], dtype=np.float32)
            targets = np.asarray(npz["targets"], dtype=np.int64)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise _corrupt(data_path, f"unreadable ({type(exc).__name__}: {exc})") from None
    for layer in stored.layers:
        if maps[layer].ndim != 3 or len(maps[layer]) != len(ids) or len(scales[layer]) != len(ids):
            raise _corrupt(
                data_path, f"layer {layer!r} holds {maps[layer].shape} maps for {len(ids)} samples"
            )
    if len(targets) != len(ids):
        raise _corrupt(data_path, f"{len(targets)} targets for {len(ids)} samples")
    return Baseline(root, manifest, stored, ids, hashes, targets, maps, scales)


def _show(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return repr(value)


# --------------------------------------------------------------------------------------------
# the session's baselines


class Baselines:
    """The baseline folder of a test session: where baselines live, whether to rewrite them,
    the run's id, and the baselines read so far (shared by every view of the session).

    Args:
        root: the baseline folder (``camcheck_baseline_dir``).
        update: rewrite every baseline a test uses (``--camcheck-update-baselines``).
        run_id: the id of this test run (every xdist worker of one run shares it); a baseline
            written by this run is never compared against in the same run.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, update: bool = False, run_id: str | None = None
    ) -> None:
        self.root = Path(root)
        self.update = bool(update)
        self.run_id = run_id or uuid.uuid4().hex
        self._cache: dict[Path, Baseline] = {}
        self._hashes: dict[str, tuple[int, int, str]] = {}

    def __repr__(self) -> str:
        return f"Baselines({str(self.root)!r}, update={self.update})"

    def folder(self, key: BaselineKey) -> Path:
        """The folder of a configuration's baseline."""
        return self.root / key.folder_name()

    def load(self, key: BaselineKey, *, fresh: bool = False) -> Baseline | None:
        """The baseline of ``key`` (read once and kept), or None when there is none.

        Raises:
            BaselineError: see :func:`read_baseline`.
        """
        folder = self.folder(key)
        if not fresh and folder in self._cache:
            return self._cache[folder]
        got = read_baseline(folder, key)
        if got is None:
            self._cache.pop(folder, None)
        else:
            self._cache[folder] = got
        return got

    def load_folder(self, folder: str | os.PathLike[str]) -> Baseline | None:
        """The baseline in ``folder`` whatever its configuration (kept once read)."""
        path = Path(folder)
        if path not in self._cache:
            got = read_baseline(path)
            if got is None:
                return None
            self._cache[path] = got
        return self._cache[path]

    def write(
        self, key: BaselineKey, ids: Sequence[str], raw: Mapping[str, np.ndarray], **kw: Any
    ) -> Path:
        """Write the baseline of ``key`` (see :func:`write_baseline`) as this run."""
        folder = self.folder(key)
        self._cache.pop(folder, None)
        return write_baseline(folder, key, ids, raw, run_id=self.run_id, **kw)

    def image_hash(self, path: str | os.PathLike[str] | None) -> str | None:
        """The sha256 of an image file (None without a file), kept while the file is unchanged."""
        if path is None:
            return None
        name = os.fspath(path)
        try:
            st = os.stat(name)
        except OSError:
            return None
        held = self._hashes.get(name)
        if held is not None and held[:2] == (st.st_mtime_ns, st.st_size):
            return held[2]
        digest = file_sha256(name)
        self._hashes[name] = (st.st_mtime_ns, st.st_size, digest)
        return digest

    @contextlib.contextmanager
    def lock(self, key: BaselineKey) -> Iterator[None]:
        """Hold the configuration's write lock (across processes) inside the ``with`` block.

        The lock file lives in the system's temporary folder (named after the baseline folder's
        absolute path), so nothing is added to the tests' folder.
        """
        folder = self.folder(key).resolve()
        where = Path(tempfile.gettempdir()) / "pytest-camcheck-locks"
        where.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(str(folder).encode()).hexdigest()[:32] + ".lock"
        with open(where / name, "a+b") as fh:
            _lock(fh.fileno())
            try:
                yield
            finally:
                _unlock(fh.fileno())


def _lock(fd: int) -> None:  # pragma: no cover - one branch per platform
    try:
        import fcntl
    except ImportError:
        import msvcrt
        import time

        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                time.sleep(0.05)
    fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock(fd: int) -> None:  # pragma: no cover - one branch per platform
    try:
        import fcntl
    except ImportError:
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)
