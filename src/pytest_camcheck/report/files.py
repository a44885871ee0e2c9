"""Where the report may be written: never over a file that is not a camcheck report, never over
one of the run's inputs, and only into a folder that can be written.

Checked at start-up (``pytest_configure``), before any compute, so a bad path costs nothing.
Imports nothing heavy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError

__all__ = ["GENERATOR", "check_report_path", "is_camcheck_report", "json_path_for"]

#: Written into both files so that camcheck recognises its own reports.
GENERATOR = "pytest-camcheck"
_HTML_MARK = f'<meta name="generator" content="{GENERATOR}">'
_SNIFF_BYTES = 4096


def json_path_for(html: Path) -> Path:
    """The JSON sidecar's path: the HTML path with the suffix ``.json``."""
    return html.with_suffix(".json")


def is_camcheck_report(path: Path) -> bool:
    """Whether ``path`` is an HTML report or JSON sidecar written by camcheck."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return False
    text = head.decode("utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        if f'"generator": "{GENERATOR}"' in text:
            return True
        try:  # schema 1 sidecars carried no generator: recognise them by their keys
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and {"schema_version", "cases", "gates"} <= set(data)
    return _HTML_MARK in text


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_report_path(
    path: str | os.PathLike[str], rootdir: Path, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """Resolve the report path and check that writing it (and its sidecar) loses nothing.

    Args:
        path: the configured report path; a relative one resolves against ``rootdir``.
        rootdir: pytest's rootdir.
        inputs: the run's input files and folders (dataset, annotations, weights, model file);
            relative ones resolve against ``rootdir``.

    Returns:
        The absolute HTML path.

    Raises:
        ConfigError: the path ends in ``.json``, is a folder, is (or its sidecar is) an existing
            file that camcheck did not write, is one of the inputs, or its folder cannot be
            written.
    """
    target = Path(path)
    if not target.is_absolute():
        target = rootdir / target
    target = Path(os.path.abspath(target))
    option = "camcheck_report / --camcheck-report"
    if target.suffix.lower() == ".json":
        raise ConfigError(
            f"{option}: {str(target)!r} ends in .json, but the JSON file is written next to the "
            "HTML one; give the HTML path, e.g. 'camcheck-report.html'"
        )
    if target.is_dir():
        raise ConfigError(
            f"{option}: {str(target)!r} is a folder; give a file name, "
            f"e.g. {str(target / 'camcheck-report.html')!r}"
        )
    sidecar = json_path_for(target)
    for candidate in (p for p in (Path(i) for i in inputs) if str(p)):
        item = candidate if candidate.is_absolute() else rootdir / candidate
        for written in (target, sidecar):
            if _same(written, item):
                raise ConfigError(
                    f"{option}: writing {written} would overwrite or mix with the run's input "
                    f"{str(candidate)!r}; write the report somewhere else, e.g. "
                    "'camcheck-report.html' in the project folder"
                )
    for written in (target, sidecar):
        if written.exists() and not is_camcheck_report(written):
            raise ConfigError(
                f"{option}: {written} exists and is not a camcheck report; camcheck never "
                "overwrites other files. Choose another path, or remove the file yourself"
            )
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{option}: cannot write into {folder} (permission denied); choose a writable "
            "folder for the report"
        )
    return target
