"""A built mmrs wheel carries its configs and tools under mmrs/.mim (as OpenMMLab's .mim)."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_wheel_ships_configs_and_tools(tmp_path: Path) -> None:
    source = tmp_path / 'src'
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'work_dirs', 'data', '__pycache__', '*.egg-info', '.mim', 'build'))
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(tmp_path / 'dist'), str(source)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / 'dist').glob('mmrs-*.whl'))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ('mmrs/.mim/model-index.yml',
                     'mmrs/.mim/configs/btc/btc_r18_levircd_samples.py',
                     'mmrs/.mim/configs/btc/levir_cd_samples_pairs.txt',
                     'mmrs/.mim/configs/_base_/default_runtime.py',
                     'mmrs/.mim/tools/train.py', 'mmrs/.mim/tools/dist_train.sh',
                     'mmrs/registry.py'):
        assert expected in names, expected
    assert not any(name.startswith('tests/') for name in names)
