"""A built mmrs wheel carries every config, tool and the model index under mmrs/.mim (as
OpenMMLab's .mim), and every mmrs module, compared file by file with the repository tree."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: top-level entries of the checkout that an installed mmrs must carry under mmrs/.mim
MIM_ENTRIES = ('configs', 'tools', 'model-index.yml')

pytestmark = pytest.mark.slow


def repository_files() -> list[str]:
    """The checkout's files as git sees them: tracked plus new files that are not ignored
    (so a file added in this change counts, and build outputs, data and caches do not)."""
    if shutil.which('git') is None or not (REPO_ROOT / '.git').exists():
        pytest.skip('needs a git checkout to know the repository tree')
    listed = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'],
        cwd=REPO_ROOT, check=True, capture_output=True).stdout.decode().split('\0')
    # dot folders (.ci, .dist_test that mmengine's DDP evaluation leaves in the working
    # directory) are not part of the package and may change while this test runs
    return sorted(p for p in listed if p and not p.startswith('.') and (REPO_ROOT / p).is_file())


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> tuple[set[str], list[str]]:
    """Build a wheel from a copy of the repository tree; return its names and the tree."""
    tmp = tmp_path_factory.mktemp('wheel')
    source, files = tmp / 'src', repository_files()
    copied = []
    for name in files:
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(REPO_ROOT / name, target)
        except FileNotFoundError:  # removed since it was listed: not part of the tree
            continue
        copied.append(name)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(tmp / 'dist'), str(source)],
                   check=True, capture_output=True)
    built = next((tmp / 'dist').glob('mmrs-*.whl'))
    return set(zipfile.ZipFile(built).namelist()), copied


def test_every_config_tool_and_model_index_ships(wheel) -> None:
    names, files = wheel
    expected = [f for f in files if f.split('/', 1)[0] in MIM_ENTRIES]
    # the tree really holds what users run (guards against an empty comparison)
    for must in ('model-index.yml', 'tools/train.py', 'tools/dist_train.sh',
                 'tools/data/generate_synthetic.py', 'tools/analysis/browse_dataset.py',
                 'configs/btc/levir_cd_samples_pairs.txt', 'configs/_base_/default_runtime.py'):
        assert must in expected, must
    missing = [f for f in expected if f'mmrs/.mim/{f}' not in names]
    assert not missing, f'not in the wheel: {missing}'


def test_every_module_ships_and_nothing_else(wheel) -> None:
    names, files = wheel
    modules = [f for f in files if f.startswith('mmrs/') and f.endswith('.py')]
    assert 'mmrs/registry.py' in modules
    missing = [f for f in modules if f not in names]
    assert not missing, f'not in the wheel: {missing}'
    assert not [n for n in names if n.startswith(('tests/', 'projects/'))]
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
