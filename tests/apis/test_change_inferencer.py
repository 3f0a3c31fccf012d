"""Whole-scene change detection (mmrs.apis.ChangeDetectionInferencer) on small GeoTIFF pairs.

The model is a tiny FC-Siam-diff (the sweep's tiny widths) briefly fitted to the synthetic
scene, so that, like a trained model, it is confident away from its decision boundary; a
random-weight model sits at p = 0.5 +- 0.01 everywhere and any border effect flips it.
"""
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from scipy import ndimage

from mmrs.apis import ChangeDetectionInferencer
from mmrs.geo.raster import open_pair
from mmrs.geo.tiling import Tile

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
H, W = 300, 260
TINY = '''
_base_ = ['{root}/configs/_base_/models/fc_siam_diff.py',
          '{root}/configs/_base_/datasets/synthetic.py']
default_scope = 'mmrs'
model = dict(backbone=dict(channels=(4, 8, 16, 32)),
             decode_head=dict(in_channels=(4, 8, 16, 32, 32), decoder_channels=(4, 8, 16, 32)))
'''
PROFILE = dict(driver='GTiff', crs='EPSG:32631', transform=Affine(2, 0, 500000, 0, -2, 5000000))


def write_tif(path: Path, data: np.ndarray, **extra) -> Path:
    profile = dict(PROFILE, count=data.shape[0], height=data.shape[1], width=data.shape[2],
                   dtype=data.dtype, **extra)
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(data)
    return path


def make_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth texture (date 1), the same with 12 repainted rectangles (date 2), the change."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((3, H, W)), (0, 3, 3))
    base = ((base - base.min()) / np.ptp(base) * 255).astype(np.uint8)
    after = base.copy()
    for _ in range(12):
        y, x = rng.integers(0, H - 40), rng.integers(0, W - 40)
        after[:, y:y + 30, x:x + 35] = rng.integers(0, 255, (3, 1, 1))
    return base, after, (base != after).any(0)


