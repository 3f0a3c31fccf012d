"""Opening bitemporal pairs on one grid (mmrs.geo.raster): alignment, overlap, nodata, errors.

Pairs are built from rasterio's real test rasters (``../shared/data/geotiff_rasterio``) by
cropping, shifting and reprojecting them with rasterio.
"""
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window

from mmrs.geo.raster import open_pair, parse_bands


def _write(path: Path, data: np.ndarray, **profile) -> Path:
    """Write ``(C, H, W)`` data as a GeoTIFF."""
    profile = dict(driver='GTiff', count=data.shape[0], height=data.shape[1],
                   width=data.shape[2], dtype=data.dtype, **profile)
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(data)
    return path


def _crop(src_path: Path, out: Path, row: int, col: int, h: int, w: int,
          transform: Affine | None = None) -> Path:
    with rasterio.open(src_path) as src:
        data = src.read(window=Window(col, row, w, h))
        t = transform or src.window_transform(Window(col, row, w, h))
        return _write(out, data, crs=src.crs, transform=t, nodata=src.nodata)


@pytest.fixture
def rgb(geotiff_samples_root: Path) -> Path:
    return geotiff_samples_root / 'RGB.byte.tif'


class TestAlignment:

    def test_self_pair_reads_the_file(self, rgb: Path) -> None:
        with open_pair(rgb, rgb) as pair, rasterio.open(rgb) as src:
            assert (pair.height, pair.width) == src.shape
            assert pair.transform == src.transform and pair.crs == src.crs
            a, b, invalid = pair.read(100, 200, 64, 48)
            expected = src.read(window=Window(200, 100, 48, 64)).transpose(1, 2, 0)
            np.testing.assert_array_equal(a, expected)
            np.testing.assert_array_equal(b, expected)
            np.testing.assert_array_equal(invalid, (expected == 0).all(-1))

    def test_partial_overlap_is_the_common_window(self, rgb: Path, tmp_path: Path) -> None:
        t2 = _crop(rgb, tmp_path / 'b.tif', 50, 60, 400, 900 - 60)  # runs past the right edge
        with open_pair(rgb, t2) as pair, rasterio.open(rgb) as src:
            assert (pair.height, pair.width) == (400, src.width - 60)
            assert pair.transform == src.transform @ Affine.translation(60, 50)
            a, b, _ = pair.read(10, 20, 30, 40)
            np.testing.assert_array_equal(a, b)  # both are date 1's pixels at that place
            np.testing.assert_array_equal(
                a, src.read(window=Window(80, 60, 40, 30)).transpose(1, 2, 0))
        # and the other way round: date 1 is the smaller one
        with open_pair(t2, rgb) as pair:
            assert (pair.height, pair.width) == (400, 791 - 60)
            a, b, _ = pair.read(0, 0, 16, 16)
            np.testing.assert_array_equal(a, b)

    def test_sub_pixel_shift_is_an_error_naming_both_files(self, rgb: Path,
                                                             tmp_path: Path) -> None:
        with rasterio.open(rgb) as src:
            t = src.transform @ Affine.translation(0.5, 0)
        t2 = _crop(rgb, tmp_path / 'half.tif', 0, 0, 718, 791, transform=t)
        with pytest.raises(ValueError, match='not aligned') as err:
            open_pair(rgb, t2)
        assert str(rgb) in str(err.value) and str(t2) in str(err.value)
        assert 'origin' in str(err.value) and '--reproject' in str(err.value)

    def test_other_pixel_size_is_an_error(self, rgb: Path, tmp_path: Path) -> None:
        with rasterio.open(rgb) as src:
            t = src.transform @ Affine.scale(2)
        t2 = _crop(rgb, tmp_path / 'coarse.tif', 0, 0, 300, 300, transform=t)
        with pytest.raises(ValueError, match='pixel size'):
            open_pair(rgb, t2)

    def test_no_overlap_is_an_error(self, rgb: Path, tmp_path: Path) -> None:
        with rasterio.open(rgb) as src:
            t = src.transform @ Affine.translation(5000, 0)
        t2 = _crop(rgb, tmp_path / 'far.tif', 0, 0, 100, 100, transform=t)
        with pytest.raises(ValueError, match='do not overlap') as err:
            open_pair(rgb, t2)
        assert str(t2) in str(err.value)

    def test_rotated_and_custom_wkt_grids_are_kept(self, geotiff_samples_root: Path) -> None:
        for name in ('rotated.tif', 'rgb1.tif'):
            path = geotiff_samples_root / name
            with open_pair(path, path) as pair, rasterio.open(path) as src:
                assert pair.transform == src.transform
                assert pair.crs == src.crs

    def test_one_date_without_georeference(self, rgb: Path, tmp_path: Path) -> None:
        plain = _write(tmp_path / 'plain.tif', np.zeros((3, 718, 791), np.uint8))
        with pytest.raises(ValueError, match='not georeferenced'):
            open_pair(rgb, plain)
        with open_pair(plain, plain) as pair:
            assert pair.transform is None and pair.crs is None


