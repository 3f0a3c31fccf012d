"""BaseChangeDataset / BaseSCDDataset: pairing, ann files, contract keys and bad inputs."""
import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest
from mmseg.registry import DATASETS as MMSEG_DATASETS

from mmrs.datasets import BaseChangeDataset, BaseSCDDataset, split_prefix
from mmrs.registry import DATASETS

MAKE_DATA = Path(__file__).resolve().parents[1] / 'data' / 'cd_layouts' / 'make_data.py'
_spec = importlib.util.spec_from_file_location('cd_layouts_make_data', MAKE_DATA)
md = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(md)

FAST = dict(serialize_data=False)  # skip mmengine's per-dataset gc.collect()
NAMES = ['a_0', 'a_1', 'a_2']


@pytest.fixture
def tree(tmp_path) -> Path:
    """Flat ``A/ B/ label/`` tree with three pairs."""
    md.write_binary_pairs(tmp_path, NAMES, ('A', 'B', 'label'))
    return tmp_path


def pipeline(semantic: bool = False) -> list[dict]:
    return [dict(type='LoadBitemporalImages'),
            dict(type='LoadChangeAnnotations', semantic=semantic),
            dict(type='PackChangeInputs')]


class TestPairing:

    def test_lists_date1_folder_and_pairs_by_name(self, tree):
        ds = BaseChangeDataset(str(tree), **FAST)
        assert len(ds) == 3
        for k, name in enumerate(NAMES):
            info = ds[k]
            assert info['img_path'] == [str(tree / 'A' / f'{name}.png'),
                                        str(tree / 'B' / f'{name}.png')]
            assert info['seg_map_path'] == str(tree / 'label' / f'{name}.png')

    def test_data_list_follows_the_contract(self, tree):
        info = BaseChangeDataset(str(tree), label_threshold=100, **FAST).get_data_info(1)
        assert info['label_map'] is None and info['reduce_zero_label'] is False
        assert info['seg_fields'] == [] and info['sample_idx'] == 1
        assert info['label_threshold'] == 100 and info['label_encoding'] == '0/255'
        assert info['nodata'] is None and info['ignore_nodata'] is None
        assert BaseChangeDataset.METAINFO == dict(
            classes=('unchanged', 'changed'), palette=[[0, 0, 0], [255, 255, 255]])

    def test_ann_file_names_stems_and_blank_lines(self, tree):
        (tree / 'list.txt').write_text('a_2.png\n\n  a_0  \n\n')
        ds = BaseChangeDataset(str(tree), ann_file='list.txt', **FAST)
        assert [os.path.basename(d['img_path'][0]) for d in ds] == ['a_2.png', 'a_0.png']

    def test_ann_file_unknown_name(self, tree):
        (tree / 'list.txt').write_text('a_0\nnope\n')
        with pytest.raises(FileNotFoundError, match='nope'):
            BaseChangeDataset(str(tree), ann_file='list.txt', **FAST)

    def test_empty_ann_file(self, tree):
        (tree / 'list.txt').write_text('\n\n')
        with pytest.raises(ValueError, match='list.txt'):
            BaseChangeDataset(str(tree), ann_file='list.txt', **FAST)

    def test_suffix_tuple_and_other_label_suffix(self, tmp_path):
        md.write_binary_pairs(tmp_path, ['x'], ('A', 'B', 'label'), '.jpg', '.tif')
        md.write_binary_pairs(tmp_path, ['y'], ('A', 'B', 'label'), '.png', '.png')
        ds = BaseChangeDataset(str(tmp_path), img_suffix=('.jpg', '.png'),
                               seg_map_suffix=('.png', '.tif'), **FAST)
        assert [os.path.basename(d['seg_map_path']) for d in ds] == ['x.tif', 'y.png']

    def test_inference_only_without_label_prefix(self, tree, tmp_path):
        ds = BaseChangeDataset(str(tree), data_prefix=dict(img_path_from='A', img_path_to='B'),
                               pipeline=pipeline(), **FAST)
        assert ds.get_data_info(0)['seg_map_path'] is None
        sample = ds[0]
        assert tuple(sample['inputs'].shape) == (2, 3, md.SIZE, md.SIZE)
        assert 'gt_sem_seg' not in sample['data_samples']

    def test_registered_in_mmrs_not_mmseg(self):
        assert DATASETS.get('BaseChangeDataset') is BaseChangeDataset
        assert DATASETS.get('BaseSCDDataset') is BaseSCDDataset
        assert 'BaseChangeDataset' not in MMSEG_DATASETS.module_dict

    def test_split_prefix(self):
        assert split_prefix('val', dict(a='A')) == dict(a='val/A')
        assert split_prefix(None, dict(a='A')) == dict(a='A')


