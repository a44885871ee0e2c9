"""The session object behind the ``camcheck`` fixture: maps for a whole dataset, computed in
batches once per (layers, method, target) and served per sample.

Maps are kept at the layer's resolution (raw) and upsampled on demand, so memory stays small
even for large datasets; images are re-read from the dataset only when a case needs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from . import metrics
from .cam.engine import compute_cams, postprocess
from .errors import ConfigError, DataError
from .regions import Region, Sample
from .settings import Settings

__all__ = ["CamCase", "CamCheck"]

Progress = Callable[[int, int, float], None]


@dataclass
class _Batch:
    layers: tuple[str, ...]
    raw: dict[str, Tensor]  # layer -> (b, h, w) float32 CPU
    degenerate: dict[str, Tensor]  # layer -> (b,) bool
    logits: Tensor  # (b, K) float32 CPU
    targets: Tensor  # (b,) int64
    size: tuple[int, int]


@dataclass
class CamCase:
    """One sample with its maps: what a per-sample test (``camcheck_case``) receives.

    Attributes:
        id: the sample id (also the test id's parameter).
        index: position in the dataset.
        path: the image file, if any.
        label / class_name: the annotated class, if any.
        prediction / prediction_name / probability: the model's top class and its softmax
            probability.
        target: the class the maps explain.
        regions: region name -> Region in the transformed image's pixel coordinates.
        maps: layer -> ``(H, W)`` display map in [0, 1] (zeros when degenerate).
        raw: layer -> ``(h, w)`` signed raw map.
        layer: the configured (first) layer; ``map`` is ``maps[layer]``.
        degenerate: whether the configured layer's map is degenerate.
        method: the CAM method.
    """

    id: str
    index: int
    path: str | None
    label: int | None
    class_name: str | None
    prediction: int
    prediction_name: str | None
    probability: float
    target: int
    regions: dict[str, Region]
    maps: dict[str, Tensor]
    raw: dict[str, Tensor]
    layer: str
    degenerate: bool
    method: str
    _loader: Callable[[], Sample] | None = field(default=None, repr=False)
    _display: Callable[[], Any] | None = field(default=None, repr=False)

    @property
    def map(self) -> Tensor:
        """The ``(H, W)`` display map of the configured layer."""
        return self.maps[self.layer]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.maps)

    @property
    def image(self) -> Tensor:
        """The ``(C, H, W)`` image after the transform (loaded on first use)."""
        if self._loader is None:
            raise DataError(f"sample {self.id!r}: the image is not available")
        return self._loader().image

    def display_image(self) -> Any:
        """The transformed image as an ``(H, W, 3)`` uint8 array for overlays."""
        if self._display is None:
            raise DataError(f"sample {self.id!r}: no display image available")
        return self._display()

    def region(self, name: str) -> Region:
        """The region called ``name``; a clear error lists the regions this sample has."""
        try:
            return self.regions[name]
        except KeyError:
            have = ", ".join(sorted(self.regions)) or "none"
            raise DataError(
                f"sample {self.id!r} has no region {name!r} (it has: {have}); check the "
                "annotations or the region name in the test"
            ) from None

    def peak(self, layer: str | None = None) -> metrics.Peak | None:
        return metrics.find_peak(self.maps[layer or self.layer])

    def energy_in(self, region: str, layer: str | None = None) -> float:
        return metrics.energy_fraction(self.maps[layer or self.layer], self.region(region))


class CamCheck:
    """The dataset and its CAMs, computed in batches once per session (the ``camcheck`` fixture).

    Example:
        >>> def test_pointing_game(camcheck):  # doctest: +SKIP
        ...     assert_pass_rate(camcheck.pointing_game(region="head", tolerance=15), min_rate=0.9)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        dataset: Any,
        settings: Settings,
        device: torch.device | str = "cpu",
        progress: Progress | None = None,
        *,
        _shared: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.settings = settings
        self.device = torch.device(device)
        self.progress = progress
        self._shared = _shared if _shared is not None else {"batches": {}, "samples": {}}

    # -- configuration ---------------------------------------------------------------------
    def configured(self, settings: Settings) -> CamCheck:
        """A view with other settings (marker overrides) sharing this one's caches."""
        if settings == self.settings:
            return self
        return CamCheck(
            self.model, self.dataset, settings, self.device, self.progress, _shared=self._shared
        )

    def with_options(self, **overrides: Any) -> CamCheck:
        """A view with ``layer``/``method``/``target``/thresholds overridden (as the marker)."""
        return self.configured(self.settings.with_marker(overrides))

    @property
    def _key(self) -> tuple[Any, ...]:
        s = self.settings
        return (s.layer, s.method, s.target, s.amp)

    # -- dataset access ----------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        return list(self.dataset.ids)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def class_names(self) -> list[str] | None:
        return getattr(self.dataset, "class_names", None)

    def _class_name(self, k: int | None) -> str | None:
        names = self.class_names
        if k is None or k < 0 or not names or k >= len(names):
            return None
        return str(names[k])

    def index_of(self, sample: str | int) -> int:
        if isinstance(sample, int):
            if not 0 <= sample < len(self):
                raise DataError(f"sample index {sample} out of range (dataset has {len(self)})")
            return sample
        index = self._shared.get("index")
        if index is None:
            index = self._shared["index"] = {sid: i for i, sid in enumerate(self.dataset.ids)}
        try:
            return index[sample]
        except KeyError:
            raise DataError(f"no sample with id {sample!r} in the dataset") from None

    def _sample_meta(self, i: int) -> Sample:
        meta = self._shared["samples"].get(i)
        if meta is None:
            s = self.dataset[i]
            meta = replace(s, image=None)
            self._shared["samples"][i] = meta
        return meta

    # -- computing -------------------------------------------------------------------------
    def _batch_of(self, i: int) -> tuple[int, _Batch]:
        bs = self.settings.batch_size
        b = i // bs
        cache: dict[Any, _Batch] = self._shared["batches"]
        key = (*self._key, bs, b)
        batch = cache.get(key)
        if batch is None:
            batch = self._compute(range(b * bs, min((b + 1) * bs, len(self))))
            cache[key] = batch
        return i - b * bs, batch

    def _compute(self, indices: Sequence[int]) -> _Batch:
        s = self.settings
        samples = []
        images = []
        for i in indices:
            sample = self.dataset[i]
            if not isinstance(sample.image, Tensor):
                raise DataError(f"sample {sample.id!r}: the dataset gave no image tensor")
            images.append(sample.image)
            samples.append(sample)
            self._shared["samples"][i] = replace(sample, image=None)
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) > 1:
            first = {tuple(im.shape): smp.id for im, smp in zip(images, samples)}
            detail = "; ".join(f"{sid}: {shape}" for shape, sid in list(first.items())[:3])
            raise DataError(
                f"images have different sizes after the transform ({detail}); use a transform "
                "that outputs one size (e.g. the default with camcheck_image_size)"
            )
        x = torch.stack(images)
        labels = [smp.label for smp in samples]
        targets: Any = None
        if s.target == "label":
            if all(isinstance(lbl, int) for lbl in labels):
                targets = list(labels)
            else:  # unlabelled samples explain their prediction
                with torch.no_grad():
                    pred = self._predict(x)
                targets = [lbl if isinstance(lbl, int) else int(p) for lbl, p in zip(labels, pred)]
        layers = list(s.layer) if s.layer else None
        result = compute_cams(
            self.model,
            x,
            layers=layers,
            method=s.method,
            targets=targets,
            batch_size=None,
            amp=s.amp,
        )
        return _Batch(
            layers=result.layers,
            raw={k: v.detach().cpu() for k, v in result.raw.items()},
            degenerate={k: v.detach().cpu() for k, v in result.degenerate.items()},
            logits=result.logits.detach().cpu(),
            targets=result.targets.detach().cpu(),
            size=(int(x.shape[-2]), int(x.shape[-1])),
        )

    def _predict(self, x: Tensor) -> Tensor:
        from .cam.engine import _model_device_dtype, _select_output

        device, dtype = _model_device_dtype(self.model)
        out = _select_output(self.model(x.to(device=device, dtype=dtype)), None)
        return out.argmax(dim=1).cpu()

    def compute_all(self) -> None:
        """Compute every batch not computed yet (progress reported when it takes a while)."""
        bs = self.settings.batch_size
        n = len(self)
        if n == 0:
            raise DataError("the dataset is empty: no sample to explain")
        complete: set[Any] = self._shared.setdefault("complete", set())
        key = (*self._key, bs)
        if key in complete:  # the common case: every item after the first
            return
        cache = self._shared["batches"]
        start = time.perf_counter()
        for b in range(0, n, bs):
            if (*key, b // bs) in cache:
                continue
            self._batch_of(b)
            if self.progress is not None:
                self.progress(min(b + bs, n), n, time.perf_counter() - start)
        complete.add(key)

    # -- cases ------------------------------------------------------------------------------
    def _case_from(self, i: int, j: int, batch: _Batch, maps: dict[str, Tensor]) -> CamCase:
        meta = self._sample_meta(i)
        probs = torch.softmax(batch.logits[j], dim=0)
        pred = int(probs.argmax())
        layer = batch.layers[0]
        return CamCase(
            id=meta.id,
            index=i,
            path=meta.path,
            label=meta.label,
            class_name=meta.class_name or self._class_name(meta.label),
            prediction=pred,
            prediction_name=self._class_name(pred),
            probability=float(probs[pred]),
            target=int(batch.targets[j]),
            regions=dict(meta.regions),
            maps=maps,
            raw={k: v[j] for k, v in batch.raw.items()},
            layer=layer,
            degenerate=bool(batch.degenerate[layer][j]),
            method=self.settings.method,
            _loader=lambda i=i: self.dataset[i],
            _display=(lambda i=i: self.dataset.display_image(i))
            if hasattr(self.dataset, "display_image")
            else None,
        )

    def case(self, sample: str | int) -> CamCase:
        """The :class:`CamCase` of one sample (computing its batch if needed)."""
        i = self.index_of(sample)
        j, batch = self._batch_of(i)
        maps = {k: v[j].clone() for k, v in self._display_maps(batch).items()}
        return self._case_from(i, j, batch, maps)

    def _display_maps(self, batch: _Batch) -> dict[str, Tensor]:
        """The batch's display maps, upsampled once for the whole batch and kept while its
        items run (items run in dataset order, so a couple of batches suffice)."""
        recent: list[tuple[_Batch, dict[str, Tensor]]] = self._shared.setdefault("display", [])
        for held, maps in recent:
            if held is batch:
                return maps
        maps = {k: postprocess(batch.raw[k], batch.size)[0] for k in batch.layers}
        recent.append((batch, maps))
        del recent[:-2]
        return maps

    def cases(self) -> Iterator[CamCase]:
        """Every case, in dataset order (maps upsampled a batch at a time)."""
        self.compute_all()
        bs = self.settings.batch_size
        for b in range(0, len(self), bs):
            _, batch = self._batch_of(b)
            up = self._display_maps(batch)
            for j in range(batch.targets.shape[0]):
                yield self._case_from(b + j, j, batch, {k: v[j] for k, v in up.items()})

    # -- dataset-level metrics -----------------------------------------------------------------
    def _rate(
        self,
        name: str,
        region: str,
        measure: Callable[[CamCase, Region], tuple[bool, float | None]],
        threshold: float | None,
        layer: str | None,
    ) -> metrics.RateResult:
        outcomes: list[bool] = []
        ids: list[str] = []
        classes: list[str | None] = []
        values: list[float] = []
        missing: list[str] = []
        for case in self.cases():
            reg = case.regions.get(region)
            if reg is None:
                missing.append(case.id)
                continue
            if layer is not None:
                if layer not in case.maps:
                    raise ConfigError(
                        f"layer {layer!r} was not computed; computed: {', '.join(case.maps)}"
                    )
                case = replace(case, layer=layer)
            ok, value = measure(case, reg)
            outcomes.append(bool(ok))
            ids.append(case.id)
            classes.append(case.class_name or (None if case.label is None else str(case.label)))
            if value is not None:
                values.append(float(value))
        if not outcomes:
            raise DataError(
                f"no sample has a region named {region!r} ({len(missing)} samples checked); "
                "check the annotations and the region name"
            )
        return metrics.rate_result(
            name, outcomes, ids, classes, values=values, threshold=threshold, missing=missing
        )

    def pointing_game(
        self, region: str, tolerance: float | None = None, *, layer: str | None = None
    ) -> metrics.RateResult:
        """Fraction of samples whose CAM peak lies in ``region`` (within ``tolerance`` px)."""
        tol = self.settings.peak_tolerance if tolerance is None else float(tolerance)

        def measure(case: CamCase, reg: Region) -> tuple[bool, float | None]:
            return metrics.pointing_hit(case.map, reg, tolerance=tol), None

        return self._rate(f"pointing_game[{region}, tol={tol:g}]", region, measure, tol, layer)

    def energy_in_region(
        self, region: str, min_fraction: float | None = None, *, layer: str | None = None
    ) -> metrics.RateResult:
        """Fraction of samples whose ``region`` holds at least ``min_fraction`` of the energy."""
        thr = self.settings.min_energy if min_fraction is None else float(min_fraction)

        def measure(case: CamCase, reg: Region) -> tuple[bool, float | None]:
            f = metrics.energy_fraction(case.map, reg)
            return (f == f and f >= thr), (f if f == f else 0.0)

        return self._rate(f"energy_in_region[{region}, min={thr:g}]", region, measure, thr, layer)

    def energy_outside_region(
        self, region: str, max_fraction: float, *, layer: str | None = None
    ) -> metrics.RateResult:
        """Fraction of samples whose ``region`` holds at most ``max_fraction`` of the energy."""
        thr = float(max_fraction)

        def measure(case: CamCase, reg: Region) -> tuple[bool, float | None]:
            f = metrics.energy_fraction(case.map, reg)
            return (f == f and f <= thr), (f if f == f else 1.0)

        return self._rate(
            f"energy_outside_region[{region}, max={thr:g}]", region, measure, thr, layer
        )

    def localization(
        self,
        region: str,
        min_iou: float = 0.5,
        threshold: float = 0.2,
        *,
        layer: str | None = None,
    ) -> metrics.RateResult:
        """Fraction of samples whose thresholded-CAM box overlaps ``region`` with IoU >= min_iou."""

        def measure(case: CamCase, reg: Region) -> tuple[bool, float | None]:
            iou, _ = metrics.localization_iou(case.map, reg, threshold=threshold)
            return iou >= min_iou, iou

        return self._rate(
            f"localization[{region}, iou>={min_iou:g}]", region, measure, min_iou, layer
        )
