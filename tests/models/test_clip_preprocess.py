"""mmrs.models.clip.preprocess: one CLIP image preprocessing for clip_embed and archive search.

Oracles that do not go through the module: open_clip's own evaluation transform (PIL bicubic
resize + center crop) on real pictures, torchvision's ``Resize`` / ``CenterCrop`` for the
geometry's rounding, PIL's bicubic filter on float images for tiles, and 8-bit pictures
written as uint16 GeoTIFFs (``v * 257``).
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mmrs.models.clip import preprocess as pp
from tests.conftest import shared_data_root

torch.set_num_threads(1)
REPO_ROOT = Path(__file__).resolve().parents[2]
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32) * 255
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32) * 255
AIRPORT = shared_data_root() / 'vl_samples' / 'RemoteCLIP' / 'assets' / 'airport.jpg'


def _load_clip_embed():
    spec = importlib.util.spec_from_file_location(
        'clip_embed_tool_pp', REPO_ROOT / 'tools' / 'analysis' / 'clip_embed.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorder(nn.Module):
    """Stands in for a CLIP model: remembers the last input given to ``encode_image``."""

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.image_size = (size, size)
        self.weight = nn.Parameter(torch.zeros(1))
        self.inputs: list[torch.Tensor] = []

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        self.inputs.append(x.detach().cpu().clone())
        return torch.nn.functional.normalize(x.flatten(1)[:, :8] + 1e-3, dim=-1)

    def encode_texts(self, texts, normalize: bool = True) -> torch.Tensor:
        return torch.ones(len(texts), 8)


def smooth_picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """``(h, w, 3)`` uint8 with structure at every scale (gradients + noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 / w), (yy * 255 / h), 128 + 60 * np.sin(xx / 5 + yy / 7)], -1)
    return np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image
    Image.fromarray(rgb).save(path)
    return path


def write_tif(path: Path, hwc: np.ndarray) -> Path:
    import rasterio
    from rasterio.transform import Affine
    with rasterio.open(path, 'w', driver='GTiff', height=hwc.shape[0], width=hwc.shape[1],
                       count=hwc.shape[2], dtype=str(hwc.dtype), crs='EPSG:32632',
                       transform=Affine(10, 0, 6e5, 0, -10, 5e6)) as dst:
        dst.write(np.moveaxis(hwc, -1, 0))
    return path


class TestBothPathsAgree:
    """tools/analysis/clip_embed.py and the archive search's image query give the same input."""

    @pytest.fixture(scope='class')
    def tool(self):
        return _load_clip_embed()

    def _query_input(self, path: Path, **kw) -> torch.Tensor:
        from mmrs.apis.clip_encoder import CLIPTileEncoder
        model = Recorder()
        CLIPTileEncoder(model).encode_image_file(path, **kw)
        return model.inputs[-1][0]

    @pytest.mark.parametrize('shape', [(50, 70), (90, 41), (32, 32), (20, 27)])
    def test_png_bitwise_equal(self, tmp_path, tool, shape) -> None:
        path = write_png(tmp_path / 'pic.png', smooth_picture(*shape))
        ours = tool.load_image(str(path), (32, 32), torch.tensor(MEAN), torch.tensor(STD))
        query = self._query_input(path)
        assert ours.shape == query.shape == (3, 32, 32)
        assert torch.equal(ours, query)

    def test_real_picture_bitwise_equal(self, tool) -> None:
        if not AIRPORT.is_file():
            pytest.skip(f'{AIRPORT} not found (shared sample data)')
        ours = tool.load_image(str(AIRPORT), (32, 32), torch.tensor(MEAN), torch.tensor(STD))
        assert torch.equal(ours, self._query_input(AIRPORT))

    def test_uint16_geotiff_bitwise_equal(self, tmp_path, tool) -> None:
        rgb = smooth_picture(45, 60, seed=3)
        path = write_tif(tmp_path / 'scene16.tif', rgb.astype(np.uint16) * 257)
        ours = tool.load_image(str(path), (32, 32), torch.tensor(MEAN), torch.tensor(STD))
        query = self._query_input(path, stretch='fixed:0,65535')
        assert torch.equal(ours, query)
        # and the same picture as 8 bits (257 * 255 == 65535)
        png = tool.load_image(str(write_png(tmp_path / 'p.png', rgb)), (32, 32),
                              torch.tensor(MEAN), torch.tensor(STD))
        torch.testing.assert_close(ours, png, atol=1e-4, rtol=0)

    def test_square_tile_saved_as_picture_is_its_own_query(self, tmp_path) -> None:
        """A tile's input (whole-tile resize) equals the query input of the same pixels."""
        from mmrs.apis.clip_encoder import CLIPTileEncoder, Stretch
        rgb = smooth_picture(64, 64, seed=4)
        model = Recorder()
        encoder = CLIPTileEncoder(model)
        tile = encoder.prepare_tile(rgb, np.zeros((64, 64), bool), Stretch('none'), 64)
        encoder.encode_tiles([tile])
        tile_input = model.inputs[-1][0]
        encoder.encode_image_file(write_png(tmp_path / 'tile.png', rgb))
        assert torch.equal(tile_input, model.inputs[-1][0])

    def test_identity_records_the_kernel(self) -> None:
        from mmrs.apis.clip_encoder import INTERPOLATION, CLIPTileEncoder
        assert INTERPOLATION == pp.INTERPOLATION == 'bicubic'
        ident = CLIPTileEncoder(Recorder()).identity
        assert ident.preprocessing['interpolation'] == 'bicubic'
        np.testing.assert_allclose(ident.preprocessing['mean'], MEAN, atol=1e-4)