def fit(inferencer: ChangeDetectionInferencer, t1: np.ndarray, t2: np.ndarray,
        label: np.ndarray, target: float = 0.985, max_steps: int = 200) -> float:
    """Adam steps on the whole scene (the data preprocessor's normalisation) until the model
    is about as sure as a trained one (``target`` pixel accuracy); returns that accuracy.

    The model is fitted in eval mode. Fitted in train mode, its BatchNorm running statistics
    lag the weights, the eval-mode model is a different, worse one, and which one depends on
    the CPU's floating-point paths: a fixed 50 train-mode steps gave 98.4% accuracy and 0.03%
    tiled/whole disagreement on one CPU, 1.85% disagreement on another (and 86% accuracy for
    another scene). Fitting the model that is evaluated, to an accuracy checked on it, gives
    the same kind of model everywhere (12 initialisations, 1 and 2 threads: <= 0.07%)."""
    model = inferencer.model
    torch.manual_seed(0)
    pre = model.data_preprocessor
    x = torch.from_numpy(np.stack([t1, t2])).float()[None]
    x = (x - pre.mean.view(1, 1, 3, 1, 1)) / pre.std.view(1, 1, 3, 1, 1)
    ph, pw = -H % 32, -W % 32
    x = torch.nn.functional.pad(x, (0, pw, 0, ph))
    y = torch.nn.functional.pad(torch.from_numpy(label.astype(np.int64))[None], (0, pw, 0, ph),
                                value=255)
    meta = [dict(img_shape=tuple(x.shape[-2:]), pad_shape=tuple(x.shape[-2:]))]
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.eval()
    accuracy = 0.0
    for _ in range(max_steps):
        logits = model.encode_decode(x, meta)
        accuracy = (logits.argmax(1) == y)[y != 255].float().mean().item()
        if accuracy >= target:
            break
        loss = torch.nn.functional.cross_entropy(  # change is ~13% of the scene: balance it
            logits, y, weight=torch.tensor([1.0, 4.0]), ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return accuracy


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('infer')
    config = root / 'tiny.py'
    config.write_text(TINY.format(root=REPO))
    t1, t2, label = make_scene()
    torch.manual_seed(0)
    inferencer = ChangeDetectionInferencer(str(config))
    accuracy = fit(inferencer, t1, t2, label)
    assert accuracy >= 0.985, f'the fixture model did not fit the scene ({accuracy:.3f})'
    checkpoint = root / 'tiny.pth'
    torch.save(dict(state_dict=inferencer.model.state_dict(), meta=dict()), checkpoint)
    inferencer = ChangeDetectionInferencer(str(config), str(checkpoint))  # the loading path
    paths = write_tif(root / 't1.tif', t1), write_tif(root / 't2.tif', t2)
    with open_pair(*paths) as pair:
        tile = Tile(0, 0, 0, 0, H, W)
        img1, img2, invalid = pair.read(0, 0, H, W)
        whole = inferencer.predict_tiles(pair, [tile], [inferencer.prepare_tile(
            pair, tile, img1, img2, invalid)])[0][0]
    return dict(root=root, config=config, checkpoint=checkpoint, inferencer=inferencer,
                paths=paths, whole=whole, label=label)


def _seam_band(grid_stride: int, overlap: int) -> np.ndarray:
    seam = np.zeros((H, W), bool)
    for s in range(grid_stride, H, grid_stride):
        seam[s - 4:s + overlap + 4] = True
    for s in range(grid_stride, W, grid_stride):
        seam[:, s - 4:s + overlap + 4] = True
    return seam


class TestTiledEqualsWhole:

    def test_agreement_and_no_seams(self, setup: dict, tmp_path: Path) -> None:
        whole = setup['whole'] > 0.5
        assert 0.03 < whole.mean() < 0.6  # a real decision, not a constant map
        out = tmp_path / 'change.tif'
        summary = setup['inferencer'](*setup['paths'], out, tile=128, overlap=32, batch=4,
                                      quiet=True, probability='float32')
        assert 'tile=128 overlap=32 stride=96 blending=cosine' in summary.protocol
        with rasterio.open(out) as dst:
            tiled, prob = dst.read(1), dst.read(2)
        disagree = tiled != whole
        assert 1 - disagree.mean() >= 0.995
        seam = _seam_band(96, 32)
        assert disagree[seam].mean() <= max(3 * disagree[~seam].mean(), 0.005)
        # the blended probabilities follow the whole-image ones everywhere
        assert np.abs(prob - setup['whole']).mean() < 0.02
        # what tools/test.py would score on the scene: the same F1 within 0.5 points
        label = setup['label']

        def f1(pred: np.ndarray) -> float:
            tp = (pred & label).sum()
            return 2 * tp / (pred.sum() + label.sum())

        assert abs(f1(tiled == 1) - f1(whole)) <= 0.005
        assert summary.changed_pixels == int(tiled.sum())
        assert summary.changed_area == pytest.approx(4.0 * tiled.sum())  # 2 m pixels

    def test_batch_size_does_not_change_the_result(self, setup: dict, tmp_path: Path) -> None:
        maps = []
        for batch in (1, 5):
            out = tmp_path / f'b{batch}.tif'
            setup['inferencer'](*setup['paths'], out, tile=128, overlap=32, batch=batch,
                                quiet=True, probability=True)
            with rasterio.open(out) as dst:
                maps.append(dst.read())
                assert dst.descriptions == ('change_class', 'change_probability')
        np.testing.assert_array_equal(maps[0], maps[1])


class TestOutputs:

    def test_georeference_nodata_and_probability_band(self, setup: dict,
                                                      tmp_path: Path) -> None:
        t1 = rasterio.open(setup['paths'][0]).read()
        t1[:, :20, :] = 0  # a nodata collar in date 1 only
        a = write_tif(tmp_path / 'a.tif', t1, nodata=0)
        out = tmp_path / 'out.tif'
        setup['inferencer'](a, setup['paths'][1], out, probability=True, tile=128, overlap=32,
                            quiet=True)
        with rasterio.open(out) as dst, rasterio.open(a) as src:
            assert dst.crs == src.crs and dst.transform == src.transform
            assert dst.nodata == 255 and dst.count == 2 and dst.dtypes[0] == 'uint8'
            assert dst.profile['tiled'] and dst.compression is not None
            cls, prob = dst.read(1), dst.read(2)
            assert (cls[:20] == 255).all() and (prob[:20] == 255).all()
            assert set(np.unique(cls[20:])) <= {0, 1}
            assert dst.scales[1] == pytest.approx(1 / 254)
            stored = prob[20:].astype(int)  # round(p * 254); 127 is p = 0.5 +- 1/508
            assert (cls[20:][stored >= 128] == 1).all() and (cls[20:][stored <= 126] == 0).all()
            assert (stored >= 128).any()

    def test_cog_has_overviews(self, setup: dict, tmp_path: Path) -> None:
        out = tmp_path / 'cog.tif'
        setup['inferencer'](*setup['paths'], out, tile=128, overlap=32, cog=True, quiet=True)
        with rasterio.open(out) as dst:
            assert dst.overviews(1) and dst.crs is not None
        assert sorted(p.name for p in tmp_path.iterdir()) == ['cog.tif']

    def test_existing_output_is_refused_without_overwrite(self, setup: dict,
                                                          tmp_path: Path) -> None:
        out = tmp_path / 'exists.tif'
        out.write_bytes(b'keep me')
        with pytest.raises(FileExistsError, match='exists'):
            setup['inferencer'](*setup['paths'], out, quiet=True)
        assert out.read_bytes() == b'keep me'
        setup['inferencer'](*setup['paths'], out, quiet=True, overwrite=True, tile=128,
                            overlap=32)
        with rasterio.open(out) as dst:
            assert dst.shape == (H, W)

    def test_interrupt_leaves_no_partial_output(self, setup: dict, tmp_path: Path,
                                                monkeypatch) -> None:
        inferencer = setup['inferencer']
        calls = []
        original = type(inferencer).predict_tiles

        def interrupted(self, pair, tiles, inputs):
            calls.append(len(tiles))
            if len(calls) == 2:
                raise KeyboardInterrupt
            return original(self, pair, tiles, inputs)

        monkeypatch.setattr(type(inferencer), 'predict_tiles', interrupted)
        with pytest.raises(KeyboardInterrupt):
            inferencer(*setup['paths'], tmp_path / 'never.tif', tile=128, overlap=32, batch=2,
                       quiet=True)
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize('dtype,scale', [('uint16', 200), ('int16', 100)])
    def test_16_bit_inputs(self, setup: dict, tmp_path: Path, dtype: str, scale: int) -> None:
        pair = [rasterio.open(p).read().astype(dtype) * scale for p in setup['paths']]
        paths = [write_tif(tmp_path / f'{i}.tif', d) for i, d in enumerate(pair)]
        out = tmp_path / 'out.tif'
        summary = setup['inferencer'](*paths, out, tile=128, overlap=32, quiet=True)
        with rasterio.open(out) as dst:
            assert dst.shape == (H, W) and summary.valid_pixels == H * W

    def test_partial_overlap_and_reprojection(self, setup: dict, tmp_path: Path) -> None:
        t2 = rasterio.open(setup['paths'][1]).read()
        shifted = write_tif(tmp_path / 'shifted.tif', t2[:, 40:, 30:],
                            transform=PROFILE['transform'] @ Affine.translation(30, 40))
        out = tmp_path / 'common.tif'
        setup['inferencer'](setup['paths'][0], shifted, out, tile=128, overlap=32, quiet=True)
        with rasterio.open(out) as dst:
            assert dst.shape == (H - 40, W - 30)
            assert dst.transform == PROFILE['transform'] @ Affine.translation(30, 40)
        half = write_tif(tmp_path / 'half.tif', t2,
                         transform=PROFILE['transform'] @ Affine.translation(10.5, 10.5))
        with pytest.raises(ValueError, match='not aligned'):
            setup['inferencer'](setup['paths'][0], half, tmp_path / 'x.tif', quiet=True)
        out = tmp_path / 'warped.tif'
        summary = setup['inferencer'](setup['paths'][0], half, out, tile=128, overlap=32,
                                      reproject=True, quiet=True)
        with rasterio.open(out) as dst:  # date 2 starts 10.5 px in: the common area
            assert dst.shape == (H - 10, W - 10)
            assert dst.transform == PROFILE['transform'] @ Affine.translation(10, 10)
        assert (H - 11) * (W - 11) <= summary.valid_pixels <= (H - 10) * (W - 10)

    def test_all_nodata_scene(self, setup: dict, tmp_path: Path) -> None:
        zeros = write_tif(tmp_path / 'z.tif', np.zeros((3, 50, 60), np.uint8), nodata=0)
        out = tmp_path / 'z_out.tif'
        summary = setup['inferencer'](zeros, zeros, out, tile=128, overlap=32, quiet=True)
        assert summary.skipped == summary.tiles == 1 and summary.changed_pixels == 0
        with rasterio.open(out) as dst:
            assert (dst.read(1) == 255).all()

    def test_checkpoint_that_does_not_fit(self, setup: dict, tmp_path: Path) -> None:
        state = torch.load(setup['checkpoint'])['state_dict']
        state.pop(next(iter(state)))
        bad = tmp_path / 'bad.pth'
        torch.save(dict(state_dict=state), bad)
        with pytest.raises(Exception, match='does not fit'):
            ChangeDetectionInferencer(str(setup['config']), str(bad))


class TestRealRasters:
    """Self-pairs of rasterio's real test rasters: the output keeps their georeference."""

    @pytest.mark.parametrize('name,bands', [('RGB.byte.tif', None), ('rotated.tif', '1,1,1'),
                                            ('rgb1.tif', None), ('all-nodata.tif', '1,2,3')])
    def test_output_keeps_crs_transform_and_nodata(self, setup: dict, tmp_path: Path,
                                                   geotiff_samples_root: Path, name: str,
                                                   bands: str | None) -> None:
        src_path = geotiff_samples_root / name
        out = tmp_path / 'out.tif'
        summary = setup['inferencer'](src_path, src_path, out, tile=128, overlap=32,
                                      bands=bands, quiet=True)
        with rasterio.open(out) as dst, rasterio.open(src_path) as src:
            assert dst.shape == src.shape and dst.transform == src.transform
            assert (dst.crs is None) == (src.crs is None)
            if src.crs is not None:
                assert dst.crs == src.crs
            cls = dst.read(1)
            if src.nodata is not None:
                indexes = [int(b) for b in bands.split(',')] if bands else None
                nodata = (src.read(indexes) == src.nodata).all(0)
                np.testing.assert_array_equal(cls == 255, nodata)
                assert summary.valid_pixels == int((~nodata).sum())
            else:
                assert (cls != 255).all()
        if name == 'all-nodata.tif':
            assert summary.skipped == summary.tiles and summary.changed_pixels == 0


class TestPreprocessingAndPaths:

    def test_amp(self, setup: dict, tmp_path: Path, monkeypatch) -> None:
        monkeypatch.setattr(setup['inferencer'], 'amp', True)
        summary = setup['inferencer'](*setup['paths'], tmp_path / 'amp.tif', tile=128,
                                      overlap=32, quiet=True)
        assert 'amp=True' in summary.protocol
        with rasterio.open(tmp_path / 'amp.tif') as dst:
            assert (dst.read(1) == (setup['whole'] > 0.5)).mean() > 0.98

    def test_tiles_get_the_test_pipeline_preprocessing(self, tmp_path: Path) -> None:
        """A tile covering the scene gives exactly what the dataset pipeline + test_step give
        (here a 4-band uint16 pair, the loader selecting bands 3, 2, 1 as float32)."""
        from mmengine.dataset import Compose
        config = tmp_path / 'bands.py'
        config.write_text(TINY.format(root=REPO) + '''
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadBitemporalImages', bands=[3, 2, 1], to_float32=True),
    dict(type='LoadChangeAnnotations'), dict(type='PackChangeInputs')]))
model = dict(data_preprocessor=dict(mean=[2000.0] * 3, std=[500.0] * 3))
''')
        rng = np.random.default_rng(1)
        paths = [write_tif(tmp_path / f'{i}.tif', rng.integers(0, 4000, (4, 70, 50), np.uint16),
                           nodata=0) for i in range(2)]
        torch.manual_seed(0)
        inferencer = ChangeDetectionInferencer(str(config))
        with open_pair(*paths, bands=inferencer.loader_options['bands']) as pair:
            assert pair.bands == [3, 2, 1]
            tile = Tile(0, 0, 0, 0, 70, 50)
            got = inferencer.predict_tiles(pair, [tile], [inferencer.prepare_tile(
                pair, tile, *pair.read(0, 0, 70, 50))])[0]
        pipeline = Compose(inferencer.cfg.test_dataloader.dataset.pipeline)
        packed = pipeline(dict(img_path=[str(p) for p in paths], seg_map_path=None))
        assert packed['inputs'].dtype == torch.float32
        with torch.no_grad():
            sample = inferencer.model.test_step(dict(inputs=[packed['inputs']],
                                                     data_samples=[packed['data_samples']]))[0]
        expected = sample.seg_logits.data.softmax(0)[1:2].numpy()
        np.testing.assert_array_equal(got, expected)

    def test_progress_bar_and_summary(self, setup: dict, tmp_path: Path, capsys) -> None:
        summary = setup['inferencer'](*setup['paths'], tmp_path / 'p.tif', tile=128,
                                      overlap=32)
        err = capsys.readouterr().err
        assert 'tiles 9/9 (100%)' in err and 'tiles/s' in err and 'ETA' in err
        text = str(summary)
        assert 'Mpix/s' in text and 'protocol: tile=128' in text and 'metre^2' in text

    def test_unreadable_block_mid_run_names_the_file(self, setup: dict,
                                                     tmp_path: Path) -> None:
        data = rasterio.open(setup['paths'][1]).read()
        path = write_tif(tmp_path / 'trunc.tif', data, tiled=True, blockxsize=64,
                         blockysize=64, compress='deflate')
        raw = path.read_bytes()
        path.write_bytes(raw[:int(len(raw) * 0.6)])
        with pytest.raises(OSError, match='trunc.tif'):
            setup['inferencer'](setup['paths'][0], path, tmp_path / 'never.tif', tile=128,
                                overlap=32, quiet=True)
        assert not (tmp_path / 'never.tif').exists()
        assert [p.name for p in tmp_path.iterdir()] == ['trunc.tif']

    def test_one_channel_sigmoid_head(self, setup: dict, tmp_path: Path) -> None:
        config = tmp_path / 'sigmoid.py'
        config.write_text(TINY.format(root=REPO) + '''
model = dict(decode_head=dict(out_channels=1, threshold=0.5, loss_decode=dict(use_sigmoid=True)))
''')
        torch.manual_seed(0)
        inferencer = ChangeDetectionInferencer(str(config))
        assert inferencer.channels == 1 and inferencer.out_channels == 1
        out = tmp_path / 's.tif'
        inferencer(*setup['paths'], out, tile=128, overlap=32, quiet=True,
                   probability='float32')
        with rasterio.open(out) as dst:
            cls, prob = dst.read(1), dst.read(2)
        np.testing.assert_array_equal(cls, (prob > 0.5).astype(np.float32))


class _Constant:
    """A model-free :class:`TiledInferencer`: p = 0.7 everywhere (all changed)."""

    @staticmethod
    def make(delay: float = 0.0, log: list | None = None):
        import threading
        import time

        from mmrs.apis import TiledInferencer

        class Constant(TiledInferencer):
            def prepare_tile(self, pair, tile, img1, img2, invalid):
                if log is not None:
                    log.append(('read', threading.current_thread().name))
                return img1

            def predict_tiles(self, pair, tiles, inputs):
                time.sleep(delay)
                if log is not None:
                    log.append(('predict', len(tiles)))
                return [np.full((1, t.height, t.width), 0.7, np.float32) for t in tiles]

        return Constant()


class TestLoop:

    def test_reading_runs_ahead_in_a_thread_and_is_bounded(self, tmp_path: Path) -> None:
        path = write_tif(tmp_path / 'a.tif', np.ones((3, 400, 400), np.uint8))
        log: list = []
        with open_pair(path, path) as pair:
            _Constant.make(delay=0.05, log=log).run(pair, tmp_path / 'o.tif', tile=64,
                                                    overlap=16, batch=2, quiet=True)
        assert {name for kind, name in log if kind == 'read'} == {'mmrs-tile-reader'}
        ahead, worst = 0, 0
        for kind, value in log:
            ahead += 1 if kind == 'read' else -value
            worst = max(worst, ahead)
        assert 2 <= worst <= 2 * 2 + 2 + 1  # the queue (2 * batch), a batch, one in hand

    @pytest.mark.parametrize('crs,transform', [
        ('EPSG:4326', Affine(0.001, 0, 10.0, 0, -0.001, 60.0)),
        ('EPSG:2263', Affine(5, 0, 1000000, 0, -5, 200000)),  # US survey feet
    ])
    def test_changed_area_in_square_metres(self, tmp_path: Path, crs, transform) -> None:
        from pyproj import CRS, Geod
        path = write_tif(tmp_path / 'a.tif', np.ones((3, 120, 150), np.uint8), crs=crs,
                         transform=transform)
        with open_pair(path, path) as pair:
            summary = _Constant.make().run(pair, tmp_path / 'o.tif', tile=64, overlap=16,
                                           quiet=True)
        assert summary.changed_pixels == 120 * 150
        with rasterio.open(path) as src:
            left, bottom, right, top = src.bounds
        if CRS.from_user_input(crs).is_geographic:
            lons, lats = [left, right, right, left], [bottom, bottom, top, top]
            expected = abs(Geod(ellps='WGS84').polygon_area_perimeter(lons, lats)[0])
            assert summary.area_unit == 'degree'
            assert summary.changed_m2 == pytest.approx(expected, rel=1e-4)
        else:
            assert summary.changed_area == pytest.approx(120 * 150 * 25)
            assert summary.changed_m2 == pytest.approx(120 * 150 * 25 * (1200 / 3937) ** 2)
