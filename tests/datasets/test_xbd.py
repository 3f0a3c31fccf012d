"""XBDDataset / LoadXBDAnnotations on a synthetic xBD tree laid out as the release.

Oracles are independent of the rasteriser under test: a pixel is a building when shapely says
its centre lies inside the polygon (``shapely.contains_xy``), and the building areas agree
with the polygons' exact areas up to the pixels their outlines cross.
"""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely
from mmengine.config import Config
from shapely import wkt as shapely_wkt

from mmrs.datasets import LoadXBDAnnotations, XBDDataset, rasterize_xbd
from mmrs.datasets.transforms import (LoadBitemporalImages, PackChangeInputs,
                                      PairedRandomCrop, PairedRandomFlip, PairedRandomRotate90)
from mmrs.registry import DATASETS
from mmrs.structures import restore_label_map

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 40
RECT = 'POLYGON ((3.3 4.2, 20.7 4.2, 20.7 15.6, 3.3 15.6, 3.3 4.2))'
TRIANGLE = 'POLYGON ((25.1 2.2, 37.8 9.4, 24.6 18.9, 25.1 2.2))'
HOLED = ('POLYGON ((5.2 22.3, 19.9 22.3, 19.9 36.6, 5.2 36.6, 5.2 22.3), '
         '(9.4 26.7, 14.8 26.7, 14.8 31.3, 9.4 31.3, 9.4 26.7))')
SMALL = 'POLYGON ((28.4 24.3, 35.7 24.3, 35.7 33.9, 28.4 33.9, 28.4 24.3))'
DAMAGE = {'no-damage': 1, 'minor-damage': 2, 'major-damage': 3, 'destroyed': 4,
          'un-classified': 5}
#: split -> tile stem -> [(wkt, subtype)]
TILES = {
    'train': {
        'alpha-flood_00000000': [(RECT, 'no-damage'), (TRIANGLE, 'destroyed'),
                                 (HOLED, 'minor-damage'), (SMALL, 'major-damage')],
        'alpha-flood_00000001': [(RECT, 'un-classified'), (SMALL, 'destroyed')],
        'beta-fire_00000007': [],
    },
    'tier3': {'gamma-wind_00000002': [(TRIANGLE, 'major-damage')]},
}


