"""Every dataset family reads a fake release in its official layout and pairs files right.

The fake releases come from ``tests/data/cd_layouts/make_data.py``: pixel values encode
the pair index, so a wrong pairing (date 2 or label of another sample) is detected.
"""
import importlib.util
import os.path as osp
from pathlib import Path

import numpy as np
import pytest

from mmrs.datasets import (CDDDataset, CLCDDataset, DSIFNDataset, LandsatSCDDataset,
                           LEVIRCDDataset, LEVIRCDPlusDataset, S2LookingDataset, SECONDDataset, SYSUCDDataset,
                           WHUCDDataset)
from mmrs.registry import DATASETS

MAKE_DATA = Path(__file__).resolve().parents[1] / 'data' / 'cd_layouts' / 'make_data.py'


def load_make_data():
    spec = importlib.util.spec_from_file_location('cd_layouts_make_data', MAKE_DATA)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


md = load_make_data()
# mmengine's serialisation runs gc.collect() per dataset (~0.5 s with torch loaded): skip it.
FAST = dict(serialize_data=False)

BINARY = [
    ('levir_cd', LEVIRCDDataset),
    ('levir_cd_plus', LEVIRCDPlusDataset),
    ('whu_cd', WHUCDDataset),
    ('clcd', CLCDDataset),
    ('sysu_cd', SYSUCDDataset),
    ('s2looking', S2LookingDataset),
    ('dsifn', DSIFNDataset),
    ('cdd', CDDDataset),
]
SEMANTIC = [('second', SECONDDataset), ('landsat_scd', LandsatSCDDataset)]


