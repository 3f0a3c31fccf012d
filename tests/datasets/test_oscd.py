"""OSCD: the release layout, the 13-band stack on the 10 m grid, labels, errors, config.

A tiny OSCD tree is written per test (:func:`make_oscd`) with rasterio, as distributed:
per-band GeoTIFFs at their native pixel size in ``imgs_*`` (UTM, 10/20/60 m transforms that
share the top-left corner), the same bands on the 10 m grid in ``imgs_*_rect``, ``dates.txt``,
``train.txt`` / ``test.txt`` and labels as ``cm/cm.png`` (0/255) and ``cm/<city>-cm.tif``
(1/2). Band values encode ``1000 * band index + 100 * date`` plus a per-pixel term, so a
wrong band order, date or resampling shows in the values.
"""
import warnings
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmrs.datasets import LoadBitemporalBandFiles, OSCDDataset
from mmrs.datasets.oscd import (RGB_BANDS, S2_BANDS, S2_RESOLUTION, TEST_CITIES,
                                TRAIN_CITIES, read_band_stack)
from mmrs.registry import DATASETS

rasterio = pytest.importorskip('rasterio')
from rasterio.transform import Affine  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'datasets' / 'oscd.py'
IMAGES = 'Onera Satellite Change Detection dataset - Images'
LABELS = dict(train='Onera Satellite Change Detection dataset - Train Labels',
              test='Onera Satellite Change Detection dataset - Test Labels')
H, W = 12, 18  # 10 m grid; 20 m bands are 6x9, 60 m bands 2x3
ORIGIN = (500000.0, 4000000.0)
FAST = dict(serialize_data=False)  # skip mmengine's per-dataset gc.collect()
LOAD = [dict(type='LoadBitemporalBandFiles'), dict(type='LoadChangeAnnotations')]


def coarse(band: str, date: int, h: int = H, w: int = W) -> np.ndarray:
    """Values of ``band`` at its native pixel size: constant per native pixel."""
    f = S2_RESOLUTION[band] // 10
    hh, ww = -(-h // f), -(-w // f)
    k = S2_BANDS.index(band)
    pixel = (np.arange(hh * ww) % 97).reshape(hh, ww)  # < 100: keeps the date digit
    return (1000 * k + 100 * date + pixel).astype(np.uint16)


def write_tif(path: Path, arr: np.ndarray, res: float | None) -> None:
    """One-band GeoTIFF; ``res=None`` writes a plain TIFF without georeference."""
    geo = {} if res is None else dict(
        crs='EPSG:32631', transform=Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1]))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, 'w', driver='GTiff', width=arr.shape[1], height=arr.shape[0],
                           count=1, dtype=arr.dtype, **geo) as dst:
            dst.write(arr, 1)


def make_oscd(root: Path, cities: dict | None = None, georef: bool = True,
              bands: dict | None = None) -> Path:
    """Write a fake release; ``cities`` maps name -> split, ``bands`` overrides native arrays
    (``{(city, date, band): array}``). Returns ``root``."""
    cities = cities or dict(alpha='train', beta='test')
    bands = bands or {}
    images = root / IMAGES
    for split in ('train', 'test'):
        images.mkdir(parents=True, exist_ok=True)
        (images / f'{split}.txt').write_text(
            ','.join(c for c, s in cities.items() if s == split) + '\n')
    for c, (city, split) in enumerate(cities.items()):
        for date in (1, 2):
            raw, rect = images / city / f'imgs_{date}', images / city / f'imgs_{date}_rect'
            raw.mkdir(parents=True)
            rect.mkdir()
            for band in S2_BANDS:
                arr = bands.get((city, date, band), coarse(band, date))
                res = S2_RESOLUTION[band] if georef else None
                write_tif(raw / f'S2A_OPER_MSI_L1C_TL_SGS__2016010{date}T1_T31UDQ_{band}.tif',
                          arr, res)
                f = S2_RESOLUTION[band] // 10
                write_tif(rect / f'{band}.tif', np.kron(arr, np.ones((f, f), arr.dtype))[:H, :W],
                          10 if georef else None)
        (images / city / 'dates.txt').write_text('date_1: 20160101\ndate_2: 20170202\n')
        cm = np.zeros((H, W), np.uint8)
        cm[2:5, 3 + c:9] = 1
        folder = root / LABELS[split] / city / 'cm'
        folder.mkdir(parents=True)
        Image.fromarray(cm * 255).save(folder / 'cm.png')
        write_tif(folder / f'{city}-cm.tif', cm + 1, 10 if georef else None)
    return root


