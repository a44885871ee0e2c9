"""The HTML report of failing cases.

* :mod:`.collector`: the pytest plugin object (controller only) that gathers the records.
* :mod:`.render`: overlays and thumbnails of one case (numpy + OpenCV).
* :mod:`.plots`: the summary's histogram and per-class bars (numpy + OpenCV).
* :mod:`.html`: view models, the jinja2 template and the atomic HTML + JSON writer.

Importing this package imports nothing heavy; the names below are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "ReportCollector": ".collector",
    "attach_pytest_html": ".collector",
    "encode_png_b64": ".render",
    "overlay": ".render",
    "render_case_images": ".render",
    "histogram_plot": ".plots",
    "class_rate_plot": ".plots",
    "write_report": ".html",
}

__all__ = [
    "ReportCollector",
    "attach_pytest_html",
    "class_rate_plot",
    "encode_png_b64",
    "histogram_plot",
    "overlay",
    "render_case_images",
    "write_report",
]

if TYPE_CHECKING:  # pragma: no cover
    from .collector import ReportCollector, attach_pytest_html
    from .html import write_report
    from .plots import class_rate_plot, histogram_plot
    from .render import encode_png_b64, overlay, render_case_images


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
