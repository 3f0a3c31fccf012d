"""DOTARawDataset and the raw labelTxt reader, on the real DOTA samples and synthetic files.

Oracles: the first lines of the real label files (read by eye), rotated boxes of axis-aligned
rectangles (centre, long side as width, angle 0 / -pi/2), and mmrotate's own pipeline
transforms consuming the samples.
"""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmrs.datasets.dota import (DOTA1_0_CLASSES, DOTA1_5_CLASSES, DOTA2_0_CLASSES,
                                DOTARawDataset, dota_classes, parse_patch_name,
                                quads_to_le90, read_dota_label)
from mmrs.registry import DATASETS

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get('MMRS_SHARED_DATA', REPO_ROOT.parent / 'shared' / 'data'))


@pytest.fixture(scope='module')
def dota_root() -> Path:
    root = SHARED / 'dota_samples' / 'example'
    if not (root / 'images' / 'P1888.png').is_file():
        pytest.skip(f'real DOTA samples not found at {root} (set MMRS_SHARED_DATA)')
    return root


@pytest.fixture(scope='module')
def mmrotate_root() -> Path:
    root = SHARED / 'dota_samples_mmrotate' / 'main' / 'tests' / 'data'
    if not (root / 'labelTxt').is_dir():
        pytest.skip(f'mmrotate DOTA samples not found at {root} (set MMRS_SHARED_DATA)')
    return root


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class TestClassLists:

    def test_versions(self) -> None:
        assert len(DOTA1_0_CLASSES) == 15 and len(DOTA1_5_CLASSES) == 16
        assert len(DOTA2_0_CLASSES) == 18
        assert DOTA1_5_CLASSES[15] == 'container-crane'
        assert DOTA2_0_CLASSES[16:] == ('airport', 'helipad')
        assert dota_classes('v1.5') == DOTA1_5_CLASSES
        with pytest.raises(ValueError, match="unknown DOTA version 'v3'"):
            dota_classes('v3')

    def test_patch_names(self) -> None:
        assert parse_patch_name('P0706__1__0___0') == dict(ori_id='P0706', rate=1.0, x=0, y=0)
        assert parse_patch_name('P0706__0.5__824___12.png') == dict(ori_id='P0706', rate=0.5,
                                                                   x=824, y=12)
        assert parse_patch_name('P0706') is None


