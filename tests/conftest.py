"""Shared pytest fixtures.

Real sample data lives outside the repository (``../shared/data`` beside the checkout, or
wherever ``MMRS_SHARED_DATA`` points). Tests that need it skip with a clear message when it is
absent, so users running the suite elsewhere still get a green run of everything else.
"""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """Folder holding the real sample data sets (see ``../shared/data/README.md``)."""
    return Path(os.environ.get('MMRS_SHARED_DATA', REPO_ROOT.parent / 'shared' / 'data'))


@pytest.fixture(scope='session')
def levir_samples_root() -> Path:
    """``levir_cd_samples``: 11 real LEVIR-CD pairs + one invalid pair (test_113_0256)."""
    root = shared_data_root() / 'levir_cd_samples'
    if not (root / 'A').is_dir():
        pytest.skip(f'real LEVIR-CD samples not found at {root} (set MMRS_SHARED_DATA)')
    return root


@pytest.fixture(scope='session')
def geotiff_samples_root() -> Path:
    """rasterio's real test rasters (``RGB.byte.tif`` etc.)."""
    root = shared_data_root() / 'geotiff_rasterio'
    if not (root / 'RGB.byte.tif').is_file():
        pytest.skip(f'rasterio sample rasters not found at {root} (set MMRS_SHARED_DATA)')
    return root
