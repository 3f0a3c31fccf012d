"""Whole-scene single-image segmentation (mmrs.apis.SegmentationInferencer) with an mmseg
``EncoderDecoder`` on a small GeoTIFF.

The model is a tiny ResNetV1c-18 + FCN head (output stride 8) briefly fitted to a synthetic
three-class scene, so that it is confident away from class borders as a trained model is. Its
dilated receptive field is wide, so the tiles are 192 px with a 64 px overlap (at 128/32 about
1.4% of the pixels, all on class borders, differ from the whole-image prediction).
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from scipy import ndimage

from mmrs.apis import SegmentationInferencer
from mmrs.apis.segmentation_inferencer import as_loaded
from mmrs.geo.single import open_single
from mmrs.geo.tiling import Tile

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
H, W = 288, 256
MEAN, STD = [100.0, 110.0, 120.0], [50.0, 55.0, 60.0]
TINY = f'''
default_scope = 'mmseg'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean={MEAN}, std={STD},
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32),
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                  strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), out_indices=(3, ),
                  norm_cfg=norm_cfg),
    decode_head=dict(type='FCNHead', in_channels=64, channels=16, num_convs=1,
                     concat_input=False, in_index=0, num_classes=3, norm_cfg=norm_cfg,
                     align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                 dict(type='PackSegInputs')]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
'''
PROFILE = dict(driver='GTiff', crs='EPSG:32632', transform=Affine(10, 0, 600000, 0, -10, 5e6))
COLOURS = np.array([[40, 120, 40], [200, 200, 190], [30, 60, 160]], np.uint8)  # RGB


def make_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes as smooth blobs (thresholded low-pass noise), RGB colour + texture."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((H, W)), 14)
    label = np.digitize(field, np.quantile(field, [0.4, 0.7])).astype(np.uint8)
    img = COLOURS[label].astype(np.float64) + rng.normal(0, 12, (H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8).transpose(2, 0, 1), label


def fit(inferencer: SegmentationInferencer, img: np.ndarray, label: np.ndarray,
        steps: int = 100) -> None:
    """Adam steps on the whole scene, normalised as the data preprocessor would (BGR file
    order from the loader, then ``bgr_to_rgb``: the RGB array here)."""
    model = inferencer.model
    torch.manual_seed(0)
    x = (torch.from_numpy(img).float() - torch.tensor(MEAN).view(3, 1, 1)) \
        / torch.tensor(STD).view(3, 1, 1)
    y = torch.from_numpy(label.astype(np.int64))[None]
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(steps):
        logits = model.encode_decode(x[None], [dict(img_shape=(H, W), pad_shape=(H, W))])
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('seg')
    config = root / 'tiny_seg.py'
    config.write_text(TINY)
    img, label = make_scene()
    path = root / 'scene.tif'
    with rasterio.open(path, 'w', count=3, height=H, width=W, dtype='uint8', **PROFILE) as dst:
        dst.write(img)
    torch.manual_seed(0)
    inferencer = SegmentationInferencer(str(config))
    fit(inferencer, img, label)
    checkpoint = root / 'tiny_seg.pth'
    torch.save(dict(state_dict=inferencer.model.state_dict(), meta=dict()), checkpoint)
    inferencer = SegmentationInferencer(str(config), str(checkpoint))  # the loading path
    with open_single(str(path)) as raster:
        tile = Tile(0, 0, 0, 0, H, W)
        im, _, invalid = raster.read(0, 0, H, W)
        whole = inferencer.predict_tiles(
            raster, [tile], [inferencer.prepare_tile(raster, tile, im, None, invalid)])[0]
    return dict(root=root, config=config, checkpoint=checkpoint, inferencer=inferencer,
                path=path, whole=whole, label=label)


GEOTIFFS = (REPO / '..' / 'shared' / 'data' / 'geotiff_rasterio').resolve()


@pytest.fixture
def geotiffs() -> Path:
    if not GEOTIFFS.is_dir():
        pytest.skip(f'real sample data not found at {GEOTIFFS}')
    return GEOTIFFS


class TestSingleRaster:

    def test_alpha_band_is_the_mask_and_matches_the_nodata_collar(self, geotiffs: Path) -> None:
        # the same Landsat scene, once with nodata=0, once with an alpha band instead
        with open_single(str(geotiffs / 'RGBA.byte.tif')) as rgba, \
                open_single(str(geotiffs / 'RGB.byte.tif')) as rgb:
            assert rgba.bands == [1, 2, 3] and rgb.nodata == 0.0
            img_a, inv_a = rgba.read_window(100, 50, 300, 400)
            img_b, inv_b = rgb.read_window(100, 50, 300, 400)
            with rasterio.open(geotiffs / 'RGBA.byte.tif') as src:
                alpha = src.read(4, window=((100, 400), (50, 450)))
        assert img_a.shape == (300, 400, 3)
        np.testing.assert_array_equal(inv_a, alpha == 0)
        assert 0.05 < inv_b.mean() < 0.95
        assert (inv_a != inv_b).mean() < 0.01

    def test_rotated_transform_and_window_meta(self, geotiffs: Path) -> None:
        with open_single(str(geotiffs / 'rotated.tif')) as raster:
            meta = raster.geo_meta(2, 3)
            t = raster.transform
        x0, y0 = t * (3, 2)
        assert meta['transform'][2] == pytest.approx(x0)
        assert meta['transform'][5] == pytest.approx(y0)
        assert t.b != 0

    def test_bad_inputs_name_the_file(self, tmp_path: Path) -> None:
        bad = tmp_path / 'broken.tif'
        bad.write_bytes(b'II*\x00 not a tiff')
        with pytest.raises(OSError, match='broken.tif'):
            open_single(str(bad))


class TestLoaderEmulation:

    def test_color_loader_is_bgr_like_opencv(self, tmp_path: Path) -> None:
        import mmcv
        img = np.random.default_rng(1).integers(0, 255, (3, 20, 30), dtype=np.uint8)
        path = tmp_path / 'rgb.tif'
        with rasterio.open(path, 'w', count=3, height=20, width=30, dtype='uint8',
                           **PROFILE) as dst:
            dst.write(img)
        decoded = mmcv.imread(str(path))  # what LoadImageFromFile gives test.py
        ours = as_loaded(img.transpose(1, 2, 0), dict(type='LoadImageFromFile'))
        np.testing.assert_array_equal(ours, decoded)

    def test_rs_loader_keeps_bands_as_float(self) -> None:
        img = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
        out = as_loaded(img, dict(type='LoadSingleRSImageFromFile'))
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, img)


class TestTiledEqualsWhole:

    def test_agreement_and_georeference(self, setup: dict, tmp_path: Path) -> None:
        whole = setup['whole'].argmax(0)
        assert (whole == setup['label']).mean() > 0.9  # the fit took: a real decision
        assert len(np.unique(whole)) == 3
        out = tmp_path / 'classes.tif'
        summary = setup['inferencer'](str(setup['path']), out, tile=192, overlap=64, batch=4,
                                      quiet=True, probability='float32')
        assert 'tile=192 overlap=64 stride=128 blending=cosine' in summary.protocol
        assert 'LoadImageFromFile' in summary.protocol
        with rasterio.open(out) as dst, rasterio.open(setup['path']) as src:
            assert dst.crs == src.crs and dst.transform == src.transform
            assert (dst.height, dst.width) == (H, W)
            assert dst.descriptions == ('class', 'class_probability')
            tiled, prob = dst.read(1), dst.read(2)
        disagree = tiled != whole
        assert disagree.mean() <= 0.005, disagree.mean()
        # no tile-grid pattern: what differs lies on class borders (where the model is unsure
        # and its wide receptive field sees a different context), not along the seams
        border = ndimage.binary_dilation(ndimage.morphological_gradient(setup['label'], 3) > 0,
                                         iterations=3)
        assert (disagree & ~border).sum() <= 0.1 * max(disagree.sum(), 10)
        close = np.abs(prob - setup['whole'].max(0)) <= 0.05  # band 2: the class's p
        assert close.mean() >= 0.97 and (~close & ~border).mean() <= 0.005
        assert summary.changed_pixels == int((tiled != 0).sum())
        assert summary.changed_m2 == pytest.approx(summary.changed_pixels * 100.0)

    def test_nodata_pixels_written_as_nodata(self, setup: dict, tmp_path: Path) -> None:
        with rasterio.open(setup['path']) as src:
            img = src.read()
        img[:, :40, :50] = 0
        path = tmp_path / 'collar.tif'
        with rasterio.open(path, 'w', count=3, height=H, width=W, dtype='uint8', nodata=0,
                           **PROFILE) as dst:
            dst.write(img)
        out = tmp_path / 'classes.tif'
        setup['inferencer'](str(path), out, tile=192, overlap=64, quiet=True)
        with rasterio.open(out) as dst:
            classes = dst.read(1)
        assert (classes[:40, :50] == 255).all()
        assert (classes[40:] != 255).all()


class TestErrors:

    def test_missing_file_and_bad_bands(self, setup: dict, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match='nope.tif'):
            setup['inferencer'](str(tmp_path / 'nope.tif'), tmp_path / 'o.tif', quiet=True)
        with pytest.raises(ValueError, match='has 3 band'):
            setup['inferencer'](str(setup['path']), tmp_path / 'o.tif', bands='1,2,5',
                                quiet=True)

    def test_change_detector_config_refused(self, tmp_path: Path) -> None:
        config = tmp_path / 'cd.py'
        config.write_text(f"_base_ = ['{REPO}/configs/_base_/models/fc_siam_diff.py']\n"
                          "default_scope = 'mmrs'\n")
        with pytest.raises(ValueError, match='not an mmseg segmentor'):
            SegmentationInferencer(str(config))


class TestCommandLine:

    def test_image_flag(self, setup: dict, tmp_path: Path) -> None:
        out = tmp_path / 'cli.tif'
        proc = subprocess.run(
            [sys.executable, str(REPO / 'tools' / 'infer.py'), str(setup['config']),
             str(setup['checkpoint']), '--image', str(setup['path']), '--out', str(out),
             '--tile', '192', '--overlap', '64', '--quiet'],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert 'protocol: tile=192 overlap=64' in proc.stdout
        with rasterio.open(out) as dst:
            assert (dst.read(1) != setup['whole'].argmax(0)).mean() <= 0.005
        proc = subprocess.run(
            [sys.executable, str(REPO / 'tools' / 'infer.py'), str(setup['config']),
             str(setup['checkpoint']), '--image', str(setup['path']), '--t1',
             str(setup['path']), '--out', str(out)], capture_output=True, text=True)
        assert proc.returncode != 0 and '--image' in proc.stderr
