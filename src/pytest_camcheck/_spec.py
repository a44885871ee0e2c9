"""Import an object named by a ``"package.module:attribute"`` spec string."""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

from .errors import ConfigError

__all__ = ["SPEC_PATTERN", "import_from_spec", "looks_like_spec"]

#: ``package.module:attribute`` (the attribute may be dotted: ``module:Class.factory``).
SPEC_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def looks_like_spec(value: object) -> bool:
    """Whether ``value`` is a string of the form ``package.module:attribute``."""
    return isinstance(value, str) and SPEC_PATTERN.match(value.strip()) is not None


def import_from_spec(spec: str, *, what: str, rootdir: str | os.PathLike[str] | None = None) -> Any:
    """The object ``spec`` names, importing its module.

    Args:
        spec: ``"package.module:attribute"``.
        what: what the object is for (``"dataset"``, ``"transform"``), for messages.
        rootdir: a folder put first on ``sys.path`` during the import (the pytest rootdir), so
            a module next to the user's tests is importable; removed again afterwards.

    Raises:
        ConfigError: the spec is malformed, the module cannot be imported, or it lacks the
            attribute; the message names the spec.
    """
    spec = spec.strip()
    if not looks_like_spec(spec):
        raise ConfigError(
            f"{what} {spec!r} is not of the form 'package.module:name' (a module path, a colon, "
            "and the name of an object in that module)"
        )
    module_name, _, attr = spec.partition(":")
    added = None
    if rootdir is not None:
        added = os.fspath(rootdir)
        sys.path.insert(0, added)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what} {spec!r}: cannot import module {module_name!r} ({exc}); check the spelling "
            "and that the module is on sys.path (relative to the pytest rootdir)"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"{what} {spec!r}: importing module {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if added is not None:
            try:
                sys.path.remove(added)
            except ValueError:  # the module removed it itself
                pass
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            public = sorted(n for n in dir(module) if not n.startswith("_"))
            shown = ", ".join(public[:12]) + (", ..." if len(public) > 12 else "")
            raise ConfigError(
                f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}; "
                f"it defines: {shown or 'nothing public'}"
            ) from None
    return obj
