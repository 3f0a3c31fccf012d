"""``import mmrs`` checks every stack package it relies on and says how to fix a mismatch."""
import importlib
import importlib.machinery
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from mmrs.utils import version_check
from mmrs.utils.version_check import REQUIRED, parse_version

REPO_ROOT = Path(__file__).resolve().parents[2]
GOOD = {req.dist: req.low for req in REQUIRED}


@pytest.fixture
def fake_versions(monkeypatch):
    """Replace installed versions: ``fake_versions(**{dist: version or None})``."""

    def install(overrides: dict[str, str | None]) -> None:
        table = {**GOOD, **overrides}

        def version(dist: str) -> str:
            if table.get(dist) is None:
                raise metadata.PackageNotFoundError(dist)
            return table[dist]

        monkeypatch.setattr(version_check.metadata, 'version', version)

    return install


class TestCheckVersions:

    def test_current_environment_passes(self) -> None:
        assert version_check.find_problems() == []
        version_check.check_versions()

    def test_every_stack_package_is_checked(self) -> None:
        modules = {req.module for req in REQUIRED}
        assert {'torch', 'mmcv', 'mmengine', 'mmseg', 'mmdet', 'mmpretrain', 'mmrotate',
                'transformers'} <= modules

    def test_lowest_tested_versions_pass(self, fake_versions) -> None:
        fake_versions({})
        assert version_check.find_problems() == []

    @pytest.mark.parametrize('dist,bad', [
        ('torch', '2.13.1'), ('torch', '2.15.0'), ('onedl-mmcv', '2.1.0'),
        ('onedl-mmengine', '0.11.0'), ('onedl-mmsegmentation', '1.3.0'),
        ('onedl-mmdetection', '3.3.0'), ('onedl-mmpretrain', '1.4.0'),
        ('onedl-mmrotate', '1.0.0'), ('transformers', '5.0.1'), ('transformers', '4.40.0')])
    def test_version_outside_the_range_is_named_with_a_fix(self, fake_versions, dist,
                                                           bad) -> None:
        fake_versions({dist: bad})
        req = next(r for r in REQUIRED if r.dist == dist)
        with pytest.raises(ImportError) as info:
            version_check.check_versions()
        message = str(info.value)
        assert f'{dist}=={bad} is installed' in message
        assert req.spec in message
        assert 'Fix:' in message and 'make install' in message
        others = [r.dist for r in REQUIRED if r.dist != dist]
        assert not any(f'{o}==' in message or f'{o} (' in message for o in others), message

    def test_all_problems_are_listed_at_once(self, fake_versions) -> None:
        fake_versions({'onedl-mmcv': '2.1.0', 'onedl-mmsegmentation': None,
                       'transformers': '5.0.1', 'torch': '2.14.1+cu130'})
        message = str(pytest.raises(ImportError, version_check.check_versions).value)
        assert 'onedl-mmcv==2.1.0' in message and '>=2.3.6,<2.4.0' in message
        assert 'tools/install/ensure_mmcv.py' in message
        assert 'onedl-mmsegmentation (mmseg) is not installed' in message
        assert 'pip install "onedl-mmsegmentation>=1.4.2,<1.5.0"' in message
        assert 'transformers==5.0.1' in message
        assert 'torch==' not in message  # a local build tag (+cu130) is in range
        assert 'onedl-mmengine' not in message

    def test_original_openmmlab_release_instead_of_onedl(self, fake_versions,
                                                         monkeypatch) -> None:
        """The import name exists but comes from another distribution (original mmdet)."""
        fake_versions({'onedl-mmdetection': None, 'mmdet': '3.3.0'})
        monkeypatch.setattr(version_check.metadata, 'packages_distributions',
                            lambda: {'mmdet': ['mmdet']})
        monkeypatch.setattr(version_check, '_module_found', lambda module: True)
        message = str(pytest.raises(ImportError, version_check.check_versions).value)
        assert 'mmdet comes from mmdet==3.3.0, not onedl-mmdetection' in message
        assert 'pip uninstall mmdet' in message

    def test_mmcv_without_compiled_ops(self, fake_versions, monkeypatch, tmp_path) -> None:
        """A pure-Python mmcv (``mmcv._ext`` missing) is reported, without importing mmcv."""
        fake = tmp_path / 'site'
        (fake / 'mmcv').mkdir(parents=True)
        (fake / 'mmcv' / '__init__.py').write_text('raise RuntimeError("must not import")\n')
        fake_versions({})
        monkeypatch.syspath_prepend(str(fake))
        monkeypatch.delitem(sys.modules, 'mmcv', raising=False)
        assert not version_check.mmcv_ops_found()
        message = str(pytest.raises(ImportError, version_check.check_versions).value)
        assert 'without its compiled ops (mmcv._ext)' in message
        assert 'ensure_mmcv.py' in message
        # with the extension file present the check passes (still without importing mmcv)
        (fake / 'mmcv' / f'_ext{importlib.machinery.EXTENSION_SUFFIXES[0]}').write_bytes(b'')
        importlib.invalidate_caches()
        assert version_check.mmcv_ops_found()

    def test_real_mmcv_has_its_ops(self) -> None:
        assert version_check.mmcv_ops_found()

    @pytest.mark.parametrize('text,expected', [('2.14.1+cu130', (2, 14, 1)),
                                               ('4.57', (4, 57, 0)), ('2.4.0rc1', (2, 4, 0))])
    def test_parse_version(self, text: str, expected: tuple[int, ...]) -> None:
        assert parse_version(text) == expected


def test_requirement_pins_lie_in_the_checked_ranges() -> None:
    """requirements/*.txt and the import-time check cannot drift apart."""
    by_dist = {req.dist: req for req in REQUIRED}
    pinned = set()
    for name in ('torch.txt', 'mminstall.txt'):
        for line in (REPO_ROOT / 'requirements' / name).read_text().splitlines():
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            dist, spec = re.match(r'([A-Za-z0-9_.-]+)\s*(.*)', line).groups()
            assert dist in by_dist, f'{dist} is pinned in {name} but not checked on import'
            pinned.add(dist)
            req = by_dist[dist]
            for op, version in re.findall(r'(==|>=|<)\s*([\w.]+)', spec):
                v = parse_version(version)
                if op in ('==', '>='):
                    assert parse_version(req.low) <= v < parse_version(req.high), (line, req)
    assert pinned == set(by_dist)


def test_import_mmrs_checks_before_importing_the_stack() -> None:
    """A missing mmengine gives mmrs' message with the fix, not a bare ModuleNotFoundError
    from deep inside mmrs, and torch is not imported before the check."""
    script = textwrap.dedent('''
        import importlib.abc, importlib.metadata as md, sys
        real = md.version
        def version(dist):
            if dist == 'onedl-mmengine':
                raise md.PackageNotFoundError(dist)
            return real(dist)
        md.version = version
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('mmengine', 'torch'):
                    raise ModuleNotFoundError(f'blocked {name}')
        sys.meta_path.insert(0, Block())
        try:
            import mmrs
        except ImportError as error:
            print('MESSAGE', error)
    ''')
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'MESSAGE mmrs found an incompatible environment' in result.stdout, result.stdout
    assert 'onedl-mmengine (mmengine) is not installed' in result.stdout
    assert 'blocked' not in result.stdout
