"""Regression checks: the tested model's maps against stored baselines and a reference model.

The work behind :meth:`CamCheck.baseline_comparison <pytest_camcheck.CamCheck.baseline_comparison>`,
:meth:`~pytest_camcheck.CamCheck.similarity_to_reference`,
:meth:`~pytest_camcheck.CamCheck.compare` and a case's ``baseline_map`` / ``reference_map``.
Every function takes a ``CamCheck`` view (this module does not import :mod:`.session`, which
imports it).

Baselines (:mod:`.baseline`) follow pytest-regressions: a test that needs a missing baseline
computes the whole dataset's maps, writes the baseline and fails saying so; with
``--camcheck-update-baselines`` every baseline a test uses is rewritten once per run (and the
tests using it fail). The writer holds the configuration's lock, and the manifest carries the
run's id: under pytest-xdist one process writes a folder, and every other test of the run that
needs it, on any worker, fails with "written earlier in this run" instead of comparing against
maps made by the same model.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import compare as cmp
from .baseline import Baseline, BaselineKey, Baselines
from .cam.engine import postprocess
from .errors import (
    BaselineError,
    BaselineWritten,
    CamAssertionError,
    CamcheckError,
    ConfigError,
    DataError,
)
from .metrics import rate_result
from .store import Batch

__all__ = [
    "COMPARABLE",
    "baseline_comparison",
    "case_baseline",
    "case_reference",
    "compare",
    "sample_maps",
    "similarity_to_reference",
    "weights_sha256",
]

#: The dataset-level checks :func:`compare` accepts by name.
COMPARABLE = ("pointing_game", "energy_in_region", "energy_outside_region", "localization")
_LISTED = 10


def weights_sha256(model: torch.nn.Module) -> str:
    """The sha256 of a model's state_dict: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode("utf-8"))
        if not isinstance(value, torch.Tensor):
            digest.update(repr(value).encode("utf-8"))
            continue
        t = value.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        try:
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # e.g. quantized tensors
            digest.update(repr(t.tolist()).encode("utf-8"))
    return digest.hexdigest()


