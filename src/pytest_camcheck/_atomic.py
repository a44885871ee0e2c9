"""Atomic file writes: a synced temporary file in the target's folder, then a rename.

Used by the report (HTML + JSON sidecar) and by the baselines (data file + manifest), so an
interrupted run never leaves half a file over a previous one. Standard library only.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write_files", "fsync_dir", "temp_file"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_file(target: Path, write: Callable[[IO[Any]], None], *, binary: bool = False) -> Path:
    """Write a complete temporary file next to ``target`` (flushed and synced) and return it.

    ``write`` receives the open file (text in UTF-8 with ``\\n`` line ends, or binary). The file
    gets the mode ``open()`` would give it (``mkstemp`` makes it private). On any error the
    temporary file is removed and the exception re-raised.
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        opened = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        )
        with opened as fh:
            if os.chmod in os.supports_fd:
                os.chmod(fh.fileno(), 0o666 & ~_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fsync_dir(directory: Path) -> None:
    """Sync a folder's entries (the renames in it), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_files(files: Sequence[tuple[Path, Callable[[IO[str]], None]]]) -> None:
    """Write several text files so that each is either complete and new or untouched.

    All temporary files are written first; only when every one is complete are they moved over
    their targets, in order. On any error the temporary files are removed and the exception
    re-raised.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for target, write in files:
            temps.append((temp_file(target, write), target))
        for tmp, target in temps:
            os.replace(tmp, target)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    for directory in {target.parent for target, _ in files}:
        fsync_dir(directory)
