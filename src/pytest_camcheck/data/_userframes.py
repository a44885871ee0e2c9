"""Short, one-paragraph descriptions of exceptions raised by the user's own code.

A dataset factory or a transform that raises deep inside torch would otherwise print hundreds of
lines of traceback per test. :func:`describe_exception` keeps what the user needs: the exception
type, the first line of its message, and where in the USER's files it happened (frames inside
the standard library, installed packages and pytest-camcheck itself are left out).

This module imports the standard library only.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import traceback
from functools import lru_cache

__all__ = ["describe_exception", "first_line", "user_frames"]

#: Longest exception message kept, in characters.
MAX_MESSAGE = 300


def first_line(exc: BaseException, limit: int = MAX_MESSAGE) -> str:
    """The first non-empty line of ``exc``'s message, cut to ``limit`` characters."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


@lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    """Folders whose files are not the user's: the standard library, installed packages,
    pytest-camcheck and (when loaded from elsewhere) torch and torchvision."""
    dirs: set[str] = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            dirs.add(paths[key])
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - old virtualenv's site module
        pass
    user_site = getattr(site, "USER_SITE", None)
    if user_site:
        dirs.add(user_site)
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # pytest_camcheck
    for name in ("torch", "torchvision", "PIL", "numpy", "_pytest", "pluggy"):
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None)
        if path:
            dirs.add(os.path.dirname(os.path.abspath(path)))
    return tuple(sorted(os.path.realpath(d) + os.sep for d in dirs if d))


def _is_user_file(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    real = os.path.realpath(filename)
    return not any(real.startswith(d) for d in _library_dirs())


def _shown(filename: str, rootdir: str | os.PathLike[str] | None) -> str:
    if rootdir is not None:
        try:
            rel = os.path.relpath(filename, os.fspath(rootdir))
        except ValueError:  # another drive on Windows
            return filename
        if not rel.startswith(".."):
            return rel.replace(os.sep, "/")
    return filename


def user_frames(
    exc: BaseException, limit: int = 5, rootdir: str | os.PathLike[str] | None = None
) -> list[str]:
    """``file:line in function`` for the innermost ``limit`` frames of ``exc`` in user files.

    Args:
        exc: the exception (its ``__traceback__`` is read).
        limit: how many frames to keep at most (the ones nearest to where it was raised).
        rootdir: paths under it are shown relative to it.

    Returns:
        the frames, outermost first.
    """
    frames = [
        f"{_shown(fs.filename, rootdir)}:{fs.lineno} in {fs.name}"
        for fs in traceback.extract_tb(exc.__traceback__)
        if _is_user_file(fs.filename)
    ]
    return frames[-limit:] if limit > 0 else []


def describe_exception(
    exc: BaseException, limit: int = 5, rootdir: str | os.PathLike[str] | None = None
) -> str:
    """``Type: first line of the message (at file:line in fn; ...)``, on one line.

    Args:
        exc: the exception.
        limit: at most this many user frames are shown.
        rootdir: paths under it are shown relative to it.
    """
    text = type(exc).__name__
    message = first_line(exc)
    if message:
        text += f": {message}"
    frames = user_frames(exc, limit, rootdir)
    if frames:
        text += f" (at {'; '.join(frames)})"
    return text
