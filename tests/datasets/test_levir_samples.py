"""The real LEVIR-CD samples: 11 valid pairs load; the broken pair fails loudly, by name."""
import re

import numpy as np
import pytest

from mmrs.datasets import LEVIRCDDataset

BAD = 'test_113_0256'
PREFIX = dict(img_path_from='A', img_path_to='B', seg_map_path='label')
FAST = dict(serialize_data=False)  # skip mmengine's per-dataset gc.collect()
PIPELINE = [dict(type='LoadBitemporalImages'), dict(type='LoadChangeAnnotations'),
            dict(type='PackChangeInputs')]


@pytest.fixture(scope='module')
def valid_list(levir_samples_root, tmp_path_factory) -> str:
    """An ann_file with every labelled pair (all but the broken one)."""
    names = sorted(p.stem for p in (levir_samples_root / 'label').glob('*.png'))
    path = tmp_path_factory.mktemp('levir') / 'valid.txt'
    path.write_text('\n'.join(names) + '\n')
    return str(path)


class TestLevirSamples:

    def test_eleven_valid_pairs_binarised(self, levir_samples_root, valid_list):
        ds = LEVIRCDDataset(str(levir_samples_root), split=None, data_prefix=PREFIX,
                            ann_file=valid_list, pipeline=PIPELINE, **FAST)
        assert len(ds) == 11
        changed = {}
        for k in range(len(ds)):
            sample = ds[k]
            assert tuple(sample['inputs'].shape) == (2, 3, 256, 256)
            gt = sample['data_samples'].gt_sem_seg.data
            assert set(gt.unique().tolist()) <= {0, 1}
            changed[sample['data_samples'].img_path[0].rsplit('/', 1)[-1]] = int(gt.sum())
        assert changed['train_386_0512_0768.png'] == 0  # the all-zero label of the release
        assert sum(v > 0 for v in changed.values()) == 10

    def test_label_values_match_raw_file(self, levir_samples_root, valid_list):
        import cv2
        ds = LEVIRCDDataset(str(levir_samples_root), split=None, data_prefix=PREFIX,
                            ann_file=valid_list, pipeline=PIPELINE, **FAST)
        sample = ds[0]['data_samples']
        raw = cv2.imread(sample.seg_map_path, cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), raw // 255)

    def test_listing_whole_folder_names_the_unlabelled_pair(self, levir_samples_root):
        with pytest.raises(FileNotFoundError) as err:
            LEVIRCDDataset(str(levir_samples_root), split=None, **FAST)
        assert f'label/{BAD}.png' in str(err.value) and f'A/{BAD}.png' in str(err.value)

    def test_skip_filter_keeps_the_valid_set(self, levir_samples_root):
        ds = LEVIRCDDataset(str(levir_samples_root), split=None, on_missing='skip', **FAST)
        names = [d['img_path'][0] for d in ds]
        assert len(names) == 11 and not any(BAD in n for n in names)

    def test_broken_pair_fails_in_pipeline_naming_it(self, levir_samples_root):
        (levir_samples_root / 'A' / f'{BAD}.png').stat()  # present, unlabelled, misaligned
        ds = LEVIRCDDataset(
            str(levir_samples_root), split=None, ann_file='', pipeline=PIPELINE,
            data_prefix=dict(img_path_from='A', img_path_to='B'), **FAST)
        index = next(k for k in range(len(ds)) if BAD in ds.get_data_info(k)['img_path'][0])
        with pytest.raises(ValueError) as err:
            ds[index]
        message = str(err.value)
        assert re.search(rf'A/{BAD}\.png.*\(384, 768, 4\)', message)
        assert re.search(rf'B/{BAD}\.png.*\(383, 768, 4\)', message)
