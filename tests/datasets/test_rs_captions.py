"""Tests of the Karpathy-style caption datasets, the caption transforms and their configs.

A tiny Karpathy JSON and 40x48 images are written in ``tmp_path`` by the fixtures (the
format of RSICD / RSITMD / UCM-Captions: ``images[].{filename, imgid, split, sentences[].{raw,
tokens, sentid}, sentids}``); one test reads the three real RSICD images that Falcon ships
(``../shared/data/vl_samples/Falcon/image_samples/IMG_CAP``).
"""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

from mmrs.datasets.rs_captions import (KarpathyCaptionDataset, RSICDDataset, RSITMDDataset,
                                       UCMCaptionsDataset, read_karpathy_json)
from mmrs.datasets.transforms.captions import FormatCaptions, RandomCaption
from mmrs.registry import DATASETS, TRANSFORMS
from tests.conftest import REPO_ROOT, shared_data_root

ENTRIES = [
    ('a.tif', 'train', ['Two planes are parked .', 'two planes are parked .', 'An airport']),
    ('b.tif', 'test', ['A green Park with trees', 'a park', 'a park', 'a park', 'a park']),
    ('c.tif', 'test', ['Many buildings and a road .']),
    ('d.tif', 'val', ['a river']),
]


def karpathy_json(entries, sub: str | None = None) -> dict:
    images, sentid = [], 0
    for imgid, (name, split, raws) in enumerate(entries):
        sentences = [dict(raw=r, tokens=r.lower().replace('.', '').split(), imgid=imgid,
                          sentid=sentid + j) for j, r in enumerate(raws)]
        entry = dict(filename=name, imgid=imgid + 10, split=split, sentences=sentences,
                     sentids=[s['sentid'] for s in sentences])
        if sub:
            entry['filepath'] = sub
        images.append(entry)
        sentid += len(raws)
    return dict(images=images, dataset='tiny')