def dataset(root: Path, **kwargs) -> OSCDDataset:
    kwargs.setdefault('pipeline', LOAD)
    return OSCDDataset(data_root=str(root), **FAST, **kwargs)


def expected_label(c: int) -> np.ndarray:
    cm = np.zeros((H, W), np.uint8)
    cm[2:5, 3 + c:9] = 1
    return cm


class TestOSCDLayout:

    def test_official_city_lists(self) -> None:
        # train.txt / test.txt of the release, as distributed
        assert TRAIN_CITIES == tuple('aguasclaras,bercy,bordeaux,nantes,paris,rennes,saclay_e,'
                                     'abudhabi,cupertino,pisa,beihai,hongkong,beirut,mumbai'
                                     .split(','))
        assert TEST_CITIES == tuple('brasilia,montpellier,norcia,rio,saclay_w,valencia,dubai,'
                                    'lasvegas,milano,chongqing'.split(','))

    def test_split_files_pick_cities_and_label_folders(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path, dict(alpha='train', gamma='train', beta='test'))
        train, test = dataset(root, split='train'), dataset(root, split='test')
        assert [train.get_data_info(i)['city'] for i in range(len(train))] == ['alpha', 'gamma']
        assert [test.get_data_info(i)['city'] for i in range(len(test))] == ['beta']
        assert LABELS['test'] in test.get_data_info(0)['seg_map_path']
        both = dataset(root, cities=['beta', 'alpha'])  # labels from either label folder
        assert [both.get_data_info(i)['seg_map_path'].split('/')[-4:-2]
                for i in range(2)] == [[LABELS['test'], 'beta'], [LABELS['train'], 'alpha']]
        info = train.get_data_info(0)
        assert info['dates'] == ('20160101', '20170202')
        assert info['img_path'][1].endswith('alpha/imgs_2_rect')
        assert [Path(p).name for p in info['band_paths'][0]] == [f'{b}.tif' for b in S2_BANDS]

    def test_missing_split_file_falls_back_to_official_list(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path, dict(abudhabi='train'))
        (root / IMAGES / 'train.txt').unlink()
        with pytest.raises(FileNotFoundError, match="unknown city 'aguasclaras'"):
            dataset(root, split='train')  # first official train city, absent here

    def test_unknown_city_in_list(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path)
        (root / IMAGES / 'train.txt').write_text('alpha,atlantis')
        with pytest.raises(FileNotFoundError, match="unknown city 'atlantis'.*train.txt"):
            dataset(root, split='train')

    def test_bad_arguments(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path)
        with pytest.raises(ValueError, match='no validation split'):
            dataset(root, split='val')
        with pytest.raises(ValueError, match="unknown Sentinel-2 band.*'B13'"):
            dataset(root, bands=('B02', 'B13'))

    def test_missing_band_file_names_folder_and_band(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path)
        (root / IMAGES / 'alpha' / 'imgs_2_rect' / 'B8A.tif').unlink()
        with pytest.raises(FileNotFoundError, match=r'B8A\.tif.*alpha/imgs_2_rect'):
            dataset(root, split='train')
        assert len(dataset(root, split='train', bands=RGB_BANDS)) == 1  # B8A not needed

    def test_missing_label(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path)
        (root / LABELS['train'] / 'alpha' / 'cm' / 'cm.png').unlink()
        with pytest.raises(FileNotFoundError, match=r"label of city 'alpha'.*cm\.png"):
            dataset(root, split='train')
        unlabelled = dataset(root, split='train', with_label=False)
        assert unlabelled.get_data_info(0)['seg_map_path'] is None
        assert 'gt_seg_map' not in unlabelled[0]
        assert len(dataset(root, split='train', label_format='tif')) == 1


