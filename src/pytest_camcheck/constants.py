"""Constants shared across the package. Imports nothing (cheap to import from anywhere)."""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD"]

#: ImageNet per-channel (R, G, B) mean of pixels in [0, 1]: the usual input normalisation of
#: ImageNet-trained models, used by the default transform and the zoo's models.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: ImageNet per-channel (R, G, B) standard deviation of pixels in [0, 1].
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
