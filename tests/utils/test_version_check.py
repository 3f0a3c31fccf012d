"""import-time version checks name every package outside its tested range."""
from importlib import metadata

import pytest

from mmrs.utils import version_check


class TestCheckVersions:

    def test_current_environment_passes(self) -> None:
        version_check.check_versions()

    def test_wrong_and_missing_versions_are_named(self, monkeypatch) -> None:
        fake = {'onedl-mmcv': '2.1.0', 'onedl-mmengine': '0.10.12',
                'onedl-mmsegmentation': None, 'transformers': '5.0.1'}

        def version(dist: str) -> str:
            if fake.get(dist) is None:
                raise metadata.PackageNotFoundError(dist)
            return fake[dist]

        monkeypatch.setattr(version_check.metadata, 'version', version)
        with pytest.raises(ImportError) as info:
            version_check.check_versions()
        message = str(info.value)
        assert 'onedl-mmcv==2.1.0' in message and '>=2.3.6,<2.4.0' in message
        assert 'onedl-mmsegmentation (mmseg) is not installed' in message
        assert 'transformers==5.0.1' in message
        assert 'onedl-mmengine' not in message
        assert 'make install' in message
