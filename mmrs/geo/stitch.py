"""Blend overlapping tile probabilities into final output blocks, in bounded memory.

Tiles must arrive in the row-major order of their :class:`~mmrs.geo.tiling.TileGrid`. Each
tile's probabilities are multiplied by its normalised blending weights (which sum to 1 over the
tiles covering a pixel, so no weight buffer is needed) and added to what earlier tiles left for
its pixels. Once tile ``(r, c)`` is in, the square ``[r*s, (r+1)*s) x [c*s, (c+1)*s)`` (``s`` =
stride; the remainder for the last row / column) is final and handed back; what later tiles
still add to is kept in two buffers:

- ``strip``: the bottom overlap of the current tile row, ``C x overlap x W`` float32;
- ``right``: the right overlap of the previous tile, ``C x tile x overlap`` float32.

Memory bound: ``4 * C * overlap * (W + tile)`` bytes, independent of the scene height and
linear in its width only through one overlap-high strip (``C`` = 1 for a binary change map:
one change-probability channel; ``C`` = K for K classes). For a 32768-pixel-wide scene with
overlap 128 that is 17 MB; nothing scales with the scene's area.
"""
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .tiling import Tile, TileGrid


@dataclass
class FinalBlock:
    """A finalised part of the scene.

    Attributes:
        y, x: Top-left pixel (scene coordinates).
        values: ``(C, h, w)`` float32 blended probabilities.
        tile: The tile whose arrival finalised it (the block is the top-left part of it).
    """

    y: int
    x: int
    values: np.ndarray
    tile: Tile


class Stitcher:
    """Streaming weighted blend of the tiles of a :class:`TileGrid`.

    Args:
        grid: The tile grid.
        channels: Channels ``C`` of each tile's probabilities.
    """

    def __init__(self, grid: TileGrid, channels: int) -> None:
        if channels < 1:
            raise ValueError(f'channels must be >= 1, got {channels}')
        self.grid, self.channels = grid, int(channels)
        ov = grid.overlap
        self._strip = np.zeros((self.channels, ov, grid.width), np.float32)
        self._right = np.zeros((self.channels, grid.tile, ov), np.float32)
        self._next = 0  # row-major index of the next expected tile

    @property
    def nbytes(self) -> int:
        """Bytes held between tiles (the memory bound of the module docstring)."""
        return self._strip.nbytes + self._right.nbytes

    def add(self, tile: Tile, probs: np.ndarray | None) -> FinalBlock:
        """Blend one tile and return the block it finalises.

        Args:
            tile: The next tile of the grid, in row-major order.
            probs: ``(C, tile.height, tile.width)`` probabilities, or ``None`` for a tile that
                was not predicted (all nodata): it contributes nothing.

        Raises:
            ValueError: Tiles out of order or probabilities of the wrong shape.
        """
        rows, cols = self.grid.shape
        expected = divmod(self._next, cols)
        if (tile.row, tile.col) != expected:
            raise ValueError(f'tiles must come in row-major order: expected {expected}, got '
                             f'{(tile.row, tile.col)}')
        shape = (self.channels, tile.height, tile.width)
        if probs is None:
            q = np.zeros(shape, np.float32)
        else:
            if tuple(probs.shape) != shape:
                raise ValueError(f'tile {(tile.row, tile.col)} probabilities have shape '
                                 f'{tuple(probs.shape)}, expected {shape}')
            wy, wx = self.grid.axis_weights(tile)
            q = probs.astype(np.float32) * wy[None, :, None] * wx[None, None, :]
        ov = self.grid.overlap
        # left overlap: what the previous tile of this row left (it also carries the strip)
        left = ov if tile.col > 0 else 0
        if left:
            q[:, :, :left] += self._right[:, :tile.height, :left]
        # top overlap: what the previous tile row left, for the columns not taken yet
        if tile.row > 0 and ov:
            top = min(ov, tile.height)
            q[:, :top, left:] += self._strip[:, :top, tile.x + left:tile.x + tile.width]
        y, x, fh, fw = self.grid.final_window(tile)
        if tile.col < cols - 1 and ov:
            self._right[:, :tile.height, :] = q[:, :, fw:]
        if tile.row < rows - 1 and ov:
            self._strip[:, :, x:x + fw] = q[:, fh:, :fw]
        self._next += 1
        return FinalBlock(y, x, np.ascontiguousarray(q[:, :fh, :fw]), tile)

    def stitch(self, tiles: Iterator[tuple[Tile, np.ndarray | None]]) -> Iterator[FinalBlock]:
        """Blend ``(tile, probs)`` pairs as they come, yielding the finalised blocks."""
        for tile, probs in tiles:
            yield self.add(tile, probs)
