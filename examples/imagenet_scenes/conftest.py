"""Writes the photos and scenes into data/ on first use (scikit-image ships the photos)."""

from pathlib import Path

from pytest_camcheck.demo.photos import write_dataset


def pytest_configure(config):
    data = Path(config.rootpath) / "data"
    if not (data / "annotations.csv").is_file():
        write_dataset(data)
