"""Annotated datasets: image folders or factories, annotation readers, region-aware transforms.

Usage::

    from pytest_camcheck.data import build_dataset

    ds = build_dataset("data/pets", annotations="data/pets_annotations/xmls")
    sample = ds[0]  # Sample: transformed image tensor + regions in its pixels

The annotation readers (the package :mod:`.readers`: a registry of formats, with :mod:`.voc`,
:mod:`.coco`, :mod:`.csvfile` and :mod:`.masks` built in) import numpy and PIL only; the dataset
and the transforms import torch, so names are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "build_dataset": ".dataset",
    "AnnotatedDataset": ".dataset",
    "FolderDataset": ".dataset",
    "FactoryDataset": ".dataset",
    "check_regions": ".dataset",
    "load_image": ".images",
    "list_images": ".images",
    "ImageIndex": ".images",
    "IMAGE_EXTENSIONS": ".images",
    "ImageAnnotation": ".annotations",
    "MaskFile": ".annotations",
    "read_annotations": ".readers",
    "detect_format": ".readers",
    "register_reader": ".readers",
    "READERS": ".readers",
    "Reader": ".readers",
    "read_voc": ".readers",
    "read_coco": ".readers",
    "read_csv": ".readers",
    "read_masks": ".readers",
    "DEFAULT_IMAGE_SIZE": ".transforms",
    "IMAGENET_MEAN": ".transforms",
    "IMAGENET_STD": ".transforms",
    "PairedTransform": ".transforms",
    "default_transform": ".transforms",
    "resolve_transform": ".transforms",
    "to_display": ".transforms",
}

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "READERS",
    "AnnotatedDataset",
    "FactoryDataset",
    "FolderDataset",
    "ImageAnnotation",
    "ImageIndex",
    "MaskFile",
    "PairedTransform",
    "Reader",
    "build_dataset",
    "check_regions",
    "default_transform",
    "detect_format",
    "list_images",
    "load_image",
    "read_annotations",
    "read_coco",
    "read_csv",
    "read_masks",
    "read_voc",
    "register_reader",
    "resolve_transform",
    "to_display",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .annotations import ImageAnnotation, MaskFile
    from .dataset import (
        AnnotatedDataset,
        FactoryDataset,
        FolderDataset,
        build_dataset,
        check_regions,
    )
    from .images import IMAGE_EXTENSIONS, ImageIndex, list_images, load_image
    from .readers import (
        READERS,
        Reader,
        detect_format,
        read_annotations,
        read_coco,
        read_csv,
        read_masks,
        read_voc,
        register_reader,
    )
    from .transforms import (
        DEFAULT_IMAGE_SIZE,
        IMAGENET_MEAN,
        IMAGENET_STD,
        PairedTransform,
        default_transform,
        resolve_transform,
        to_display,
    )


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
