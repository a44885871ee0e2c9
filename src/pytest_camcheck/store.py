"""The batch store: a dataset's maps, computed in batches once per map configuration.

A :class:`MapConfig` (layers, method, target, amp, batch size) names what is computed. The store
keeps, per configuration, each batch's raw maps (at the layer's resolution), logits, targets and
degenerate flags; a batch's display maps (ReLU, bilinear upsampling, min-max) come from the
engine once and are kept within a memory budget. A configuration whose layers are a subset of an
already computed one (same method, target, amp and batch size) is served by it.

Images are decoded and transformed by a :class:`torch.utils.data.DataLoader` (worker processes,
pinned memory and non-blocking copies on CUDA, the next batch prepared while the current one
computes). A sample that cannot be loaded fails alone: its error is kept and reported by its own
items; a batch whose computation fails keeps its error once, and every item of it reports that
error without recomputing. Only the batches asked for are computed: a per-sample item computes
the batches of the selected items (:meth:`BatchStore.want`), a dataset-level check all of them.

Knows nothing of pytest.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .cam.engine import compute_cams, model_device_dtype, select_output
from .data.dataset import class_label_name
from .errors import CamcheckError, CamcheckWarning, ConfigError, DataError
from .regions import Sample

if TYPE_CHECKING:  # pragma: no cover
    from .classes import ClassMap

__all__ = ["Batch", "BatchStore", "MapConfig", "StoreStats"]

Progress = Callable[[int, int, float], None]

#: Bytes of display maps and display images kept in memory (older batches are dropped first
#: and re-made from their raw maps when asked for again).
DEFAULT_DISPLAY_BUDGET = 1 << 30


@dataclass(frozen=True)
class MapConfig:
    """What one batched pass computes.

    Attributes:
        layers: the layers (None: auto-detected, the same for every batch).
        method: the CAM method.
        target: ``"label"``, ``"predicted"``, a model output index or a class name.
        amp: whether the forward runs under autocast.
        batch_size: images per forward pass.
        output: which model output holds the logits (an index or a key; None: the first).
        pairs: explain every class present in a multi-object image (one row per (image,
            class) pair, all from the image's one forward and one batched backward) instead
            of one class per image; images without classes keep one row.
    """

    layers: tuple[str, ...] | None
    method: str
    target: str | int
    amp: bool
    batch_size: int
    output: int | str | None = None
    pairs: bool = False

    @classmethod
    def from_settings(cls, settings: Any, *, pairs: bool = False) -> MapConfig:
        return cls(
            layers=tuple(settings.layer) if settings.layer else None,
            method=settings.method,
            target=settings.target,
            amp=bool(settings.amp),
            batch_size=int(settings.batch_size),
            output=getattr(settings, "output", None),
            pairs=bool(pairs) and settings.target == "label",
        )

    def same_pass(self, other: MapConfig) -> bool:
        """Whether both differ at most in their layers."""
        return replace(self, layers=None) == replace(other, layers=None)


@dataclass
class Batch:
    """One computed batch.

    Attributes:
        number: the batch's position (samples ``number * batch_size`` onwards).
        indices: the dataset index of each row (repeated for the (image, class) pairs of one
            image under a ``pairs`` configuration).
        layers: the layers computed.
        raw: layer -> ``(n, h, w)`` signed raw maps (CPU, float32).
        degenerate: layer -> ``(n,)`` flags.
        logits: ``(n, K)`` (CPU, float32).
        targets: ``(n,)`` the explained classes.
        size: the input images' ``(H, W)``.
        errors: dataset index -> message, for samples of this batch that could not be loaded.
        units: the dataset label each row explains, under a ``pairs`` configuration (None for
            a row of an image without classes); empty otherwise.
    """

    number: int
    indices: tuple[int, ...]
    layers: tuple[str, ...]
    raw: dict[str, Tensor]
    degenerate: dict[str, Tensor]
    logits: Tensor
    targets: Tensor
    size: tuple[int, int]
    errors: dict[int, str] = field(default_factory=dict)
    units: tuple[int | None, ...] = ()

    def __post_init__(self) -> None:
        #: dataset index -> its (first) row
        self.row: dict[int, int] = {}
        #: (dataset index, label or None) -> row
        self.unit_row: dict[tuple[int, int | None], int] = {}
        units = self.units or (None,) * len(self.indices)
        for r, (i, u) in enumerate(zip(self.indices, units)):
            self.row.setdefault(i, r)
            self.unit_row[(i, u)] = r


@dataclass
class StoreStats:
    """Counters, for tests and benchmarks: batches computed, display maps made, images read."""

    batches: int = 0
    passes: int = 0
    display: int = 0
    failures: int = 0


@dataclass
class _Slot:
    config: MapConfig
    layers: tuple[str, ...] | None = None  # resolved after the first batch
    batches: dict[int, Batch | str] = field(default_factory=dict)  # str: the batch's error
    failure: str | None = None  # an error that affects every batch (bad layer, bad model)


@dataclass
class _Loaded:
    """What a loader worker returns for one sample: the sample without its image, or an error."""

    index: int
    sample: Sample | None
    error: str | None


class _Samples(Dataset):
    """Wraps the user's dataset so that a bad sample becomes an error value, not an exception
    (a DataLoader worker would otherwise end the whole pass)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[_Loaded, Tensor | None]:
        try:
            sample = self.dataset[index]
        except CamcheckError as exc:
            return _Loaded(index, None, str(exc)), None
        except Exception as exc:  # a user's dataset or transform: name the sample
            return _Loaded(index, None, _sample_error(self.dataset, index, exc)), None
        image = getattr(sample, "image", None)
        if not isinstance(image, Tensor):
            return _Loaded(
                index,
                None,
                f"sample {sample.id!r}: the dataset gave no image tensor "
                f"(got {type(image).__name__}); return a (C, H, W) float tensor",
            ), None
        if image.dim() != 3 or not image.is_floating_point():
            return _Loaded(
                index,
                None,
                f"sample {sample.id!r}: the transform gave a "
                f"{tuple(image.shape)} {image.dtype} image; camcheck needs a "
                "(C, H, W) float tensor (e.g. end the transform with ToTensor)",
            ), None
        return _Loaded(index, replace(sample, image=None), None), image


def _channel_hint(x: Tensor | None) -> str:
    """A hint when the model failed on 1-channel images (a grey transform before an RGB model)."""
    if x is not None and x.dim() == 4 and x.shape[1] == 1:
        return (
            "; the transform gives 1-channel (1, H, W) images: if the model expects RGB, drop "
            "Grayscale or use Grayscale(num_output_channels=3)"
        )
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def _sample_error(dataset: Any, index: int, exc: BaseException) -> str:
    ids = getattr(dataset, "ids", None)
    try:
        sid = ids[index] if ids is not None else index
    except (IndexError, TypeError):
        sid = index
    return f"sample {sid!r}: {type(exc).__name__}: {_first_line(exc)}".rstrip(": ")


def _collate(items: Sequence[tuple[_Loaded, Tensor | None]]) -> tuple[Tensor | None, list]:
    """Stack the images of one batch (in the worker); a sample whose image size differs from
    the batch's most common size becomes an error of its own."""
    loaded = [it for it, _ in items]
    images = {it.index: im for it, im in items if im is not None}
    if not images:
        return None, loaded
    shapes = Counter(tuple(im.shape) for im in images.values())
    common = shapes.most_common(1)[0][0]
    kept = []
    for it in loaded:
        im = images.get(it.index)
        if im is None:
            continue
        if tuple(im.shape) != common:
            it.error = (
                f"sample {it.sample.id if it.sample else it.index!r}: image of size "
                f"{tuple(im.shape)} after the transform, while the batch has {common}; use a "
                "transform that outputs one size (e.g. the default with camcheck_image_size)"
            )
            it.sample = None
            continue
        kept.append(im)
    return torch.stack(kept), loaded


class BatchStore:
    """Maps of a whole dataset, per :class:`MapConfig`, computed a batch at a time.

    Args:
        model: the model (its device and dtype are the engine's).
        dataset: a map-style dataset of :class:`~pytest_camcheck.regions.Sample` with ``ids``.
        device: where the model lives.
        num_workers: DataLoader worker processes (0: load in this process).
        progress: called as ``progress(done, total, seconds)`` after each batch of a pass.
        keep_images: also keep each batch's images for display (the report's cards), so a
            failing card does not reload its image.
        display_budget: bytes of display maps and images kept (older batches dropped first).
        leader: another store over the same dataset (e.g. the tested model's, when this one
            holds a reference model's maps). The leader's DataLoader passes then compute this
            store's batches too, from the same decoded images: each batch is loaded once for
            both models. A follower asked for a batch has its leader load it.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        dataset: Any,
        device: torch.device | str = "cpu",
        *,
        num_workers: int = 0,
        progress: Progress | None = None,
        keep_images: bool = False,
        display_budget: int = DEFAULT_DISPLAY_BUDGET,
        leader: BatchStore | None = None,
        classes: ClassMap | None = None,
    ) -> None:
        if leader is not None and (leader.leader is not None or leader.dataset is not dataset):
            raise ValueError("a store can follow only a leading store over the same dataset")
        self.model = model
        self.dataset = dataset
        self.device = torch.device(device)
        self.num_workers = int(num_workers)
        self.progress = progress
        self.keep_images = keep_images
        self.display_budget = int(display_budget)
        self.stats = StoreStats()
        self._slots: list[_Slot] = []
        self._wanted: set[int] | None = None
        self._meta: dict[int, Sample] = {}
        self._display: OrderedDict[tuple[int, int], tuple[dict[str, Tensor], int]] = OrderedDict()
        self._images: OrderedDict[int, tuple[np.ndarray, int]] = OrderedDict()
        self._display_bytes = 0
        self._position: dict[str, int] | None = None
        self._warned_width: set[int | str | None] = set()
        #: dataset class -> model output (``camcheck_classes``); None: labels are output indices
        self.classes = classes
        #: dataset index -> (the sample's label as an output index, the model's top output)
        self.label_predictions: dict[int, tuple[int, int]] = {}
        self._target_index: dict[str, int] = {}
        self._units: dict[tuple[int, bool], dict[str, tuple[int, int | None]]] = {}
        self.leader = leader
        self._followers: list[BatchStore] = []
        if leader is not None:
            self._meta = leader._meta  # one dataset, one set of loaded samples
            leader._followers.append(self)

    @property
    def followers(self) -> tuple[BatchStore, ...]:
        """The stores whose batches this store's passes compute too."""
        return tuple(self._followers)

    # -- the dataset ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def ids(self) -> list[str]:
        return list(self.dataset.ids)

    def index_of(self, sample: str | int) -> int:
        """The dataset index of a sample id (or a checked index)."""
        n = len(self)
        if isinstance(sample, (int, np.integer)) and not isinstance(sample, bool):
            if not 0 <= int(sample) < n:
                raise DataError(f"sample index {sample} out of range (dataset has {n})")
            return int(sample)
        if self._position is None:
            self._position = {sid: i for i, sid in enumerate(self.dataset.ids)}
        try:
            return self._position[sample]
        except KeyError:
            raise DataError(f"no sample with id {sample!r} in the dataset") from None

    def meta(self, index: int) -> Sample:
        """Sample ``index`` without its image (kept from the batched pass, else loaded)."""
        meta = self._meta.get(index)
        if meta is None:
            sample = self.dataset[index]
            meta = replace(sample, image=None)
            self._meta[index] = meta
        return meta

    def known_meta(self, index: int) -> Sample | None:
        """Sample ``index`` without its image if it was loaded already (never loads it)."""
        return self._meta.get(index)

    def want(self, indices: Iterable[int] | None) -> None:
        """The samples per-sample items will ask for. A missing batch is then computed together
        with every other wanted batch, in one DataLoader pass. None (the default, and what an
        xdist worker uses, not knowing its share in advance): only the batch asked for."""
        self._wanted = None if indices is None else {int(i) for i in indices}

    # -- configurations -----------------------------------------------------------------------
    def _slot(self, config: MapConfig) -> _Slot:
        for slot in self._slots:  # exact first, then a superset of layers
            if slot.config == config:
                return slot
        if config.layers is not None:
            for slot in self._slots:
                if slot.config.same_pass(config) and slot.layers is not None:
                    if set(config.layers) <= set(slot.layers):
                        return slot
        slot = _Slot(config)
        self._slots.append(slot)
        return slot

    def layers_of(self, config: MapConfig) -> tuple[str, ...] | None:
        """The layers a configuration gives, once known (auto-detection resolved)."""
        slot = self._slot(config)
        if config.layers is not None:
            return config.layers
        return slot.layers

    def _batches(self, config: MapConfig, indices: Iterable[int]) -> list[int]:
        bs = config.batch_size
        return sorted({int(i) // bs for i in indices})

    def entry(self, config: MapConfig, index: int, label: int | None = None) -> tuple[Batch, int]:
        """The batch holding sample ``index`` under ``config`` and its row (the row of the
        pair (``index``, ``label``) under a ``pairs`` configuration), computing it (and the
        other wanted batches) when needed.

        Raises:
            CamcheckError: the sample, its batch or the configuration failed (the kept error).
        """
        slot = self._slot(config)
        number = index // config.batch_size
        if number not in slot.batches and slot.failure is None:
            wanted = self._wanted if self.leader is None else self.leader._wanted
            todo = [number]
            if wanted is not None:
                todo = sorted({number, *self._batches(config, wanted)})
            self._compute(slot, [b for b in todo if b not in slot.batches])
        if slot.failure is not None:
            raise _kept(slot.failure)
        got = slot.batches.get(number)
        if got is None:  # pragma: no cover - _compute fills every number or sets failure
            raise DataError(f"batch {number} was not computed")
        if isinstance(got, str):
            raise _kept(got)
        if index in got.errors:
            raise _kept(got.errors[index])
        if label is not None or config.pairs:
            row = got.unit_row.get((index, label))
            if row is None:
                raise DataError(
                    f"sample {self.dataset.ids[index]!r} has no class {label!r} to explain"
                )
            return got, row
        return got, got.row[index]

    def ensure(self, config: MapConfig) -> None:
        """Compute every batch of ``config`` not computed yet (one DataLoader pass)."""
        slot = self._slot(config)
        if slot.failure is not None:
            raise _kept(slot.failure)
        n = len(self)
        if n == 0:
            raise DataError("the dataset is empty: no sample to explain")
        bs = config.batch_size
        todo = [b for b in range((n + bs - 1) // bs) if b not in slot.batches]
        if todo:
            self._compute(slot, todo)
        if slot.failure is not None:
            raise _kept(slot.failure)

    def computed(self, config: MapConfig) -> list[int]:
        """The numbers of the batches computed (or failed) for ``config``."""
        return sorted(self._slot(config).batches)

    def batch(self, config: MapConfig, number: int) -> Batch | str | None:
        """Batch ``number`` of ``config`` (its error message when it failed), if computed."""
        return self._slot(config).batches.get(number)

    # -- computing ----------------------------------------------------------------------------
    def _loader(self, config: MapConfig, numbers: Sequence[int]) -> DataLoader:
        bs, n = config.batch_size, len(self)
        sampler = [list(range(b * bs, min((b + 1) * bs, n))) for b in numbers]
        workers = min(self.num_workers, sum(len(s) for s in sampler))
        return DataLoader(
            _Samples(self.dataset),
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=2 if workers else None,
        )

    def _compute(self, slot: _Slot, numbers: Sequence[int]) -> None:
        if self.leader is not None:  # the leader loads the images, for every store at once
            self.leader._pass(self, slot, numbers)
        else:
            self._pass(self, slot, numbers)

    def _pass(self, asking: BatchStore, slot: _Slot, numbers: Sequence[int]) -> None:
        """One DataLoader pass over ``numbers``: the asking store's slot computes them, and so
        does every other store of the group (this leader, its followers) lacking them."""
        if not numbers:
            return
        config = slot.config
        targets = [(asking, slot)] + [
            (store, store._slot(config))
            for store in (self, *self._followers)
            if store is not asking
        ]
        self.stats.passes += 1
        start = time.perf_counter()
        total = sum(
            min((b + 1) * config.batch_size, len(self)) - b * config.batch_size for b in numbers
        )
        done = 0
        loader = self._loader(config, numbers)
        iterator = iter(loader)
        for number in numbers:
            try:
                x, loaded = next(iterator)
            except StopIteration:  # pragma: no cover - the sampler yields one per number
                break
            except Exception as exc:  # a loader worker died (e.g. killed for memory)
                message = (
                    f"loading images failed: {type(exc).__name__}: {_first_line(exc)}; try "
                    "camcheck_num_workers = 0 to load them in the test process"
                )
                for rest in numbers[numbers.index(number) :]:
                    for _, target in targets:
                        target.batches.setdefault(rest, message)
                break
            done += len(loaded)
            errors = {it.index: it.error for it in loaded if it.error is not None}
            good = [it for it in loaded if it.error is None]
            for it in good:
                assert it.sample is not None
                self._meta[it.index] = it.sample
            for store, target in targets:
                if target.failure is not None or number in target.batches:
                    continue
                if x is None or not good:
                    target.batches[number] = _empty_batch(number, dict(errors))
                    continue
                try:
                    target.batches[number] = store._run(target, number, x, good, dict(errors))
                except CamcheckError as exc:
                    store._failed(target, number, str(exc))
                except Exception as exc:  # the user's model raised: one line, kept once
                    store._failed(
                        target,
                        number,
                        f"computing the maps of batch {number} failed: {type(exc).__name__}: "
                        f"{_first_line(exc)}{_channel_hint(x)}",
                    )
            if all(target.failure is not None for _, target in targets):
                break
            if self.progress is not None:
                self.progress(done, total, time.perf_counter() - start)
        del iterator

    def _failed(self, slot: _Slot, number: int, message: str) -> None:
        self.stats.failures += 1
        ok = any(isinstance(b, Batch) for b in slot.batches.values())
        if not ok:  # nothing ever worked: the configuration (layer, model, method) is wrong
            slot.failure = message
        slot.batches[number] = message

    def _run(
        self, slot: _Slot, number: int, x: Tensor, good: list[_Loaded], errors: dict[int, str]
    ) -> Batch:
        config = slot.config
        device, dtype = model_device_dtype(self.model)
        non_blocking = device.type == "cuda" and x.is_pinned()
        x = x.to(device=device, non_blocking=non_blocking)
        if dtype.is_floating_point and x.dtype != dtype:
            x = x.to(dtype)
        targets: Any = None
        labels = [self.model_label(it.sample) for it in good]
        # under a pairs configuration: the labels of the classes present, per image
        present = [
            tuple(getattr(it.sample, "labels", ()) or ()) if config.pairs else () for it in good
        ]
        if config.target not in ("label", "predicted"):  # a class index or name
            targets = [self.target_index(config.target)] * len(good)
        elif config.target == "label":
            if all(
                p or (isinstance(v, int) and not isinstance(v, bool))
                for v, p in zip(labels, present)
            ):
                targets = labels
            else:  # unlabelled samples explain their prediction
                with torch.no_grad():
                    pred = select_output(self.model(x), config.output).argmax(dim=1).cpu()
                targets = [
                    v if isinstance(v, int) and not isinstance(v, bool) else int(p)
                    for v, p in zip(labels, pred)
                ]
        units: tuple[int | None, ...] = ()
        if config.pairs:  # one row per (image, class present): one forward, one backward
            targets = [
                [self.output_of(k) for k in p] if p else [t] for t, p in zip(targets, present)
            ]
            units = tuple(u for p in present for u in (p or (None,)))
        layers = list(slot.layers or config.layers or []) or None
        try:
            result = compute_cams(
                self.model,
                x,
                layers=layers,
                method=config.method,
                targets=targets,
                amp=config.amp,
                output=config.output,
            )
        except CamcheckError as exc:
            hint = self._output_hint(config, x)
            if not hint:
                raise
            raise type(exc)(f"{exc}{hint}") from None
        self.stats.batches += 1
        self._check_width(config, int(result.logits.shape[-1]))
        top = result.logits.detach().argmax(dim=1).cpu().tolist()
        rows_image = [int(j) for j in result.image_index.tolist()]
        first_row: dict[int, int] = {}
        for r, j in enumerate(rows_image):
            first_row.setdefault(j, r)
        for j, (it, label) in enumerate(zip(good, labels)):
            if label is not None and config.target == "label" and j in first_row:
                # labels that feed the maps
                self.label_predictions[it.index] = (int(label), int(top[first_row[j]]))
        slot.layers = tuple(result.layers)
        batch = Batch(
            number=number,
            indices=tuple(good[j].index for j in rows_image),
            layers=tuple(result.layers),
            raw={k: v.detach().float().cpu() for k, v in result.raw.items()},
            degenerate={k: v.detach().cpu() for k, v in result.degenerate.items()},
            logits=result.logits.detach().float().cpu(),
            targets=result.targets.detach().cpu(),
            size=(int(x.shape[-2]), int(x.shape[-1])),
            errors=errors,
            units=units,
        )
        # the engine made the display maps once; keep them (within the budget)
        self._keep_display(
            slot, batch, {k: v.detach().float().cpu() for k, v in result.maps.items()}
        )
        if self.keep_images:
            self._keep_images(batch, x, good)
        return batch

    def model_label(self, sample: Sample | None) -> int | None:
        """The model output index a sample's label stands for: its annotation's model index
        (``meta["model_label"]``), its label mapped by ``camcheck_classes``, or the label.

        Raises:
            ConfigError: the label's class is missing from ``camcheck_classes``.
        """
        if sample is None:
            return None
        meta = sample.meta if isinstance(sample.meta, dict) else {}
        own = meta.get("model_label")
        if isinstance(own, int) and not isinstance(own, bool):
            return own
        label = sample.label
        if not isinstance(label, int) or isinstance(label, bool):
            return None
        return label if self.classes is None else self.classes.model_index(label)

    def output_of(self, label: int) -> int:
        """The model output index of dataset label ``label`` (through ``camcheck_classes``)."""
        return label if self.classes is None else self.classes.model_index(label)

    @property
    def multi_object(self) -> bool:
        """Whether some image of the dataset holds objects of several classes."""
        return bool(getattr(self.dataset, "multi_object", False))

    def units(self, pairs: bool) -> list[tuple[str, int, int | None]]:
        """The test items of the dataset (see :func:`dataset_units`)."""
        return dataset_units(self.dataset, pairs)

    def unit_of(self, unit: str, pairs: bool) -> tuple[int, int | None]:
        """The dataset index and label of a test item id (see :meth:`units`).

        Raises:
            DataError: no such item.
        """
        key = (id(self.dataset), bool(pairs and self.multi_object))
        table = self._units.get(key)
        if table is None:
            table = self._units[key] = {u: (i, k) for u, i, k in self.units(pairs)}
        got = table.get(unit)
        if got is not None:
            return got
        i = self.index_of(unit)  # an unknown id raises here
        labels = tuple(self.dataset.sample_labels(i)) if key[1] else ()
        if labels:  # the id of an image whose items are its (image, class) pairs
            names = self.dataset.class_names
            raise DataError(
                f"sample {unit!r} holds objects of several classes; ask for one of its items: "
                + ", ".join(f"{unit}/{class_label_name(names, k)}" for k in labels)
            )
        return i, None

    def target_index(self, target: str | int) -> int:
        """The model output index of a ``camcheck_target`` that names a class (or is one).

        Raises:
            ConfigError: no class of that name (see
                :func:`~pytest_camcheck.classes.resolve_target`).
        """
        if isinstance(target, int):
            return target
        if target not in self._target_index:
            from .classes import resolve_target

            self._target_index[target] = resolve_target(target, self.classes, self.model)
        return self._target_index[target]

    def _output_hint(self, config: MapConfig, x: Tensor) -> str:
        """A hint when the model returns several outputs and none was chosen."""
        if config.output is not None:
            return ""
        with torch.no_grad():
            out = self.model(x[:1])
        if isinstance(out, Tensor):
            return ""
        kind = "a dict" if isinstance(out, dict) else f"{len(out)} outputs"
        return (
            f"; the model returns {kind} and camcheck explains the first tensor: choose the "
            "logits with camcheck_output (an index or a key)"
        )

    def _check_width(self, config: MapConfig, width: int) -> None:
        """Warn once when the explained output's width is not the dataset's class count."""
        names = getattr(self.dataset, "class_names", None)
        if self.classes is not None or config.target != "label":
            return  # the classes are mapped to the outputs, or the labels pick no output
        if not names or width == len(names) or config.output in self._warned_width:
            return
        self._warned_width.add(config.output)
        which = "the first output" if config.output is None else f"output {config.output!r}"
        warnings.warn(
            CamcheckWarning(
                f"camcheck explains {which} of the model, which has {width} values, but the "
                f"dataset has {len(names)} classes ({', '.join(map(str, names[:5]))}"
                f"{', ...' if len(names) > 5 else ''}); if the model returns several outputs, "
                "choose the logits with camcheck_output (an index or a key); if its outputs are "
                "not the dataset's classes (an ImageNet model, say), map the classes to them "
                'with camcheck_classes (e.g. {"cat": 285} or auto)'
            ),
            stacklevel=2,
        )

    # -- display maps and images ------------------------------------------------------------
    def _keep_display(self, slot: _Slot, batch: Batch, maps: dict[str, Tensor]) -> None:
        self.stats.display += 1
        size = sum(t.numel() * t.element_size() for t in maps.values())
        key = (id(slot), batch.number)
        self._display[key] = (maps, size)
        self._display_bytes += size
        self._trim()

    def _trim(self) -> None:
        while self._display_bytes > self.display_budget and len(self._display) > 1:
            _, (_, size) = self._display.popitem(last=False)
            self._display_bytes -= size
        while self._display_bytes > self.display_budget and self._images:
            _, (_, size) = self._images.popitem(last=False)
            self._display_bytes -= size

    def display_maps(self, config: MapConfig, batch: Batch) -> dict[str, Tensor]:
        """The batch's display maps (``(n, H, W)`` per layer), made once while memory allows."""
        slot = self._slot(config)
        key = (id(slot), batch.number)
        held = self._display.get(key)
        if held is not None:
            self._display.move_to_end(key)
            return held[0]
        from .cam.engine import postprocess

        maps = {k: postprocess(batch.raw[k], batch.size)[0] for k in batch.layers}
        self._keep_display(slot, batch, maps)
        return maps

    def _keep_images(self, batch: Batch, x: Tensor, good: list[_Loaded]) -> None:
        from .data.transforms import to_display

        cpu = x.detach().float().cpu()
        for row, it in enumerate(good):
            norm = it.sample.meta.get("normalization") if it.sample else None
            pair = None if norm is None else (norm["mean"], norm["std"])
            try:
                img = to_display(cpu[row], pair)
            except (CamcheckError, ValueError, TypeError):
                continue
            size = int(img.nbytes)
            self._images[it.index] = (img, size)
            self._display_bytes += size
        self._trim()

    def display_image(self, index: int) -> np.ndarray:
        """Sample ``index``'s transformed image as ``(H, W, 3)`` uint8 (kept from its batch when
        possible; otherwise loaded and transformed again)."""
        held = self._images.get(index)
        if held is not None:
            return held[0]
        if self.leader is not None:
            return self.leader.display_image(index)
        if hasattr(self.dataset, "display_image"):
            return self.dataset.display_image(index)
        from .data.transforms import to_display

        sample = self.dataset[index]
        norm = sample.meta.get("normalization") if isinstance(sample.meta, dict) else None
        return to_display(sample.image, None if norm is None else (norm["mean"], norm["std"]))

    def logits_of(self, batch: Batch, row: int) -> Tensor:
        return batch.logits[row]


def dataset_units(dataset: Any, pairs: bool) -> list[tuple[str, int, int | None]]:
    """The per-sample test items of a dataset: ``(id, dataset index, label)``.

    With ``pairs`` on a dataset with images holding objects of several classes
    (``dataset.multi_object``), one item per (image, class present), id
    ``<image id>/<class name>``; an image without classes, and every image otherwise, gives one
    item with its own id and label None (single-label datasets: exactly their sample ids).
    """
    ids = list(dataset.ids)
    if not (pairs and getattr(dataset, "multi_object", False)):
        return [(sid, i, None) for i, sid in enumerate(ids)]
    names = getattr(dataset, "class_names", None)
    out: list[tuple[str, int, int | None]] = []
    for i, sid in enumerate(ids):
        labels = tuple(dataset.sample_labels(i))
        if not labels:
            out.append((sid, i, None))
            continue
        for k in labels:
            out.append((f"{sid}/{class_label_name(names, k)}", i, k))
    return out


class _KeptError(DataError):
    """An error kept from an earlier computation, re-raised for each affected item."""


def _kept(message: str) -> CamcheckError:
    if message.startswith(("layer", "camcheck_layer", "unknown CAM method")):
        return ConfigError(message)
    return _KeptError(message)


def _empty_batch(number: int, errors: dict[int, str]) -> Batch:
    return Batch(
        number=number,
        indices=(),
        layers=(),
        raw={},
        degenerate={},
        logits=torch.zeros(0, 0),
        targets=torch.zeros(0, dtype=torch.long),
        size=(0, 0),
        errors=errors,
    )