class TestDatasetLabelOptions:
    """Label encoding and nodata are dataset settings that every sample carries."""

    def test_label_encoding_reaches_the_loader(self, tree):
        for name in NAMES:  # rewrite the labels as 0/1 (a converted release)
            label = (md.change_mask(NAMES.index(name)) > 0).astype(np.uint8)
            md._write(tree / 'label' / f'{name}.png', label)
        with pytest.raises(ValueError, match="label_encoding='0/255'"):
            BaseChangeDataset(str(tree), pipeline=pipeline(), **FAST)[0]
        ds = BaseChangeDataset(str(tree), label_encoding='0/1', pipeline=pipeline(), **FAST)
        gt = ds[2]['data_samples'].gt_sem_seg.data[0].numpy()
        assert gt[:3 * md.ROWS].all() and not gt[3 * md.ROWS:].any()

    def test_unknown_encoding_is_refused_at_construction(self, tree):
        with pytest.raises(ValueError, match='0/255'):
            BaseChangeDataset(str(tree), label_encoding='binary', **FAST)

    def test_nodata_options_reach_the_samples(self, tree):
        info = BaseChangeDataset(str(tree), nodata=0, ignore_nodata=False,
                                 **FAST).get_data_info(0)
        assert info['nodata'] == 0.0 and info['ignore_nodata'] is False


class TestBadInputs:

    def test_missing_date2_partner_names_both(self, tree):
        os.remove(tree / 'B' / 'a_1.png')
        with pytest.raises(FileNotFoundError) as err:
            BaseChangeDataset(str(tree), **FAST)
        assert str(tree / 'B' / 'a_1.png') in str(err.value)
        assert str(tree / 'A' / 'a_1.png') in str(err.value)

    def test_missing_label_names_both(self, tree):
        os.remove(tree / 'label' / 'a_2.png')
        with pytest.raises(FileNotFoundError) as err:
            BaseChangeDataset(str(tree), **FAST)
        assert str(tree / 'label' / 'a_2.png') in str(err.value)
        assert str(tree / 'A' / 'a_2.png') in str(err.value)

    def test_missing_partner_skipped_on_request(self, tree):
        os.remove(tree / 'label' / 'a_2.png')
        ds = BaseChangeDataset(str(tree), on_missing='skip', **FAST)
        assert [os.path.basename(d['img_path'][0]) for d in ds] == ['a_0.png', 'a_1.png']

    def test_empty_folder_is_named(self, tmp_path):
        for folder in ('A', 'B', 'label'):
            (tmp_path / folder).mkdir()
        (tmp_path / 'A' / 'notes.txt').write_text('not an image')
        with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'A'))):
            BaseChangeDataset(str(tmp_path), **FAST)

    def test_missing_folder_is_named(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'A'))):
            BaseChangeDataset(str(tmp_path), **FAST)

    def test_prefix_needs_both_dates(self, tree):
        with pytest.raises(KeyError, match='img_path_to'):
            BaseChangeDataset(str(tree), data_prefix=dict(img_path_from='A'), **FAST)


class TestSCD:

    @pytest.fixture
    def scd_tree(self, tmp_path) -> Path:
        names = ['s_0', 's_1']
        for i, name in enumerate(names):
            md._write(tmp_path / 'A' / f'{name}.png', md.image(i, 1))
            md._write(tmp_path / 'B' / f'{name}.png', md.image(i, 2))
        md.write_semantic_labels(tmp_path, names, ('label1', 'label2'), 4)
        return tmp_path

    def make(self, root, **kwargs):
        meta = dict(semantic_classes=('unchanged', 'a', 'b', 'c'),
                    semantic_palette=[[255, 255, 255], [1, 1, 1], [2, 2, 2], [3, 3, 3]])
        return BaseSCDDataset(data_root=str(root), metainfo=meta, pipeline=pipeline(True),
                              **kwargs, **FAST)

    def test_binary_map_derived_without_binary_folder(self, scd_tree):
        ds = self.make(scd_tree)
        info = ds.get_data_info(1)
        assert info['seg_map_path'] is None
        assert info['seg_map_path_from'] == str(scd_tree / 'label1' / 's_1.png')
        assert info['semantic_classes'] == ('unchanged', 'a', 'b', 'c')
        sample = ds[1]['data_samples']
        rows = (md.change_mask(1) > 0).astype(int)
        np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), rows)
        np.testing.assert_array_equal(sample.gt_sem_seg_from.data[0].numpy(),
                                      rows * md.from_class(1, 4))
        np.testing.assert_array_equal(sample.gt_sem_seg_to.data[0].numpy(),
                                      rows * md.to_class(1, 4))

    def test_binary_folder_used_when_given(self, scd_tree):
        for i, name in enumerate(['s_0', 's_1']):
            md._write(scd_tree / 'bin' / f'{name}.png', np.zeros((md.SIZE, md.SIZE), np.uint8))
        prefix = dict(img_path_from='A', img_path_to='B', seg_map_path='bin',
                      seg_map_path_from='label1', seg_map_path_to='label2')
        sample = self.make(scd_tree, data_prefix=prefix)[1]['data_samples']
        assert int(sample.gt_sem_seg.data.sum()) == 0  # read from bin/, not derived

    def test_missing_semantic_partner(self, scd_tree):
        os.remove(scd_tree / 'label2' / 's_0.png')
        with pytest.raises(FileNotFoundError, match='label2'):
            self.make(scd_tree)
