"""Exceptions and warnings raised by pytest-camcheck.

Importing this module is cheap: it imports neither torch nor pytest.
"""

from __future__ import annotations

__all__ = [
    "BaselineError",
    "BaselineWritten",
    "CamAssertionError",
    "CamcheckError",
    "CamcheckWarning",
    "ConfigError",
    "DataError",
    "EngineError",
    "LayerNotFoundError",
    "RegionNotFoundError",
]


class CamcheckError(Exception):
    """Base class of every error pytest-camcheck raises on bad input or misuse."""


class ConfigError(CamcheckError):
    """A configuration value (ini key, CLI option, marker argument) is invalid."""


class DataError(CamcheckError):
    """A dataset, image or annotation cannot be used (missing file, box outside the image...)."""


class RegionNotFoundError(DataError, LookupError):
    """A sample has no region of the requested name (the message lists the regions it has)."""


class EngineError(CamcheckError):
    """The CAM engine cannot compute what was asked (wrong target, unsupported model...)."""


class LayerNotFoundError(EngineError, LookupError):
    """A requested layer name does not exist in the model."""


class CamAssertionError(AssertionError):
    """A CAM assertion failed.

    Attributes:
        evidence: the numbers behind the verdict (a plain dict, recorded for the report).
    """

    def __init__(self, message: str, evidence: dict | None = None) -> None:
        super().__init__(message)
        self.evidence: dict = dict(evidence or {})


class BaselineError(CamcheckError):
    """A stored baseline cannot be used: corrupt, foreign, from a newer schema, or made for
    another map configuration (the message names the file and the field)."""


class BaselineWritten(CamAssertionError):
    """A baseline was missing (or ``--camcheck-update-baselines`` was given) and has been
    written: the test fails so that a new baseline never passes unnoticed."""


class CamcheckWarning(UserWarning):
    """Something looks wrong but the run can continue (e.g. a fallback was taken)."""