def _listed(ids: list[str]) -> str:
    shown = ", ".join(ids[:_LISTED])
    more = len(ids) - _LISTED
    return shown + (f" ... (+{more} more)" if more > 0 else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# the tested model's maps


def _batches(view: Any) -> Iterator[tuple[range, Batch | str | None]]:
    """Every batch of the view's configuration (computed first), with its dataset indices."""
    config = view.config
    view.store.ensure(config)
    bs, n = config.batch_size, len(view)
    for number in range((n + bs - 1) // bs):
        yield range(number * bs, min((number + 1) * bs, n)), view.store.batch(config, number)


def _key_of(view: Any, batch: Batch) -> BaselineKey:
    c = view.config
    return BaselineKey(tuple(c.layers or batch.layers), c.method, c.target, batch.size, c.output)


def _key(view: Any) -> BaselineKey:
    for _, got in _batches(view):
        if isinstance(got, Batch) and got.indices:
            return _key_of(view, got)
    raise DataError(
        "no sample of the dataset could be computed, so there are no maps to compare; the "
        "per-sample tests name each sample's error"
    )


def _baselines(view: Any) -> Baselines:
    got = getattr(view, "baselines", None)
    if got is None:
        raise ConfigError(
            "baselines are kept for the tested model only; this is the reference model's view "
            "(camcheck.reference): call baseline_comparison on camcheck itself"
        )
    return got


def _meta(view: Any, index: int) -> Any:
    meta = view.store.known_meta(index)
    return meta if meta is not None else view.store.meta(index)


def _class_of(meta: Any) -> str | None:
    if meta is None:
        return None
    if meta.class_name:
        return str(meta.class_name)
    return None if meta.label is None else str(meta.label)


def _provenance(view: Any) -> dict[str, Any]:
    s = view.run_settings
    model = view.model
    cls = f"{type(model).__module__}.{type(model).__qualname__}"
    return {
        "model": {
            "spec": s.model or f"(the camcheck_model fixture) {cls}",
            "kwargs": dict(s.model_kwargs),
            "class": cls,
            "weights": s.weights,
            "weights_sha256": weights_sha256(model),
        },
        "transform": s.transform or f"default (resize to {s.image_size}, ImageNet normalisation)",
        "dataset": {"spec": s.dataset, "annotations": s.annotations, "samples": len(view)},
        "torch": str(torch.__version__),
    }


def _write(view: Any, key: BaselineKey) -> tuple[int, dict[str, str], Path]:
    """Write the baseline of ``key`` from every computed sample; (samples, errors, manifest)."""
    bl = _baselines(view)
    all_ids = view.ids
    ids: list[str] = []
    raws: dict[str, list[np.ndarray]] = {layer: [] for layer in key.layers}
    targets: list[int] = []
    hashes: list[str | None] = []
    errors: dict[str, str] = {}
    for idx, got in _batches(view):
        if not isinstance(got, Batch):
            errors.update({all_ids[i]: str(got) for i in idx})
            continue
        for i in idx:
            if i in got.errors:
                errors[all_ids[i]] = got.errors[i]
                continue
            row = got.row[i]
            ids.append(all_ids[i])
            for layer in key.layers:
                raws[layer].append(got.raw[layer][row].numpy())
            targets.append(int(got.targets[row]))
            hashes.append(bl.image_hash(_meta(view, i).path))
    if not ids:
        raise DataError("no sample of the dataset could be computed: no baseline was written")
    try:
        stacked = {layer: np.stack(maps) for layer, maps in raws.items()}
    except ValueError:
        raise DataError(
            "the maps differ in size from batch to batch (images of several sizes after the "
            "transform); a baseline needs one input size: use a transform that outputs one size"
        ) from None
    path = bl.write(
        key,
        ids,
        stacked,
        hashes=hashes,
        targets=targets,
        provenance=_provenance(view),
        errors=errors,
    )
    return len(ids), errors, path


def _baseline_for(view: Any, key: BaselineKey) -> Baseline:
    """The stored baseline of ``key``; writes it (and raises :class:`BaselineWritten`) when it
    is missing or ``--camcheck-update-baselines`` was given."""
    __tracebackhide__ = True
    bl = _baselines(view)
    if not bl.update:
        got = bl.load(key)
        if got is not None and got.run_id != bl.run_id:
            return got
    folder = bl.folder(key)
    with bl.lock(key):
        try:
            old = bl.load(key, fresh=True)
        except BaselineError:
            if not bl.update:
                raise
            old = None  # a corrupt baseline is rewritten on request
        if old is not None and old.run_id == bl.run_id:
            again = " without --camcheck-update-baselines" if bl.update else ""
            raise BaselineWritten(
                f"camcheck: the baseline {folder} ({key.describe()}) was "
                f"{'rewritten' if bl.update else 'missing and was written'} earlier in this run, "
                f"from the current model's maps; run the tests again{again} to compare against it"
            )
        if old is not None and not bl.update:
            return old  # another run wrote it meanwhile
        count, errors, _ = _write(view, key)
    skipped = f" ({_plural(len(errors), 'sample')} could not be computed)" if errors else ""
    if old is None:
        text = (
            f"camcheck: no baseline for {key.describe()} in {bl.root}: wrote {folder} from the "
            f"current model's maps of {_plural(count, 'sample')}{skipped}. Review it, commit it "
            "with the tests and run them again: this test fails so that a new baseline never "
            "passes unnoticed"
        )
        if bl.update:
            text = text.replace("no baseline", "--camcheck-update-baselines: no baseline", 1)
    else:
        text = (
            f"camcheck: --camcheck-update-baselines: rewrote {folder} from the current model's "
            f"maps of {_plural(count, 'sample')}{skipped} (the old baseline had {len(old)}). Run "
            "the tests again without --camcheck-update-baselines to compare against it"
        )
    raise BaselineWritten(text)


def _thresholds(
    min_ssim: float | None, max_peak_shift: float | None, min_rank_corr: float | None
) -> None:
    for name, value, lo, hi in (
        ("min_ssim", min_ssim, -1.0, 1.0),
        ("max_peak_shift", max_peak_shift, 0.0, math.inf),
        ("min_rank_corr", min_rank_corr, -1.0, 1.0),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name} must be a number or None, got {value!r}")
        if not (lo <= float(value) <= hi) or math.isnan(float(value)):
            raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
    if min_ssim is None and max_peak_shift is None and min_rank_corr is None:
        raise ValueError("give at least one of min_ssim, max_peak_shift, min_rank_corr")


def _name(what: str, min_ssim: Any, max_peak_shift: Any, min_rank_corr: Any) -> str:
    parts = []
    if min_ssim is not None:
        parts.append(f"ssim>={min_ssim:g}")
    if max_peak_shift is not None:
        parts.append(f"shift<={max_peak_shift:g}px")
    if min_rank_corr is not None:
        parts.append(f"rank>={min_rank_corr:g}")
    return f"{what}[{', '.join(parts)}]"


class _Tally:
    """Per-sample outcomes and numbers of a similarity check, in dataset order."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.outcomes: list[bool] = []
        self.classes: list[str | None] = []
        self.ssim: list[float] = []
        self.shift: list[float] = []
        self.corr: list[float] = []
        self.energy: dict[str, list[float]] = {}
        self.compared: list[int] = []  # positions of compared samples
        self.target_changed: list[bool] = []

    def failed(self, sid: str, cls: str | None) -> None:
        self.ids.append(sid)
        self.outcomes.append(False)
        self.classes.append(cls)
        for values in (self.ssim, self.shift, self.corr):
            values.append(math.nan)
        self.target_changed.append(False)

    def add(
        self,
        view: Any,
        all_ids: Sequence[str],
        indices: list[int],
        current: torch.Tensor,
        other: torch.Tensor,
        current_raw: torch.Tensor,
        other_raw: torch.Tensor,
        changed_target: np.ndarray,
        thresholds: tuple[Any, Any, Any],
    ) -> None:
        metas = [_meta(view, i) for i in indices]
        names = sorted({name for m in metas for name in (m.regions or {})})
        h, w = current.shape[-2:]
        masks: dict[str, np.ndarray] = {}
        has: dict[str, np.ndarray] = {}
        for name in names:
            masks[name] = np.zeros((len(indices), h, w), dtype=bool)
            has[name] = np.zeros(len(indices), dtype=bool)
            for j, m in enumerate(metas):
                region = (m.regions or {}).get(name)
                if region is not None:
                    masks[name][j] = region.to_mask(h, w)
                    has[name][j] = masks[name][j].any()
        diffs = cmp.map_differences(
            current.numpy(),
            other.numpy(),
            current_raw.numpy(),
            other_raw.numpy(),
            masks=masks,
        )
        ok = cmp.within(diffs, *thresholds)
        for name in names:
            change = diffs.energy_change[name]
            change[~has[name]] = math.nan
            column = self.energy.setdefault(name, [math.nan] * len(self.ids))
            column.extend(change.tolist())
        start = len(self.ids)
        for j, i in enumerate(indices):
            self.ids.append(all_ids[i])
            self.outcomes.append(bool(ok[j]))
            self.classes.append(_class_of(metas[j]))
            self.ssim.append(float(diffs.ssim[j]))
            self.shift.append(float(diffs.peak_shift[j]))
            self.corr.append(float(diffs.rank_corr[j]))
            self.compared.append(start + j)
            self.target_changed.append(bool(changed_target[j]))
        for column in self.energy.values():  # regions no sample of this batch has
            column.extend([math.nan] * (len(self.ids) - len(column)))

    def result(
        self,
        view: Any,
        name: str,
        layer: str,
        thresholds: tuple[Any, Any, Any],
        notes: list[str],
        **extra: Any,
    ) -> cmp.SimilarityResult:
        min_ssim, max_peak_shift, min_rank_corr = thresholds
        base = rate_result(
            view._title(name, layer),
            self.outcomes,
            self.ids,
            self.classes,
            values=self.ssim,
            threshold=min_ssim,
            layer=layer,
            method=view.settings.method,
            metric="ssim",
            threshold_name="min_ssim",
            notes=notes,
        )
        pos = np.asarray(self.compared, dtype=np.int64)
        diffs = cmp.MapDifferences(
            np.asarray(self.ssim)[pos], np.asarray(self.shift)[pos], np.asarray(self.corr)[pos]
        )
        moved = cmp.most_moved(
            [self.ids[p] for p in pos],
            diffs,
            np.asarray(self.outcomes)[pos],
            {k: np.asarray(v)[pos] for k, v in self.energy.items()},
            np.asarray(self.target_changed)[pos],
        )
        return cmp.SimilarityResult.build(
            base,
            min_ssim=min_ssim,
            max_peak_shift=max_peak_shift,
            min_rank_corr=min_rank_corr,
            peak_shift=tuple(self.shift),
            rank_corr=tuple(self.corr),
            energy_change={k: tuple(v) for k, v in self.energy.items()},
            moved=moved,
            **extra,
        )


def baseline_comparison(
    view: Any,
    min_ssim: float | None = 0.8,
    max_peak_shift: float | None = None,
    min_rank_corr: float | None = None,
) -> cmp.SimilarityResult:
    """Each sample's map against its stored baseline map: see ``CamCheck.baseline_comparison``."""
    __tracebackhide__ = True
    _thresholds(min_ssim, max_peak_shift, min_rank_corr)
    key = _key(view)
    base = _baseline_for(view, key)
    bl = _baselines(view)
    all_ids = view.ids  # listed once: store.ids copies them on every call
    layer = key.layers[0]
    thresholds = (min_ssim, max_peak_shift, min_rank_corr)
    tally = _Tally()
    added: list[str] = []
    changed: list[str] = []
    for idx, got in _batches(view):
        if not isinstance(got, Batch):
            for i in idx:
                tally.failed(all_ids[i], None)
            continue
        rows, base_rows, indices = [], [], []
        for i in idx:
            sid = all_ids[i]
            if i in got.errors:
                tally.failed(sid, _class_of(view.store.known_meta(i)))
                continue
            r = base.row(sid)
            if r is None:
                added.append(sid)
                continue
            then = base.hashes[r]
            now = bl.image_hash(_meta(view, i).path) if then else None
            if then and now and now != then:
                changed.append(sid)
                continue
            rows.append(got.row[i])
            base_rows.append(r)
            indices.append(i)
        if not indices:
            continue
        current = view.store.display_maps(view.config, got)[layer][rows]
        other_raw = torch.from_numpy(base.raw(layer, base_rows))
        other = postprocess(other_raw, got.size)[0]
        retarget = got.targets[rows].numpy() != base.targets[base_rows]
        tally.add(
            view,
            all_ids,
            indices,
            current,
            other,
            got.raw[layer][rows],
            other_raw,
            retarget,
            thresholds,
        )
    present = set(all_ids)
    removed = [sid for sid in base.ids if sid not in present]
    notes = []
    if added:
        notes.append(
            f"{_plural(len(added), 'sample')} added since the baseline, not compared "
            f"(--camcheck-update-baselines adds them): {_listed(added)}"
        )
    if removed:
        notes.append(
            f"{_plural(len(removed), 'sample')} of the baseline no longer in the dataset: "
            f"{_listed(removed)}"
        )
    if changed:
        notes.append(
            f"{_plural(len(changed), 'image')} changed since the baseline, not compared: "
            f"{_listed(changed)}"
        )
    retargeted = [tally.ids[p] for p in tally.compared if tally.target_changed[p]]
    if retargeted:
        notes.append(
            f"{_plural(len(retargeted), 'sample')} now explained for another class than in the "
            "baseline: "
            f"{_listed(retargeted)}"
        )
    return tally.result(
        view,
        _name("baseline_comparison", *thresholds),
        layer,
        thresholds,
        notes,
        against="baseline",
        source=str(base.folder),
        added=tuple(added),
        removed=tuple(removed),
        changed=tuple(changed),
    )


def _reference_view(view: Any) -> Any:
    return view.reference  # raises ConfigError without a reference model


def _describe_reference(ref: Any) -> str:
    model = ref.model
    return f"reference model {type(model).__name__} (weights sha256 {weights_sha256(model)[:12]})"


def _ensure_reference(ref: Any) -> None:
    try:
        ref.store.ensure(ref.config)
    except CamcheckError as exc:
        raise ConfigError(f"the reference model: {exc}") from None


def similarity_to_reference(
    view: Any,
    min_ssim: float | None = 0.8,
    max_peak_shift: float | None = None,
    min_rank_corr: float | None = None,
) -> cmp.SimilarityResult:
    """Each sample's map against the reference model's: see ``CamCheck.similarity_to_reference``."""
    _thresholds(min_ssim, max_peak_shift, min_rank_corr)
    ref = _reference_view(view)
    view.store.ensure(view.config)  # the reference's batches come in the same passes
    _ensure_reference(ref)
    all_ids = view.ids
    thresholds = (min_ssim, max_peak_shift, min_rank_corr)
    tally = _Tally()
    layer = None
    for idx, got in _batches(view):
        number = idx.start // view.config.batch_size
        theirs = ref.store.batch(ref.config, number)
        if not isinstance(got, Batch) or not isinstance(theirs, Batch):
            for i in idx:
                tally.failed(all_ids[i], _class_of(view.store.known_meta(i)))
            continue
        rows, their_rows, indices = [], [], []
        for i in idx:
            if i in got.errors or i in theirs.errors:
                tally.failed(all_ids[i], _class_of(view.store.known_meta(i)))
                continue
            rows.append(got.row[i])
            their_rows.append(theirs.row[i])
            indices.append(i)
        if not indices:
            continue
        layer = (view.config.layers or got.layers)[0]
        their_layer = (ref.config.layers or theirs.layers)[0]
        current = view.store.display_maps(view.config, got)[layer][rows]
        other = ref.store.display_maps(ref.config, theirs)[their_layer][their_rows]
        retarget = (got.targets[rows] != theirs.targets[their_rows]).numpy()
        tally.add(
            view,
            all_ids,
            indices,
            current,
            other,
            got.raw[layer][rows],
            theirs.raw[their_layer][their_rows],
            retarget,
            thresholds,
        )
    layer = layer or (view.layers or ("?",))[0]
    notes = []
    retargeted = [tally.ids[p] for p in tally.compared if tally.target_changed[p]]
    if retargeted:
        notes.append(
            f"{_plural(len(retargeted), 'sample')} explained for another class than with the "
            f"reference model: {_listed(retargeted)}"
        )
    return tally.result(
        view,
        _name("similarity_to_reference", *thresholds),
        layer,
        thresholds,
        notes,
        against="reference",
        source=_describe_reference(ref),
    )


def compare(
    view: Any,
    metric: str | Callable[[Any], Any] = "pointing_game",
    *args: Any,
    confidence: float = 0.95,
    **kwargs: Any,
) -> cmp.PairedComparison:
    """One dataset-level check by the tested and the reference model: see ``CamCheck.compare``."""
    ref = _reference_view(view)
    if callable(metric):
        name = getattr(metric, "__name__", "metric")
        mine = metric(view)
        _ensure_reference(ref)
        theirs = metric(ref)
    else:
        if metric not in COMPARABLE:
            raise ValueError(
                f"compare: unknown metric {metric!r}; use one of {', '.join(COMPARABLE)}, or a "
                "function taking a CamCheck and returning a rate"
            )
        name = metric
        mine = getattr(view, metric)(*args, **kwargs)
        _ensure_reference(ref)
        theirs = getattr(ref, metric)(*args, **kwargs)
    return cmp.paired_comparison(mine, theirs, confidence, metric=name)


# --------------------------------------------------------------------------------------------
# one sample


def case_baseline(view: Any, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Sample ``index``'s stored map: (display map at the input size, raw map, layer).

    Raises:
        BaselineWritten: the baseline was missing (or is being rewritten) and was written.
        CamAssertionError: the sample is not in the baseline, or its image changed since.
        BaselineError: the baseline cannot be read or belongs to another configuration.
    """
    __tracebackhide__ = True
    batch, _ = view.store.entry(view.config, index)
    key = _key_of(view, batch)
    base = _baseline_for(view, key)
    meta = _meta(view, index)
    r = base.row(meta.id)
    if r is None:
        raise CamAssertionError(
            f"sample {meta.id}: not in the baseline {base.folder} (added to the dataset since it "
            "was written); `pytest --camcheck-update-baselines` adds it"
        )
    then = base.hashes[r]
    now = _baselines(view).image_hash(meta.path) if then else None
    if then and now and now != then:
        raise CamAssertionError(
            f"sample {meta.id}: its image file {meta.path} changed since the baseline "
            f"{base.folder} was written, so the stored map is not comparable; "
            "`pytest --camcheck-update-baselines` stores the new one"
        )
    layer = key.layers[0]
    raw = torch.from_numpy(base.raw(layer, [r]))
    return postprocess(raw, batch.size)[0][0], raw[0], layer


def case_reference(view: Any, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Sample ``index``'s map by the reference model: (display map, raw map, layer)."""
    ref = _reference_view(view)
    try:
        case = ref.case(index)
    except CamcheckError as exc:
        raise ConfigError(f"the reference model: {exc}") from None
    return case.map, case.raw[case.layer], case.layer


def sample_maps(
    view: Any,
    sample: str | int,
    against: str,
    *,
    layer: str | None = None,
    folder: str | None = None,
) -> dict[str, Any] | None:
    """What a report picture of one sample needs: its image, regions, current map and the map it
    was compared with (the baseline in ``folder``, or the reference model's); None when the
    compared map is not available (e.g. the sample is not in the baseline)."""
    v = view
    if layer is not None and (view.layers or (None,))[0] != layer:
        v = view.with_options(layer=layer)
    case = v.case(sample)
    if against == "baseline":
        if folder is None:
            return None
        base = _baselines(view).load_folder(folder)
        r = None if base is None else base.row(case.id)
        if base is None or r is None:
            return None
        name = case.layer if case.layer in base.maps else base.key.layers[0]
        raw = torch.from_numpy(base.raw(name, [r]))
        other = postprocess(raw, tuple(case.map.shape))[0][0]
    else:
        other = _reference_view(v).case(case.index).map
    return {
        "id": case.id,
        "image": case.display_image(),
        "regions": dict(case.regions),
        "current": case.map.detach().cpu().numpy(),
        "other": other.detach().cpu().numpy(),
    }
