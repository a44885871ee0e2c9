"""What the fixtures hand to tests: :class:`CamCheck` (the dataset and its dataset-level
rates, under one set of settings) and :class:`CamCase` (one sample and its maps).

The maps come from a :class:`~pytest_camcheck.store.BatchStore`, shared by every view of the
session: markers that change the layer, method or target get a view over the same store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import evidence, metrics
from .baseline import Baselines
from .data.dataset import class_label_name
from .errors import ConfigError, DataError, RegionNotFoundError
from .regions import Region, Sample
from .settings import Settings
from .store import Batch, BatchStore, MapConfig

__all__ = ["CamCase", "CamCheck"]

Progress = Callable[[int, int, float], None]

#: The pointing game's tolerance in the literature (TorchRay, EBP): 15 pixels.
PROTOCOL_TOLERANCE = 15.0

#: A pair is "difficult" (EBP, TorchRay) when its class covers less than this share of the image
#: and another class is present.
DIFFICULT_AREA = 0.25


def _hidden(meta: Sample, class_name: str | None) -> list[str]:
    """The regions of a sample the transform cut away (of one class, for a pair)."""
    meta_dict = meta.meta if isinstance(meta.meta, dict) else {}
    hidden = [str(h) for h in meta_dict.get("not_visible", ())]
    if class_name is None:
        return hidden
    return [h for h in hidden if h.endswith(f" of class {class_name})")]


def is_difficult_pair(case: CamCase, region: Region) -> bool:
    """Whether an (image, class) pair belongs to the pointing game's difficult subset: the
    class's boxes (its mask when it has no box) cover less than a quarter of the image, and
    another class is present in the image."""
    if len(case.image_classes) < 2:
        return False
    h, w = case.map.shape[-2:]
    if region.boxes:
        covered = Region(region.name, region.boxes).to_mask(int(h), int(w))
    else:
        covered = region.to_mask(int(h), int(w))
    return float(covered.mean()) < DIFFICULT_AREA


class Regions(dict[str, Region]):
    """A sample's regions by name; a missing name fails with the sample id and the names it has
    (``case.regions.get(name)`` still returns None)."""

    def __init__(self, sample: str, regions: Any = (), hidden: Any = ()) -> None:
        super().__init__(regions)
        self.sample = sample
        #: regions the transform cut away (or that the model's input does not show)
        self.hidden = tuple(hidden)

    def __missing__(self, name: str) -> Region:
        have = ", ".join(sorted(self)) or "none"
        gone = [h for h in self.hidden if h == name or h.startswith(f"{name} (")]
        why = (
            f"; the transform cut away {', '.join(repr(g) for g in gone)}: the model's input "
            "does not show it"
            if gone
            else "; check the annotations or the region name in the test"
        )
        raise RegionNotFoundError(
            f"sample {self.sample!r} has no region {name!r} (it has: {have}){why}"
        )


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
        peak_tolerance / min_energy: the configured thresholds for this test (markers applied);
            the assertions use them when a test passes none.
        compared: role (``"baseline"``, ``"reference"``) -> the other maps the test asked for
            (:attr:`baseline_map`, :attr:`reference_map`); the report draws them beside ``map``.
        image_id: for one (image, class) pair of an image with objects of several classes, the
            image's sample id (``id`` is then ``<image_id>/<class>``, ``label``/``class_name``
            the pair's class, ``regions`` that class's regions and the image's regions of no
            class, such as a CSV row without a label); None otherwise.
        image_classes: the names of every class present in that image (pairs only).
        pascal_difficult: every object of the pair's class is marked difficult in its VOC
            file (the pointing game leaves such pairs out, as TorchRay does).
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
    peak_tolerance: float = 0.0
    min_energy: float = 0.5
    _loader: Callable[[], Sample] | None = field(default=None, repr=False)
    _display: Callable[[], Any] | None = field(default=None, repr=False)
    _others: dict[str, Callable[[], tuple[Tensor, Tensor, str]]] = field(
        default_factory=dict, repr=False
    )
    compared: dict[str, Tensor] = field(default_factory=dict, repr=False)
    _loaded: dict[str, tuple[Tensor, Tensor, str]] = field(default_factory=dict, repr=False)
    image_id: str | None = None
    image_classes: tuple[str, ...] = ()
    pascal_difficult: bool = False

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

    @property
    def drawn_regions(self) -> dict[str, Region]:
        """The regions a picture of this case draws: all of them, except, for an (image,
        class) pair, the instances (``"chair#1"``...) that the class's region already holds."""
        if self.image_id is None or self.class_name is None:
            return dict(self.regions)
        prefix = f"{self.class_name}#"
        return {
            k: v
            for k, v in self.regions.items()
            if not (k.startswith(prefix) and k[len(prefix) :].isdigit())
        }

    def region(self, name: str) -> Region:
        """The region called ``name``; a clear error lists the regions this sample has."""
        return Regions(self.id, self.regions)[name]

    def peak(self, layer: str | None = None) -> metrics.Peak | None:
        return metrics.find_peak(self.maps[layer or self.layer])

    def energy_in(self, region: str, layer: str | None = None) -> float:
        return metrics.energy_fraction(self.maps[layer or self.layer], self.region(region))

    def _other(self, role: str) -> Tensor:
        __tracebackhide__ = True
        held = self._loaded.get(role)
        if held is None:
            load = self._others.get(role)
            if load is None:
                why = (
                    "no reference model is configured (set camcheck_reference_weights and/or "
                    "camcheck_reference_model)"
                    if role == "reference"
                    else "baselines are kept for the tested model only, not the reference's"
                )
                if self.image_id is not None:
                    why = (
                        f"{role} maps are kept per image, and this is one class of image "
                        f"{self.image_id!r}, which holds objects of several classes; compare "
                        "such images with dataset-level checks (camcheck.compare)"
                    )
                raise ConfigError(f"sample {self.id!r} has no {role} map: {why}")
            held = self._loaded[role] = load()
        display, raw, layer = held
        # known to the assertions of the running test (also when first loaded outside it)
        source = evidence.MapSource(layer, self.method, self.target, role=role)
        evidence.register_map(display, source, raw)
        self.compared[role] = display
        return display

    @property
    def baseline_map(self) -> Tensor:
        """The stored ``(H, W)`` display map of this sample (the configured layer), made from
        the baseline's raw map as ``map`` is from the current one.

        A missing baseline is written from the current model's maps and the test fails saying
        so (``--camcheck-update-baselines`` rewrites it); a sample added since the baseline
        fails with a message that says how to add it.

        Example:
            >>> assert_similar_maps(camcheck_case.map, camcheck_case.baseline_map, min_ssim=0.8)
            ... # doctest: +SKIP
        """
        __tracebackhide__ = True
        return self._other("baseline")

    @property
    def reference_map(self) -> Tensor:
        """The reference model's ``(H, W)`` display map of this sample (its configured layer).

        Raises:
            ConfigError: no reference model is configured (``camcheck_reference_model`` /
                ``camcheck_reference_weights``).
        """
        return self._other("reference")


