"""Write the tiny Oxford-IIIT-Pet-style fixture in ``data/`` (how the bundled files were made).

Four 320 x 240 photos: scikit-image's cat (``skimage.data.chelsea``), scaled and pasted onto
scikit-image textures (grass, brick, gravel). Because the cat was pasted, its boxes are exact:

- ``data/images/<name>.jpg``: the photos;
- ``data/annotations/xmls/<name>.xml``: Pascal VOC, one ``<object>`` named by species (``cat``)
  whose box is the head, as Oxford-IIIT Pet's head boxes are;
- ``data/annotations/trimaps/<name>.png``: Oxford-IIIT trimaps: 1 = pet, 2 = background,
  3 = the 2 px border between them.

Run ``python make_fixture.py`` to write them again (the bytes are the same each time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

HERE = Path(__file__).parent
SIZE = (320, 240)
#: The head (the face and ears) and the cat, in the pixels of skimage.data.chelsea().
HEAD = (25, 0, 385, 300)
CAT = (0, 0, 395, 300)
#: name -> (background, left, top, scale, mirrored)
PHOTOS = {
    "tabby_1": ("grass", 20, 40, 0.45, False),
    "tabby_2": ("brick", 150, 90, 0.4, True),
    "tabby_3": ("gravel", 90, 20, 0.5, False),
    "tabby_4": ("grass", 150, 95, 0.38, True),
}

VOC = """<annotation>
  <folder>images</folder>
  <filename>{name}.jpg</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  <object>
    <name>cat</name>
    <pose>Frontal</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>
  </object>
</annotation>
"""


def _place(
    box: tuple[int, int, int, int], left: int, top: int, scale: float, mirrored: bool, width: int
) -> tuple[int, int, int, int]:
    """A box of the cat photo, in the pixels of the fixture image (integers, exclusive x1/y1)."""
    x0, y0, x1, y1 = box
    if mirrored:
        x0, x1 = width - x1, width - x0
    return (
        left + round(x0 * scale),
        top + round(y0 * scale),
        left + round(x1 * scale),
        top + round(y1 * scale),
    )


def write(root: Path = HERE / "data") -> None:
    """Write the photos, their VOC head boxes and their trimaps under ``root``."""
    cat = Image.fromarray(skimage.data.chelsea())
    for sub in ("images", "annotations/xmls", "annotations/trimaps"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, (texture, left, top, scale, mirrored) in PHOTOS.items():
        background = Image.fromarray(getattr(skimage.data, texture)()).convert("RGB")
        canvas = background.resize(SIZE, Image.Resampling.BILINEAR)
        photo = cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else cat
        pet = _place(CAT, left, top, scale, mirrored, cat.width)
        crop = photo.crop((cat.width - CAT[2], 0, cat.width, CAT[3]) if mirrored else CAT)
        canvas.paste(crop.resize((pet[2] - pet[0], pet[3] - pet[1])), pet[:2])
        canvas.save(root / "images" / f"{name}.jpg", quality=88)
        x0, y0, x1, y1 = _place(HEAD, left, top, scale, mirrored, cat.width)
        xml = VOC.format(name=name, w=SIZE[0], h=SIZE[1], x0=x0 + 1, y0=y0 + 1, x1=x1, y1=y1)
        (root / "annotations" / "xmls" / f"{name}.xml").write_text(xml)
        trimap = np.full((SIZE[1], SIZE[0]), 2, dtype=np.uint8)
        trimap[pet[1] - 2 : pet[3] + 2, max(pet[0] - 2, 0) : pet[2] + 2] = 3
        trimap[pet[1] : pet[3], pet[0] : pet[2]] = 1
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")


if __name__ == "__main__":
    write()
