"""Protocol check: whole-scene inference scores what ``tools/test.py`` scores.

The 11 real LEVIR-CD sample pairs (``../shared/data/levir_cd_samples``) are mosaicked into one
3 x 4 grid GeoTIFF pair (1024 x 768 px, a made-up transverse Mercator CRS, 0.5 m; the twelfth
slot is empty and ignored). A tiny FC-Siam-diff (the sweep's widths) is fitted in-process on
the pairs, saved as a checkpoint, then

- ``tools/test.py`` evaluates it on the 11 individual pairs (``ChangeMetric``: one confusion
  matrix over all pixels), and
- :class:`mmrs.apis.ChangeDetectionInferencer` predicts the mosaic with tiles that straddle the
  image borders (tile 256, overlap 64, stride 192), and the F1 of its output raster is computed
  against the mosaicked labels.

Both must agree within 0.5 F1 points: the inferencer applies the same preprocessing (test
pipeline, data preprocessor, ``test_step``) and the blending does not move the score.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine

from mmrs.apis import ChangeDetectionInferencer
from mmrs.datasets.io import read_raster

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
SAMPLES = (REPO / '..' / 'shared' / 'data' / 'levir_cd_samples').resolve()
PAIRS = REPO / 'configs' / 'btc' / 'levir_cd_samples_pairs.txt'
ROWS, COLS, SIDE = 3, 4, 256
#: A made-up CRS: transverse Mercator centred on 117 E (no EPSG code).
CRS_TEXT = '+proj=tmerc +lat_0=0 +lon_0=117 +k=0.9996 +x_0=500000 +y_0=0 +ellps=WGS84 +units=m'
CONFIG = '''
_base_ = ['{root}/configs/_base_/models/fc_siam_diff.py',
          '{root}/configs/_base_/default_runtime.py']
default_scope = 'mmrs'
model = dict(backbone=dict(channels=(4, 8, 16, 32)),
             decode_head=dict(in_channels=(4, 8, 16, 32, 32), decoder_channels=(4, 8, 16, 32)))
test_pipeline = [dict(type='LoadBitemporalImages'), dict(type='LoadChangeAnnotations'),
                 dict(type='PackChangeInputs')]
test_dataloader = dict(
    batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='LEVIRCDDataset', data_root='{samples}', ann_file='{pairs}',
                 data_prefix=dict(img_path_from='A', img_path_to='B', seg_map_path='label'),
                 pipeline=test_pipeline))
test_evaluator = dict(type='ChangeMetric')
test_cfg = dict(type='TestLoop')
'''
TILE, OVERLAP = 256, 64


def names() -> list[str]:
    return [n.strip() for n in PAIRS.read_text().splitlines() if n.strip()]


def load_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N, H, W, 3)`` dates as the dataset loader reads them and ``(N, H, W)`` 0/1 labels
    (LEVIR-CD stores 0/255)."""
    a = np.stack([read_raster(str(SAMPLES / 'A' / n))[0] for n in names()])
    b = np.stack([read_raster(str(SAMPLES / 'B' / n))[0] for n in names()])
    label = np.stack([np.asarray(Image.open(SAMPLES / 'label' / n)) for n in names()])
    return a, b, (label > 127).astype(np.uint8)


def mosaic(tiles: np.ndarray, fill: int) -> np.ndarray:
    """Tiles in row-major order on a ROWS x COLS grid; empty slots get ``fill``."""
    shape = (ROWS * SIDE, COLS * SIDE) + tiles.shape[3:]
    out = np.full(shape, fill, tiles.dtype)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, COLS)
        out[r * SIDE:(r + 1) * SIDE, c * SIDE:(c + 1) * SIDE] = tile
    return out


