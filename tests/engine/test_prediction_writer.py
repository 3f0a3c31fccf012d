"""``ChangePredictionWriterHook``: predictions written at the original size, 0/1/255.

Files are read back with rasterio / OpenCV and compared with what was written: values,
nodata pixels, CRS, transform and the nodata tag.
"""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import torch
from mmengine.structures import PixelData
from rasterio.crs import CRS
from rasterio.transform import Affine

from mmrs.datasets.transforms import PackChangeInputs, PairedPad, PairedResize
from mmrs.engine.hooks import ChangePredictionWriterHook
from mmrs.engine.hooks import prediction_writer_hook as writer_module
from mmrs.registry import HOOKS
from mmrs.structures import ChangeDataSample

H, W = 7, 9
WKT = CRS.from_epsg(32618).to_wkt()
TRANSFORM = (30.0, 0.0, 101985.0, 0.0, -30.0, 2826915.0)


def pred_map(seed: int = 0, high: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, (H, W))


def make_sample(stem: str = 'tile', geo: bool = True, nodata: np.ndarray | None = None,
                semantic: bool = False) -> ChangeDataSample:
    meta = dict(img_path=[f'/data/A/{stem}.tif', f'/data/B/{stem}.tif'], ori_shape=(H, W))
    if geo:
        meta['geo_meta'] = [dict(crs=WKT, transform=TRANSFORM, nodata=0.0, count=3,
                                 dtype='uint8'), dict(crs=WKT, transform=TRANSFORM)]
    sample = ChangeDataSample(metainfo=meta)
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred_map())[None])
    if semantic:
        sample.pred_sem_seg_from = PixelData(data=torch.from_numpy(pred_map(1, 7))[None])
        sample.pred_sem_seg_to = PixelData(data=torch.from_numpy(pred_map(2, 7))[None])
    if nodata is not None:
        sample.nodata_mask = PixelData(data=torch.from_numpy(nodata)[None])
    return sample


def nodata_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[:2, :3] = True
    mask[-1, -1] = True
    return mask


def run_hook(tmp_path: Path, samples: list) -> Path:
    hook = HOOKS.build(dict(type='mmrs.ChangePredictionWriterHook', out_dir=str(tmp_path)))
    assert isinstance(hook, ChangePredictionWriterHook)
    hook.before_test(None)
    hook.after_test_iter(None, 0, {}, samples)
    return tmp_path


def test_geotiff_with_georeference_and_nodata(tmp_path: Path) -> None:
    mask = nodata_mask()
    run_hook(tmp_path, [make_sample(nodata=mask)])
    assert sorted(os.listdir(tmp_path)) == ['tile.tif']  # nothing else left behind
    with rasterio.open(tmp_path / 'tile.tif') as src:
        assert src.count == 1 and src.dtypes == ('uint8', )
        assert src.crs == CRS.from_epsg(32618)
        assert tuple(src.transform)[:6] == pytest.approx(TRANSFORM)
        assert src.nodata == 255
        values = src.read(1)
    expected = pred_map().astype(np.uint8)
    expected[mask] = 255
    np.testing.assert_array_equal(values, expected)
    assert set(np.unique(values)) == {0, 1, 255}


def test_png_without_georeference(tmp_path: Path) -> None:
    run_hook(tmp_path, [make_sample(geo=False, nodata=nodata_mask())])
    values = cv2.imread(str(tmp_path / 'tile.png'), cv2.IMREAD_UNCHANGED)
    assert values.dtype == np.uint8 and values.shape == (H, W)
    assert (values[nodata_mask()] == 255).all()
    np.testing.assert_array_equal(values[~nodata_mask()], pred_map()[~nodata_mask()])


def test_semantic_maps_written_beside(tmp_path: Path) -> None:
    run_hook(tmp_path, [make_sample(semantic=True, nodata=nodata_mask())])
    assert sorted(os.listdir(tmp_path)) == ['tile.tif', 'tile_from.tif', 'tile_to.tif']
    for suffix, seed in (('_from', 1), ('_to', 2)):
        with rasterio.open(tmp_path / f'tile{suffix}.tif') as src:
            values = src.read(1)
            assert src.nodata == 255 and src.crs == CRS.from_epsg(32618)
        np.testing.assert_array_equal(values[~nodata_mask()], pred_map(seed, 7)[~nodata_mask()])
        assert (values[nodata_mask()] == 255).all()


def test_original_grid_georeference_after_test_time_resize(tmp_path: Path) -> None:
    """The pipeline resized and padded: the prediction (at ori_shape) gets the source grid."""
    results = dict(img=[np.zeros((H, W, 3), np.uint8)] * 2, img_shape=(H, W),
                   ori_shape=(H, W), img_path=['/d/A/scene.tif', '/d/B/scene.tif'],
                   geo_meta=[dict(crs=WKT, transform=TRANSFORM), dict(crs=WKT,
                                                                       transform=TRANSFORM)],
                   seg_fields=[])
    for step in (PairedResize((18, 14), keep_ratio=False), PairedPad(size_divisor=8)):
        results = step(results)
    sample = PackChangeInputs()(results)['data_samples']
    assert sample.geo_meta[0]['transform'] != TRANSFORM  # the pipeline grid moved
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred_map())[None])
    run_hook(tmp_path, [sample])
    with rasterio.open(tmp_path / 'scene.tif') as src:
        assert src.transform == Affine(*TRANSFORM) and (src.height, src.width) == (H, W)


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(writer_module.cv2, 'imwrite', broken)
    with pytest.raises(OSError, match='disk full'):
        run_hook(tmp_path, [make_sample(geo=False)])
    assert os.listdir(tmp_path) == []


def test_errors_name_the_samples(tmp_path: Path) -> None:
    a, b = make_sample('same'), make_sample('same')
    b.set_metainfo(dict(img_path=['/other/A/same.tif', '/other/B/same.tif']))
    with pytest.raises(ValueError, match=r"share the file stem 'same'"):
        run_hook(tmp_path, [a, b])
    bad = make_sample(nodata=np.zeros((H + 1, W), bool))
    with pytest.raises(ValueError, match='nodata_mask of img_path=.*tile'):
        run_hook(tmp_path / 'x', [bad])
    wrong_size = make_sample()
    wrong_size.set_metainfo(dict(ori_shape=(H * 2, W)))
    with pytest.raises(ValueError, match='not the original size'):
        run_hook(tmp_path / 'y', [wrong_size])


def test_folder_samples_are_named_by_sample_name(tmp_path: Path) -> None:
    """OSCD-style samples (date 1 = a folder of band files, the same folder name for every
    city) are written as ``<sample_name>.tif``, one file per city."""
    samples = []
    for city in ('paris', 'rennes'):
        sample = make_sample()
        sample.set_metainfo(dict(
            img_path=[f'/oscd/{city}/imgs_1_rect', f'/oscd/{city}/imgs_2_rect'],
            sample_name=city))
        samples.append(sample)
    run_hook(tmp_path, samples)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['paris.tif', 'rennes.tif']
