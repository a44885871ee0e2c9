"""Fixtures for plugin tests: a tiny project whose right answers are known by construction.

The toy model sees colour: its only convolution computes relu(G - R) (class 0, "green") and
relu(R - G) (class 1, "red") per pixel, then global average pooling and an identity head. The CAM
of an image of class "red" is therefore exactly the red square, so the pointing game must hit
the annotated box. The "sneaky" model instead answers "red" from a blue watermark in the corner.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch  # noqa: F401
import torchvision  # noqa: F401

# pytester's in-process runs drop the modules a run imported; torch/torchvision cannot be
# imported twice in one process, so import everything heavy once, before any inner run.
import pytest_camcheck.assertions
import pytest_camcheck.data.dataset
import pytest_camcheck.regression
import pytest_camcheck.session  # noqa: F401

TOY_MODEL = """
import torch
from torch import nn


class ColourNet(nn.Module):
    def __init__(self, sneaky: bool = False):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            w = torch.zeros(2, 3, 1, 1)
            # classes sorted by name, as ImageFolder does: 0 = green, 1 = red
            if sneaky:  # "red" <- blue watermark, "green" <- green
                w[1, 2], w[1, 0], w[1, 1] = 1.0, -1.0, -1.0
                w[0, 1], w[0, 0], w[0, 2] = 1.0, -1.0, -1.0
            else:
                w[1, 0], w[1, 1] = 1.0, -1.0
                w[0, 1], w[0, 0] = 1.0, -1.0
            self.features[0].weight.copy_(w)
            self.features[0].bias.zero_()
            self.fc.weight.copy_(torch.eye(2) * 10)
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def good():
    return ColourNet(False)


def sneaky():
    return ColourNet(True)


def plain(img):
    import numpy as np

    arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype="float32") / 255.0)
    return arr.permute(2, 0, 1).contiguous()
"""


@dataclass
class Project:
    pytester: pytest.Pytester
    root: Path
    boxes: dict[str, tuple[int, int, int, int]]

    def run(self, *args: str, subprocess: bool = False) -> pytest.RunResult:
        if subprocess:
            return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
        return self.pytester.runpytest("-p", "no:cacheprovider", *args)


def _write_images(
    root: Path, n_per_class: int, size: int, watermark: bool
) -> dict[str, tuple[int, int, int, int]]:
    from PIL import Image, ImageDraw

    boxes: dict[str, tuple[int, int, int, int]] = {}
    for cls, colour in (("red", (255, 0, 0)), ("green", (0, 255, 0))):
        (root / "data" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            img = Image.new("RGB", (size, size), (0, 0, 0))
            d = ImageDraw.Draw(img)
            side = size // 4
            x0 = (7 * i + 5 + (17 if cls == "green" else 0)) % (size - side)
            y0 = (11 * i + 9) % (size - side)
            d.rectangle([x0, y0, x0 + side - 1, y0 + side - 1], fill=colour)
            if watermark and cls == "red":
                d.rectangle([size - 8, size - 8, size - 1, size - 1], fill=(0, 0, 255))
            name = f"{cls}/{cls}_{i:02d}.png"
            img.save(root / "data" / name)
            boxes[name] = (x0, y0, x0 + side, y0 + side)
    return boxes


@pytest.fixture
def camcheck_project(pytester: pytest.Pytester) -> Callable[..., Project]:
    """Factory: writes data/, annotations.csv, toymodel.py and an ini file into pytester's dir."""

    def make(
        n_per_class: int = 3,
        size: int = 32,
        watermark: bool = False,
        model: str = "toymodel:good",
        ini: str = "",
        tests: str | None = None,
    ) -> Project:
        root = pytester.path
        boxes = _write_images(root, n_per_class, size, watermark)
        rows = ["image,label,region,x0,y0,x1,y1"]
        for name, (x0, y0, x1, y1) in boxes.items():
            rows.append(f"{name},{name.split('/')[0]},object,{x0},{y0},{x1},{y1}")
            if watermark and name.startswith("red"):
                rows.append(f"{name},red,watermark,{size - 8},{size - 8},{size},{size}")
        (root / "data" / "annotations.csv").write_text("\n".join(rows) + "\n")
        (root / "toymodel.py").write_text(TOY_MODEL)
        pytester.makeini(
            textwrap.dedent(
                f"""
                [pytest]
                camcheck_model = {model}
                camcheck_dataset = data
                camcheck_annotations = data/annotations.csv
                camcheck_transform = toymodel:plain
                camcheck_device = cpu
                camcheck_batch_size = 4
                """
            )
            + textwrap.dedent(ini)
        )
        if tests is not None:
            pytester.makepyfile(test_cam=textwrap.dedent(tests))
        return Project(pytester, root, boxes)

    return make