def write_images(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


@pytest.fixture(autouse=True)
def mmrs_scope():
    """Bare transform names (``RandomCaption``) resolve in mmrs, as under a runner."""
    with DefaultScope.overwrite_default_scope('mmrs'):
        yield


@pytest.fixture
def rsitmd_root(tmp_path: Path) -> Path:
    """RSITMD layout: dataset_RSITMD.json + images/."""
    (tmp_path / 'dataset_RSITMD.json').write_text(json.dumps(karpathy_json(ENTRIES)))
    write_images(tmp_path / 'images', [e[0] for e in ENTRIES])
    return tmp_path


class TestKarpathyCaptionDataset:

    def test_split_and_fields(self, rsitmd_root: Path) -> None:
        ds = RSITMDDataset(data_root=str(rsitmd_root), split='test')
        assert len(ds) == 2
        first = ds[0]
        assert first['img_path'] == str(rsitmd_root / 'images' / 'b.tif')
        assert first['img_id'] == 11
        # duplicates kept, as distributed
        assert first['captions'] == ['A green Park with trees'] + ['a park'] * 4
        assert first['sent_ids'] == [3, 4, 5, 6, 7]
        assert ds[1]['captions'] == ['Many buildings and a road .']
        assert ds.metainfo['dataset_name'] == 'rsitmd'

    def test_tokens_several_and_all_splits(self, rsitmd_root: Path) -> None:
        ds = RSITMDDataset(data_root=str(rsitmd_root), split=('train', 'val'),
                           text_field='tokens')
        assert [d['filename'] for d in ds] == ['a.tif', 'd.tif']
        assert ds[0]['captions'][0] == 'two planes are parked'
        assert len(RSITMDDataset(data_root=str(rsitmd_root), split=None)) == 4

    def test_filepath_and_registry(self, tmp_path: Path) -> None:
        ann = tmp_path / 'ann' / 'caps.json'
        ann.parent.mkdir()
        ann.write_text(json.dumps(karpathy_json(ENTRIES[:2], sub='sub')))
        write_images(tmp_path / 'pics' / 'sub', ['a.tif', 'b.tif'])
        ds = DATASETS.build(dict(type='KarpathyCaptionDataset', data_root=str(tmp_path),
                                 ann_file='ann/caps.json', data_prefix=dict(img_path='pics'),
                                 split='train'))
        assert isinstance(ds, KarpathyCaptionDataset)
        assert ds[0]['img_path'] == str(tmp_path / 'pics' / 'sub' / 'a.tif')

    def test_class_defaults(self) -> None:
        assert (RSICDDataset.ANN_FILE, RSICDDataset.IMG_DIR) == ('dataset_rsicd.json',
                                                                 'RSICD_images')
        assert (UCMCaptionsDataset.ANN_FILE, UCMCaptionsDataset.IMG_DIR) == ('dataset.json',
                                                                             'imgs')

    def test_missing_annotation(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match='dataset_rsicd.json'):
            RSICDDataset(data_root=str(tmp_path))

    def test_bad_json(self, tmp_path: Path) -> None:
        (tmp_path / 'dataset.json').write_text('{"images": [')
        with pytest.raises(ValueError, match='not valid JSON'):
            UCMCaptionsDataset(data_root=str(tmp_path))
        (tmp_path / 'dataset.json').write_text('{"annotations": []}')
        with pytest.raises(ValueError, match='"images" list'):
            UCMCaptionsDataset(data_root=str(tmp_path))
        (tmp_path / 'dataset.json').write_text('{"images": [{"filename": "x.tif"}]}')
        with pytest.raises(ValueError, match=r"images\[0\] lacks \['sentences'\]"):
            read_karpathy_json(str(tmp_path / 'dataset.json'))

    def test_unknown_split(self, rsitmd_root: Path) -> None:
        with pytest.raises(ValueError, match=r"no split \['validation'\].*'test', 'train'"):
            RSITMDDataset(data_root=str(rsitmd_root), split='validation')

    def test_missing_image_named(self, rsitmd_root: Path) -> None:
        (rsitmd_root / 'images' / 'c.tif').unlink()
        with pytest.raises(FileNotFoundError, match=r'1 images .* first: .*images/c\.tif'):
            RSITMDDataset(data_root=str(rsitmd_root), split='test')
        assert len(RSITMDDataset(data_root=str(rsitmd_root), split='test',
                                 check_images=False)) == 2

    def test_bad_text_field(self, rsitmd_root: Path) -> None:
        with pytest.raises(ValueError, match='text_field'):
            RSITMDDataset(data_root=str(rsitmd_root), text_field='caption')


class TestCaptionTransforms:

    def test_random_caption_seeded_and_uniform(self) -> None:
        t = TRANSFORMS.build(dict(type='RandomCaption'))
        caps = ['c0', 'c1', 'c2', 'c3', 'c4']

        def draw(n: int) -> list[str]:
            return [t(dict(captions=caps))['text'] for _ in range(n)]

        np.random.seed(123)  # what mmengine's set_random_seed / worker_init_fn seed
        first = draw(200)
        np.random.seed(123)
        assert draw(200) == first
        counts = {c: first.count(c) for c in caps}
        assert all(20 <= n <= 60 for n in counts.values()), counts  # ~40 each

    def test_first_mode_and_errors(self) -> None:
        t = RandomCaption(mode='first')
        out = t(dict(captions=['x', 'y']))
        assert out['text'] == 'x' and out['caption_index'] == 0
        with pytest.raises(ValueError, match='no caption'):
            t(dict(captions=[], img_path='p.tif'))
        with pytest.raises(KeyError, match='captions'):
            t(dict(img_path='p.tif'))
        with pytest.raises(ValueError, match='mode'):
            RandomCaption(mode='last')

    def test_format_captions(self) -> None:
        rc = FormatCaptions(capitalize=True)
        # str.capitalize lower-cases the rest, as RemoteCLIP's raw.capitalize()
        assert rc(dict(captions=['many Planes .']))['captions'] == ['Many planes .']
        sky = TRANSFORMS.build(dict(type='FormatCaptions', prefix='a satellite image. '))
        out = sky(dict(captions=['a park', 'a park'], text='a road'))
        assert out['captions'] == ['a satellite image. a park'] * 2
        assert out['text'] == 'a satellite image. a road'


def test_pipelines_from_config(rsitmd_root: Path) -> None:
    """The base dataset config's pipelines run on the tiny dataset."""
    cfg = Config.fromfile(REPO_ROOT / 'configs/_base_/datasets/retrieval/rsitmd.py')
    test_ds = cfg.test_dataloader.dataset
    ds = DATASETS.build(dict(test_ds, data_root=str(rsitmd_root)))
    out = ds[0]
    assert tuple(out['inputs'].shape) == (3, 224, 224)
    sample = out['data_samples']
    assert sample.captions == ['A green Park with trees'] + ['a park'] * 4
    assert sample.img_id == 11 and sample.img_path.endswith('b.tif')
    train = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(rsitmd_root)))
    np.random.seed(0)
    sample = train[0]['data_samples']
    assert sample.text in ENTRIES[0][2]