class TestOSCDStack:

    def test_rect_stack_order_dates_and_geo_meta(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path)
        sample = dataset(root, split='train')[0]
        img1, img2 = sample['img']
        assert img1.shape == (H, W, 13) and img1.dtype == np.uint16
        for k in range(13):
            assert (img1[..., k] // 1000 == k).all() and (img1[..., k] % 1000 // 100 == 1).all()
            assert (img2[..., k] % 1000 // 100 == 2).all()
        meta = sample['geo_meta'][0]
        assert meta['transform'] == (10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
        assert 'EPSG' in meta['crs'] or 'UTM' in meta['crs']
        assert meta['count'] == 13 and sample['geo_meta'][1] == meta

    def test_band_subset_in_given_order(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path)
        img = dataset(root, split='train', bands=RGB_BANDS)[0]['img'][0]
        assert img.shape == (H, W, 3)
        assert [int(img[0, 0, c]) // 1000 for c in range(3)] == [3, 2, 1]  # B04, B03, B02

    @pytest.mark.parametrize('georef', [True, False])
    def test_native_bands_nearest_equal_kron(self, tmp_path: Path, georef: bool) -> None:
        root = make_oscd(tmp_path, dict(alpha='train'), georef=georef)
        ds = dataset(root, split='train', rect=False,
                     pipeline=[dict(type='LoadBitemporalBandFiles', resampling='nearest')])
        img = ds[0]['img'][1]
        for band in ('B02', 'B05', 'B8A', 'B01', 'B10'):
            f = S2_RESOLUTION[band] // 10
            want = np.kron(coarse(band, 2), np.ones((f, f), int))[:H, :W]
            np.testing.assert_array_equal(img[..., S2_BANDS.index(band)], want, err_msg=band)
        assert (ds[0]['geo_meta'][0]['transform'] is None) == (not georef)

    def test_native_20m_bilinear_interpolates_between_pixel_centres(self,
                                                                    tmp_path: Path) -> None:
        # a plane over the 20 m pixel centres: bilinear reproduces it at every 10 m centre
        # (clamped at the outer half-pixel ring, where there is no neighbour beyond the edge)
        ramp = (100 + 80 * np.arange(6)[:, None] + 20 * np.arange(9)[None]).astype(np.uint16)
        root = make_oscd(tmp_path, dict(alpha='train'), bands={('alpha', 1, 'B11'): ramp})
        img = dataset(root, split='train', rect=False)[0]['img'][0]  # default: bilinear
        v = np.clip((np.arange(H) + 0.5) / 2 - 0.5, 0, 5)  # row in 20 m pixel-centre units
        u = np.clip((np.arange(W) + 0.5) / 2 - 0.5, 0, 8)
        want = 100 + 80 * v[:, None] + 20 * u[None]
        np.testing.assert_allclose(img[..., S2_BANDS.index('B11')], want, atol=0.5)

    def test_odd_grid_pads_or_crops_the_last_coarse_pixel(self, tmp_path: Path) -> None:
        # no georeference: 10 m grid 12x17; the 20 m band is 6x9 (one 10 m column too many)
        # and date 2's B05 is 6x8 (one short): cropped / edge-padded like the official code
        short = coarse('B05', 2)[:, :8]
        root = make_oscd(tmp_path, dict(alpha='train'), georef=False, bands={
            ('alpha', 1, 'B02'): coarse('B02', 1)[:, :17],
            ('alpha', 2, 'B05'): short})
        ds = dataset(root, split='train', rect=False, bands=('B02', 'B05'),
                     pipeline=[dict(type='LoadBitemporalBandFiles', resampling='nearest')])
        img1, img2 = ds[0]['img']
        assert img1.shape == img2.shape == (H, 17, 2)
        np.testing.assert_array_equal(
            img1[..., 1], np.kron(coarse('B05', 1), np.ones((2, 2), int))[:, :17])
        want = np.pad(np.kron(short, np.ones((2, 2), int)), ((0, 0), (0, 1)), mode='edge')
        np.testing.assert_array_equal(img2[..., 1], want)

    @pytest.mark.parametrize('georef', [True, False])
    def test_mismatched_extent_names_the_file(self, tmp_path: Path, georef: bool) -> None:
        root = make_oscd(tmp_path, dict(alpha='train'), georef=georef,
                         bands={('alpha', 1, 'B06'): coarse('B06', 1)[:3]})  # half the rows
        ds = dataset(root, split='train', rect=False)
        with pytest.raises(ValueError, match=r'_B06\.tif.*extent'):
            ds[0]

    def test_band_in_other_crs(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path, dict(alpha='train'))
        path = next((root / IMAGES / 'alpha' / 'imgs_2').glob('*_B07.tif'))
        with rasterio.open(path, 'r+') as dst:
            dst.crs = 'EPSG:32632'
        with pytest.raises(ValueError, match=r'_B07\.tif.*another CRS'):
            dataset(root, split='train', rect=False)[0]

    def test_loader_finds_bands_from_img_path_alone(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path)
        info = dataset(root, split='train').get_data_info(0)
        full = dataset(root, split='train')[0]['img'][0]
        alone = LoadBitemporalBandFiles()(dict(img_path=info['img_path']))['img'][0]
        np.testing.assert_array_equal(alone, full)
        (root / IMAGES / 'alpha' / 'imgs_1_rect' / 'B8A.tif').unlink()
        with pytest.raises(FileNotFoundError, match='B8A'):
            LoadBitemporalBandFiles()(dict(img_path=info['img_path']))

    def test_read_band_stack_rejects_bad_resampling(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match='resampling'):
            read_band_stack(['a.tif'], ['B02'], 'a.tif', resampling='lanczos')


class TestOSCDLabels:

    @pytest.mark.parametrize('label_format', ['png', 'tif'])
    def test_labels_decode_to_0_1(self, tmp_path: Path, label_format: str) -> None:
        root = make_oscd(tmp_path)
        for c, split in enumerate(('train', 'test')):
            sample = dataset(root, split=split, label_format=label_format)[0]
            np.testing.assert_array_equal(sample['gt_seg_map'], expected_label(c))

    def test_png_with_tif_values_is_an_error(self, tmp_path: Path) -> None:
        root = make_oscd(tmp_path)
        path = root / LABELS['train'] / 'alpha' / 'cm' / 'cm.png'
        Image.fromarray(expected_label(0) + 1).save(path)  # 1/2 stored in the png
        with pytest.raises(ValueError, match='cm.png'):
            dataset(root, split='train')[0]


def test_config_builds_and_runs(tmp_path: Path) -> None:
    root = make_oscd(tmp_path)
    cfg = Config.fromfile(str(CONFIG))
    assert len(cfg.oscd_mean) == len(cfg.oscd_std) == len(cfg.bands) == 13
    for loader, city in ((cfg.train_dataloader, 'alpha'), (cfg.test_dataloader, 'beta')):
        loader.dataset.update(data_root=str(root), **FAST)
        ds = DATASETS.build(loader.dataset)
        assert [ds.get_data_info(i)['city'] for i in range(len(ds))] == [city]
        out = ds[0]
        shape = tuple(out['inputs'].shape)  # crop 256 clipped to the city, maybe rotated
        assert shape[:2] == (2, 13) and sorted(shape[2:]) == sorted((H, W))
        assert out['data_samples'].gt_sem_seg.data.shape[1:] == shape[2:]
        assert out['data_samples'].metainfo['geo_meta'][0]['crs'] is not None
        # the city names the prediction file (every date folder is called imgs_1_rect)
        assert out['data_samples'].metainfo['sample_name'] == city


def test_tif_label_outside_1_2_is_an_error(tmp_path: Path) -> None:
    """The tif change maps are 1/2: a 0 (e.g. a re-export that wrote 0/1) names the file."""
    root = make_oscd(tmp_path)
    path = root / LABELS['train'] / 'alpha' / 'cm' / 'alpha-cm.tif'
    with rasterio.open(path, 'r+') as dst:
        dst.write(dst.read(1) - 1, 1)  # 0/1 instead of 1/2
    with pytest.raises(ValueError, match='alpha-cm.tif'):
        dataset(root, split='train', label_format='tif')[0]