class TestReproject:

    @pytest.fixture
    def lonlat(self, rgb: Path, tmp_path: Path) -> Path:
        with rasterio.open(rgb) as src:
            t, w, h = calculate_default_transform(src.crs, 'EPSG:4326', src.width, src.height,
                                                  *src.bounds)
            data = np.zeros((3, h, w), np.uint8)
            reproject(src.read(), data, src_transform=src.transform, src_crs=src.crs,
                      dst_transform=t, dst_crs='EPSG:4326', src_nodata=0, dst_nodata=0)
        return _write(tmp_path / 'lonlat.tif', data, crs='EPSG:4326', transform=t, nodata=0)

    def test_other_crs_needs_reproject(self, rgb: Path, lonlat: Path) -> None:
        with pytest.raises(ValueError, match='CRS: EPSG:32618 vs EPSG:4326') as err:
            open_pair(rgb, lonlat)
        assert str(rgb) in str(err.value) and str(lonlat) in str(err.value)

    @pytest.mark.parametrize('resampling', ['nearest', 'bilinear'])
    def test_reprojected_date_2_lands_on_date_1(self, rgb: Path, lonlat: Path,
                                                resampling: str) -> None:
        with open_pair(rgb, lonlat, reproject=True, resampling=resampling) as pair, \
                rasterio.open(rgb) as src:
            assert pair.reprojected and pair.crs == src.crs
            assert pair.height <= src.height and pair.width <= src.width
            a, b, invalid = pair.read(0, 0, pair.height, pair.width)
            valid = ~invalid
            assert valid.mean() > 0.5
            diff = np.abs(a[valid].astype(int) - b[valid].astype(int))
            assert np.median(diff) <= 10  # the same scene, resampled twice

    def test_bad_resampling(self, rgb: Path) -> None:
        with pytest.raises(ValueError, match='resampling'):
            open_pair(rgb, rgb, reproject=True, resampling='sharpest')


class TestNodataBandsAndBadInputs:

    def test_all_nodata_is_invalid(self, geotiff_samples_root: Path) -> None:
        path = geotiff_samples_root / 'all-nodata.tif'
        with open_pair(path, path) as pair:
            assert pair.read(0, 0, 64, 64)[2].all()

    def test_nodata_of_either_date_is_invalid(self, tmp_path: Path) -> None:
        profile = dict(crs='EPSG:32631', transform=Affine(10, 0, 0, 0, -10, 0), nodata=-9999)
        a = np.full((2, 20, 30), 100, np.int16)
        b = a.copy()
        a[:, 0, 0] = -9999  # all bands nodata: invalid
        b[:, 5, 5] = -9999
        a[0, 9, 9] = -9999  # one band only: valid (GDAL's dataset-mask rule)
        t1 = _write(tmp_path / 'a.tif', a, **profile)
        t2 = _write(tmp_path / 'b.tif', b, **profile)
        with open_pair(t1, t2) as pair:
            x1, _, invalid = pair.read(0, 0, 20, 30)
            assert x1.dtype == np.int16
            assert invalid[0, 0] and invalid[5, 5] and not invalid[9, 9]
            assert invalid.sum() == 2

    def test_uint16_and_band_selection(self, tmp_path: Path) -> None:
        data = np.arange(4 * 10 * 12, dtype=np.uint16).reshape(4, 10, 12) * 50
        profile = dict(crs='EPSG:32631', transform=Affine(10, 0, 0, 0, -10, 0))
        path = _write(tmp_path / 'u16.tif', data, **profile)
        with open_pair(path, path, bands=parse_bands('4,2')) as pair:
            a, _, _ = pair.read(0, 0, 10, 12)
            assert a.dtype == np.uint16
            np.testing.assert_array_equal(a, data[[3, 1]].transpose(1, 2, 0))
        with pytest.raises(ValueError, match='band selection'):
            open_pair(path, path, bands=[5])
        with pytest.raises(ValueError, match='1-based'):
            parse_bands('0,1')
        with pytest.raises(ValueError, match='comma-separated'):
            parse_bands('r,g,b')

    def test_band_count_mismatch(self, rgb: Path, tmp_path: Path) -> None:
        with rasterio.open(rgb) as src:
            one = _write(tmp_path / 'one.tif', src.read([1]), crs=src.crs,
                         transform=src.transform)
        with pytest.raises(ValueError, match='band count'):
            open_pair(rgb, one)
        with open_pair(rgb, one, bands=[1]) as pair:
            assert pair.bands == [1]

    def test_corrupt_and_missing_inputs_name_the_file(self, rgb: Path, tmp_path: Path) -> None:
        bad = tmp_path / 'corrupt.tif'
        bad.write_bytes(b'II*\x00' + b'\x17' * 200)
        with pytest.raises(OSError, match='corrupt.tif'):
            open_pair(rgb, bad)
        with pytest.raises(FileNotFoundError, match='missing.tif'):
            open_pair(tmp_path / 'missing.tif', rgb)

    def test_truncated_data_names_the_file_on_read(self, rgb: Path, tmp_path: Path) -> None:
        with rasterio.open(rgb) as src:
            data = src.read()
            path = _write(tmp_path / 'trunc.tif', data, crs=src.crs, transform=src.transform,
                          tiled=True, blockxsize=256, blockysize=256, compress='deflate')
        raw = path.read_bytes()
        path.write_bytes(raw[:len(raw) // 2])
        with open_pair(path, path) as pair:
            with pytest.raises(OSError, match='trunc.tif'):
                pair.read(0, 0, pair.height, pair.width)
