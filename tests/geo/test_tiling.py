"""Tile grid, blending weights and the streaming stitcher (mmrs.geo.tiling / stitch)."""
import numpy as np
import pytest

from mmrs.geo.stitch import Stitcher
from mmrs.geo.tiling import TileGrid, ramp

SIZES = [(300, 260), (1, 1), (100, 90), (128, 128), (129, 257), (1000, 37)]


def _coverage(grid: TileGrid) -> np.ndarray:
    count = np.zeros((grid.height, grid.width), int)
    for t in grid:
        count[t.slices] += 1
    return count


class TestTileGrid:

    @pytest.mark.parametrize('size', SIZES)
    def test_covers_the_scene_with_at_most_two_tiles_per_axis(self, size) -> None:
        grid = TileGrid(*size, tile=128, overlap=32)
        count = _coverage(grid)
        assert count.min() >= 1 and count.max() <= 4
        for t in grid:
            assert t.y + t.height <= grid.height and t.x + t.width <= grid.width
            assert t.height >= 1 and t.width >= 1

    def test_scene_smaller_than_a_tile_is_one_tile_of_its_size(self) -> None:
        grid = TileGrid(100, 90, tile=512, overlap=128)
        tiles = list(grid)
        assert len(tiles) == 1 and (tiles[0].height, tiles[0].width) == (100, 90)
        np.testing.assert_array_equal(grid.weights(tiles[0]), 1.0)

    @pytest.mark.parametrize('size', [(300, 260), (1000, 1001), (97, 500)])
    def test_last_tile_is_longer_than_the_overlap(self, size) -> None:
        grid = TileGrid(*size, tile=128, overlap=32)
        for t in grid:
            assert t.height > grid.overlap or len(grid.row_starts) == 1
            assert t.width > grid.overlap or len(grid.col_starts) == 1

    def test_stride_is_aligned_and_overlap_never_shrinks(self) -> None:
        grid = TileGrid(2000, 2000, tile=512, overlap=100)
        assert grid.stride % 16 == 0 and grid.overlap >= 100
        assert 'requested 100' in grid.protocol()
        assert TileGrid(2000, 2000, tile=512, overlap=128).stride == 384

    @pytest.mark.parametrize('blending', ['cosine', 'linear', 'mean'])
    @pytest.mark.parametrize('size', SIZES)
    def test_weights_partition_unity_and_never_vanish(self, size, blending) -> None:
        grid = TileGrid(*size, tile=128, overlap=32, blending=blending)
        total = np.zeros((grid.height, grid.width))
        for t in grid:
            w = grid.weights(t)
            assert w.min() > 0
            total[t.slices] += w
        np.testing.assert_allclose(total, 1.0, atol=1e-6)

    def test_cosine_ramp_is_smooth_and_symmetric(self) -> None:
        up = ramp(32, 'cosine')
        assert 0 < up[0] < 0.01 and 0.99 < up[-1] < 1
        np.testing.assert_allclose(up + up[::-1], 1.0, atol=1e-12)
        assert np.all(np.diff(up) > 0) and np.abs(np.diff(up, 2)).max() < 0.01

    def test_final_windows_partition_the_scene(self) -> None:
        grid = TileGrid(300, 260, tile=128, overlap=32)
        count = np.zeros((300, 260), int)
        for t in grid:
            y, x, h, w = grid.final_window(t)
            assert y % grid.stride == 0 and x % grid.stride == 0
            count[y:y + h, x:x + w] += 1
        np.testing.assert_array_equal(count, 1)

    @pytest.mark.parametrize('kwargs', [dict(overlap=65), dict(overlap=-1), dict(tile=8),
                                        dict(blending='gauss')])
    def test_bad_settings(self, kwargs) -> None:
        with pytest.raises(ValueError):
            TileGrid(100, 100, **{'tile': 128, 'overlap': 32, **kwargs})


def _dense_blend(grid: TileGrid, probs: dict, channels: int) -> np.ndarray:
    """Oracle: full-scene weighted average with the raw ramps, built from scratch."""
    num = np.zeros((channels, grid.height, grid.width))
    den = np.zeros((grid.height, grid.width))
    ov = grid.overlap
    up = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ov) + 0.5) / ov)
    rows, cols = grid.shape
    for t in grid:
        wy, wx = np.ones(t.height), np.ones(t.width)
        if t.row > 0:
            wy[:ov] = up
        if t.row < rows - 1:
            wy[-ov:] = up[::-1]
        if t.col > 0:
            wx[:ov] = up
        if t.col < cols - 1:
            wx[-ov:] = up[::-1]
        w = wy[:, None] * wx[None]
        num[:, t.y:t.y + t.height, t.x:t.x + t.width] += w * probs[t.row, t.col]
        den[t.y:t.y + t.height, t.x:t.x + t.width] += w
    return num / den


class TestStitcher:

    @pytest.mark.parametrize('size,channels', [((300, 260), 1), ((129, 257), 3), ((50, 40), 1),
                                               ((400, 130), 2)])
    def test_streaming_blend_equals_dense_blend(self, size, channels) -> None:
        rng = np.random.default_rng(0)
        grid = TileGrid(*size, tile=128, overlap=32)
        probs = {(t.row, t.col): rng.random((channels, t.height, t.width)) for t in grid}
        expected = _dense_blend(grid, probs, channels)
        stitcher = Stitcher(grid, channels)
        out = np.full((channels, *size), np.nan)
        for t in grid:
            block = stitcher.add(t, probs[t.row, t.col])
            h, w = block.values.shape[1:]
            assert np.isnan(out[:, block.y:block.y + h, block.x:block.x + w]).all()
            out[:, block.y:block.y + h, block.x:block.x + w] = block.values
        np.testing.assert_allclose(out, expected, atol=1e-5)

    def test_memory_does_not_grow_with_the_scene_height(self) -> None:
        small = Stitcher(TileGrid(1000, 4096, tile=512, overlap=128), 1)
        tall = Stitcher(TileGrid(100000, 4096, tile=512, overlap=128), 1)
        assert small.nbytes == tall.nbytes == 4 * 128 * (4096 + 512)

    def test_skipped_tiles_contribute_nothing(self) -> None:
        grid = TileGrid(300, 300, tile=128, overlap=32)  # 3 x 3 tiles
        stitcher = Stitcher(grid, 1)
        ones = {(t.row, t.col): np.ones((1, t.height, t.width)) for t in grid}
        blocks = [stitcher.add(t, None if (t.row, t.col) == (0, 0) else ones[t.row, t.col])
                  for t in grid]
        assert blocks[0].values.max() == 0  # only the skipped tile covers its final square
        np.testing.assert_allclose(blocks[-1].values, 1.0, atol=1e-6)  # (0, 0) is far away
        assert 0 < blocks[1].values.min() < 1  # beside it: only the neighbour's share

    def test_out_of_order_and_bad_shapes(self) -> None:
        grid = TileGrid(300, 300, tile=128, overlap=32)
        tiles = list(grid)
        stitcher = Stitcher(grid, 1)
        with pytest.raises(ValueError, match='row-major'):
            stitcher.add(tiles[1], None)
        with pytest.raises(ValueError, match='shape'):
            stitcher.add(tiles[0], np.zeros((2, 5, 5)))