def oracle(polys: list, damage: bool) -> np.ndarray:
    """Buildings (1) or damage values where shapely puts the pixel centre inside a polygon."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    out = np.zeros((SIZE, SIZE), np.uint8)
    for text, subtype in polys:
        inside = shapely.contains_xy(shapely_wkt.loads(text), xs, ys)
        out[inside] = DAMAGE[subtype] if damage else 1
    return out


def write_json(path: Path, polys: list, post: bool) -> None:
    xy = [dict(properties=dict(feature_type='building', uid=f'uid-{k}',
                               **(dict(subtype=s) if post else {})), wkt=w)
          for k, (w, s) in enumerate(polys)]
    path.write_text(json.dumps(dict(features=dict(lng_lat=[], xy=xy),
                                    metadata=dict(width=SIZE, height=SIZE))))


def post_image(polys: list) -> np.ndarray:
    """An RGB post image whose red band is 40 x the damage value: alignment is visible."""
    img = np.full((SIZE, SIZE, 3), 7, np.uint8)
    img[..., 0] = oracle(polys, damage=True) * 40
    return img


def make_tree(root: Path, targets: bool = True) -> Path:
    """Write images, JSON labels and (optionally) targets for :data:`TILES` under ``root``."""
    rng = np.random.default_rng(0)
    for split, tiles in TILES.items():
        for sub in ('images', 'labels', 'targets'):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for stem, polys in tiles.items():
            pre = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
            cv2.imwrite(str(root / split / 'images' / f'{stem}_pre_disaster.png'), pre)
            cv2.imwrite(str(root / split / 'images' / f'{stem}_post_disaster.png'),
                        post_image(polys)[..., ::-1])
            write_json(root / split / 'labels' / f'{stem}_pre_disaster.json', polys, False)
            write_json(root / split / 'labels' / f'{stem}_post_disaster.json', polys, True)
            if targets:
                t = root / split / 'targets'
                cv2.imwrite(str(t / f'{stem}_pre_disaster_target.png'), oracle(polys, False))
                cv2.imwrite(str(t / f'{stem}_post_disaster_target.png'), oracle(polys, True))
    return root


def load(info: dict, **kwargs) -> dict:
    results = LoadBitemporalImages()(dict(info, seg_fields=[]))
    return LoadXBDAnnotations(**kwargs)(results)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / 'xBD')


def by_stem(ds: XBDDataset) -> dict[str, dict]:
    return {f"{d['disaster']}_{d['tile_id']}": d for d in (ds[i] for i in range(len(ds)))}


class TestListing:

    def test_pairs_every_tile_of_the_splits(self, tree: Path) -> None:
        ds = XBDDataset(data_root=str(tree), split=('train', 'tier3'))
        assert len(ds) == 4
        info = ds.get_data_info(0)
        stem = 'alpha-flood_00000000'
        assert info['img_path'] == [str(tree / 'train/images' / f'{stem}_{d}_disaster.png')
                                    for d in ('pre', 'post')]
        assert info['seg_map_path'] == str(tree / 'train/targets' /
                                           f'{stem}_pre_disaster_target.png')
        assert info['damage_map_path'].endswith(f'{stem}_post_disaster_target.png')
        assert info['label_source'] == 'targets' and info['disaster'] == 'alpha-flood'
        assert info['tile_id'] == '00000000' and info['label_encoding'] == '0/1'
        assert ds.get_data_info(3)['split'] == 'tier3'

    def test_disaster_filter(self, tree: Path) -> None:
        ds = XBDDataset(data_root=str(tree), split='train', disasters=['beta-fire'])
        assert [d['disaster'] for d in (ds.get_data_info(i) for i in range(len(ds)))] == \
            ['beta-fire']
        with pytest.raises(ValueError, match=r"\['delta-quake'\].*found: \['alpha-flood'"):
            XBDDataset(data_root=str(tree), split='train', disasters=['delta-quake'])

    def test_list_file(self, tree: Path) -> None:
        (tree / 'test_list.txt').write_text(
            'gamma-wind_00000002\n\nalpha-flood_00000001_pre_disaster.png\n')
        ds = XBDDataset(data_root=str(tree), split=('train', 'tier3'),
                        ann_file='test_list.txt')
        assert [d['tile_id'] for d in (ds.get_data_info(i) for i in range(2))] == \
            ['00000002', '00000001']
        (tree / 'bad_list.txt').write_text('alpha-flood_00000099\n')
        with pytest.raises(FileNotFoundError, match='alpha-flood_00000099.*bad_list.txt'):
            XBDDataset(data_root=str(tree), split='train', ann_file='bad_list.txt')

    def test_missing_post_image_names_the_file(self, tree: Path) -> None:
        post = tree / 'train/images/alpha-flood_00000001_post_disaster.png'
        post.unlink()
        with pytest.raises(FileNotFoundError, match=f'post-disaster image .*{post.name}'):
            XBDDataset(data_root=str(tree), split='train')
        assert len(XBDDataset(data_root=str(tree), split='train', on_missing='skip')) == 2

    def test_missing_split_folder(self, tree: Path) -> None:
        with pytest.raises(FileNotFoundError, match=r"hold/images.*'hold'"):
            XBDDataset(data_root=str(tree), split='hold')

    def test_targets_missing_falls_back_to_json(self, tmp_path: Path) -> None:
        root = make_tree(tmp_path / 'xBD', targets=False)
        ds = XBDDataset(data_root=str(root), split='train')
        info = ds.get_data_info(0)
        assert info['label_source'] == 'json' and info['seg_map_path'] is None
        assert info['label_json_path'][1].endswith('alpha-flood_00000000_post_disaster.json')
        with pytest.raises(FileNotFoundError, match='missing xBD target'):
            XBDDataset(data_root=str(root), split='train', label_source='targets')
        (root / 'train/labels/beta-fire_00000007_post_disaster.json').unlink()
        with pytest.raises(FileNotFoundError, match='beta-fire_00000007_post_disaster.json'):
            XBDDataset(data_root=str(root), split='train')
        unlabelled = XBDDataset(data_root=str(root), split='train', label_source='none')
        assert unlabelled.get_data_info(2)['label_json_path'] is None


class TestLabels:

    @pytest.mark.parametrize('source', ['targets', 'json'])
    def test_maps_equal_the_shapely_oracle(self, tree: Path, source: str) -> None:
        ds = XBDDataset(data_root=str(tree), split=('train', 'tier3'), label_source=source)
        for stem, info in by_stem(ds).items():
            polys = {**TILES['train'], **TILES['tier3']}[stem]
            res = load(info)
            np.testing.assert_array_equal(res['gt_seg_map'], oracle(polys, damage=False))
            want = oracle(polys, damage=True)
            want[want == 5] = 255  # un-classified -> ignore (the dataset default)
            np.testing.assert_array_equal(res['gt_damage_map'], want)
            assert res['seg_fields'] == ['gt_seg_map', 'gt_damage_map']

    def test_rasterised_areas_match_the_polygons(self, tree: Path) -> None:
        path = str(tree / 'train/labels/alpha-flood_00000000_post_disaster.json')
        dmg = rasterize_xbd(path, (SIZE, SIZE), damage=True)
        for text, subtype in TILES['train']['alpha-flood_00000000']:
            geom = shapely_wkt.loads(text)
            # only pixels crossed by the outline can differ from the exact area
            assert abs((dmg == DAMAGE[subtype]).sum() - geom.area) <= geom.length
        assert (dmg[28, 12] == 0) and (dmg[24, 7] == 2)  # the hole of HOLED, and its ring

    def test_later_polygon_wins_and_empty_files(self, tmp_path: Path) -> None:
        path = tmp_path / 'x_post_disaster.json'
        overlap = 'POLYGON ((10.4 8.3, 17.6 8.3, 17.6 19.4, 10.4 19.4, 10.4 8.3))'
        write_json(path, [(RECT, 'no-damage'), (overlap, 'destroyed')], post=True)
        dmg = rasterize_xbd(str(path), damage=True)
        assert dmg[10, 15] == 4 and dmg[5, 5] == 1
        write_json(path, [], post=True)
        assert not rasterize_xbd(str(path)).any()

    def test_unclassified_and_background_options(self, tree: Path) -> None:
        info = by_stem(XBDDataset(data_root=str(tree), split='train'))['alpha-flood_00000001']
        polys = TILES['train']['alpha-flood_00000001']
        want = oracle(polys, damage=True)
        want[want == 5] = 1  # the first-place solution's masks count them as no damage
        np.testing.assert_array_equal(load(info, unclassified_to=1)['gt_damage_map'], want)
        train = load(info, ignore_damage_background=True)['gt_damage_map']
        assert set(np.unique(train)) == {4, 255}  # destroyed; background + un-classified

    def test_bad_json_names_the_file(self, tree: Path) -> None:
        ds = XBDDataset(data_root=str(tree), split='train', label_source='json')
        info = by_stem(ds)['alpha-flood_00000000']
        Path(info['label_json_path'][1]).write_text('{"features": {"xy": [')
        with pytest.raises(ValueError, match='alpha-flood_00000000_post_disaster.json.*JSON'):
            load(info)
        Path(info['label_json_path'][1]).write_text('{"metadata": {}}')
        with pytest.raises(ValueError, match="post_disaster.json.*no 'features'"):
            load(info)
        write_json(Path(info['label_json_path'][1]), [(RECT, 'x')], True)
        with pytest.raises(ValueError, match="uid-0.*post_disaster.json.*unknown damage "
                                             "subtype 'x'"):
            load(info)
        write_json(Path(info['label_json_path'][1]), [('POLYGON ((1 2, 3', 'destroyed')], True)
        with pytest.raises(ValueError, match='post_disaster.json.*unreadable WKT'):
            load(info)

    def test_json_size_must_match_the_image(self, tree: Path) -> None:
        info = by_stem(XBDDataset(data_root=str(tree), split='train',
                                  label_source='json'))['beta-fire_00000007']
        path = Path(info['label_json_path'][0])
        label = json.loads(path.read_text())
        label['metadata']['width'] = 1024
        path.write_text(json.dumps(label))
        with pytest.raises(ValueError, match=f'{path.name}.*40x1024 image.*40x40'):
            load(info)

    def test_bad_target_values_name_the_file(self, tree: Path) -> None:
        info = by_stem(XBDDataset(data_root=str(tree), split='train'))['beta-fire_00000007']
        cv2.imwrite(info['damage_map_path'], np.full((SIZE, SIZE), 9, np.uint8))
        with pytest.raises(ValueError, match='post_disaster_target.png.*values \\[9\\]'):
            load(info)
        cv2.imwrite(info['seg_map_path'], np.full((SIZE, SIZE), 255, np.uint8))
        with pytest.raises(ValueError, match="pre_disaster_target.png.*'0/1'"):
            load(info)
        # masks written as 0 / 255 load with label_encoding='0/255'
        assert load(info, label_encoding='0/255', damage=False)['gt_seg_map'].all()


class TestPipeline:

    def test_damage_map_moves_with_the_images_and_packs(self, tree: Path) -> None:
        info = by_stem(XBDDataset(data_root=str(tree), split='train'))['alpha-flood_00000000']
        np.random.seed(3)
        results = load(info)
        for t in (PairedRandomFlip(prob=1.0, direction='horizontal'),
                  PairedRandomRotate90(prob=1.0), PairedRandomCrop(crop_size=24)):
            results = t(results)
        packed = PackChangeInputs()(results)
        sample = packed['data_samples']
        dmg = sample.gt_damage_seg.data[0]
        assert dmg.shape == (24, 24) and packed['inputs'].shape == (2, 3, 24, 24)
        # the post image's red band is 40 x damage: still aligned after flip, turn and crop
        red = packed['inputs'][1, 0].long()
        known = dmg != 255
        assert known.any() and (red[known] == dmg[known] * 40).all()
        assert ((sample.gt_sem_seg.data[0] == 1) == ((red > 0) | ~known)).all()
        assert 'gt_damage_seg' in sample.metainfo['transformed_gt_fields']

    def test_test_pipeline_keeps_the_original_grid(self, tree: Path) -> None:
        info = by_stem(XBDDataset(data_root=str(tree), split='train'))['alpha-flood_00000000']
        results = PairedRandomFlip(prob=1.0, direction='vertical')(load(info))
        sample = PackChangeInputs()(results)['data_samples']
        restored = restore_label_map(sample.gt_damage_seg.data, sample.metainfo, (SIZE, SIZE))
        want = oracle(TILES['train']['alpha-flood_00000000'], damage=True)
        np.testing.assert_array_equal(restored[0].numpy(), want)

    def test_base_config_builds_and_crops(self, tree: Path) -> None:
        cfg = Config.fromfile(str(REPO_ROOT / 'configs/_base_/datasets/xbd.py'))
        for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'test')):
            ds_cfg = cfg[loader]['dataset']
            ds_cfg.update(data_root=str(tree), split='train')
            ds = DATASETS.build(ds_cfg)
            item = ds[1]
            size = cfg.crop_size[0] if split == 'train' else SIZE
            assert item['inputs'].shape[-2:] == (min(size, SIZE), ) * 2
        assert cfg.val_evaluator['type'] == 'XView2Metric'
