"""``--data-root``: one option moves every dataloader's datasets, wrappers included."""
import argparse
from pathlib import Path

import pytest
from mmengine.config import Config

from mmrs.utils.data_root import DataRootError, set_data_root
from mmrs.utils.launch import add_runner_arguments, load_run_config

REPO_ROOT = Path(__file__).resolve().parents[2]

WRAPPED = '''
data_root = 'data/old'
leaf = dict(type='LEVIRCDDataset', data_root=data_root, ann_file=data_root + '/train.txt',
            data_prefix=dict(img_path_from=data_root + '/A', img_path_to='B',
                             seg_map_path='data/older/label'))
train_dataloader = dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
    type='ConcatDataset', datasets=[leaf, dict(leaf, ann_file='val.txt')])))
val_dataloader = dict(dataset=dict(type='ClassBalancedDataset', oversample_thr=0.1,
                                   dataset=leaf))
test_dataloader = val_dataloader
'''


def config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / 'cfg.py'
    path.write_text(text)
    return Config.fromfile(str(path))


class TestSetDataRoot:

    def test_every_loader_and_wrapper(self, tmp_path: Path) -> None:
        cfg = config(tmp_path, WRAPPED)
        changed = set_data_root(cfg, '/new/root')
        assert changed == ['train_dataloader.dataset.dataset.datasets.0',
                           'train_dataloader.dataset.dataset.datasets.1',
                           'val_dataloader.dataset.dataset', 'test_dataloader.dataset.dataset']
        leaves = [*cfg.train_dataloader.dataset.dataset.datasets,
                  cfg.val_dataloader.dataset.dataset, cfg.test_dataloader.dataset.dataset]
        for leaf in leaves:
            assert leaf.data_root == '/new/root'
        # paths that were built from the old root at parse time move with it ...
        assert leaves[0].ann_file == '/new/root/train.txt'
        assert leaves[0].data_prefix.img_path_from == '/new/root/A'
        # ... relative ones stay relative to data_root, and other folders are untouched
        assert leaves[1].ann_file == 'val.txt'
        assert leaves[0].data_prefix.img_path_to == 'B'
        assert leaves[0].data_prefix.seg_map_path == 'data/older/label'
        assert cfg.data_root == '/new/root'
        # wrappers do not take a data_root
        assert 'data_root' not in cfg.train_dataloader.dataset
        assert 'data_root' not in cfg.train_dataloader.dataset.dataset

    def test_different_roots_are_refused(self, tmp_path: Path) -> None:
        cfg = config(tmp_path, WRAPPED + "val_dataloader = dict(dataset=dict("
                     "type='LEVIRCDDataset', data_root='data/other'))\n")
        with pytest.raises(DataRootError, match="'data/old'.*'data/other'"):
            set_data_root(cfg, '/new/root')

    def test_nothing_to_override(self, tmp_path: Path) -> None:
        cfg = config(tmp_path, "model = dict(type='X')\n")
        with pytest.raises(DataRootError, match='no dataset'):
            set_data_root(cfg, '/new/root')


@pytest.mark.parametrize('name', ['mmrs::demo/fc_siam_diff_synthetic_demo.py',
                                  'configs/demo/fc_siam_diff_synthetic_demo.py'])
def test_command_line_option_beats_cfg_options(name: str, tmp_path: Path,
                                               monkeypatch) -> None:
    """The README's ``--cfg-options data_root=...`` does not move the datasets (bound when
    the config is parsed); ``--data-root`` does, for shipped config names too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('LOCAL_RANK', raising=False)  # load_run_config exports it
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_runner_arguments(parser)
    args = parser.parse_args([name, '--cfg-options', 'data_root=/ignored'])
    cfg = load_run_config(args)
    assert cfg.train_dataloader.dataset.data_root == 'data/synthetic_demo'  # mmengine's rule
    args = parser.parse_args([name, '--data-root', str(tmp_path / 'mine')])
    cfg = load_run_config(args)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == str(tmp_path / 'mine')
