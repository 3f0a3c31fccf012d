"""A regular grid of overlapping tiles over a scene of any size, and its blending weights.

The grid is regular on purpose: tile ``(r, c)`` starts at ``(r * stride, c * stride)``, so the
pixels that no later tile touches after tile ``(r, c)`` form the aligned square
``[r*stride, (r+1)*stride) x [c*stride, (c+1)*stride)``. :mod:`mmrs.geo.stitch` finalises exactly
that square per tile and the GeoTIFF writer gets whole output blocks when its block size divides
the stride. Instead of shifting the last tile back inside the scene (mmseg's slide inference),
the last tile of a row or column is cut at the scene edge; the grid is chosen so that this last
tile is always longer than the overlap, so it never degenerates into a sliver. A scene smaller
than a tile is a single tile of the scene's size.

Blending weights are separable ``w(y, x) = w_r(y) * w_c(x)``. Along each axis a tile ramps up
over its leading overlap and down over its trailing overlap (not at the scene edges), with a
raised-cosine (``'cosine'``) or linear (``'linear'``) ramp evaluated at pixel centres, so a
weight is never 0 inside the scene; ``'mean'`` gives every tile weight 1 (plain averaging, as
mmseg). The cosine and linear ramps of two neighbours sum to exactly 1 on their overlap, and the
weights are normalised by their per-pixel sum anyway (:meth:`TileGrid.axis_weights`), so the
blend is a convex combination of the tiles' probabilities for any ramp.
"""
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: Blending ramps understood by :func:`ramp` / :class:`TileGrid`.
BLENDINGS = ('cosine', 'linear', 'mean')
#: Output blocks (GeoTIFF tiles) are multiples of this (the TIFF rule for tiled files).
BLOCK_MULTIPLE = 16


def ramp(length: int, kind: str) -> np.ndarray:
    """Rising weights of ``length`` pixels, evaluated at pixel centres, in ``(0, 1)``.

    ``ramp(n, k)[i] + ramp(n, k)[n - 1 - i] == 1`` for ``'cosine'`` and ``'linear'``, so a
    rising and a falling ramp over the same pixels partition unity.

    Raises:
        ValueError: Unknown ``kind``.
    """
    if kind not in BLENDINGS:
        raise ValueError(f'blending must be one of {BLENDINGS}, got {kind!r}')
    t = (np.arange(length, dtype=np.float64) + 0.5) / max(length, 1)
    if kind == 'cosine':
        return 0.5 - 0.5 * np.cos(np.pi * t)
    if kind == 'linear':
        return t
    return np.ones(length)