class TestOpenClipTransform:
    """Within the tolerance of tests/tools/test_clip_embed.py (PIL rounds to 8 bits)."""

    @staticmethod
    def reference(picture) -> torch.Tensor:
        import open_clip
        return open_clip.image_transform(32, is_train=False)(picture)

    @pytest.mark.parametrize('box', [None, (0, 0, 224, 150), (30, 0, 130, 224)])
    def test_real_picture(self, box) -> None:
        from PIL import Image
        if not AIRPORT.is_file():
            pytest.skip(f'{AIRPORT} not found (shared sample data)')
        picture = Image.open(AIRPORT).convert('RGB')
        picture = picture.crop(box) if box else picture
        ours = pp.prepare_image(np.asarray(picture), (32, 32), MEAN, STD)
        ref = self.reference(picture)
        assert ours.shape == ref.shape == (3, 32, 32)
        diff = (ours - ref).abs()
        assert diff.mean() < 0.01 and diff.max() < 0.06, (diff.mean(), diff.max())

    @pytest.mark.parametrize('shape', [(61, 97), (97, 61), (20, 27)])  # 20x27: upsampling
    def test_synthetic_pictures(self, shape) -> None:
        from PIL import Image
        rgb = smooth_picture(*shape, seed=5)
        ours = pp.prepare_image(rgb, (32, 32), MEAN, STD)
        diff = (ours - self.reference(Image.fromarray(rgb))).abs()
        assert diff.mean() < 0.01 and diff.max() < 0.06, (diff.mean(), diff.max())

    def test_bilinear_would_fail_the_tolerance(self) -> None:
        """The tolerance tells the kernels apart (guards against a silent kernel change)."""
        from PIL import Image
        rgb = smooth_picture(61, 97, seed=5)
        x = pp.hwc_to_tensor(rgb)[None]
        bilinear = torch.nn.functional.interpolate(x, size=(32, 50), mode='bilinear',
                                                   antialias=True)[0, :, :, 9:41]
        ref = self.reference(Image.fromarray(rgb))
        assert (pp.normalize(bilinear, MEAN, STD) - ref).abs().max() > 0.06


