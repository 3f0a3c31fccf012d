"""BitemporalPhotoMetricDistortion on non-uint8 data: value ranges and nodata, by hand.

The random draws are scripted (``np.random.randint`` / ``np.random.uniform`` replaced by
lists of answers), so every expected value below is worked out on paper from the tile.
Draw order per date (mmseg's): brightness?, [delta], contrast-first?, contrast?, [alpha]
(and, for 3-band uint8 only, saturation / hue; then contrast when it comes last).
"""
import numpy as np
import pytest

from mmrs.datasets.transforms import BitemporalPhotoMetricDistortion

NODATA = -9999


def script(monkeypatch, ints: list[int], floats: list[float]) -> None:
    """Make the transform's draws return ``ints`` / ``floats`` in order."""
    ints, floats = list(ints), list(floats)
    monkeypatch.setattr(np.random, 'randint', lambda *a, **k: ints.pop(0))
    monkeypatch.setattr(np.random, 'uniform', lambda *a, **k: floats.pop(0))


def contrast_only(alpha: float) -> tuple[list[int], list[float]]:
    """No brightness, contrast first and applied with ``alpha``."""
    return [0, 1, 1], [alpha]


def brightness_only(delta: float) -> tuple[list[int], list[float]]:
    """Brightness ``delta`` (0-255 units), contrast last and skipped."""
    return [1, 0, 0], [delta]


@pytest.fixture
def int16_tile() -> np.ndarray:
    """2x3x2 int16. Band 0 valid values 50..1000, band 1 valid 10..40, nodata -9999.

    Pixel (1, 0) is nodata in both bands; pixel (1, 1) only in band 1.
    """
    return np.array([[[50, 10], [100, 20], [1000, 30]],
                     [[NODATA, NODATA], [300, NODATA], [50, 40]]], np.int16)


def run(tile: np.ndarray, nodata: float | None, **kwargs) -> list[np.ndarray]:
    results = dict(img=[tile.copy(), tile.copy()],
                   geo_meta=[dict(nodata=nodata), dict(nodata=nodata)])
    return BitemporalPhotoMetricDistortion(**kwargs)(results)['img']


class TestInt16:

    def test_contrast_pivots_on_the_valid_band_minimum(self, monkeypatch, int16_tile):
        ints, floats = contrast_only(1.2)
        script(monkeypatch, ints * 2, floats * 2)
        out = run(int16_tile, NODATA)
        # band 0: low 50 -> 50 + (v - 50) * 1.2; band 1: low 10 -> 10 + (v - 10) * 1.2
        want = np.array([[[50, 10], [110, 22], [1190, 34]],
                         [[NODATA, NODATA], [350, NODATA], [50, 46]]], np.int16)
        for o in out:
            assert o.dtype == np.int16
            np.testing.assert_array_equal(o, want)  # old code: 100 -> 6674

    def test_brightness_scaled_to_each_band_range(self, monkeypatch, int16_tile):
        ints, floats = brightness_only(25.5)
        script(monkeypatch, ints * 2, floats * 2)
        out = run(int16_tile, NODATA)
        # shift = 25.5 * (high - low) / 255: band 0 = 0.1 * 950 = 95, band 1 = 0.1 * 30 = 3
        want = np.array([[[145, 13], [195, 23], [1095, 33]],
                         [[NODATA, NODATA], [395, NODATA], [145, 43]]], np.int16)
        np.testing.assert_array_equal(out[0], want)

    def test_dates_use_their_own_draws(self, monkeypatch, int16_tile):
        (i1, f1), (i2, f2) = brightness_only(25.5), contrast_only(1.2)
        script(monkeypatch, i1 + i2, f1 + f2)
        out = run(int16_tile, NODATA)
        assert out[0][0, 1, 0] == 195 and out[1][0, 1, 0] == 110

    def test_nodata_configured_by_the_dataset_wins(self, monkeypatch, int16_tile):
        ints, floats = brightness_only(25.5)
        script(monkeypatch, ints * 2, floats * 2)
        tile = int16_tile.copy()
        tile[tile == NODATA] = 0  # data where 0 means nodata, file tag says nothing
        results = dict(img=[tile.copy(), tile.copy()], nodata=0.0,
                       geo_meta=[dict(nodata=None)] * 2)
        out = BitemporalPhotoMetricDistortion()(results)['img'][0]
        assert out[1, 0, 0] == 0 and out[1, 1, 1] == 0
        assert out[0, 1, 0] == 195


