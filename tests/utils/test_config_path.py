"""Configs are found from a checkout, by mmrs:: name, and through mmengine's inheritance."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmrs.utils.config_path import resolve_config

REPO_ROOT = Path(__file__).resolve().parents[2]


class TestResolveConfig:

    def test_real_path_is_kept(self) -> None:
        path = str(REPO_ROOT / 'configs/btc/btc_r18_levircd_samples.py')
        assert resolve_config(path) == path

    @pytest.mark.parametrize('name', ['mmrs::btc/btc_r18_levircd_samples.py',
                                      'btc/btc_r18_levircd_samples.py',
                                      'configs/btc/btc_r18_levircd_samples.py'])
    def test_shipped_names_resolve(self, name: str, monkeypatch, tmp_path: Path) -> None:
        monkeypatch.chdir(tmp_path)  # not the checkout: the package must find its configs
        resolved = Path(resolve_config(name))
        assert resolved.is_file()
        assert resolved.resolve() == (REPO_ROOT / 'configs/btc/btc_r18_levircd_samples.py')

    def test_unknown_name_lists_where_it_looked(self) -> None:
        with pytest.raises(FileNotFoundError, match='nope/missing.py.*looked at'):
            resolve_config('nope/missing.py')

    def test_mmrs_prefix_inheritance(self, tmp_path: Path) -> None:
        import mmrs  # noqa: F401  (registers the mmrs:: package for mmengine)
        child = tmp_path / 'child.py'
        child.write_text("_base_ = ['mmrs::_base_/models/fc_siam_diff.py']\n"
                         "model = dict(backbone=dict(in_channels=4))\n")
        cfg = Config.fromfile(str(child))
        assert cfg.model.type == 'SiameseChangeDetector'
        assert cfg.model.backbone.type == 'FCSiamEncoder'
        assert cfg.model.backbone.in_channels == 4
