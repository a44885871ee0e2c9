"""The two demo classifiers: one that looks at the object, one that looks at a watermark.

Both are the same :func:`tiny_cnn` (four conv blocks, global average pooling, one linear layer,
so every CAM method applies, plain CAM included). ``clean_model`` was trained on images without
the watermark; ``watermark_model`` on images where the watermark marks one class and 40% of the
shapes contradict their label, so the watermark is the only reliable cue. Both reach high
accuracy on a watermarked test set; only the CAM shows where they look. The weights are shipped
in ``weights/`` and made by ``scripts/train_demo_models.py``.

Spec strings for the plugin: ``"pytest_camcheck.demo.models:clean_model"``,
``"pytest_camcheck.demo.models:watermark_model"``, transform
``"pytest_camcheck.demo.models:transform"``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import DataError

__all__ = [
    "MEAN",
    "STD",
    "TinyCNN",
    "background_model",
    "clean_model",
    "load_weights",
    "random_model",
    "tiny_cnn",
    "transform",
    "watermark_model",
    "wrong_object_model",
]

# ImageNet statistics: the library's default transform uses the same ones, so at 96 px it feeds
# these models the same tensors as :func:`transform`.
MEAN = IMAGENET_MEAN
STD = IMAGENET_STD


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    """Conv blocks of 16-32-64-64 channels (max-pooling after the first three), then GAP + linear.

    Attributes:
        features: the convolutional trunk; its output ``(B, 64, H/8, W/8)`` is the CAM layer
            that ``compute_cams`` picks automatically.
        pool: global average pooling.
        fc: the classifier.
    """

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, 16),
            nn.MaxPool2d(2),
            _block(16, 32),
            nn.MaxPool2d(2),
            _block(32, 64),
            nn.MaxPool2d(2),
            _block(64, 64),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def tiny_cnn(num_classes: int = 2) -> TinyCNN:
    """A freshly initialised :class:`TinyCNN` (seed torch first for reproducible weights)."""
    return TinyCNN(num_classes)


def transform(img: Image.Image) -> Tensor:
    """PIL image -> ``(3, H, W)`` float32 normalised with :data:`MEAN` / :data:`STD`.

    No resizing: the demo images are already ``IMAGE_SIZE`` square.
    """
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


def load_weights(name: str) -> TinyCNN:
    """A :class:`TinyCNN` in eval mode with the shipped ``weights/<name>.pt`` loaded.

    Raises:
        DataError: the weights file is not in the installed package.
    """
    ref = resources.files(__package__).joinpath("weights", f"{name}.pt")
    if not ref.is_file():
        raise DataError(
            f"demo weights {name}.pt are missing from {__package__}/weights/; reinstall "
            "pytest-camcheck or regenerate them with `python scripts/train_demo_models.py`"
        )
    with resources.as_file(ref) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = tiny_cnn()
    model.load_state_dict(state)
    return model.eval()


def clean_model() -> TinyCNN:
    """The demo classifier that looks at the shape (passes the CAM checks)."""
    return load_weights("clean")


def watermark_model() -> TinyCNN:
    """The demo classifier that looks at the watermark (accurate, yet fails the CAM checks)."""
    return load_weights("watermark")


def background_model() -> TinyCNN:
    """The demo classifier that learnt the class-tinted background (a shortcut over the whole
    image, in no box)."""
    return load_weights("background")


def wrong_object_model() -> TinyCNN:
    """The demo classifier that looks at the class's distractor glyph, not at the object."""
    return load_weights("wrong_object")


def random_model() -> TinyCNN:
    """The demo network as initialised, never trained (randomised weights)."""
    return load_weights("random")