def fit(model: torch.nn.Module, a: np.ndarray, b: np.ndarray, label: np.ndarray,
        steps: int = 25, crop: int = 128) -> None:
    """Adam on random ``crop``-sized windows of all pairs at once, normalised as the data
    preprocessor does (brief: test F1 ~0.25, a weak but real model)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pre = model.data_preprocessor
    x = torch.from_numpy(np.stack([a, b], 1)).permute(0, 1, 4, 2, 3).float()
    x = (x - pre.mean.view(1, 1, 3, 1, 1)) / pre.std.view(1, 1, 3, 1, 1)
    y = torch.from_numpy(label.astype(np.int64))
    meta = [dict(img_shape=(crop, crop), pad_shape=(crop, crop))] * len(x)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(steps):
        oy, ox = rng.integers(0, SIDE - crop + 1, 2)
        logits = model.encode_decode(x[..., oy:oy + crop, ox:ox + crop], meta)
        loss = torch.nn.functional.cross_entropy(  # buildings change on ~5% of the pixels
            logits, y[:, oy:oy + crop, ox:ox + crop], weight=torch.tensor([1.0, 5.0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def f1(pred: np.ndarray, label: np.ndarray) -> float:
    """F1 of class 1 over the pixels where ``label`` is 0 or 1."""
    keep = label <= 1
    p, t = pred[keep] == 1, label[keep] == 1
    tp = np.sum(p & t)
    return float(2 * tp / max(2 * tp + np.sum(p & ~t) + np.sum(~p & t), 1))


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict:
    if not SAMPLES.is_dir():
        pytest.skip(f'real sample data not found at {SAMPLES}')
    root = tmp_path_factory.mktemp('mosaic')
    config = root / 'fc_siam_diff_tiny_samples.py'
    config.write_text(CONFIG.format(root=REPO, samples=SAMPLES, pairs=PAIRS))
    a, b, label = load_pairs()
    torch.manual_seed(0)
    inferencer = ChangeDetectionInferencer(str(config))
    fit(inferencer.model, a, b, label)
    checkpoint = root / 'tiny.pth'
    torch.save(dict(state_dict=inferencer.model.state_dict(), meta=dict()), checkpoint)
    profile = dict(driver='GTiff', crs=CRS.from_string(CRS_TEXT), count=3, dtype='uint8',
                   height=ROWS * SIDE, width=COLS * SIDE, tiled=True, blockxsize=256,
                   blockysize=256, transform=Affine(0.5, 0, 412000, 0, -0.5, 3410000))
    paths = []
    for name, dates in (('t1.tif', a), ('t2.tif', b)):
        with rasterio.open(root / name, 'w', **profile) as dst:
            dst.write(np.moveaxis(mosaic(dates, 0), -1, 0))
        paths.append(root / name)
    return dict(root=root, config=config, checkpoint=checkpoint, paths=paths,
                label=mosaic(label, 255), pixel_label=label)


class TestMosaicProtocol:

    def test_infer_f1_matches_test_py(self, setup: dict) -> None:
        out_json = setup['root'] / 'metrics.json'
        proc = subprocess.run(
            [sys.executable, str(REPO / 'tools' / 'test.py'), str(setup['config']),
             str(setup['checkpoint']), '--work-dir', str(setup['root'] / 'work'),
             '--out', str(out_json)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        test_f1 = json.loads(out_json.read_text())['f1']
        assert test_f1 > 0.15  # the fit took: the comparison is between real decisions

        inferencer = ChangeDetectionInferencer(str(setup['config']), str(setup['checkpoint']))
        out = setup['root'] / 'change.tif'
        summary = inferencer(*map(str, setup['paths']), out, tile=TILE, overlap=OVERLAP,
                             batch=4, quiet=True)
        assert summary.protocol.startswith(f'tile={TILE} overlap={OVERLAP} stride=192 '
                                           'blending=cosine')
        with rasterio.open(out) as dst:
            assert dst.crs == CRS.from_string(CRS_TEXT)
            tiled = dst.read(1)
        infer_f1 = f1(tiled, setup['label'])
        print(f'tools/test.py F1 {100 * test_f1:.2f} (per pair, whole 256x256 inputs, '
              f'test_cfg.mode=whole) | inferencer F1 {100 * infer_f1:.2f} on the mosaic\n'
              f'  protocol: {summary.protocol}')
        assert abs(infer_f1 - test_f1) <= 0.005, (infer_f1, test_f1)
        # the inferencer's tile path on each pair alone reproduces test.py exactly, and the
        # straddling tiles of the mosaic do change some pixels (the check is not vacuous)
        per_pair = mosaic(self._per_pair(inferencer, setup), 0)
        assert f1(per_pair, setup['label']) == pytest.approx(test_f1, abs=1e-6)
        valid = setup['label'] <= 1
        assert (per_pair != tiled)[valid].any()

    @staticmethod
    def _per_pair(inferencer: ChangeDetectionInferencer, setup: dict) -> np.ndarray:
        """The class map of each pair predicted alone, through the inferencer's own
        tile path (one 256 x 256 tile per pair): must give test.py's F1 exactly."""
        from mmrs.geo.raster import open_pair
        from mmrs.geo.tiling import Tile
        maps = []
        with open_pair(*map(str, setup['paths'])) as pair:
            for i in range(len(setup['pixel_label'])):
                r, c = divmod(i, COLS)
                tile = Tile(r, c, r * SIDE, c * SIDE, SIDE, SIDE)
                img1, img2, invalid = pair.read(tile.y, tile.x, SIDE, SIDE)
                prob = inferencer.predict_tiles(pair, [tile], [inferencer.prepare_tile(
                    pair, tile, img1, img2, invalid)])[0][0]
                maps.append((prob > 0.5).astype(np.uint8))
        return np.stack(maps)
