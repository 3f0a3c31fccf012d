"""Scene classification datasets (folder per class), class-name styles and band selection.

The fixtures write tiny class-folder trees in ``tmp_path``; the named datasets are checked
against the facts of their releases (class folders, counts) and against RemoteCLIP's own
class strings (ChenDelong1999/ITRA ``itra/data/classname_and_prompt/*.py``, copied below as
an independent oracle).
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmrs.datasets.scene_classification import (AIDDataset, EuroSATDataset, PatternNetDataset,
                                                RESISC45Dataset, SceneFolderDataset,
                                                UCMercedDataset, WHURS19Dataset, display_name,
                                                scene_class_names)
from mmrs.datasets.transforms.bands import LoadMultiBandImage, SelectBands
from mmrs.registry import DATASETS

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]

# RemoteCLIP's evaluation strings (ITRA new_classes: folder -> prompt string), as published.
ITRA_AID = {
    'Airport': 'airport', 'DenseResidential': 'dense residential', 'Park': 'park',
    'School': 'school', 'BareLand': 'bareLand', 'Desert': 'desert', 'Parking': 'parking',
    'SparseResidential': 'sparse residential', 'BaseballField': 'baseball field',
    'Farmland': 'farmland', 'Playground': 'playground', 'Square': 'square', 'Beach': 'beach',
    'Forest': 'forest', 'Pond': 'pond', 'Stadium': 'stadium', 'Bridge': 'bridge',
    'Industrial': 'industrial', 'Port': 'port', 'StorageTanks': 'storage tanks',
    'Center': 'center', 'Meadow': 'meadow', 'RailwayStation': 'railway station',
    'Viaduct': 'viaduct', 'Church': 'church', 'MediumResidential': 'medium residential',
    'Resort': 'resort', 'Commercial': 'commercial', 'Mountain': 'mountain', 'River': 'river'}
ITRA_UCM = {
    'mediumresidential': 'medium residential', 'harbor': 'harbor', 'parkinglot': 'parking lot',
    'golfcourse': 'golf course', 'storagetanks': 'storage tanks',
    'denseresidential': 'dense residential', 'agricultural': 'agricultural', 'runway': 'runway',
    'intersection': 'intersection', 'tenniscourt': 'tennis court', 'airplane': 'airplane',
    'buildings': 'buildings', 'baseballdiamond': 'baseball diamond', 'beach': 'beach',
    'river': 'river', 'overpass': 'overpass', 'forest': 'forest',
    'mobilehomepark': 'mobile home park', 'chaparral': 'chaparral',
    'sparseresidential': 'sparse residential', 'freeway': 'freeway'}
ITRA_WHURS19 = {
    'Airport': 'airport', 'Beach': 'beach', 'Bridge': 'bridge', 'Commercial': 'Commercial',
    'Desert': 'desert', 'Farmland': 'farmland', 'footballField': 'footballField',
    'Forest': 'forest', 'Industrial': 'industrial', 'Meadow': 'meadow', 'Mountain': 'mountain',
    'Park': 'park', 'Parking': 'parking', 'Pond': 'pond', 'Port': 'port',
    'railwayStation': 'railwayStation', 'Residential': 'residential', 'River': 'river',
    'Viaduct': 'viaduct'}
ITRA_EUROSAT = {
    'Forest': 'forest', 'PermanentCrop': 'permanent crop land',
    'Residential': 'residential buildings or homes or apartments', 'River': 'river',
    'Pasture': 'pasture land', 'SeaLake': 'lake or sea',
    'HerbaceousVegetation': 'brushland or shrubland', 'AnnualCrop': 'annual crop land',
    'Industrial': 'industrial buildings or commercial buildings', 'Highway': 'highway or road'}
# CLIP_benchmark en_classnames.json 'eurosat' (label order = sorted folders)
CLIP_BENCHMARK_EUROSAT = [
    'annual crop land', 'forest', 'brushland or shrubland', 'highway or road',
    'industrial buildings or commercial buildings', 'pasture land', 'permanent crop land',
    'residential buildings or homes or apartments', 'river', 'lake or sea']


def write_image(path: Path, value: int = 0, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((size, size, 3), value, np.uint8)), path


def make_tree(root: Path, counts: dict[str, int], ext: str = '.png') -> Path:
    for cls, n in counts.items():
        for i in range(n):
            write_image(root / cls / f'{cls}_{i:02d}{ext}', i)
    return root


class TestSceneFolderDataset:

    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        return make_tree(tmp_path / 'scenes', {'sea_ice': 5, 'Beach': 3, 'forest': 4})

    def test_lists_every_image_with_sorted_class_labels(self, root: Path) -> None:
        ds = SceneFolderDataset(data_root=str(root))
        assert ds.metainfo['classes'] == ('Beach', 'forest', 'sea_ice')  # Python sort
        assert ds.metainfo['display_names'] == ('beach', 'forest', 'sea ice')
        assert len(ds) == 12
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            cls = Path(info['img_path']).parent.name
            assert info['gt_label'] == ds.metainfo['classes'].index(cls)

    def test_ratio_split_partitions_each_class(self, root: Path) -> None:
        train = SceneFolderDataset(data_root=str(root), split_ratio=0.8, split='train')
        test = SceneFolderDataset(data_root=str(root), split_ratio=0.8, split='test')
        tr = {train.get_data_info(i)['img_path'] for i in range(len(train))}
        te = {test.get_data_info(i)['img_path'] for i in range(len(test))}
        assert not tr & te and len(tr | te) == 12
        # int(n * 0.8) first sorted files train: 5 -> 4, 3 -> 2, 4 -> 3
        assert len(tr) == 4 + 2 + 3
        assert str(root / 'sea_ice' / 'sea_ice_04.png') in te
        assert str(root / 'sea_ice' / 'sea_ice_03.png') in tr

    def test_ann_file_paths_names_and_stems(self, root: Path, tmp_path: Path) -> None:
        split = tmp_path / 'split.txt'
        split.write_text('forest/forest_01.png\nBeach_02.png\n\nsea_ice_00.jpg\n')
        ds = SceneFolderDataset(data_root=str(root), ann_file=str(split))
        got = [(Path(ds[i]['img_path']).name, ds[i]['gt_label']) for i in range(len(ds))]
        assert got == [('forest_01.png', 1), ('Beach_02.png', 0), ('sea_ice_00.png', 2)]

    @pytest.mark.parametrize('text,match', [
        ('forest/missing.png\n', 'matches no image'),
        ('Beach/forest_01.png\n', 'matches no image'),  # right name, wrong class
        ('forest_01.png 1\n', 'expected one image path'),
        ('\n\n', 'lists no images'),
    ])
    def test_bad_ann_file_lines(self, root, tmp_path, text, match) -> None:
        split = tmp_path / 'split.txt'
        split.write_text(text)
        with pytest.raises(ValueError, match=match) as err:
            SceneFolderDataset(data_root=str(root), ann_file=str(split))
        assert 'split.txt' in str(err.value)

    def test_ambiguous_bare_name(self, tmp_path: Path) -> None:
        root = tmp_path / 'amb'
        write_image(root / 'a' / 'x.png')
        write_image(root / 'b' / 'x.png')
        (tmp_path / 's.txt').write_text('x.png\n')
        with pytest.raises(ValueError, match='2 images'):
            SceneFolderDataset(data_root=str(root), ann_file=str(tmp_path / 's.txt'))

    def test_missing_root_and_empty_class_name_the_path(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match='nowhere'):
            SceneFolderDataset(data_root=str(tmp_path / 'nowhere'))
        root = make_tree(tmp_path / 't', {'a': 1})
        (root / 'empty_cls').mkdir()
        with pytest.raises(FileNotFoundError, match='empty_cls') as err:
            SceneFolderDataset(data_root=str(root))
        assert 'holds no image' in str(err.value)
        (tmp_path / 'bare').mkdir()
        with pytest.raises(FileNotFoundError, match='no class sub-folders'):
            SceneFolderDataset(data_root=str(tmp_path / 'bare'))
        with pytest.raises(FileNotFoundError, match='ann_file not found'):
            SceneFolderDataset(data_root=str(tmp_path / 't'), ann_file='none.txt',
                               metainfo=dict(classes=['a']), strict_classes=False)

    def test_bad_arguments(self, root: Path) -> None:
        with pytest.raises(ValueError, match='either ann_file or split_ratio'):
            SceneFolderDataset(data_root=str(root), ann_file='x.txt', split_ratio=0.8)
        with pytest.raises(ValueError, match='split_ratio'):
            SceneFolderDataset(data_root=str(root), split_ratio=1.0)
        with pytest.raises(ValueError, match='split must be'):
            SceneFolderDataset(data_root=str(root), split='val')

    def test_fixed_classes_missing_extra_and_display_names(self, root: Path) -> None:
        ds = SceneFolderDataset(data_root=str(root), metainfo=dict(
            classes=['forest', 'Beach'], display_names=['woods', 'shore']),
            strict_classes=False)
        assert ds.metainfo['classes'] == ('forest', 'Beach')
        assert ds.metainfo['display_names'] == ('woods', 'shore')
        assert {ds[i]['gt_label'] for i in range(len(ds))} == {0, 1}
        with pytest.raises(ValueError, match="sea_ice"):
            SceneFolderDataset(data_root=str(root), metainfo=dict(classes=['forest', 'Beach']))
        with pytest.raises(FileNotFoundError, match="'river'"):
            SceneFolderDataset(data_root=str(root), metainfo=dict(classes=['river']),
                               strict_classes=False)


NAMED = [(RESISC45Dataset, 45, ''), (AIDDataset, 30, ''), (UCMercedDataset, 21, 'Images'),
         (EuroSATDataset, 10, '2750'), (WHURS19Dataset, 19, ''),
         (PatternNetDataset, 38, 'images')]


@pytest.mark.parametrize('cls,num,prefix', NAMED)
def test_named_release_layout(cls, num, prefix, tmp_path: Path) -> None:
    classes = cls.METAINFO['classes']
    assert len(classes) == num == len(set(classes)) == len(cls.METAINFO['display_names'])
    assert list(classes) == sorted(classes)
    assert DATASETS.get(cls.__name__) is cls
    root = tmp_path / 'release'
    make_tree(root / prefix, {c: 1 for c in classes}, '.tif' if cls is UCMercedDataset else
              '.jpg')
    ds = cls(data_root=str(root))
    assert len(ds) == num
    assert ds.metainfo['classes'] == classes
    labels = [ds[i]['gt_label'] for i in range(num)]
    assert labels == list(range(num))
    # a wrong data_root (one level too high) is an error naming the expected folder
    with pytest.raises(FileNotFoundError, match='class folder'):
        cls(data_root=str(tmp_path), data_prefix=dict(img_path=''), strict_classes=False)


def test_eurosat_ms_variant_prefix(tmp_path: Path) -> None:
    ms = tmp_path / EuroSATDataset.PREFIXES['ms']
    make_tree(ms, {c: 1 for c in EuroSATDataset.METAINFO['classes']}, '.tif')
    ds = EuroSATDataset(data_root=str(tmp_path), variant='ms')
    assert len(ds) == 10 and ds[0]['img_path'].endswith('AnnualCrop_00.tif')
    with pytest.raises(ValueError, match='variant'):
        EuroSATDataset(data_root=str(tmp_path), variant='sar')


class TestClassNames:

    @pytest.mark.parametrize('dataset,itra', [
        ('AIDDataset', ITRA_AID), ('UCMercedDataset', ITRA_UCM),
        ('WHURS19Dataset', ITRA_WHURS19), ('EuroSATDataset', ITRA_EUROSAT)])
    def test_remoteclip_style_equals_itra(self, dataset, itra) -> None:
        folders = DATASETS.get(dataset).METAINFO['classes']
        assert sorted(itra) == sorted(folders)
        assert scene_class_names(dataset, 'remoteclip') == [itra[f] for f in folders]

    @pytest.mark.parametrize('dataset', ['RESISC45Dataset', 'PatternNetDataset'])
    def test_underscore_sets(self, dataset) -> None:
        folders = DATASETS.get(dataset).METAINFO['classes']
        expected = [f.replace('_', ' ') for f in folders]  # ITRA's strings for these sets
        assert scene_class_names(dataset) == expected
        assert scene_class_names(dataset, 'remoteclip') == expected

    def test_styles(self) -> None:
        assert scene_class_names('EuroSATDataset') == CLIP_BENCHMARK_EUROSAT
        aid = scene_class_names(AIDDataset, 'georsclip')
        assert aid[:3] == ['airport', 'bareland', 'baseballfield']
        assert scene_class_names('AIDDataset')[1] == 'bare land'
        assert scene_class_names('WHURS19Dataset')[-2:] == ['football field', 'railway station']
        assert scene_class_names('UCMercedDataset', 'folder')[2] == 'baseballdiamond'
        assert scene_class_names('SceneFolderDataset', classes=['Sea_Ice']) == ['sea ice']
        with pytest.raises(ValueError, match='no fixed classes'):
            scene_class_names('SceneFolderDataset')
        with pytest.raises(KeyError, match='not registered'):
            scene_class_names('NoSuchDataset')
        with pytest.raises(ValueError, match='style'):
            scene_class_names('AIDDataset', 'fancy')

    @pytest.mark.parametrize('folder,name', [
        ('dense_residential', 'dense residential'), ('DenseResidential', 'dense residential'),
        ('footballField', 'football field'), ('oil-gas field', 'oil gas field'),
        ('sea_ice', 'sea ice')])
    def test_display_name(self, folder, name) -> None:
        assert display_name(folder) == name


class TestBands:

    @pytest.fixture
    def tif13(self, tmp_path: Path) -> str:
        """A EuroSAT-like 13-band uint16 GeoTIFF: band b (1-based) holds 100 * b, plus the
        column index so the bands are told apart pixel by pixel."""
        rasterio = pytest.importorskip('rasterio')
        from rasterio.transform import from_origin
        data = np.stack([np.full((6, 5), 100 * b, np.uint16) + np.arange(5, dtype=np.uint16)
                         for b in range(1, 14)])
        path = tmp_path / 'AnnualCrop_1.tif'
        with rasterio.open(path, 'w', driver='GTiff', height=6, width=5, count=13,
                           dtype='uint16', crs='EPSG:32631',
                           transform=from_origin(500000, 5000000, 10, 10)) as dst:
            dst.write(data)
        return str(path)

    def test_load_keeps_every_band_and_geo_meta(self, tif13: str) -> None:
        out = LoadMultiBandImage()(dict(img_path=tif13))
        assert out['img'].shape == (6, 5, 13) and out['img'].dtype == np.uint16
        assert out['img'][0, 3, 7] == 800 + 3
        assert out['geo_meta']['count'] == 13 and 'UTM' in out['geo_meta']['crs']
        sub = LoadMultiBandImage(bands=[4, 3, 2], to_float32=True)(dict(img_path=tif13))
        assert sub['img'].dtype == np.float32
        np.testing.assert_array_equal(sub['img'][0, 0], [400, 300, 200])

    def test_select_and_stretch(self, tif13: str) -> None:
        img = LoadMultiBandImage()(dict(img_path=tif13))
        out = SelectBands(bands=[4, 3, 2], value_range=(0, 1000))(dict(img))
        assert out['img'].shape == (6, 5, 3) and out['img'].dtype == np.float32
        np.testing.assert_allclose(out['img'][0, 1], np.array([401, 301, 201]) * 0.255,
                                   rtol=1e-6)
        u8 = SelectBands(bands=[13], value_range=(0, 1000), out_dtype='uint8')(dict(img))
        assert u8['img'].dtype == np.uint8 and u8['img'].max() == 255  # 1300 clips
        scaled = SelectBands(bands=[1], scale=0.5)(dict(img))
        assert scaled['img'][0, 4, 0] == pytest.approx(52.0)

    def test_errors_name_the_file(self, tif13: str) -> None:
        img = LoadMultiBandImage()(dict(img_path=tif13))
        with pytest.raises(ValueError, match='AnnualCrop_1.tif'):
            SelectBands(bands=[14])(dict(img))
        with pytest.raises(ValueError, match='AnnualCrop_1.tif'):
            LoadMultiBandImage(bands=[20])(dict(img_path=tif13))
        with pytest.raises(FileNotFoundError, match='nope.tif'):
            LoadMultiBandImage()(dict(img_path=tif13.replace('AnnualCrop_1', 'nope')))
        with pytest.raises(ValueError, match='scale or value_range'):
            SelectBands(bands=[1], scale=2, value_range=(0, 1))
        with pytest.raises(ValueError, match='1-based'):
            SelectBands(bands=[0])

    def test_eurosat_ms_config_pipeline_gives_rgb_after_preprocessor(
            self, tif13: str, tmp_path: Path) -> None:
        """The shipped EuroSAT-MS pipeline + the CLIP preprocessor (to_rgb=True) put red
        (B04) in channel 0: the BGR band order of the config is right."""
        from mmpretrain.models import ClsDataPreprocessor
        root = tmp_path / 'eurosat'
        ms = root / EuroSATDataset.PREFIXES['ms']
        for cls in EuroSATDataset.METAINFO['classes']:
            (ms / cls).mkdir(parents=True)
            (ms / cls / f'{cls}_1.tif').write_bytes(Path(tif13).read_bytes())
        cfg = Config.fromfile(str(REPO / 'configs/_base_/datasets/scene_cls/eurosat_ms.py'))
        dataset_cfg = dict(cfg.test_dataloader.dataset, data_root=str(root))
        ds = DATASETS.build(dataset_cfg)
        sample = ds[0]
        assert sample['inputs'].shape == (3, 224, 224) and sample['inputs'].dtype == torch.uint8
        pre = ClsDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1], to_rgb=True)
        batch = pre(dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]))
        rgb = batch['inputs'][0, :, 112, 112]
        # stretched (0, 3000) -> 0..255: B04 ~ 400 > B03 ~ 300 > B02 ~ 200
        assert rgb[0] > rgb[1] > rgb[2]
        assert rgb[0].item() == pytest.approx((400 + 2) * 255 / 3000, abs=2)
