"""CAM method names: the one spelling rule shared by the settings and the engine's registry.

``"Grad-CAM++"``, ``"gradcam++"``, ``"GradCAMpp"`` and ``"grad_cam_plus_plus"`` all name the
method registered as ``"gradcam++"``. :func:`method_key` reduces a spelling to its key;
:func:`find_method` looks a spelling up among registered names. The settings
(:mod:`pytest_camcheck.settings`, which validates config strings without importing torch) and
:func:`pytest_camcheck.cam.methods.get_method` both use them, so a spelling is accepted or
refused the same way in both.

This module imports nothing beyond the standard library (no torch).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["find_method", "method_key", "unknown_method_message"]

_PLUS_SUFFIXES = ("plusplus", "pp")


def method_key(name: str) -> str:
    """The comparison key of a CAM method's name.

    Lower-cased, without whitespace, ``-`` or ``_``; a trailing ``plusplus`` or ``pp`` becomes
    ``++``. So ``"Grad-CAM++"``, ``"GradCAMpp"`` and ``"grad_cam_plus_plus"`` give
    ``"gradcam++"``, ``"Grad-CAM"`` gives ``"gradcam"`` and ``"X-Grad-CAM"`` ``"xgradcam"``.

    Args:
        name: a method's name as a user spells it.

    Returns:
        The key; two spellings name the same method when their keys are equal.
    """
    key = "".join(str(name).lower().split()).replace("-", "").replace("_", "")
    for suffix in _PLUS_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)] + "++"
    return key


def find_method(name: str, known: Iterable[str]) -> str | None:
    """The registered name that ``name`` spells, or None.

    Args:
        name: a method's name as a user spells it.
        known: the registered names (e.g. the keys of
            :data:`pytest_camcheck.cam.methods.METHODS`).

    Returns:
        The first of ``known`` whose :func:`method_key` equals ``name``'s, as registered.
    """
    key = method_key(name)
    for candidate in known:
        if method_key(candidate) == key:
            return candidate
    return None


def unknown_method_message(name: object, known: Iterable[str]) -> str:
    """The error message for a name :func:`find_method` did not find; lists the valid names."""
    return f"unknown CAM method {name!r}; valid methods: {', '.join(known)}"
