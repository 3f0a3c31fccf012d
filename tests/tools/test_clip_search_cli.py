"""End-to-end ``tools/clip_search.py``: index -> info -> query (GeoJSON) with a tiny random-weight
CLIP saved as an open_clip checkpoint, plus the refusals a user meets on the command line.

``index`` and ``query`` run as a user runs them (subprocesses); the other calls go through
the tool's ``main`` in this process (each subprocess costs a full torch/mmengine import)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window, bounds as window_bounds

from ._runner import REPO_ROOT, run_tool

torch.set_num_threads(1)
TINY = dict(embed_dim=16,
            vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8, head_width=16),
            text_cfg=dict(context_length=16, width=32, heads=2, layers=1))
CONFIG = f'''
default_scope = 'mmrs'
model = dict(type='CLIP', model_name='ViT-B-32', model_cfg={TINY!r}, loss=None)
'''
TRANSFORM = Affine(20, 0, 400000, 0, -20, 4.6e6)


def _load_tool():
    spec = importlib.util.spec_from_file_location('clip_search_tool',
                                                  REPO_ROOT / 'tools' / 'clip_search.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_checkpoint(path: Path, seed: int) -> Path:
    from mmrs.models.clip import CLIP
    torch.manual_seed(seed)
    model = CLIP(model_name='ViT-B-32', model_cfg=TINY, loss=None)
    torch.save(model.clip.state_dict(), path)  # open_clip's own layout
    return path


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('clip_cli')
    config = root / 'tiny_clip.py'
    config.write_text(CONFIG)
    rng = np.random.default_rng(0)
    img = rng.integers(1, 255, (3, 150, 170), dtype=np.uint8)
    img[:, :, :40] = 0  # nodata collar: the first tile column of 32 px is all nodata
    scene = root / 'scene.tif'
    with rasterio.open(scene, 'w', driver='GTiff', height=150, width=170, count=3,
                       dtype='uint8', crs='EPSG:32633', transform=TRANSFORM, nodata=0) as dst:
        dst.write(img)
    return dict(root=root, config=config, scene=scene,
                ckpt=tiny_checkpoint(root / 'tiny.pth', 0),
                other=tiny_checkpoint(root / 'other.pth', 1))


def test_index_info_query(setup, capsys) -> None:
    db, out = setup['root'] / 'db', setup['root'] / 'hits.geojson'
    res = run_tool('tools/clip_search.py', 'index', str(setup['config']), str(setup['ckpt']),
                   str(setup['scene']), '--db', str(db), '--tile', '32', '--batch', '8',
                   '--chunk-tiles', '10', '--quiet')
    rows, cols = -(-150 // 32), -(-170 // 32)
    assert f'{rows * cols - rows} tiles embedded, {rows} all-nodata tiles skipped' in res.stdout
    # the model comes from the archive (its saved config and recorded checkpoint)
    res = run_tool('tools/clip_search.py', 'query', '--db', str(db), '--text',
                   'a dense residential area', '--top-k', '3', '--out', str(out), '--json')
    printed = [json.loads(line) for line in res.stdout.splitlines() if line.startswith('{')]
    assert [p['rank'] for p in printed] == [1, 2, 3]
    doc = json.loads(out.read_text())
    assert doc['type'] == 'FeatureCollection' and len(doc['features']) == 3
    for feat, line in zip(doc['features'], printed):
        props = feat['properties']
        assert props['crs'] == 'EPSG:32633' and props['scene'] == str(setup['scene'])
        assert props['score'] == pytest.approx(line['score'])
        y, x, h, w = (int(v) for v in props['window'].split(','))
        left, bottom, right, top = window_bounds(Window(x, y, w, h), TRANSFORM)
        lon, lat = warp_transform('EPSG:32633', 'EPSG:4326', [left, right, right, left],
                                  [top, top, bottom, bottom])
        ring = np.array(feat['geometry']['coordinates'][0])
        for corner in zip(lon, lat):
            assert np.abs(ring - corner).max(axis=1).min() < 1e-7
    scores = [f['properties']['score'] for f in doc['features']]
    assert scores == sorted(scores, reverse=True)

    tool = _load_tool()
    capsys.readouterr()
    assert tool.main(['info', '--db', str(db)]) == 0
    info = capsys.readouterr().out
    assert f'{rows * cols - rows} searchable tiles, dim 16 float16' in info
    assert '[complete]' in info and f'all-nodata skipped {rows}' in info
    common = [str(setup['config']), str(setup['ckpt'])]
    assert tool.main(['index', *common, str(setup['scene']), '--db', str(db), '--tile', '32',
                      '--quiet']) == 0
    assert 'skipped (already in the archive)' in capsys.readouterr().out
    # refusals: a corrupt scene, another model's weights, empty text, no archive, --out exists
    bad = setup['root'] / 'corrupt.tif'
    bad.write_bytes(b'\x00' * 100)
    assert tool.main(['index', *common, str(bad), '--db', str(db)]) == 2
    assert 'corrupt.tif' in capsys.readouterr().err
    assert tool.main(['index', str(setup['config']), str(setup['other']), str(setup['scene']),
                      '--db', str(db), '--tile', '32']) == 2
    assert 'built with another model' in capsys.readouterr().err
    assert tool.main(['query', '--db', str(db), '--text', '  ']) == 2
    assert 'empty' in capsys.readouterr().err
    assert tool.main(['query', '--db', str(setup['root'] / 'nope'), '--text', 'x']) == 2
    assert 'not a CLIP tile archive' in capsys.readouterr().err
    assert tool.main(['query', '--db', str(db), '--text', 'x', '--out', str(out)]) == 2
    assert 'already exists' in capsys.readouterr().err
