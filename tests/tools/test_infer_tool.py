"""``tools/infer.py``: single pairs, pair folders and lists, vectors, and its error messages."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from ._runner import REPO_ROOT, run_tool

torch.set_num_threads(1)
TINY = '''
_base_ = ['{root}/configs/_base_/models/fc_siam_diff.py',
          '{root}/configs/_base_/datasets/synthetic.py']
default_scope = 'mmrs'
model = dict(backbone=dict(channels=(4, 8, 16, 32)),
             decode_head=dict(in_channels=(4, 8, 16, 32, 32), decoder_channels=(4, 8, 16, 32)))
'''


def _load_tool():
    spec = importlib.util.spec_from_file_location('infer_tool', REPO_ROOT / 'tools' / 'infer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, data: np.ndarray) -> Path:
    with rasterio.open(path, 'w', driver='GTiff', count=data.shape[0], height=data.shape[1],
                       width=data.shape[2], dtype=data.dtype, crs='EPSG:32631',
                       transform=Affine(10, 0, 600000, 0, -10, 5000000), nodata=0) as dst:
        dst.write(data)
    return path


@pytest.fixture(scope='module')
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('infer_tool')
    config = root / 'tiny.py'
    config.write_text(TINY.format(root=REPO_ROOT))
    from mmrs.apis import ChangeDetectionInferencer
    torch.manual_seed(0)
    model = ChangeDetectionInferencer(str(config)).model
    model.decode_head.conv_seg.bias.data[1] += 5.0  # predict change almost everywhere
    checkpoint = root / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    rng = np.random.default_rng(0)
    for folder in ('A', 'B'):
        (root / 'pairs' / folder).mkdir(parents=True)
        for name in ('x.tif', 'y.tif'):
            data = rng.integers(1, 255, (3, 70, 90), dtype=np.uint8)
            data[:, :10] = 0  # nodata collar
            _write(root / 'pairs' / folder / name, data)
    return dict(root=root, config=str(config), checkpoint=str(checkpoint))


def test_single_pair_with_vector_output(files: dict, tmp_path: Path) -> None:
    pairs = files['root'] / 'pairs'
    out, vector = tmp_path / 'change.tif', tmp_path / 'change.geojson'
    result = run_tool('tools/infer.py', files['config'], files['checkpoint'],
                      '--t1', str(pairs / 'A' / 'x.tif'), '--t2', str(pairs / 'B' / 'x.tif'),
                      '--out', str(out), '--vector', str(vector), '--probability',
                      '--tile', '64', '--overlap', '16', '--batch', '2', '--quiet')
    assert 'protocol: tile=64 overlap=16 stride=48 blending=cosine' in result.stdout
    assert 'Mpix/s' in result.stdout and 'polygons:' in result.stdout
    with rasterio.open(out) as dst:
        assert dst.count == 2 and dst.crs.to_epsg() == 32631
        cls = dst.read(1)
    assert (cls[:10] == 255).all() and (cls[10:] == 1).all()
    geojson = json.loads(vector.read_text())
    assert len(geojson['features']) == 1  # one region, whole across the tile borders
    assert sorted(p.name for p in tmp_path.iterdir()) == ['change.geojson', 'change.tif']


def test_pairs_folder_and_list(files: dict, tmp_path: Path) -> None:
    tool = _load_tool()
    pairs = files['root'] / 'pairs'
    common = [files['config'], files['checkpoint'], '--tile', '64', '--overlap', '16',
              '--quiet']
    assert tool.main([*common, '--pairs', str(pairs), '--out-dir', str(tmp_path / 'o')]) == 0
    assert sorted(p.name for p in (tmp_path / 'o').iterdir()) == ['x.tif', 'y.tif']
    listing = tmp_path / 'list.txt'
    listing.write_text(f'# t1 t2 out\n{pairs}/A/y.tif {pairs}/B/y.tif out/y_change.tif\n')
    assert tool.main([*common, '--pairs', str(listing)]) == 0
    assert (tmp_path / 'out' / 'y_change.tif').is_file()


def test_errors_name_the_problem(files: dict, tmp_path: Path, capsys) -> None:
    tool = _load_tool()
    pairs = files['root'] / 'pairs'
    common = [files['config'], files['checkpoint'], '--quiet']
    existing = tmp_path / 'exists.tif'
    existing.write_bytes(b'old')
    t1, t2 = str(pairs / 'A' / 'x.tif'), str(pairs / 'B' / 'x.tif')
    assert tool.main([*common, '--t1', t1, '--t2', t2, '--out', str(existing)]) == 2
    assert 'already exists' in capsys.readouterr().err and existing.read_bytes() == b'old'
    corrupt = tmp_path / 'corrupt.tif'
    corrupt.write_bytes(b'not a tiff at all')
    assert tool.main([*common, '--t1', t1, '--t2', str(corrupt), '--out',
                      str(tmp_path / 'o.tif')]) == 2
    assert 'corrupt.tif' in capsys.readouterr().err
    shifted = tmp_path / 'shifted.tif'
    with rasterio.open(t2) as src:
        profile = dict(src.profile, transform=src.transform @ Affine.translation(0.3, 0))
        with rasterio.open(shifted, 'w', **profile) as dst:
            dst.write(src.read())
    assert tool.main([*common, '--t1', t1, '--t2', str(shifted), '--out',
                      str(tmp_path / 'o.tif')]) == 2
    err = capsys.readouterr().err
    assert 'not aligned' in err and t1 in err and str(shifted) in err
    assert not (tmp_path / 'o.tif').exists()
    with pytest.raises(SystemExit):
        tool.parse_args([files['config'], files['checkpoint'], '--t1', t1])