@pytest.fixture(scope='module')
def layouts(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp('cd_layouts')
    return {name: md.make_layout(name, out) for name in md.LAYOUTS}


def pipeline(semantic: bool = False) -> list[dict]:
    return [
        dict(type='LoadBitemporalImages'),
        dict(type='LoadChangeAnnotations', semantic=semantic),
        dict(type='PackChangeInputs'),
    ]


def stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def check_sample(sample: dict, num_classes: int | None = None) -> int:
    """Assert the sample's date 2 and labels belong to its date 1; return the pair index."""
    inputs = sample['inputs'].numpy().astype(int)  # (2, C, H, W)
    meta = sample['data_samples'].metainfo
    i = round((inputs[0, 0].mean() - md.DATE1_BASE) / md.STEP)
    for date, base in ((0, md.DATE1_BASE), (1, md.DATE2_BASE)):
        expected = np.array([base + md.STEP * i + c for c in range(3)])[:, None, None]
        assert np.abs(inputs[date] - expected).max() <= 3, meta['img_path']
    changed = np.zeros((md.SIZE, md.SIZE), bool)
    changed[:(i + 1) * md.ROWS] = True
    gt = sample['data_samples'].gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(gt, changed.astype(int), err_msg=str(meta['img_path']))
    names = {stem(p) for p in meta['img_path']}
    for key in ('seg_map_path', 'seg_map_path_from', 'seg_map_path_to'):
        if meta.get(key):
            names.add(stem(meta[key]))
    assert len(names) == 1, meta
    if num_classes is not None:
        frm = sample['data_samples'].gt_sem_seg_from.data[0].numpy()
        to = sample['data_samples'].gt_sem_seg_to.data[0].numpy()
        np.testing.assert_array_equal(frm, np.where(changed, md.from_class(i, num_classes), 0))
        np.testing.assert_array_equal(to, np.where(changed, md.to_class(i, num_classes), 0))
    return i


class TestBinaryLayouts:

    @pytest.mark.parametrize('name,cls', BINARY, ids=[n for n, _ in BINARY])
    def test_every_split_pairs_correctly(self, layouts, name, cls):
        info = layouts[name]
        for split, count in info['counts'].items():
            ds = cls(data_root=info['data_root'], split=split, pipeline=pipeline(), **FAST)
            assert len(ds) == count, (name, split)
            indices = sorted(check_sample(ds[k]) for k in range(len(ds)))
            assert indices == list(range(count)), (name, split)

    @pytest.mark.parametrize('name,cls', BINARY, ids=[n for n, _ in BINARY])
    def test_built_from_mmrs_registry(self, layouts, name, cls):
        assert DATASETS.get(cls.__name__) is cls
        ds = DATASETS.build(
            dict(type=cls.__name__, data_root=layouts[name]['data_root'], split='train', **FAST))
        assert len(ds) == layouts[name]['counts']['train']

    def test_dsifn_reads_png_and_tif_masks(self, layouts):
        root = layouts['dsifn']['data_root']
        train = DSIFNDataset(root, split='train', **FAST)
        test = DSIFNDataset(root, split='test', **FAST)
        assert all(d['seg_map_path'].endswith('.png') for d in train)
        assert all(d['seg_map_path'].endswith('.tif') for d in test)

    def test_whu_split_none_lists_all_pairs(self, layouts):
        info = layouts['whu_cd']
        ds = WHUCDDataset(info['data_root'], split=None, **FAST)
        assert len(ds) == sum(info['counts'].values())

    def test_data_prefix_overrides_split_defaults(self, layouts):
        root = layouts['levir_cd']['data_root']
        prefix = dict(img_path_from='val/A', img_path_to='val/B', seg_map_path='val/label')
        ds = LEVIRCDDataset(root, split='train', data_prefix=prefix, **FAST)
        assert len(ds) == layouts['levir_cd']['counts']['val']
        assert all('/val/' in d['img_path'][0] for d in ds)

    def test_levir_cd_plus_has_no_val_split(self, layouts):
        root = layouts['levir_cd_plus']['data_root']
        with pytest.raises(ValueError, match="LEVIR-CD\\+ has no 'val' split"):
            LEVIRCDPlusDataset(root, split='val', **FAST)

    def test_cdd_labels_are_thresholded(self, layouts):
        ds = CDDDataset(layouts['cdd']['data_root'], split='test', **FAST)
        assert ds[0]['label_encoding'] == 'threshold'
        assert ds[0]['label_threshold'] == 128

    @pytest.mark.parametrize('cls,encoding', [
        (LEVIRCDDataset, '0/255'), (LEVIRCDPlusDataset, '0/255'), (WHUCDDataset, '0/255'), (CLCDDataset, '0/255'),
        (SYSUCDDataset, '0/255'), (S2LookingDataset, '0/255'), (DSIFNDataset, '0/255'),
        (CDDDataset, 'threshold'), (SECONDDataset, '0/255'), (LandsatSCDDataset, '0/255')])
    def test_official_label_encoding(self, cls, encoding):
        assert cls.LABEL_ENCODING == encoding  # documented in mmrs/datasets/README.md


class TestSemanticLayouts:

    @pytest.mark.parametrize('name,cls', SEMANTIC, ids=[n for n, _ in SEMANTIC])
    def test_every_split_pairs_correctly(self, layouts, name, cls):
        info = layouts[name]
        for split, count in info['counts'].items():
            ds = cls(data_root=info['data_root'], split=split, pipeline=pipeline(True), **FAST)
            assert len(ds) == count, (name, split)
            assert len(ds.metainfo['semantic_classes']) == info['num_classes']
            indices = sorted(
                check_sample(ds[k], info['num_classes']) for k in range(len(ds)))
            assert indices == list(range(count)), (name, split)

    def test_second_has_no_binary_folder(self, layouts):
        ds = SECONDDataset(layouts['second']['data_root'], split='train', **FAST)
        info = ds[0]
        assert info['seg_map_path'] is None
        assert info['seg_map_path_from'].endswith(osp.join('label1', '00000.png'))
        assert info['semantic_classes'][6] == 'playground'
        assert info['semantic_palette'][2] == [128, 128, 128]
