"""Small helpers shared by the annotation readers' format detection.

This module imports the standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["holds_file"]


def holds_file(folder: Path, suffix: str) -> bool:
    """Whether ``folder`` or one of its sub-folders holds a file whose name ends with ``suffix``.

    Hidden files and folders (names starting with ``.``) are skipped and the suffix is compared
    case-insensitively. The walk stops at the first match.

    Args:
        folder: the folder to search.
        suffix: the ending to look for, with its dot (``".xml"``).
    """
    wanted = suffix.lower()
    for _dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(wanted):
                return True
    return False