#: open_clip's preprocess_val (shortest side 224 bicubic, centre crop), then all captions packed
OPEN_CLIP_VAL = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=224, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['captions', 'img_id']),
]


@pytest.mark.parametrize('name,dataset_type,data_root,val_split', [
    ('rsicd', 'RSICDDataset', 'data/RSICD', 'val'),
    ('rsitmd', 'RSITMDDataset', 'data/RSITMD', 'test'),  # RSITMD has no val split
    ('ucm_captions', 'UCMCaptionsDataset', 'data/UCM_captions', 'val'),
])
def test_dataset_configs_parse(name: str, dataset_type: str, data_root: str,
                               val_split: str) -> None:
    """Each data set's file sets its type and root on all three loaders over the shared
    retrieval_default.py (dict merge), and keeps the shared pipelines and loader settings."""
    cfg = Config.fromfile(REPO_ROOT / f'configs/_base_/datasets/retrieval/{name}.py')
    splits = dict(train='train', val=val_split, test='test')
    for stage, split in splits.items():
        loader = cfg[f'{stage}_dataloader']
        assert loader.dataset.type == dataset_type and loader.dataset.data_root == data_root
        assert loader.dataset.split == split
        assert loader.batch_size == 64 and loader.sampler.shuffle == (stage == 'train')
    assert cfg.val_dataloader.dataset.pipeline == OPEN_CLIP_VAL
    assert cfg.test_dataloader.dataset.pipeline == OPEN_CLIP_VAL
    assert [t['type'] for t in cfg.train_dataloader.dataset.pipeline][-2:] == [
        'RandomCaption', 'mmpretrain.PackInputs']
    assert cfg.test_evaluator.type == 'RetrievalMetric'


CLIP_CONFIGS = sorted((REPO_ROOT / 'configs' / 'clip').glob('*_retrieval_*.py'))


@pytest.mark.parametrize('path', CLIP_CONFIGS, ids=[p.stem for p in CLIP_CONFIGS])
def test_clip_retrieval_configs(path: Path) -> None:
    family = path.stem.split('_retrieval_')[0]
    base = REPO_ROOT / 'configs/_base_/models/clip' / f'{family}.py'
    if not base.is_file():
        pytest.skip(f'model base config {base} not written yet')
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'CLIP'
    pipeline = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    assert pipeline[-1] == 'mmpretrain.PackInputs'
    formats = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'FormatCaptions']
    if family.startswith(('skyclip', 'farslip')):
        assert formats and formats[0]['prefix'] == 'a satellite image. '
    if family.startswith('remoteclip'):
        assert formats and formats[0]['capitalize']
    if family.startswith(('georsclip', 'rsmclip')):
        assert not formats
    # one formatting for validation and test; the images preprocessed as in every family
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_dataloader.dataset.pipeline
    assert len(formats) <= 1 and [t for t in cfg.test_dataloader.dataset.pipeline
                                  if t['type'] != 'FormatCaptions'] == OPEN_CLIP_VAL


def test_real_rsicd_images_from_falcon(tmp_path: Path) -> None:
    """Three real RSICD images (224x224 PNG, as Falcon ships them) through the test pipeline."""
    folder = shared_data_root() / 'vl_samples' / 'Falcon' / 'image_samples' / 'IMG_CAP'
    names = sorted(p.name for p in folder.glob('*.png')) if folder.is_dir() else []
    if len(names) < 3:
        pytest.skip(f'Falcon IMG_CAP samples not found at {folder} (set MMRS_SHARED_DATA)')
    entries = [(n, 'test', [f'caption {i} of {n}', 'a shared caption']) for i, n in
               enumerate(names)]
    ann = tmp_path / 'dataset_rsicd.json'
    ann.write_text(json.dumps(karpathy_json(entries)))
    cfg = Config.fromfile(REPO_ROOT / 'configs/_base_/datasets/retrieval/rsicd.py')
    ds = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(folder),
                             ann_file=str(ann), data_prefix=dict(img_path='')))
    assert len(ds) == 3
    pipeline = Compose(cfg.test_pipeline)
    for i, name in enumerate(names):
        out = pipeline(dict(ds.get_data_info(i)))
        # already 224 x 224: resize and crop are identities, pixels are the file's (BGR)
        expected = cv2.imread(str(folder / name))
        assert np.array_equal(out['inputs'].permute(1, 2, 0).numpy(), expected)
        assert out['data_samples'].captions[1] == 'a shared caption'