class CamCheck:
    """The dataset and its CAMs under one set of settings (the ``camcheck`` fixture).

    Maps come from a :class:`~pytest_camcheck.store.BatchStore` shared by every view
    (:meth:`configured`, :meth:`with_options`): a batch is computed once per map configuration.

    Example:
        >>> def test_pointing_game(camcheck):  # doctest: +SKIP
        ...     assert_pass_rate(camcheck.pointing_game(region="head", tolerance=15), min_rate=0.9)
    """

    def __init__(
        self,
        model: torch.nn.Module | None,
        dataset: Any = None,
        settings: Settings | None = None,
        device: torch.device | str = "cpu",
        progress: Progress | None = None,
        *,
        store: BatchStore | None = None,
        run_settings: Settings | None = None,
        reference: torch.nn.Module | None = None,
        baselines: Baselines | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        if store is None:
            if model is None or dataset is None:
                raise ConfigError("CamCheck needs a model and a dataset (or a store)")
            store = BatchStore(
                model, dataset, device, num_workers=self.settings.workers, progress=progress
            )
        self.store = store
        self.run_settings = run_settings if run_settings is not None else self.settings
        if reference is not None:  # its maps come from the same DataLoader passes
            BatchStore(reference, store.dataset, store.device, leader=store)
        if baselines is None and store.leader is None:
            baselines = Baselines(self.settings.baseline_dir, update=self.settings.update_baselines)
        #: where this session's baselines live (None for the reference model's view)
        self.baselines = baselines

    # -- configuration -----------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        return self.store.model

    @property
    def dataset(self) -> Any:
        return self.store.dataset

    @property
    def device(self) -> torch.device:
        return self.store.device

    @property
    def progress(self) -> Progress | None:
        return self.store.progress

    @progress.setter
    def progress(self, value: Progress | None) -> None:
        self.store.progress = value

    @property
    def config(self) -> MapConfig:
        """The map configuration of these settings (the store's key): one row per image."""
        return MapConfig.from_settings(self.settings)

    @property
    def pairs(self) -> bool:
        """Whether per-sample items are (image, class) pairs: the dataset has images with
        objects of several classes and the maps explain the labels (``target = label``)."""
        return self.store.multi_object and self.settings.target == "label"

    @property
    def case_config(self) -> MapConfig:
        """The configuration of per-sample cases and region rates: one row per (image, class
        present) when :attr:`pairs`, else :attr:`config`."""
        return MapConfig.from_settings(self.settings, pairs=self.pairs)

    def item_ids(self) -> list[str]:
        """The ids of the per-sample items: sample ids, or ``<image id>/<class>`` for the
        pairs of images with objects of several classes (see :attr:`pairs`)."""
        return [u for u, _, _ in self.store.units(self.pairs)]

    def configured(self, settings: Settings) -> CamCheck:
        """A view with other settings (marker overrides) over the same store."""
        if settings == self.settings:
            return self
        return CamCheck(
            None,
            settings=settings,
            store=self.store,
            run_settings=self.run_settings,
            baselines=self.baselines,
        )

    def with_options(self, **overrides: Any) -> CamCheck:
        """A view with ``layer``/``method``/``target``/thresholds overridden (as the marker)."""
        return self.configured(self.settings.with_marker(overrides))

    # -- dataset access ------------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        return self.store.ids

    def __len__(self) -> int:
        return len(self.store)

    @property
    def class_names(self) -> list[str] | None:
        return getattr(self.dataset, "class_names", None)

    def _class_name(self, k: int | None) -> str | None:
        names = self.class_names
        if k is None or k < 0 or not names or k >= len(names):
            return None
        return str(names[k])

    def _output_name(self, k: int) -> str | None:
        """The name of model output ``k``: through ``camcheck_classes`` when it maps the
        dataset's classes (the dataset's name, else the model's category), else the dataset's
        class ``k``."""
        classes = getattr(self.store, "classes", None)
        if classes is not None:
            return classes.output_name(k)
        return self._class_name(k)

    def index_of(self, sample: str | int) -> int:
        return self.store.index_of(sample)

    @property
    def layers(self) -> tuple[str, ...] | None:
        """The layers these settings explain (None until auto-detection has run)."""
        found = self.store.layers_of(self.config)
        if found is None and self.pairs:
            found = self.store.layers_of(self.case_config)
        return found

    # -- computing -----------------------------------------------------------------------------
    def compute_all(self) -> None:
        """Compute every batch not computed yet (progress reported when it takes a while)."""
        self.store.ensure(self.config)

    def _case_from(
        self,
        i: int,
        batch: Batch,
        row: int,
        maps: dict[str, Tensor],
        label: int | None = None,
    ) -> CamCase:
        meta = self.store.meta(i)
        probs = torch.softmax(batch.logits[row].float(), dim=0)
        pred = int(probs.argmax())
        want = self.config.layers or batch.layers
        layer = want[0]
        s = self.settings
        case_id, image_id, regions = meta.id, None, meta.regions
        case_label, class_name = meta.label, meta.class_name or self._class_name(meta.label)
        present: tuple[str, ...] = ()
        others = self._other_maps(i)
        difficult = False
        if label is not None:  # one (image, class) pair of a multi-object image
            names = self.class_names
            class_name = class_label_name(names, label)
            case_id, image_id, case_label = f"{meta.id}/{class_name}", meta.id, label
            per_class = getattr(meta, "class_regions", {})
            # regions of no class (a CSV row without a label, a mask) belong to every pair
            claimed = {k for regs in per_class.values() for k in regs}
            regions = {k: v for k, v in meta.regions.items() if k not in claimed}
            regions.update(per_class.get(label, {}))
            present = tuple(class_label_name(names, k) for k in getattr(meta, "labels", ()))
            flags = getattr(self.dataset, "sample_difficult", None)
            difficult = flags is not None and label in tuple(flags(i))
            others = {}
        return CamCase(
            id=case_id,
            index=i,
            path=meta.path,
            label=case_label,
            class_name=class_name,
            prediction=pred,
            prediction_name=self._output_name(pred),
            probability=float(probs[pred]),
            target=int(batch.targets[row]),
            regions=Regions(
                case_id, regions, _hidden(meta, class_name if label is not None else None)
            ),
            maps={k: maps[k][row] for k in want},
            raw={k: batch.raw[k][row] for k in want},
            layer=layer,
            degenerate=bool(batch.degenerate[layer][row]),
            method=s.method,
            peak_tolerance=s.peak_tolerance,
            min_energy=s.min_energy,
            _loader=lambda i=i: self.dataset[i],
            _display=lambda i=i: self.store.display_image(i),
            _others=others,
            image_id=image_id,
            image_classes=present,
            pascal_difficult=difficult,
        )

    def case(self, sample: str | int) -> CamCase:
        """The :class:`CamCase` of one sample (computing its batch if needed).

        Raises:
            CamcheckError: the sample could not be loaded, or its batch could not be computed
                (the error kept from that computation).
        """
        if not isinstance(sample, str):  # an index: its sample id
            sample = self.ids[self.index_of(sample)]
        i, label = self.store.unit_of(sample, self.pairs)
        config = self.case_config
        batch, row = self.store.entry(config, i, label)
        return self._case_from(i, batch, row, self.store.display_maps(config, batch), label)

    def _each(self) -> Iterator[tuple[str, int, int | None, CamCase | None, str | None]]:
        """Every per-sample item in dataset order (each (image, class) pair under
        :attr:`pairs`): its id, dataset index, label (a pair's class; None otherwise), and its
        case or the error that kept it from one."""
        config = self.case_config
        self.store.ensure(config)
        bs, n = config.batch_size, len(self)
        units: dict[int, list[tuple[str, int | None]]] = {}
        for uid, i, label in self.store.units(config.pairs):
            units.setdefault(i, []).append((uid, label))
        for number in range(0, (n + bs - 1) // bs):
            got = self.store.batch(config, number)
            indices = range(number * bs, min((number + 1) * bs, n))
            if not isinstance(got, Batch):
                for i in indices:
                    for uid, label in units[i]:
                        yield uid, i, label, None, str(got)
                continue
            maps = self.store.display_maps(config, got) if got.indices else {}
            for i in indices:
                for uid, label in units[i]:
                    if i in got.errors:
                        yield uid, i, label, None, got.errors[i]
                    else:
                        row = got.unit_row[(i, label)] if config.pairs else got.row[i]
                        yield uid, i, label, self._case_from(i, got, row, maps, label), None

    def cases(self) -> Iterator[CamCase]:
        """Every case that could be computed, in dataset order (each (image, class) pair of
        an image with objects of several classes under :attr:`pairs`)."""
        for *_, case, _ in self._each():
            if case is not None:
                yield case

    # -- regression: baselines and a reference model (see pytest_camcheck.regression) --------
    @property
    def reference(self) -> CamCheck:
        """The reference model's :class:`CamCheck`: the same dataset and settings, its maps
        computed in the same batched passes as this one's (each batch is decoded once).

        Raises:
            ConfigError: no reference model is configured.
        """
        followers = self.store.followers
        if not followers:
            raise ConfigError(
                "no reference model is configured: set camcheck_reference_weights (the tested "
                "model's architecture with other weights) and/or camcheck_reference_model (a "
                "model spec), or pass reference= to CamCheck"
            )
        return CamCheck(
            None, settings=self.settings, store=followers[0], run_settings=self.run_settings
        )

    def _other_maps(self, i: int) -> dict[str, Callable[[], tuple[Tensor, Tensor, str]]]:
        from . import regression

        out: dict[str, Callable[[], tuple[Tensor, Tensor, str]]] = {}
        if self.baselines is not None:
            out["baseline"] = functools.partial(regression.case_baseline, self, i)
        if self.store.followers:
            out["reference"] = functools.partial(regression.case_reference, self, i)
        return out

    def baseline_comparison(
        self,
        min_ssim: float | None = 0.8,
        max_peak_shift: float | None = None,
        min_rank_corr: float | None = None,
        *,
        layer: str | None = None,
    ) -> metrics.RateResult:
        """The share of samples whose map is within the thresholds of its stored baseline map.

        Per sample: the SSIM of the display maps at 64x64, the peak shift in pixels, Spearman's
        rank correlation of the raw maps and each region's change of energy (see
        :mod:`pytest_camcheck.compare`); a sample passes when every threshold given holds. The
        result (:class:`~pytest_camcheck.compare.SimilarityResult`) lists the samples that
        moved most, and those added, removed or changed since the baseline (not compared).

        A missing baseline is written from the current model's maps and the test fails saying
        so; ``--camcheck-update-baselines`` rewrites it.

        Example:
            >>> assert_pass_rate(camcheck.baseline_comparison(min_ssim=0.8), min_rate=0.95)
            ... # doctest: +SKIP
        """
        __tracebackhide__ = True
        from . import regression

        view = self if layer is None else self.with_options(layer=layer)
        return regression.baseline_comparison(view, min_ssim, max_peak_shift, min_rank_corr)

    def similarity_to_reference(
        self,
        min_ssim: float | None = 0.8,
        max_peak_shift: float | None = None,
        min_rank_corr: float | None = None,
        *,
        layer: str | None = None,
    ) -> metrics.RateResult:
        """The share of samples whose map is within the thresholds of the reference model's map
        of the same sample (the numbers of :meth:`baseline_comparison`)."""
        from . import regression

        view = self if layer is None else self.with_options(layer=layer)
        return regression.similarity_to_reference(view, min_ssim, max_peak_shift, min_rank_corr)

    def compare(
        self,
        metric: str | Callable[[CamCheck], metrics.RateResult] = "pointing_game",
        *args: Any,
        confidence: float = 0.95,
        **kwargs: Any,
    ) -> Any:
        """One dataset-level check by this model and by the reference model, paired by sample.

        Args:
            metric: ``"pointing_game"``, ``"energy_in_region"``, ``"energy_outside_region"``,
                ``"localization"`` (called with ``*args, **kwargs`` on both), or a function
                taking a :class:`CamCheck` and returning its rate.
            confidence: the level of the difference's interval.

        Returns:
            A :class:`~pytest_camcheck.compare.PairedComparison`: both rates, their difference
            with a 95% interval (Newcombe's method for paired data), the exact McNemar p-value
            and the samples fixed and broken by this model. Gate it with
            :func:`~pytest_camcheck.assertions.assert_no_regression`.

        Example:
            >>> assert_no_regression(camcheck.compare("pointing_game", region="head"))
            ... # doctest: +SKIP
        """
        from . import regression

        return regression.compare(self, metric, *args, confidence=confidence, **kwargs)

    # -- dataset-level metrics -----------------------------------------------------------------
    def _title(self, what: str, layer: str) -> str:
        """``"pointing_game[head, tol=15] @ layer4"`` (+ the method when not the run's)."""
        method = self.settings.method
        extra = f" ({method})" if method != self.run_settings.method else ""
        return f"{what} @ {layer}{extra}"

    def _rate(
        self,
        what: str,
        region: str | None,
        measure: Callable[[CamCase, Region], tuple[bool, float | None]],
        threshold: float | None,
        layer: str | None,
        *,
        metric: str | None = None,
        threshold_name: str | None = None,
        missing_policy: str = "fail",
        keep: Callable[[CamCase, Region], bool] | None = None,
        subset: str | None = None,
    ) -> metrics.RateResult:
        """A rate over the per-sample items. ``region`` None: each item's class region (the
        region named after its class: the class's boxes in an image with objects of several
        classes). ``keep``: which items the rate counts (the others are left out and listed
        in the result's notes, described by ``subset``)."""
        if missing_policy not in ("fail", "skip"):
            raise ValueError(f'missing must be "fail" or "skip", got {missing_policy!r}')
        view = self if layer is None else self.with_options(layer=layer)
        outcomes: list[bool] = []
        ids: list[str] = []
        classes: list[str | None] = []
        values: list[float | None] = []
        missing: list[str] = []
        left_out: list[str] = []
        pascal: list[str] = []
        total = 0
        for uid, i, label, case, _error in view._each():
            total += 1
            if case is None:  # a sample that could not be computed fails the gate
                meta = view.store.known_meta(i)
                ids.append(uid)
                outcomes.append(False)
                if label is not None:  # a pair: its class
                    classes.append(class_label_name(view.class_names, label))
                else:
                    classes.append(None if meta is None else meta.class_name)
                values.append(None)
                continue
            name = region if region is not None else case.class_name
            reg = None if name is None else case.regions.get(name)
            if reg is None:  # counted as failed unless the test says missing="skip"
                missing.append(case.id)
                if missing_policy == "fail":
                    outcomes.append(False)
                    ids.append(case.id)
                    classes.append(case.class_name)
                    values.append(None)
                continue
            if region is None and case.pascal_difficult:
                pascal.append(case.id)  # TorchRay leaves these pairs out
                continue
            if keep is not None and not keep(case, reg):
                left_out.append(case.id)
                continue
            ok, value = measure(case, reg)
            outcomes.append(bool(ok))
            ids.append(case.id)
            classes.append(case.class_name or (None if case.label is None else str(case.label)))
            values.append(value)
        shown = "each sample's class" if region is None else repr(region)
        if len(missing) == total or (not outcomes and not left_out and not pascal):
            raise DataError(
                f"no sample has a region named {shown} ({len(missing)} samples checked); "
                "check the annotations and the region name"
            )
        if not outcomes:
            raise DataError(
                f"{what}: no item is left to judge: {len(left_out)} are not {subset} and "
                f"{len(pascal)} have only objects marked difficult"
            )
        notes = []
        if left_out:
            notes.append(f"{len(left_out)} item(s) left out: not {subset}")
        if pascal:
            notes.append(
                f"{len(pascal)} (image, class) pair(s) left out: every object of the class is "
                "marked difficult in its VOC file"
            )
        extra: dict[str, Any] = {}
        if view.pairs:
            # the pointing-game figure of the literature: the mean of the per-class rates
            by_class: dict[str, list[bool]] = {}
            for ok, cls in zip(outcomes, classes):
                by_class.setdefault(str(cls), []).append(ok)
            mean = sum(sum(v) / len(v) for v in by_class.values()) / len(by_class)
            extra["class_mean_rate"] = mean
            notes.append(f"mean of the {len(by_class)} per-class rates: {mean:.1%}")
        has_values = any(v is not None for v in values)
        used = view.layers or ("?",)
        return metrics.rate_result(
            view._title(what, used[0]),
            outcomes,
            ids,
            classes,
            values=[float("nan") if v is None else v for v in values] if has_values else None,
            threshold=threshold,
            missing=missing,
            layer=used[0],
            method=view.settings.method,
            metric=metric,
            threshold_name=threshold_name,
            notes=notes,
            extra=extra or None,
        )

    def pointing_game(
        self,
        region: str | None = None,
        tolerance: float | None = None,
        *,
        difficult: bool = False,
        layer: str | None = None,
        missing: str = "fail",
    ) -> metrics.RateResult:
        """Fraction of samples whose CAM peak lies in ``region`` (within ``tolerance`` px).

        With ``region=None``, the protocol of the localisation literature (the pointing game
        as TorchRay runs it on VOC07 and COCO): every (image, class present) pair is scored
        against its own class's boxes (the region named after the class), and the tolerance
        defaults to 15 px (unless ``camcheck_peak_tolerance`` is set). Pairs whose objects
        are all marked difficult in their VOC file are left out. ``difficult=True`` keeps
        only the pairs whose class's boxes cover less than a quarter of the image while
        another class is present. The result breaks down per class; its notes and
        ``extra["class_mean_rate"]`` give the mean of the per-class rates, the figure the
        papers report.

        A sample without the region counts as failed; ``missing="skip"`` leaves it out. The
        count of such samples is in the result (``missing``) and in a failing gate's message.
        """
        if tolerance is not None:
            tol = float(tolerance)
        elif region is None and not self.settings.peak_tolerance:
            tol = PROTOCOL_TOLERANCE
        else:
            tol = self.settings.peak_tolerance

        def measure(case: CamCase, reg: Region) -> tuple[bool, float | None]:
            return metrics.pointing_hit(case.map, reg, tolerance=tol), None

        keep = None
        if difficult:

            def keep(case: CamCase, reg: Region) -> bool:
                return is_difficult_pair(case, reg)

        shown = "class" if region is None else region
        return self._rate(
            f"pointing_game[{shown}, tol={tol:g}{', difficult' if difficult else ''}]",
            region,
            measure,
            tol,
            layer,
            metric="peak_hit",
            threshold_name="tolerance",
            missing_policy=missing,
            keep=keep,
            subset="difficult (the class covers a quarter of the image or more, or is alone)",
        )

    def energy_in_region(
        self,
        region: str | None = None,
        min_fraction: float | None = None,
        *,
        layer: str | None = None,
        missing: str = "fail",
    ) -> metrics.RateResult:
        """Fraction of samples whose ``region`` holds at least ``min_fraction`` of the energy
        (samples without the region, and ``region=None``: see :meth:`pointing_game`)."""
        thr = self.settings.min_energy if min_fraction is None else float(min_fraction)

        def measure(case: CamCase, reg: Region) -> tuple[bool, float | None]:
            f = metrics.energy_fraction(case.map, reg)
            return (f == f and f >= thr), (f if f == f else 0.0)

        return self._rate(
            f"energy_in_region[{region or 'class'}, min={thr:g}]",
            region,
            measure,
            thr,
            layer,
            metric="energy_fraction",
            threshold_name="min_fraction",
            missing_policy=missing,
        )

    def energy_outside_region(
        self,
        region: str | None,
        max_fraction: float,
        *,
        layer: str | None = None,
        missing: str = "fail",
    ) -> metrics.RateResult:
        """Fraction of samples whose ``region`` holds at most ``max_fraction`` of the energy
        (samples without the region: see :meth:`pointing_game`)."""
        thr = float(max_fraction)

        def measure(case: CamCase, reg: Region) -> tuple[bool, float | None]:
            f = metrics.energy_fraction(case.map, reg)
            return (f == f and f <= thr), (f if f == f else 1.0)

        return self._rate(
            f"energy_outside_region[{region or 'class'}, max={thr:g}]",
            region,
            measure,
            thr,
            layer,
            metric="energy_fraction",
            threshold_name="max_fraction",
            missing_policy=missing,
        )

    def localization(
        self,
        region: str | None = None,
        min_iou: float = 0.5,
        threshold: float = 0.2,
        *,
        layer: str | None = None,
        missing: str = "fail",
    ) -> metrics.RateResult:
        """Fraction of samples whose thresholded-CAM box overlaps ``region`` with IoU >= min_iou
        (samples without the region: see :meth:`pointing_game`)."""

        def measure(case: CamCase, reg: Region) -> tuple[bool, float | None]:
            iou, _ = metrics.localization_iou(case.map, reg, threshold=threshold)
            return iou >= min_iou, iou

        return self._rate(
            f"localization[{region or 'class'}, iou>={min_iou:g}]",
            region,
            measure,
            min_iou,
            layer,
            metric="iou",
            threshold_name="min_iou",
            missing_policy=missing,
        )

    # -- sanity, faithfulness and shortcut checks (see pytest_camcheck.sanity) ------------------
    def _view(self, layer: str | None) -> CamCheck:
        return self if layer is None else self.with_options(layer=layer)

    def randomization(
        self, max_similarity: float = 0.5, *, layer: str | None = None, seed: int = 0
    ) -> metrics.RateResult:
        """Model randomisation (Adebayo et al., 2018): the share of samples whose map changes
        when the model is re-initialised, on a copy, from the head down to the explained layer.

        A sample passes when the Spearman rank correlation and the SSIM between its map and its
        map on the fully randomised copy are both below ``max_similarity``. The user's model is
        not touched. The result's ``extra`` holds the similarity after each step of the cascade.

        Example:
            >>> assert_pass_rate(camcheck.randomization(max_similarity=0.5), min_rate=0.9)
            ... # doctest: +SKIP
        """
        from . import sanity

        view = self._view(layer)
        return sanity.randomization_check(
            view.store, view.config, max_similarity, seed=seed, title=view._title
        )

    def deletion(
        self,
        steps: int = 20,
        min_margin: float = 0.05,
        *,
        min_effect: float = 0.1,
        layer: str | None = None,
        seed: int = 0,
    ) -> metrics.RateResult:
        """Deletion (Petsiuk et al., 2018): the share of samples whose target probability falls
        faster when pixels are replaced by a blurred copy in the map's order than in a random
        order: the random order's area under the curve minus the map's must reach
        ``min_margin``. Batched: ``steps`` forwards of each batch per order. A sample whose
        blurred image scores its target within ``min_effect`` of the image is not judged (its
        probability does not depend on the detail that deletion removes)."""
        from . import sanity

        view = self._view(layer)
        return sanity.deletion_check(
            view.store,
            view.config,
            steps,
            min_margin,
            min_effect=min_effect,
            seed=seed,
            title=view._title,
        )

    def insertion(
        self,
        steps: int = 20,
        min_margin: float = 0.0,
        *,
        min_effect: float = 0.1,
        layer: str | None = None,
        seed: int = 0,
    ) -> metrics.RateResult:
        """Insertion (Petsiuk et al., 2018): as :meth:`deletion`, revealing the image's pixels on
        a blurred copy; the map's area under the curve minus the random order's must exceed
        ``min_margin``."""
        from . import sanity

        view = self._view(layer)
        return sanity.insertion_check(
            view.store,
            view.config,
            steps,
            min_margin,
            min_effect=min_effect,
            seed=seed,
            title=view._title,
        )

    def occlusion(
        self,
        region: str,
        min_drop: float = 0.1,
        *,
        patches: int = 4,
        fill: str = "blur",
        min_effect: float = 0.1,
        seed: int = 0,
        missing: str = "fail",
    ) -> metrics.RateResult:
        """Occlusion of an annotated region: the share of samples whose target probability
        drops by at least ``min_drop`` when ``region`` is masked, and by more than when
        background patches of the same shape are (their mean). It shows that the model relies
        on the region, not only that its map overlaps it (samples without the region: see
        :meth:`pointing_game`). A sample whose probability drops by less than ``min_effect``
        when the whole image is masked is not judged."""
        from . import sanity

        return sanity.occlusion_check(
            self.store,
            self.config,
            region,
            min_drop,
            patches=patches,
            fill=fill,
            min_effect=min_effect,
            seed=seed,
            missing_policy=missing,
            title=self._title,
        )

    def spatial_bias(
        self,
        max_share: float = 0.5,
        *,
        window: float = 0.125,
        min_samples: int = 5,
        layer: str | None = None,
    ) -> metrics.RateResult:
        """Spatial bias, without annotations: a class passes when no small square (``window``
        times the map's side) holds the map peaks of more than ``max_share`` of its samples; a
        sample fails when its own peak's square does. The result's ``extra`` holds each class's
        mean map and hot spot."""
        from . import sanity

        view = self._view(layer)
        return sanity.spatial_bias_check(
            view.store,
            view.config,
            max_share,
            window=window,
            min_samples=min_samples,
            title=view._title,
        )
