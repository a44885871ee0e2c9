"""Where assertions leave their numbers for the report.

The plugin opens a :func:`collecting` scope around each test call; every ``assert_*`` helper
calls :func:`record` with what it measured (pass or fail). Outside such a scope, ``record`` is a
no-op, so the assertions work in plain scripts and notebooks too. Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["EvidenceScope", "collecting", "current_case_id", "record"]


class EvidenceScope:
    """The evidence gathered during one test call.

    Attributes:
        case_id: the sample id of the running ``camcheck_case`` item, if any.
        items: one dict per assertion: ``{"kind": ..., "passed": bool, ...numbers}``.
    """

    def __init__(self, case_id: str | None = None) -> None:
        self.case_id = case_id
        self.items: list[dict[str, Any]] = []


_SCOPE: ContextVar[EvidenceScope | None] = ContextVar("camcheck_evidence", default=None)


@contextlib.contextmanager
def collecting(case_id: str | None = None) -> Iterator[EvidenceScope]:
    """Collect the evidence recorded inside the ``with`` block."""
    scope = EvidenceScope(case_id)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def record(kind: str, passed: bool, **data: Any) -> None:
    """Record one assertion's outcome and numbers (no-op outside :func:`collecting`)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.items.append({"kind": kind, "passed": bool(passed), **data})


def current_case_id() -> str | None:
    """The sample id of the running per-sample test, if any (used in failure messages)."""
    scope = _SCOPE.get()
    return None if scope is None else scope.case_id
