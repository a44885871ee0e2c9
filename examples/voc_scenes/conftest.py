"""Writes the scenes and their VOC annotations into data/ on first use (scikit-image ships the
photos)."""

from pathlib import Path

from pytest_camcheck.demo.photos import write_voc_scenes


def pytest_configure(config):
    data = Path(config.rootpath) / "data"
    if not (data / "annotations").is_dir():
        write_voc_scenes(data)