def _axis_starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis: ``0, stride, ...`` until a tile reaches ``size``."""
    if size <= tile:
        return [0]
    count = -(-(size - tile) // stride) + 1  # ceil((size - tile) / stride) + 1
    return [i * stride for i in range(count)]


@dataclass(frozen=True)
class Tile:
    """One tile of a :class:`TileGrid`: grid indices and the pixel window in the scene.

    Attributes:
        row, col: Grid indices.
        y, x: Top-left pixel of the window (scene coordinates).
        height, width: Window size (smaller than the tile size at the scene's far edges).
    """

    row: int
    col: int
    y: int
    x: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the window in scene coordinates."""
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


class TileGrid:
    """Overlapping tiles covering an ``(height, width)`` scene, with blending weights.

    Args:
        height, width: Scene size in pixels (each >= 1).
        tile: Tile size (square), >= 16.
        overlap: Requested overlap between neighbouring tiles, ``0 <= overlap <= tile // 2``
            (each pixel is then covered by at most two tiles per axis).
        blending: ``'cosine'`` (default), ``'linear'`` or ``'mean'``.
        align: Round the stride ``tile - overlap`` down to a multiple of
            :data:`BLOCK_MULTIPLE` when that keeps ``overlap <= tile // 2``, so output blocks
            can align with the finalised squares; the overlap used (``self.overlap``) is then
            at least the requested one.

    Raises:
        ValueError: Invalid sizes, overlap or blending.
    """

    def __init__(self, height: int, width: int, tile: int = 512, overlap: int = 128,
                 blending: str = 'cosine', align: bool = True) -> None:
        if height < 1 or width < 1:
            raise ValueError(f'scene size must be positive, got {height}x{width}')
        if tile < BLOCK_MULTIPLE:
            raise ValueError(f'tile must be >= {BLOCK_MULTIPLE} pixels, got {tile}')
        if not 0 <= overlap <= tile // 2:
            raise ValueError(f'overlap must be in 0..tile/2 = 0..{tile // 2} pixels (a pixel '
                             f'may be covered by at most two tiles per axis), got {overlap}')
        if blending not in BLENDINGS:
            raise ValueError(f'blending must be one of {BLENDINGS}, got {blending!r}')
        stride = tile - overlap
        if align and stride % BLOCK_MULTIPLE:
            aligned = stride - stride % BLOCK_MULTIPLE
            if aligned >= BLOCK_MULTIPLE and tile - aligned <= tile // 2:
                stride = aligned
        self.height, self.width = int(height), int(width)
        self.tile, self.stride, self.blending = int(tile), int(stride), blending
        #: Overlap actually used (>= the requested one when the stride was aligned).
        self.overlap = self.tile - self.stride
        self.requested_overlap = int(overlap)
        self.row_starts = _axis_starts(self.height, self.tile, self.stride)
        self.col_starts = _axis_starts(self.width, self.tile, self.stride)
        self._row_weights = self._normalised(self.row_starts, self.height)
        self._col_weights = self._normalised(self.col_starts, self.width)

    # ----------------------------------------------------------------- geometry
    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid."""
        return len(self.row_starts), len(self.col_starts)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def _extent(self, starts: list[int], index: int, size: int) -> int:
        return min(starts[index] + self.tile, size) - starts[index]

    def tile_at(self, row: int, col: int) -> Tile:
        """The tile at grid position ``(row, col)``."""
        return Tile(row, col, self.row_starts[row], self.col_starts[col],
                    self._extent(self.row_starts, row, self.height),
                    self._extent(self.col_starts, col, self.width))

    def __iter__(self) -> Iterator[Tile]:
        """Tiles in row-major order (the order :class:`~mmrs.geo.stitch.Stitcher` needs)."""
        for row in range(len(self.row_starts)):
            for col in range(len(self.col_starts)):
                yield self.tile_at(row, col)

    def final_window(self, tile: Tile) -> tuple[int, int, int, int]:
        """``(y, x, height, width)`` of the pixels final once ``tile`` is blended.

        That is the tile's window minus its trailing overlaps (kept where it is the last tile
        of its row / column).
        """
        rows, cols = self.shape
        h = self.stride if tile.row < rows - 1 else tile.height
        w = self.stride if tile.col < cols - 1 else tile.width
        return tile.y, tile.x, h, w

    # ----------------------------------------------------------------- weights
    def _raw(self, starts: list[int], index: int, size: int) -> np.ndarray:
        n = self._extent(starts, index, size)
        w = np.ones(n)
        ov = self.overlap
        if ov and self.blending != 'mean':
            up = ramp(ov, self.blending)
            if index > 0:
                w[:ov] = up
            if index < len(starts) - 1:
                w[n - ov:] = up[::-1]
        return w

    def _normalised(self, starts: list[int], size: int) -> list[np.ndarray]:
        raw = [self._raw(starts, i, size) for i in range(len(starts))]
        total = np.zeros(size)
        for start, w in zip(starts, raw):
            total[start:start + w.size] += w
        return [(w / total[s:s + w.size]).astype(np.float32) for s, w in zip(starts, raw)]

    def axis_weights(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """Normalised 1-D weights ``(wy (height,), wx (width,))`` of ``tile``.

        ``wy[:, None] * wx[None, :]`` summed over every tile covering a pixel is 1, so
        blending is ``sum_t weights_t * prob_t`` with no per-pixel weight buffer.
        """
        return self._row_weights[tile.row], self._col_weights[tile.col]

    def weights(self, tile: Tile) -> np.ndarray:
        """``(height, width)`` float32 blending weights of ``tile`` (normalised)."""
        wy, wx = self.axis_weights(tile)
        return wy[:, None] * wx[None, :]

    def block_size(self, largest: int = 512) -> int:
        """Largest multiple of :data:`BLOCK_MULTIPLE` up to ``largest`` dividing the stride
        (so every finalised square is whole output blocks), else 256 (unaligned writes)."""
        if len(self) == 1:
            return min(largest, 256)
        for size in range(largest, BLOCK_MULTIPLE - 1, -BLOCK_MULTIPLE):
            if self.stride % size == 0:
                return size
        return 256

    def protocol(self) -> str:
        """One line describing the tiling, printed with every result."""
        requested = (f' (requested {self.requested_overlap})'
                     if self.requested_overlap != self.overlap else '')
        return (f'tile={self.tile} overlap={self.overlap}{requested} stride={self.stride} '
                f'blending={self.blending} grid={self.shape[0]}x{self.shape[1]}')
