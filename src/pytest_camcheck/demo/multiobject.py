"""A synthetic multi-object set whose right answers are known by construction.

Each image is black, with two to four coloured squares of different classes (``blue``, ``green``,
``red``, ``yellow``; sometimes two squares of one class) in distinct quadrants. The model
(:func:`colour_model`) sees colour: its only convolution (``features``, 1x1, at the input's
resolution) has one channel per class that is 1 exactly on that class's colour and 0 elsewhere,
then global average pooling and a linear head. The Grad-CAM of class ``c`` is therefore exactly
the squares of colour ``c``: the pointing game of every (image, class) pair must hit its own
boxes, and a pair whose boxes were swapped with another class's must miss.

:func:`centre_model` is the baseline of the pointing-game literature: a map that always peaks
at the image's centre, whatever the class.

Used by the tests and the docs; nothing here downloads anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLASSES",
    "COLOURS",
    "MultiObjectSet",
    "centre_model",
    "colour_model",
    "plain_transform",
    "write_multiobject_set",
]

#: class name -> RGB colour; the class index is the position in sorted order.
COLOURS: dict[str, tuple[int, int, int]] = {
    "blue": (0, 0, 255),
    "green": (0, 255, 0),
    "red": (255, 0, 0),
    "yellow": (255, 255, 0),
}
CLASSES: tuple[str, ...] = tuple(sorted(COLOURS))

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


@dataclass
class MultiObjectSet:
    """What :func:`write_multiobject_set` wrote.

    Attributes:
        root: the dataset folder (images in ``images/``).
        annotations: the annotation file or folder.
        objects: image id (``images/<stem>``) -> ``[(class, box), ...]`` as drawn.
        annotated: the same, as written to the annotations (differs from ``objects`` where
            boxes were swapped).
        size: the images' side in pixels.
    """

    root: Path
    annotations: Path
    objects: dict[str, list[tuple[str, Box]]]
    annotated: dict[str, list[tuple[str, Box]]]
    size: int

    def pairs(self) -> list[str]:
        """Every ``<image id>/<class>`` item id, in dataset order."""
        out = []
        for image in sorted(self.annotated):
            seen: list[str] = []
            for cls, _ in self.annotated[image]:
                if cls not in seen:
                    seen.append(cls)
            out.extend(f"{image}/{c}" for c in seen)
        return out


def _layout(n_images: int, size: int) -> dict[str, list[tuple[str, Box]]]:
    """Deterministic scenes: squares of side size/6 centred in distinct quadrants."""
    side = size // 6
    centres = [
        (size // 4, size // 4),
        (3 * size // 4, size // 4),
        (size // 4, 3 * size // 4),
        (3 * size // 4, 3 * size // 4),
    ]
    scenes: dict[str, list[tuple[str, Box]]] = {}
    for i in range(n_images):
        count = 2 + i % 3  # 2, 3 or 4 squares
        classes = [CLASSES[(i + k) % len(CLASSES)] for k in range(count)]
        if count == 4 and i % 2:  # two squares of one class
            classes[3] = classes[0]
        quads = [(i + 2 * k) % 4 for k in range(count)]
        if len(set(quads)) < count:
            quads = [(i + k) % 4 for k in range(count)]
        objs = []
        for cls, q in zip(classes, quads):
            cx, cy = centres[q]
            shift = (i * 3) % 7 - 3  # a little jitter so that no two scenes are the same
            x0, y0 = cx - side // 2 + shift, cy - side // 2 - shift
            objs.append((cls, (x0, y0, x0 + side, y0 + side)))
        scenes[f"scene_{i:03d}"] = objs
    return scenes


def write_multiobject_set(
    root: str | Path,
    fmt: str = "voc",
    n_images: int = 6,
    size: int = 96,
    swap: dict[str, tuple[str, str]] | None = None,
) -> MultiObjectSet:
    """Write the images and their annotations.

    Args:
        root: the dataset folder to create (images go to ``root/images``).
        fmt: ``"voc"`` (``root/annotations/*.xml``), ``"coco"`` (``root/annotations.json``)
            or ``"csv"`` (``root/annotations.csv``).
        n_images: how many scenes.
        size: the images' side in pixels.
        swap: image stem -> two classes of that image whose boxes are exchanged in the
            annotations (the drawn squares stay): exactly those pairs should fail.

    Returns:
        what was written.
    """
    from PIL import Image, ImageDraw

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    scenes = _layout(n_images, size)
    objects: dict[str, list[tuple[str, Box]]] = {}
    annotated: dict[str, list[tuple[str, Box]]] = {}
    for stem, objs in scenes.items():
        img = Image.new("RGB", (size, size), (0, 0, 0))
        draw = ImageDraw.Draw(img)
        for cls, (x0, y0, x1, y1) in objs:
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=COLOURS[cls])
        img.save(root / "images" / f"{stem}.png")
        written = list(objs)
        if swap and stem in swap:
            a, b = swap[stem]
            box_a = [box for c, box in objs if c == a]
            box_b = [box for c, box in objs if c == b]
            if not box_a or not box_b:
                raise ValueError(f"{stem} has no {a!r} or no {b!r} to swap")
            written = [(c, box_b[0] if c == a else box_a[0] if c == b else box) for c, box in objs]
        objects[f"images/{stem}"] = list(objs)
        annotated[f"images/{stem}"] = written
    if fmt == "voc":
        ann = root / "annotations"
        ann.mkdir(exist_ok=True)
        for key, objs in annotated.items():
            stem = key.split("/")[-1]
            parts = [
                "<annotation>",
                f"  <filename>{stem}.png</filename>",
                f"  <size><width>{size}</width><height>{size}</height><depth>3</depth></size>",
            ]
            for cls, (x0, y0, x1, y1) in objs:
                # VOC boxes are 1-based and inclusive
                parts += [
                    "  <object>",
                    f"    <name>{cls}</name>",
                    "    <difficult>0</difficult>",
                    f"    <bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>"
                    f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>",
                    "  </object>",
                ]
            parts.append("</annotation>")
            (ann / f"{stem}.xml").write_text("\n".join(parts) + "\n")
    elif fmt == "coco":
        ann = root / "annotations.json"
        cats = [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]
        cat_id = {c["name"]: c["id"] for c in cats}
        images, annotations = [], []
        for n, (key, objs) in enumerate(sorted(annotated.items()), start=1):
            stem = key.split("/")[-1]
            images.append({"id": n, "file_name": f"{stem}.png", "width": size, "height": size})
            for cls, (x0, y0, x1, y1) in objs:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": n,
                        "category_id": cat_id[cls],
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "iscrowd": 0,
                        "area": (x1 - x0) * (y1 - y0),
                    }
                )
        ann.write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": cats})
        )
    elif fmt == "csv":
        ann = root / "annotations.csv"
        rows = ["image,label,region,x0,y0,x1,y1"]
        for key, objs in sorted(annotated.items()):
            stem = key.split("/")[-1]
            for cls, (x0, y0, x1, y1) in objs:
                rows.append(f"images/{stem}.png,{cls},{cls},{x0},{y0},{x1},{y1}")
        ann.write_text("\n".join(rows) + "\n")
    else:
        raise ValueError(f'fmt must be "voc", "coco" or "csv", got {fmt!r}')
    return MultiObjectSet(root, ann, objects, annotated, size)


def plain_transform(img):
    """The image's pixels in [0, 1], unchanged in size (boxes keep their coordinates)."""
    import numpy as np
    import torch

    arr = np.asarray(img.convert("RGB"), dtype="float32") / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def colour_model():
    """The model that sees each class's colour (see the module's docstring)."""
    import torch
    from torch import nn

    class ColourNet4(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, len(CLASSES), 1), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(len(CLASSES), len(CLASSES))
            weights = {
                "blue": ((-1.0, -1.0, 1.0), 0.0),
                "green": ((-1.0, 1.0, -1.0), 0.0),
                "red": ((1.0, -1.0, -1.0), 0.0),
                "yellow": ((1.0, 1.0, -2.0), -1.0),
            }
            with torch.no_grad():
                for k, cls in enumerate(CLASSES):
                    w, b = weights[cls]
                    self.features[0].weight[k, :, 0, 0] = torch.tensor(w)
                    self.features[0].bias[k] = b
                self.fc.weight.copy_(torch.eye(len(CLASSES)) * 10.0)
                self.fc.bias.zero_()

        def forward(self, x):
            return self.fc(self.pool(self.features(x)).flatten(1))

    return ColourNet4().eval()


def centre_model():
    """A model whose map peaks at the image's centre pixel for every class (the pointing
    game's centre baseline): its ``features`` layer is a fixed bump, highest at pixel
    ``(H // 2, W // 2)``, at the input's resolution."""
    import torch
    from torch import nn

    class Bump(nn.Module):
        def forward(self, x):
            h, w = x.shape[-2:]
            rows = torch.arange(h, dtype=x.dtype, device=x.device)[:, None] - h // 2
            cols = torch.arange(w, dtype=x.dtype, device=x.device)[None, :] - w // 2
            bump = 1.0 - (rows**2 + cols**2) / float(h * h + w * w)
            return bump.expand(x.shape[0], 1, h, w) + 0.0 * x[:, :1]

    class CentreNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = Bump()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(1, len(CLASSES))
            with torch.no_grad():
                self.fc.weight.fill_(1.0)
                self.fc.bias.zero_()

        def forward(self, x):
            return self.fc(self.pool(self.features(x)).flatten(1))

    return CentreNet().eval()
