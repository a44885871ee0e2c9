"""Writes the synthetic circles and squares into data/ on first use; every square carries a
small watermark in its bottom-right corner."""

from pathlib import Path

from pytest_camcheck.demo.synthetic import write_dataset


def pytest_configure(config):
    data = Path(config.rootpath) / "data"
    if not (data / "annotations.csv").is_file():
        write_dataset(data, n_per_class=20, seed=2026, watermark=True)
