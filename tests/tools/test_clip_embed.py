"""tools/analysis/clip_embed.py: embeddings of real remote-sensing pictures and texts.

Oracles: the model called directly on inputs prepared independently (PIL + the CLIP
normalisation written out for a picture already at the tower's size; open_clip's own
evaluation transform for resized pictures), uint16 / multi-band GeoTIFFs holding the same
picture as a PNG.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import shared_data_root

from ._runner import REPO_ROOT, run_tool

torch.set_num_threads(1)

TOOL = REPO_ROOT / 'tools' / 'analysis' / 'clip_embed.py'
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
TINY = dict(embed_dim=16,
            vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16),
            text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2))
CONFIG = f"""
default_scope = 'mmrs'
model = dict(type='CLIP', model_name='ViT-B-32', model_cfg={TINY!r}, loss=None)
"""


def _load_tool():
    spec = importlib.util.spec_from_file_location('clip_embed_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(scope='module')
def vl_samples() -> Path:
    root = shared_data_root() / 'vl_samples'
    if not (root / 'RemoteCLIP' / 'assets' / 'airport.jpg').is_file():
        pytest.skip(f'vl_samples not found at {root} (set MMRS_SHARED_DATA)')
    return root


@pytest.fixture
def layouts(monkeypatch):
    """A stand-in layouts.load_clip_state_dict reading a bare open_clip state dict, so the
    tool is tested on its own (``test_command_line`` uses the real module)."""
    from mmrs.models.clip import layouts as module
    monkeypatch.setattr(module, 'load_clip_state_dict', lambda source, layout='auto', **kw: (
        torch.load(source, map_location='cpu', weights_only=True), 'openclip'))


@pytest.fixture
def setup(tmp_path, layouts):
    """(config path, checkpoint path, the model holding those weights)."""
    from mmrs.models.clip import CLIP
    torch.manual_seed(0)
    model = CLIP('ViT-B-32', TINY, loss=None).eval()
    ckpt = tmp_path / 'tiny_clip.pt'
    torch.save(model.clip.state_dict(), ckpt)
    config = tmp_path / 'tiny_clip.py'
    config.write_text(CONFIG)
    return config, ckpt, model


def clip_normalise(rgb_uint8: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) CLIP input, written out."""
    x = (rgb_uint8.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def embed_direct(model, inputs: list[torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return model.encode_image(torch.stack(inputs)).numpy()


def run(*args) -> int:
    return tool.main([str(a) for a in args])


def test_picture_at_tower_size_exact(tmp_path, setup):
    from PIL import Image
    config, ckpt, model = setup
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'tile.png')
    out = tmp_path / 'emb.npz'
    assert run(config, '--checkpoint', ckpt, '--images', tmp_path / 'tile.png', '--out',
               out) == 0
    data = np.load(out)
    np.testing.assert_allclose(data['image'], embed_direct(model, [clip_normalise(rgb)]),
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(data['image'], axis=1), 1, atol=1e-5)
    assert data['text'].shape == (0, 16)
    assert list(data['image_paths']) == [str(tmp_path / 'tile.png')]


def test_real_pictures_and_texts(tmp_path, setup, vl_samples):
    import open_clip
    from PIL import Image
    config, ckpt, model = setup
    images = [vl_samples / 'RemoteCLIP' / 'assets' / 'airport.jpg',
              vl_samples / 'RS-M-CLIP' / 'figs' / 'airplane_004.jpg',
              vl_samples / 'RS-M-CLIP' / 'figs' / 'golf_course_004.jpg']
    text_file = tmp_path / 'texts.txt'
    text_file.write_text('a golf course\n\nmany planes at an airport\n', encoding='utf-8')
    out = tmp_path / 'emb.npz'
    assert run(config, '--checkpoint', ckpt, '--images', *images, '--texts', 'an airport',
               '--text-file', text_file, '--out', out, '--batch-size', 2) == 0
    data = np.load(out)
    assert data['image'].shape == (3, 16) and data['text'].shape == (3, 16)
    assert list(data['texts']) == ['an airport', 'a golf course', 'many planes at an airport']
    with torch.no_grad():
        expected_text = model.encode_texts(list(data['texts'])).numpy()
    np.testing.assert_allclose(data['text'], expected_text, atol=1e-5)
    # open_clip's evaluation transform (PIL bicubic resize + center crop) as the oracle; PIL
    # rounds the resized picture to 8 bits, we keep floats: ~0.25 grey levels apart
    transform = open_clip.image_transform(32, is_train=False)
    ref_inputs = [transform(Image.open(p)) for p in images]
    mean, std = torch.tensor(MEAN * 255), torch.tensor(STD * 255)
    ours = [tool.load_image(str(p), (32, 32), mean, std) for p in images]
    for a, b in zip(ours, ref_inputs):
        assert (a - b).abs().mean() < 0.01 and (a - b).abs().max() < 0.05
    expected = embed_direct(model, ref_inputs)
    cosine = (data['image'] * expected).sum(1)
    assert (cosine > 0.9999).all(), cosine
    np.testing.assert_allclose(data['image'], embed_direct(model, ours), atol=1e-5)


@pytest.mark.parametrize('box', [(0, 0, 224, 150), (30, 0, 130, 224)])
def test_non_square_picture_center_crop(tmp_path, vl_samples, box):
    """Landscape and portrait pictures: shortest side resized, then the center crop."""
    import open_clip
    from PIL import Image
    picture = Image.open(vl_samples / 'RemoteCLIP' / 'assets' / 'airport.jpg').crop(box)
    picture.save(tmp_path / 'part.png')
    ref = open_clip.image_transform(32, is_train=False)(Image.open(tmp_path / 'part.png'))
    ours = tool.load_image(str(tmp_path / 'part.png'), (32, 32), torch.tensor(MEAN * 255),
                           torch.tensor(STD * 255))
    assert ours.shape == ref.shape == (3, 32, 32)
    assert (ours - ref).abs().mean() < 0.01 and (ours - ref).abs().max() < 0.06


def write_tif(path: Path, bands_hwc: np.ndarray) -> None:
    import rasterio
    h, w, c = bands_hwc.shape
    with rasterio.open(path, 'w', driver='GTiff', height=h, width=w, count=c,
                       dtype=bands_hwc.dtype) as dst:
        dst.write(np.moveaxis(bands_hwc, -1, 0))


def test_uint16_multiband_tif(tmp_path, setup):
    config, ckpt, model = setup
    rgb = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    # bands stored as (B, G, R, NIR) in uint16: value * 257 maps 0..255 onto 0..65535
    stack = np.concatenate([rgb[..., ::-1], rgb[..., :1]], axis=2).astype(np.uint16) * 257
    write_tif(tmp_path / 'scene.tif', stack)
    out = tmp_path / 'emb.npz'
    assert run(config, '--checkpoint', ckpt, '--images', tmp_path / 'scene.tif',
               '--bands', '3,2,1', '--out', out) == 0
    np.testing.assert_allclose(np.load(out)['image'],
                               embed_direct(model, [clip_normalise(rgb)]), atol=1e-4)
    # band selection and value range from the config: 12-bit data (0..4095)
    config.write_text(CONFIG + 'clip_embed = dict(bands=[3, 2, 1], value_max=4095)\n')
    stack12 = (rgb[..., ::-1].astype(np.float64) * 4095 / 255).round().astype(np.uint16)
    write_tif(tmp_path / 'scene12.tif', stack12)
    out12 = tmp_path / 'emb12.npz'
    assert run(config, '--checkpoint', ckpt, '--images', tmp_path / 'scene12.tif', '--out',
               out12) == 0
    np.testing.assert_allclose(np.load(out12)['image'], np.load(out)['image'], atol=1e-3)
    # the command line wins over the config
    out16 = tmp_path / 'emb16.npz'
    assert run(config, '--checkpoint', ckpt, '--images', tmp_path / 'scene.tif', '--out',
               out16, '--value-max', 65535) == 0
    np.testing.assert_allclose(np.load(out16)['image'], np.load(out)['image'], atol=1e-5)


def test_percentile_stretch_ignores_gain_and_offset(tmp_path, setup):
    """The 2-98 % stretch shows a 12-bit scene (gain 10, offset 500) as its 8-bit picture."""
    from PIL import Image
    config, ckpt, _ = setup
    rgb = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'tile.png')
    write_tif(tmp_path / 'scene.tif', rgb.astype(np.uint16) * 10 + 500)
    out_png, out_tif = tmp_path / 'png.npz', tmp_path / 'tif.npz'
    for image, out in ((tmp_path / 'tile.png', out_png), (tmp_path / 'scene.tif', out_tif)):
        assert run(config, '--checkpoint', ckpt, '--images', image, '--stretch', 'percentile',
                   '--out', out) == 0
    np.testing.assert_allclose(np.load(out_tif)['image'], np.load(out_png)['image'], atol=1e-5)


def test_multiband_without_selection_is_an_error(tmp_path, setup, capsys):
    config, ckpt, _ = setup
    write_tif(tmp_path / 's2.tif', np.ones((16, 16, 5), np.uint16))
    out = tmp_path / 'emb.npz'
    assert run(config, '--checkpoint', ckpt, '--images', tmp_path / 's2.tif', '--out',
               out) == 2
    err = capsys.readouterr().err
    assert 's2.tif' in err and '5 bands' in err and '--bands' in err
    assert not out.exists()


def test_unreadable_image_named_and_nothing_written(tmp_path, setup, capsys):
    config, ckpt, _ = setup
    (tmp_path / 'broken.jpg').write_bytes(b'not a jpeg at all')
    out = tmp_path / 'emb.npz'
    assert run(config, '--checkpoint', ckpt, '--images', tmp_path / 'broken.jpg', '--out',
               out) == 2
    assert 'broken.jpg' in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob('.mmrs-tmp-*'))
    assert run(config, '--checkpoint', ckpt, '--images', tmp_path / 'missing.png', '--out',
               out) == 2
    assert 'missing.png' in capsys.readouterr().err


