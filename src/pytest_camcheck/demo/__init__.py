"""The built-in demo: synthetic circle/square images and two classifiers, one with a planted defect.

``synthetic`` draws the images (numpy + PIL), ``models`` holds the two shipped classifiers: a clean
one that looks at the shape and one that looks at a class-correlated watermark. Both are accurate;
the CAM checks tell them apart. ``python -m pytest_camcheck.demo`` runs the checks on them.

Importing this package imports neither torch nor numpy; import the submodules for that.
"""

from __future__ import annotations

__all__: list[str] = []