class TestUint16:

    @pytest.fixture
    def tile(self) -> np.ndarray:
        t = np.array([[1000, 3000], [5000, 0]], np.uint16)[..., None]
        return np.repeat(t, 2, axis=2)  # two equal bands; 0 = nodata

    def test_measured_range_not_dtype_range(self, monkeypatch, tile):
        ints, floats = brightness_only(51)
        script(monkeypatch, ints * 2, floats * 2)
        out = run(tile, 0)
        # valid range 1000..5000: shift 51 * 4000 / 255 = 800 (old code: 51 * 65535 / 255)
        want = np.array([[1800, 3800], [5800, 0]], np.uint16)
        np.testing.assert_array_equal(out[0][..., 0], want)
        np.testing.assert_array_equal(out[0][..., 1], want)

    def test_configured_value_range(self, monkeypatch, tile):
        ints, floats = brightness_only(51)
        script(monkeypatch, ints * 2, floats * 2)
        out = run(tile, 0, value_range=(0, 4095))
        # shift 51 * 4095 / 255 = 819 (the range sets the scale); nodata kept at 0
        want = np.array([[1819, 3819], [5819, 0]], np.uint16)
        np.testing.assert_array_equal(out[1][..., 0], want)

    def test_contrast_then_clip_to_dtype(self, monkeypatch, tile):
        ints, floats = contrast_only(20.0)
        script(monkeypatch, ints * 2, floats * 2)
        out = run(tile, 0)
        # 1000 + (v - 1000) * 20: 3000 -> 41000, 5000 -> 81000 clipped to 65535
        want = np.array([[1000, 41000], [65535, 0]], np.uint16)
        np.testing.assert_array_equal(out[0][..., 0], want)


class TestFloatAndUint8:

    def test_float_nan_nodata_kept(self, monkeypatch):
        tile = np.array([[0.1, 0.3], [0.5, np.nan]], np.float32)[..., None]
        ints, floats = brightness_only(25.5)
        script(monkeypatch, ints * 2, floats * 2)
        out = run(tile, float('nan'))[0]
        # range 0.1..0.5 (NaN left out): shift 0.1 * 0.4 = 0.04
        np.testing.assert_allclose(out[..., 0].ravel()[:3], [0.14, 0.34, 0.54], atol=1e-6)
        assert np.isnan(out[1, 1, 0]) and out.dtype == np.float32

    def test_uint8_keeps_nodata_collar(self, monkeypatch):
        tile = np.full((2, 2, 3), 100, np.uint8)
        tile[0, 0] = 0  # nodata collar pixel (RGB.byte.tif style, nodata 0)
        # brightness +20, contrast last skipped, no saturation, no hue
        script(monkeypatch, [1, 0, 0, 0, 0] * 2, [20.0] * 2)
        out = run(tile, 0)[0]
        np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
        np.testing.assert_array_equal(out[1, 1], [120, 120, 120])  # uint8: 0-255 range

    def test_all_nodata_tile_unchanged(self, monkeypatch):
        tile = np.full((2, 2, 1), NODATA, np.int16)
        ints, floats = brightness_only(25.5)
        script(monkeypatch, ints * 2, floats * 2)
        np.testing.assert_array_equal(run(tile, NODATA)[0], tile)

    def test_bad_value_range(self):
        with pytest.raises(ValueError, match='value_range'):
            BitemporalPhotoMetricDistortion(value_range=(10, 10))