class TestGeometry:
    @pytest.mark.parametrize('shape', [(37, 101), (101, 37), (45, 45), (33, 200), (17, 23)])
    def test_rounding_as_torchvision(self, shape) -> None:
        from torchvision.transforms import CenterCrop, InterpolationMode, Resize
        x = torch.from_numpy(np.random.default_rng(0).uniform(60, 190, (3, *shape))).float()
        ref = CenterCrop(32)(Resize(32, InterpolationMode.BICUBIC, antialias=True)(x))
        ours = pp.resize_center_crop(x, (32, 32))
        assert ours.shape == ref.shape == (3, 32, 32)
        torch.testing.assert_close(ours, ref.clamp(0, 255), atol=1e-3, rtol=0)

    def test_non_square_target_keeps_ratio(self) -> None:
        assert pp.short_side_size(100, 100, (32, 48)) == (48, 48)
        assert pp.short_side_size(60, 200, (32, 48)) == (32, 107)
        out = pp.resize_center_crop(torch.zeros(2, 3, 60, 200), (32, 48))
        assert out.shape == (2, 3, 32, 48)

    def test_tile_resize_is_pil_bicubic_without_crop(self) -> None:
        from PIL import Image
        tile = np.random.default_rng(1).uniform(0, 255, (3, 64, 64)).astype(np.float32)
        ref = np.stack([np.asarray(Image.fromarray(b, mode='F').resize((32, 24), Image.BICUBIC))
                        for b in tile]).clip(0, 255)
        ours = pp.resize_exact(torch.from_numpy(tile), (24, 32)).numpy()
        assert ours.shape == (3, 24, 32)
        np.testing.assert_allclose(ours, ref, atol=0.05)
        bilinear = torch.nn.functional.interpolate(torch.from_numpy(tile)[None], size=(24, 32),
                                                   mode='bilinear', antialias=True)[0].numpy()
        assert np.abs(bilinear - ref).max() > 1.0

    def test_overshoot_clamped(self) -> None:
        x = torch.zeros(3, 40, 40)
        x[:, :, 20:] = 255  # a hard edge: bicubic rings past 0 and 255
        out = pp.resize_exact(x, (32, 32))
        assert out.min() >= 0 and out.max() <= 255

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError, match=r'\(C, H, W\)'):
            pp.resize_exact(torch.zeros(32, 32), (16, 16))
        with pytest.raises(ValueError, match='channels'):
            pp.normalize(torch.zeros(4, 8, 8), MEAN, STD)


class TestByteRange:
    def test_value_max_and_dtype_default(self) -> None:
        rgb = smooth_picture(8, 8)
        np.testing.assert_array_equal(pp.to_byte_range(rgb), rgb.astype(np.float32))
        np.testing.assert_allclose(pp.to_byte_range(rgb.astype(np.uint16) * 257), rgb,
                                   atol=1e-4)
        np.testing.assert_allclose(pp.to_byte_range(rgb.astype(np.float32) / 255), rgb,
                                   atol=1e-3)
        np.testing.assert_allclose(pp.to_byte_range(rgb.astype(np.uint16) * 16,
                                                     value_max=4080), rgb, atol=1e-4)

    def test_percentile_ignores_gain_offset_and_nan(self) -> None:
        rgb = smooth_picture(16, 16).astype(np.float32)
        a = pp.to_byte_range(rgb, stretch='percentile')
        b = pp.to_byte_range(rgb * 10 + 500, stretch='percentile')
        np.testing.assert_allclose(a, b, atol=1e-3)
        lo, hi = np.percentile(rgb.reshape(-1, 3), (2, 98), axis=0)
        assert (a.reshape(-1, 3) == 0).sum(0).min() >= 0.02 * 256 - 1
        np.testing.assert_allclose(a, np.clip((rgb - lo) / (hi - lo), 0, 1) * 255, atol=1e-3)
        rgb[0, 0] = np.nan
        assert pp.to_byte_range(rgb, stretch='percentile')[0, 0].tolist() == [0, 0, 0]

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match='stretch'):
            pp.to_byte_range(np.zeros((2, 2, 3)), stretch='gamma')
        with pytest.raises(ValueError, match='positive'):
            pp.to_byte_range(np.zeros((2, 2, 3)), value_max=0)
        with pytest.raises(ValueError, match='high > low'):
            pp.linear_to_byte(np.zeros((2, 2, 3)), 5, 5)
