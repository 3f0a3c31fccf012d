"""The mmcv wheel selection of tools/install/ensure_mmcv.py: cache key, lookup order, flavour.

Building is not exercised here (it takes 30-45 minutes); these tests check which wheel the
installer would pick, which is what keeps CI fast and a GPU machine from getting CPU ops.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ensure_mmcv(monkeypatch, tmp_path: Path):
    spec = importlib.util.spec_from_file_location(
        'ensure_mmcv', REPO_ROOT / 'tools' / 'install' / 'ensure_mmcv.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv('MMRS_WHEEL_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('MMRS_SHARED_WHEELS', str(tmp_path / 'shared'))
    return module


def fake_wheel(folder: Path, version: str = '2.3.6') -> Path:
    py = f'cp{sys.version_info.major}{sys.version_info.minor}'
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'onedl_mmcv-{version}-{py}-{py}-linux_x86_64.whl'
    path.write_bytes(b'not really a wheel')
    return path


class TestWheelSelection:

    def test_cache_key_names_every_abi_input(self, ensure_mmcv) -> None:
        key = ensure_mmcv.cache_key('2.3.6', '2.14.1+cu130', want_cuda=False)
        py = f'py{sys.version_info.major}{sys.version_info.minor}'
        assert key.startswith(f'mmcv2.3.6-torch2.14.1_cu130-{py}-cpu-')
        assert ensure_mmcv.cache_key('2.3.6', '2.13.0', want_cuda=False) != key

    def test_cuda_flavour_differs_from_cpu(self, ensure_mmcv, monkeypatch) -> None:
        import torch
        monkeypatch.setattr(torch.version, 'cuda', '13.0')
        assert ensure_mmcv.flavour(True) == 'cu130'
        assert ensure_mmcv.flavour(False) == 'cpu'
        assert ensure_mmcv.cache_key('2.3.6', '2.14.1', True) != ensure_mmcv.cache_key(
            '2.3.6', '2.14.1', False)

    def test_shared_wheel_only_when_folder_name_matches(self, ensure_mmcv,
                                                        tmp_path: Path) -> None:
        py = f'py{sys.version_info.major}{sys.version_info.minor}'
        wheel = fake_wheel(tmp_path / 'shared' / f'torch2.14.1-{py}-cpu')
        assert ensure_mmcv.shared_wheel('2.3.6', '2.14.1', want_cuda=False) == wheel
        assert ensure_mmcv.shared_wheel('2.3.6', '2.13.0', want_cuda=False) is None
        assert ensure_mmcv.shared_wheel('2.3.5', '2.14.1', want_cuda=False) is None

    def test_gpu_machine_never_takes_the_cpu_wheel(self, ensure_mmcv, monkeypatch,
                                                   tmp_path: Path) -> None:
        import torch
        monkeypatch.setattr(torch.version, 'cuda', '13.0')
        py = f'py{sys.version_info.major}{sys.version_info.minor}'
        fake_wheel(tmp_path / 'shared' / f'torch2.14.1-{py}-cpu')
        assert ensure_mmcv.shared_wheel('2.3.6', '2.14.1', want_cuda=True) is None

    def test_cached_wheel_is_preferred_and_no_build_happens(self, ensure_mmcv, monkeypatch,
                                                            tmp_path: Path) -> None:
        torch_full, _, want_cuda = ensure_mmcv.torch_info()
        key = ensure_mmcv.cache_key('2.3.6', torch_full, want_cuda)
        cached = fake_wheel(tmp_path / 'cache' / key)
        installed, checks = [], iter([False, True])
        monkeypatch.setattr(ensure_mmcv, 'installed_ok', lambda *a: next(checks))
        monkeypatch.setattr(ensure_mmcv, 'pip', lambda *args: installed.append(args))
        monkeypatch.setattr(ensure_mmcv, 'build_wheel',
                            lambda *a: pytest.fail('built although a cached wheel exists'))
        monkeypatch.setattr(sys, 'argv', ['ensure_mmcv.py'])
        ensure_mmcv.main()
        assert any(str(cached) in args for args in installed)

    def test_missing_wheel_falls_back_to_building_into_the_cache(
            self, ensure_mmcv, monkeypatch, tmp_path: Path) -> None:
        built = []
        checks = iter([False, True])
        monkeypatch.setattr(ensure_mmcv, 'installed_ok', lambda *a: next(checks))
        monkeypatch.setattr(ensure_mmcv, 'pip', lambda *args: None)

        def build(version, out, want_cuda):
            built.append(out)
            return fake_wheel(out, version)

        monkeypatch.setattr(ensure_mmcv, 'build_wheel', build)
        monkeypatch.setattr(sys, 'argv', ['ensure_mmcv.py'])
        ensure_mmcv.main()
        assert len(built) == 1 and built[0].parent == tmp_path / 'cache'