def test_refuses_to_overwrite(tmp_path, setup, capsys):
    config, ckpt, _ = setup
    out = tmp_path / 'emb.npz'
    out.write_bytes(b'previous result')
    assert run(config, '--checkpoint', ckpt, '--texts', 'a river', '--out', out) == 2
    assert 'already exists' in capsys.readouterr().err
    assert out.read_bytes() == b'previous result'
    assert run(config, '--checkpoint', ckpt, '--texts', 'a river', '--out', out,
               '--overwrite') == 0
    assert np.load(out)['text'].shape == (1, 16)


def test_argument_errors(tmp_path, setup, capsys):
    config, ckpt, _ = setup
    assert run(config, '--checkpoint', ckpt, '--out', tmp_path / 'e.npz') == 2
    assert 'nothing to embed' in capsys.readouterr().err
    assert run(config, '--texts', 'x', '--out', tmp_path / 'e.npz') == 2
    assert 'no weights' in capsys.readouterr().err
    assert run(config, '--checkpoint', ckpt, '--texts', 'x', '--out', tmp_path / 'e.txt') == 2
    assert '.npz' in capsys.readouterr().err


@pytest.mark.slow
def test_command_line(tmp_path, vl_samples):
    """As a user runs it, with the real checkpoint layouts (H1b)."""
    pytest.importorskip('mmrs.models.clip.layouts', reason='layouts.py not written yet')
    from mmrs.models.clip import CLIP
    torch.manual_seed(0)
    model = CLIP('ViT-B-32', TINY, loss=None).eval()
    torch.save(model.clip.state_dict(), tmp_path / 'tiny.pt')
    (tmp_path / 'tiny.py').write_text(CONFIG)
    out = tmp_path / 'emb.npz'
    result = run_tool(str(TOOL), str(tmp_path / 'tiny.py'), '--checkpoint',
                      str(tmp_path / 'tiny.pt'), '--images',
                      str(vl_samples / 'RemoteCLIP' / 'assets' / 'airport.jpg'),
                      '--texts', 'an airport', '--out', str(out), '--device', 'cpu')
    assert 'wrote' in result.stdout
    data = np.load(out)
    assert data['image'].shape == (1, 16) and data['text'].shape == (1, 16)
