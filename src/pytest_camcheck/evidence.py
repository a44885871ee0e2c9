"""Where assertions leave their evidence for the report.

The plugin opens a :func:`collecting` scope around each camcheck test call, telling it which
sample runs, which maps it has (so an assertion can say which layer a map came from), the
configured thresholds and the run's method. Every ``assert_*`` helper calls :func:`record` with
one :class:`~pytest_camcheck.report.records.Evidence` (pass or fail). Outside such a scope,
``record`` is a no-op and the defaults are None, so the assertions work in plain scripts and
notebooks too. Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .report.records import Evidence

__all__ = [
    "EvidenceScope",
    "MapSource",
    "collecting",
    "current_case_id",
    "current_scope",
    "default",
    "raw_map",
    "raw_of",
    "record",
    "register_map",
    "source_of",
]


@dataclass(frozen=True)
class MapSource:
    """Where one of camcheck's maps came from.

    ``role`` tells the tested model's map (``"current"``) from a stored one (``"baseline"``) or
    the reference model's (``"reference"``).
    """

    layer: str
    method: str
    target: int | None = None
    role: str = "current"


def _address(value: Any) -> tuple[int, tuple[int, ...]] | None:
    """(data address, shape) of a tensor or array, to recognise a map by its memory."""
    try:
        if hasattr(value, "data_ptr") and hasattr(value, "shape"):
            return int(value.data_ptr()), tuple(int(s) for s in value.shape)
        iface = getattr(value, "__array_interface__", None)
        if iface is not None:
            return int(iface["data"][0]), tuple(int(s) for s in iface["shape"])
    except (TypeError, ValueError, RuntimeError, KeyError):
        return None
    return None


class EvidenceScope:
    """The evidence gathered during one test call.

    Attributes:
        case_id: the sample id of the running ``camcheck_case`` item, if any.
        items: one :class:`Evidence` per assertion, in order.
        defaults: configured thresholds (``peak_tolerance``, ``min_energy``) that assertions
            use when the test passes none.
        run_method: the run's CAM method (messages name a map's method only when it differs).
        raw: layer -> the raw (signed, layer-resolution) map behind each display map, so a
            degenerate display map can say why (e.g. the raw map was non-finite).
    """

    def __init__(
        self,
        case_id: str | None = None,
        maps: Mapping[str, Any] | None = None,
        *,
        method: str | None = None,
        target: int | None = None,
        defaults: Mapping[str, Any] | None = None,
        run_method: str | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        self.case_id = case_id
        self.raw = dict(raw or {})
        self.items: list[Evidence] = []
        self.defaults = dict(defaults or {})
        self.run_method = run_method
        self._maps: dict[tuple[int, tuple[int, ...]], MapSource] = {}
        self._raws: dict[tuple[int, tuple[int, ...]], Any] = {}
        for layer, cam in (maps or {}).items():
            key = _address(cam)
            if key is not None and key[0]:
                self._maps[key] = MapSource(str(layer), str(method or ""), target)

    def source_of(self, cam: Any) -> MapSource | None:
        """The provenance of ``cam`` when it is one of the case's maps (or a view of one)."""
        key = _address(cam)
        if key is None:
            return None
        if key in self._maps:
            return self._maps[key]
        if len(key[1]) == 3 and key[1][0] == 1:  # a (1, H, W) view of a map
            return self._maps.get((key[0], key[1][1:]))
        return None

    def register(self, cam: Any, source: MapSource, raw: Any = None) -> None:
        """Make ``cam`` (a map handed to the test later, e.g. a baseline map) known by its
        provenance, with the raw map behind it."""
        key = _address(cam)
        if key is None or not key[0]:
            return
        self._maps[key] = source
        if raw is not None:
            self._raws[key] = raw

    def raw_of(self, cam: Any) -> Any:
        """The raw map behind ``cam`` when it is one of the test's maps, else None."""
        key = _address(cam)
        if key is not None and key in self._raws:
            return self._raws[key]
        src = self.source_of(cam)
        if src is None or src.role != "current":
            return None
        return self.raw.get(src.layer)


_SCOPE: ContextVar[EvidenceScope | None] = ContextVar("camcheck_evidence", default=None)


@contextlib.contextmanager
def collecting(case_id: str | None = None, **kwargs: Any) -> Iterator[EvidenceScope]:
    """Collect the evidence recorded inside the ``with`` block (see :class:`EvidenceScope`)."""
    scope = EvidenceScope(case_id, **kwargs)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def current_scope() -> EvidenceScope | None:
    return _SCOPE.get()


def record(item: Evidence) -> None:
    """Record one assertion's evidence (no-op outside :func:`collecting`)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.items.append(item)


def current_case_id() -> str | None:
    """The sample id of the running per-sample test, if any (used in failure messages)."""
    scope = _SCOPE.get()
    return None if scope is None else scope.case_id


def source_of(cam: Any) -> MapSource | None:
    """The provenance of ``cam`` in the running camcheck test, if it is one of its maps."""
    scope = _SCOPE.get()
    return None if scope is None else scope.source_of(cam)


def register_map(cam: Any, source: MapSource, raw: Any = None) -> None:
    """Make a map known to the running camcheck test (no-op outside one)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.register(cam, source, raw)


def raw_of(cam: Any) -> Any:
    """The raw map behind ``cam`` in the running camcheck test, if known."""
    scope = _SCOPE.get()
    return None if scope is None else scope.raw_of(cam)


def raw_map(layer: str | None) -> Any:
    """The raw map of ``layer`` in the running camcheck test, if known."""
    scope = _SCOPE.get()
    return None if scope is None or layer is None else scope.raw.get(layer)


def default(name: str) -> Any:
    """A configured default threshold of the running camcheck test (None outside one)."""
    scope = _SCOPE.get()
    return None if scope is None else scope.defaults.get(name)