class TestReader:

    def test_real_file(self, dota_root: Path) -> None:
        lab = read_dota_label(str(dota_root / 'labelTxt' / 'P0706.txt'))
        assert lab['imagesource'] == 'GoogleEarth'
        assert lab['gsd'] == pytest.approx(0.255589285596)
        assert len(lab['names']) == 536  # 538 lines minus the 2 header lines
        np.testing.assert_array_equal(lab['polys'][0], [1054, 1028, 1063, 1011, 1111, 1040,
                                                        1112, 1062])
        assert lab['names'][:2] == ['ship', 'ship'] and list(lab['difficult'][:3]) == [1, 0, 0]
        assert lab['labels'][0] == DOTA1_0_CLASSES.index('ship')
        gf = read_dota_label(str(dota_root / 'labelTxt' / 'P1234.txt'))
        assert gf['imagesource'] == 'GF' and gf['gsd'] == 1.0

    def test_headerless_gsd_null_and_9_fields(self, tmp_path: Path) -> None:
        p = _write(tmp_path / 'a.txt', 'gsd:null\n\n1 2 3 4 5 6 7 8 plane\n')
        lab = read_dota_label(str(p))
        assert lab['gsd'] is None and lab['imagesource'] is None
        assert list(lab['difficult']) == [0]
        empty = read_dota_label(str(_write(tmp_path / 'e.txt', '')))
        assert empty['polys'].shape == (0, 8)

    @pytest.mark.parametrize('line, match', [
        ('1 2 3 4 5 6 7 8', r"line 3: expected .* got 8"),
        ('1 2 3 x 5 6 7 8 plane 0', 'line 3: coordinates must be numbers'),
        ('1 2 3 4 5 6 7 8 plane hard', "line 3: difficult must be a non-negative integer"),
        ('1 2 3 nan 5 6 7 8 plane 0', 'line 3: non-finite'),
    ])
    def test_malformed_lines(self, tmp_path: Path, line: str, match: str) -> None:
        p = _write(tmp_path / 'bad.txt',
                   f'imagesource:GoogleEarth\n0 0 1 0 1 1 0 1 ship 0\n{line}\n')
        with pytest.raises(ValueError, match=match) as err:
            read_dota_label(str(p))
        assert 'bad.txt' in str(err.value)

    def test_unknown_class_names_version(self, tmp_path: Path) -> None:
        p = _write(tmp_path / 'c.txt', '0 0 9 0 9 9 0 9 container-crane 0\n')
        with pytest.raises(ValueError, match="unknown class 'container-crane' for DOTA v1.0"):
            read_dota_label(str(p))
        assert read_dota_label(str(p), version='v1.5')['labels'].tolist() == [15]
        with pytest.raises(FileNotFoundError, match='nope.txt'):
            read_dota_label(str(tmp_path / 'nope.txt'))

    def test_le90(self) -> None:
        # 40 wide x 10 high, and 10 wide x 40 high (long side vertical: angle -pi/2 in le90)
        quads = np.array([[0, 0, 40, 0, 40, 10, 0, 10], [0, 0, 10, 0, 10, 40, 0, 40]], float)
        r = quads_to_le90(quads)
        np.testing.assert_allclose(r[0], [20, 5, 40, 10, 0], atol=1e-5)
        np.testing.assert_allclose(r[1][:4], [5, 20, 40, 10], atol=1e-5)
        assert abs(abs(r[1][4]) - np.pi / 2) < 1e-5 and -np.pi / 2 <= r[1][4] < np.pi / 2
        assert quads_to_le90(np.zeros((0, 8))).shape == (0, 5)


