"""pytest-camcheck: test where your image models look.

The public names are imported lazily so that ``import pytest_camcheck`` (which pytest does for
every run through the plugin entry point) never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_LAZY: dict[str, str] = {
    "compute_cams": ".cam.engine",
    "CamResult": ".cam.engine",
    "METHODS": ".cam.methods",
    "register_method": ".cam.methods",
    "crosscheck_captum": ".cam.crosscheck",
    "assert_matches_captum": ".cam.crosscheck",
    "CrosscheckResult": ".cam.crosscheck",
    "Box": ".regions",
    "Region": ".regions",
    "Sample": ".regions",
    "assert_peak_in_box": ".assertions",
    "assert_energy_in_region": ".assertions",
    "assert_energy_outside_region": ".assertions",
    "assert_localization_iou": ".assertions",
    "assert_pass_rate": ".assertions",
    "assert_not_degenerate": ".assertions",
    "assert_similar_maps": ".assertions",
    "assert_no_regression": ".assertions",
    "PairedComparison": ".compare",
    "SimilarityResult": ".compare",
    "Baselines": ".baseline",
    "BaselineError": ".errors",
    "BaselineWritten": ".errors",
    "RateResult": ".metrics",
    "CamCheck": ".session",
    "CamCase": ".session",
    "CamAssertionError": ".errors",
    "CamcheckError": ".errors",
    "CamcheckWarning": ".errors",
    "ConfigError": ".errors",
    "DataError": ".errors",
    "EngineError": ".errors",
    "LayerNotFoundError": ".errors",
}

__all__ = [
    "METHODS",
    "BaselineError",
    "BaselineWritten",
    "Baselines",
    "Box",
    "CamAssertionError",
    "CamCase",
    "CamCheck",
    "CamResult",
    "CamcheckError",
    "CamcheckWarning",
    "ConfigError",
    "CrosscheckResult",
    "DataError",
    "EngineError",
    "LayerNotFoundError",
    "PairedComparison",
    "RateResult",
    "Region",
    "Sample",
    "SimilarityResult",
    "__version__",
    "assert_energy_in_region",
    "assert_energy_outside_region",
    "assert_localization_iou",
    "assert_matches_captum",
    "assert_no_regression",
    "assert_not_degenerate",
    "assert_pass_rate",
    "assert_peak_in_box",
    "assert_similar_maps",
    "compute_cams",
    "crosscheck_captum",
    "register_method",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .assertions import (
        assert_energy_in_region,
        assert_energy_outside_region,
        assert_localization_iou,
        assert_no_regression,
        assert_not_degenerate,
        assert_pass_rate,
        assert_peak_in_box,
        assert_similar_maps,
    )
    from .baseline import Baselines
    from .cam.crosscheck import CrosscheckResult, assert_matches_captum, crosscheck_captum
    from .cam.engine import CamResult, compute_cams
    from .cam.methods import METHODS, register_method
    from .compare import PairedComparison, SimilarityResult
    from .errors import (
        BaselineError,
        BaselineWritten,
        CamAssertionError,
        CamcheckError,
        CamcheckWarning,
        ConfigError,
        DataError,
        EngineError,
        LayerNotFoundError,
    )
    from .metrics import RateResult
    from .regions import Box, Region, Sample
    from .session import CamCase, CamCheck


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
