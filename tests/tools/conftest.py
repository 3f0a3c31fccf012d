"""Fixtures for end-to-end tests of the command-line tools."""
from pathlib import Path

import pytest

from ._runner import REPO_ROOT, TINY_CONFIG


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A few-iteration FC-Siam-diff config on a tiny synthetic dataset in tmp_path."""
    path = tmp_path / 'tiny_fc_siam_diff.py'
    path.write_text(TINY_CONFIG.format(root=REPO_ROOT, data_root=tmp_path / 'data'))
    return path