class TestDataset:

    def test_real_samples(self, dota_root: Path, tmp_path: Path) -> None:
        ids = _write(tmp_path / 'ids.txt', 'P0706\nP1888.png\n')
        ds = DATASETS.build(dict(type='DOTARawDataset', data_root=str(dota_root),
                                 ann_file=str(ids)))
        assert len(ds) == 2 and ds.metainfo['classes'] == DOTA1_0_CLASSES
        info = ds.get_data_info(0)
        assert info['img_id'] == 'P0706' and info['gsd'] == pytest.approx(0.255589285596)
        assert info['patch'] is None and len(info['instances']) == 536
        first = info['instances'][0]
        assert first['bbox'] == [1054, 1028, 1063, 1011, 1111, 1040, 1112, 1062]
        assert first['bbox_label'] == 6 and first['ignore_flag'] == 1 and first['difficult'] == 1
        assert len(first['rbox']) == 5 and first['rbox'][2] >= first['rbox'][3]
        assert info['instances'][1]['ignore_flag'] == 0
        keep_all = DOTARawDataset(data_root=str(dota_root), ann_file=str(ids), diff_thr=100)
        assert not any(i['ignore_flag'] for i in keep_all.get_data_info(0)['instances'])

    def test_image_missing_for_label(self, dota_root: Path) -> None:
        # the sample folder has labels for 7 scenes but images for only P0706 and P1888
        with pytest.raises(FileNotFoundError, match=r"P0770\.png"):
            DOTARawDataset(data_root=str(dota_root))

    def test_unlabelled(self, dota_root: Path) -> None:
        ds = DOTARawDataset(data_root=str(dota_root), data_prefix=dict(img_path='images'))
        assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ['P0706', 'P1888']
        assert ds.get_data_info(0)['instances'] == []

    def test_missing_and_empty_folders(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match='labelTxt'):
            DOTARawDataset(data_root=str(tmp_path))
        (tmp_path / 'labelTxt').mkdir()
        with pytest.raises(ValueError, match='no .txt files'):
            DOTARawDataset(data_root=str(tmp_path))

    def test_missing_patch_image(self, mmrotate_root: Path) -> None:
        ds = DOTARawDataset(data_root=str(mmrotate_root), ann_file='',
                            data_prefix=dict(img_path='images', ann_path='labelTxt'),
                            lazy_init=True)
        # P0004__1__0___1024 has an (empty) label file but no image in the samples
        with pytest.raises(FileNotFoundError, match=r'P0004__1__0___1024\.png'):
            ds.full_init()

    def test_mmrotate_pipeline(self, dota_root: Path, tmp_path: Path) -> None:
        import mmrotate.datasets  # noqa: F401  (registers mmrotate's transforms)
        from mmrotate.structures.bbox import RotatedBoxes

        # P1888 plus a synthetic patch with an empty label file
        root = tmp_path / 'd'
        (root / 'images').mkdir(parents=True)
        os.symlink(dota_root / 'images' / 'P1888.png', root / 'images' / 'P1888.png')
        cv2.imwrite(str(root / 'images' / 'P1888__1__0___0.png'), np.zeros((32, 48, 3), np.uint8))
        _write(root / 'labelTxt' / 'P1888.txt', (dota_root / 'labelTxt' / 'P1888.txt').read_text())
        _write(root / 'labelTxt' / 'P1888__1__0___0.txt', '')
        pipeline = [
            dict(type='mmdet.LoadImageFromFile'),
            dict(type='mmdet.LoadAnnotations', with_bbox=True, box_type='qbox'),
            dict(type='mmrotate.ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
            dict(type='mmdet.Resize', scale=(256, 256), keep_ratio=True),
            dict(type='mmdet.RandomFlip', prob=1.0, direction='horizontal'),
            dict(type='mmdet.PackDetInputs')]
        ds = DOTARawDataset(data_root=str(root), pipeline=pipeline)
        lab = read_dota_label(str(root / 'labelTxt' / 'P1888.txt'))
        out = ds[0]
        sample = out['data_samples']
        n_ign = int(lab['difficult'].astype(bool).sum())
        assert out['inputs'].shape[0] == 3 and max(out['inputs'].shape[1:]) == 256
        assert isinstance(sample.gt_instances.bboxes, RotatedBoxes)
        assert len(sample.gt_instances) == len(lab['names']) - n_ign
        assert len(sample.ignored_instances) == n_ign
        np.testing.assert_array_equal(sample.gt_instances.labels.numpy(),
                                      lab['labels'][lab['difficult'] == 0])
        empty = ds[1]['data_samples']
        assert ds.get_data_info(1)['patch'] == dict(ori_id='P1888', rate=1.0, x=0, y=0)
        assert len(empty.gt_instances) == 0
        filtered = DOTARawDataset(data_root=str(root), filter_cfg=dict(filter_empty_gt=True))
        assert len(filtered) == 1


def test_same_instances_as_mmrotate_dota_dataset() -> None:
    """On mmrotate's own (header-less) test patch, quads and labels equal its DOTADataset's."""
    root = SHARED / 'dota_samples_mmrotate' / 'dev-1.x' / 'tests' / 'data' / 'dota'
    if not (root / 'labelTxt').is_dir():
        pytest.skip(f'mmrotate DOTA samples not found at {root}')
    from mmrotate.datasets import DOTADataset
    theirs = DOTADataset(data_root=str(root), ann_file='labelTxt/',
                         data_prefix=dict(img_path='images/'))
    ours = DOTARawDataset(data_root=str(root), diff_thr=100)
    a, b = theirs.get_data_info(0), ours.get_data_info(0)
    assert a['img_id'] == b['img_id'] == 'P2805__1024__0___0'
    assert len(a['instances']) == len(b['instances']) == 4
    for x, y in zip(a['instances'], b['instances']):
        assert (x['bbox'], x['bbox_label'], x['ignore_flag']) == \
            (y['bbox'], y['bbox_label'], y['ignore_flag'])
    # mmrotate's split names the patch size where the devkit writes the rate
    assert b['patch'] == dict(ori_id='P2805', rate=1024.0, x=0, y=0)
