"""Archive search over GeoTIFF scenes with CLIP: embed every tile once, then ask in words or
with a picture which tiles of the archive look like it.

:class:`CLIPArchiveSearch` ``.index()`` cuts each scene into a regular grid of tiles
(:class:`mmrs.geo.tiling.TileGrid`, edge tiles cut at the scene border), reads them window by
window through :func:`mmrs.geo.single.open_single` (its nodata / alpha-mask rule; a background
thread reads ahead while the model runs), embeds them in batches with the image tower of a
:class:`mmrs.models.clip.CLIP` and streams the normalised embeddings plus each tile's
footprint into a :class:`~mmrs.apis.clip_index.TileArchive` folder, chunk by chunk (resumable
after a kill, appendable; see :mod:`mmrs.apis.clip_index`). ``.query()`` embeds a text (text
tower) or an image (image tower, same preprocessing as the tiles) and returns the ``top_k``
most similar tiles (cosine similarity), optionally written as RFC 7946 GeoJSON.

The tile preprocessing, footprints and model identity are in
:mod:`mmrs.apis.clip_encoder`; the archive folder and the vector search in
:mod:`mmrs.apis.clip_index`.
"""
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrs.apis.change_inferencer import _END, _put, _Worker
from mmrs.apis.clip_encoder import (CLIPTileEncoder, Stretch, _absolute, _crs_name,
                                    _default_bands, _lonlat_transformer, _to_rgb,
                                    file_fingerprint, lonlat_outline, tile_footprint)
from mmrs.apis.clip_index import ArchiveError, TileArchive, resolve_backend, search
from mmrs.geo.single import SingleRaster, open_single
from mmrs.geo.tiling import TileGrid

__all__ = ['CLIPArchiveSearch', 'CLIPTileEncoder', 'Hit', 'IndexSummary', 'Stretch',
           'write_hits']


# ---------------------------------------------------------------------------- results
@dataclass
class IndexSummary:
    """What one ``index`` run did."""

    db: str
    scenes_indexed: list[str] = field(default_factory=list)
    scenes_skipped: list[str] = field(default_factory=list)
    tiles: int = 0
    embedded: int = 0
    skipped_nodata: int = 0
    chunks_resumed: int = 0
    wall_s: float = 0.0

    @property
    def tiles_per_s(self) -> float:
        return self.embedded / self.wall_s if self.wall_s > 0 else 0.0

    def __str__(self) -> str:
        lines = [f'archive {self.db}: {len(self.scenes_indexed)} scene(s) indexed, '
                 f'{self.embedded} tiles embedded, {self.skipped_nodata} all-nodata tiles '
                 f'skipped, {self.chunks_resumed} chunk(s) reused from an earlier run, '
                 f'{self.wall_s:.1f} s ({self.tiles_per_s:.1f} tiles/s)']
        lines += [f'  skipped (already in the archive): {s}' for s in self.scenes_skipped]
        return '\n'.join(lines)


@dataclass(frozen=True)
class Hit:
    """One search result: ``window`` is ``(row_off, col_off, height, width)`` in the scene,
    ``lonlat`` the tile's outline in WGS 84 (closed, densified), ``polygon`` its corners in the
    scene CRS (``crs``)."""

    rank: int
    score: float
    scene: str
    scene_id: str
    crs: str
    window: tuple[int, int, int, int]
    tile: tuple[int, int]
    lonlat: list[list[float]]
    lonlat_bounds: list[float]
    polygon: list[list[float]]

    def properties(self) -> dict[str, Any]:
        y, x, h, w = self.window
        return dict(rank=self.rank, score=self.score, scene=self.scene, scene_id=self.scene_id,
                    window=f'{y},{x},{h},{w}', crs=self.crs, tile_row=self.tile[0],
                    tile_col=self.tile[1])


#: GeoJSON property types of a hit (``window`` is ``"row_off,col_off,height,width"``).
HIT_SCHEMA = dict(rank='int', score='float', scene='str', scene_id='str', window='str',
                  crs='str', tile_row='int', tile_col='int')


def write_hits(path: str | os.PathLike, hits: Sequence[Hit], overwrite: bool = False) -> int:
    """Write hits as RFC 7946 GeoJSON (EPSG:4326 lon/lat) or a GeoPackage layer (same
    coordinates), all or nothing, through :func:`mmrs.geo.vector_io.write_vector`."""
    from rasterio.crs import CRS
    from shapely.geometry import Polygon

    from mmrs.geo.vector_io import Feature, FeatureStream, write_vector
    features = (Feature(Polygon(h.lonlat), h.properties()) for h in hits)
    return write_vector(path, FeatureStream(features, CRS.from_epsg(4326), dict(HIT_SCHEMA)),
                        overwrite=overwrite)


# ---------------------------------------------------------------------------- search
class CLIPArchiveSearch:
    """Index GeoTIFF scenes into a tile archive and search it (see the module docstring).

    Args:
        config: Config with ``model = dict(type='CLIP', ...)`` (path, ``mmrs::`` name or
            ``Config``); ignored when ``encoder`` is given.
        checkpoint: Weights (any layout :class:`mmrs.models.clip.CLIP` reads, or an mmrs
            training checkpoint).
        device: Torch device.
        encoder: A ready :class:`CLIPTileEncoder` (tests, notebooks).

    Example:
        >>> search = CLIPArchiveSearch('configs/clip/remoteclip_vit_b32.py', 'RemoteCLIP.pt')
        >>> print(search.index(['a.tif', 'b.tif'], 'archive/'))
        >>> hits = search.query('archive/', text='an airport', top_k=5, out='hits.geojson')
    """

    def __init__(self, config: Any = None, checkpoint: str | None = None, device: str = 'cpu',
                 encoder: CLIPTileEncoder | None = None) -> None:
        if encoder is None:
            if config is None:
                raise ValueError('give a config (and checkpoint) or an encoder')
            encoder = CLIPTileEncoder.from_config(config, checkpoint, device)
        self.encoder = encoder
        self.config, self.checkpoint = config, checkpoint

    @classmethod
    def for_archive(cls, db: str | os.PathLike, config: Any = None,
                    checkpoint: str | None = None, device: str = 'cpu') -> 'CLIPArchiveSearch':
        """The searcher of an archive: its saved config (``DB/config.py``) and recorded
        checkpoint, each unless given.

        Raises:
            FileNotFoundError: The recorded checkpoint moved (give ``checkpoint``).
        """
        archive = TileArchive.open(db)
        info = archive.manifest.get('model_info', {})
        if config is None:
            saved = Path(db) / 'config.py'
            config = str(saved) if saved.is_file() else info.get('config')
        if checkpoint is None:
            checkpoint = info.get('checkpoint')
        if config is None:
            raise ArchiveError(f'{db} records no config; pass --config/--checkpoint')
        if checkpoint is not None and '://' not in checkpoint and not Path(checkpoint).is_file():
            raise FileNotFoundError(f'the checkpoint recorded in {db}, {checkpoint!r}, does not '
                                    'exist any more; pass --checkpoint')
        return cls(config, checkpoint, device)

    # ----------------------------------------------------------------- indexing
    def index(self, scenes: Sequence[str | os.PathLike], db: str | os.PathLike,
              tile: int = 224, overlap: int = 0, batch: int = 32, bands: Any = None,
              stretch: 'str | Stretch | None' = 'auto', nodata: float | None = None,
              min_valid: float = 0.0, chunk_tiles: int = 1024, dtype: str = 'float16',
              quiet: bool = True, on_batch: Callable[[int], None] | None = None,
              gdal_cache_mb: int = 64) -> IndexSummary:
        """Embed every tile of ``scenes`` into the archive ``db`` (created if needed).

        Scenes already complete in the archive (same file content) are skipped and named in
        the summary; a partly indexed scene is resumed (same options required).

        Args:
            scenes: GeoTIFF paths.
            db: Archive folder.
            tile, overlap: Tile grid (square tiles; ``overlap <= tile // 2``).
            batch: Tiles per forward pass (memory is bounded by it and ``chunk_tiles``).
            bands: 1-based red, green, blue bands (``'4,3,2'``) or one band.
            stretch: See :meth:`Stretch.parse`.
            nodata: Nodata value overriding the files' tags.
            min_valid: Fraction of valid pixels a tile needs to be embedded (all-nodata
                tiles are always skipped).
            chunk_tiles: Grid tiles per committed chunk (a resume redoes at most one).
            dtype: ``'float16'`` or ``'float32'`` embeddings (new archives).
            quiet: No progress lines on stderr.
            on_batch: Called with the number of tiles of every embedded batch.
            gdal_cache_mb: GDAL block cache while reading.

        Raises:
            FileNotFoundError, OSError: A scene is missing or unreadable (named), checked for
                every scene before anything is embedded.
            ValueError: A scene without a CRS, bad bands or options.
            ModelMismatchError: ``db`` holds another model's embeddings.
        """
        import rasterio
        if batch < 1 or chunk_tiles < 1:
            raise ValueError(f'batch and chunk_tiles must be >= 1, got {batch}, {chunk_tiles}')
        if not 0.0 <= min_valid <= 1.0:
            raise ValueError(f'min_valid must be a fraction in [0, 1], got {min_valid}')
        stretch = Stretch.parse(stretch)
        paths = [os.path.abspath(str(s)) for s in scenes]
        if not paths:
            raise ValueError('no scenes to index')
        for path in paths:  # every scene readable and georeferenced before any work
            with self._open(path, bands, nodata):
                pass
        summary = IndexSummary(db=str(db))
        start = time.perf_counter()
        enc = self.encoder
        archive = TileArchive.open_or_create(
            db, enc.identity, dtype=dtype, config_text=self._config_text(),
            model_info=dict(config=str(getattr(self.config, 'filename', self.config)),
                            checkpoint=_absolute(self.checkpoint)))
        with archive.locked(), rasterio.Env(GDAL_CACHEMAX=int(gdal_cache_mb)):
            seen: set[str] = set()
            for path in paths:
                fingerprint = file_fingerprint(path)
                old = archive.find_scene(fingerprint)
                if fingerprint['sha256'] in seen or (old and old.get('status') == 'complete'):
                    where = old['path'] if old else path
                    summary.scenes_skipped.append(f'{path} (same file as {where})')
                    continue
                seen.add(fingerprint['sha256'])
                self._index_scene(archive, path, fingerprint, tile, overlap, batch, bands,
                                  stretch, nodata, min_valid, chunk_tiles, quiet, on_batch,
                                  summary)
                summary.scenes_indexed.append(path)
        summary.wall_s = time.perf_counter() - start
        return summary

    def _config_text(self) -> str | None:
        """The resolved config (``_base_`` files merged in), saved as ``DB/config.py``."""
        cfg = self.encoder.cfg
        if cfg is None:
            return None
        try:
            return cfg.pretty_text
        except Exception:  # noqa: BLE001  (yapf cannot format some configs)
            return cfg.dump()

    @staticmethod
    def _open(path: str, bands: Any, nodata: float | None) -> SingleRaster:
        raster = open_single(path, bands=_default_bands(path, bands), nodata=nodata)
        try:
            if raster.transform is None or raster.crs is None:
                raise ValueError(f'{path!r} has no CRS / geotransform: archive search needs '
                                 'georeferenced scenes (footprints in lon/lat)')
            if len(raster.bands) not in (1, 3):
                raise ValueError(f'{path!r}: CLIP needs 3 bands (red, green, blue) or 1, got '
                                 f'{len(raster.bands)} ({raster.bands}); choose with --bands')
        except BaseException:
            raster.close()
            raise
        return raster

    def _index_scene(self, archive: TileArchive, path: str, fingerprint: dict, tile: int,
                     overlap: int, batch: int, bands: Any, stretch: Stretch,
                     nodata: float | None, min_valid: float, chunk_tiles: int, quiet: bool,
                     on_batch: Callable[[int], None] | None, summary: IndexSummary) -> None:
        with self._open(path, bands, nodata) as raster:
            grid = TileGrid(raster.height, raster.width, tile, overlap, blending='mean',
                            align=False)
            tiles = list(grid)
            resolved = stretch.resolve(raster, 3)
            num_chunks = math.ceil(len(tiles) / chunk_tiles)
            record = dict(
                id=fingerprint['sha256'][:16], path=path, fingerprint=fingerprint,
                height=raster.height, width=raster.width, crs=raster.crs.to_wkt(),
                crs_name=_crs_name(raster.crs),
                transform=[float(v) for v in tuple(raster.transform)[:6]],
                bands=list(raster.bands), nodata=raster.nodata, dtype=str(raster.dtype),
                tiling=dict(tile=grid.tile, overlap=grid.overlap, stride=grid.stride,
                            rows=grid.shape[0], cols=grid.shape[1], min_valid=min_valid),
                stretch=resolved.to_dict(), chunk_tiles=chunk_tiles, num_tiles=len(tiles),
                num_chunks=num_chunks)
            scene = archive.begin_scene(record)
            to_lonlat = _lonlat_transformer(raster.crs)
            chunk_rows, skipped = [], 0
            for k in range(num_chunks):
                part = tiles[k * chunk_tiles:(k + 1) * chunk_tiles]
                if archive.chunk_done(scene['id'], k):
                    meta = archive.read_chunk(scene['id'], k)
                    summary.chunks_resumed += 1
                else:
                    embeddings, records, nd = self._embed_chunk(
                        raster, part, resolved, tile, batch, min_valid, to_lonlat, on_batch)
                    meta = dict(first_tile=k * chunk_tiles, tiles=len(part),
                                skipped_nodata=nd)
                    archive.write_chunk(scene['id'], k, embeddings, records, meta)
                    meta = dict(meta, rows=len(records))
                    summary.embedded += len(records)
                chunk_rows.append(int(meta['rows']))
                skipped += len(meta['skipped_nodata'])
                summary.tiles += len(part)
                if not quiet:
                    sys.stderr.write(f'\r{Path(path).name}: chunk {k + 1}/{num_chunks}')
                    sys.stderr.flush()
            if not quiet:
                sys.stderr.write('\n')
            summary.skipped_nodata += skipped
            archive.finish_scene(scene['id'], dict(chunk_rows=chunk_rows,
                                                   rows=int(sum(chunk_rows)),
                                                   skipped_nodata=skipped))

    def _embed_chunk(self, raster: SingleRaster, part: list, stretch: Stretch, tile: int,
                     batch: int, min_valid: float, to_lonlat: Any,
                     on_batch: Callable[[int], None] | None
                     ) -> tuple[np.ndarray, list[dict], list[list[int]]]:
        """Embeddings, records and skipped ``[row, col]`` of one chunk's tiles, in order."""
        enc = self.encoder
        embeddings: list[np.ndarray] = []
        records: list[dict] = []
        skipped: list[list[int]] = []
        pending: list[tuple[Any, np.ndarray, float]] = []

        def flush() -> None:
            emb = enc.encode_tiles([p[1] for p in pending])
            embeddings.append(emb)
            for t, _, frac in pending:
                records.append(dict(tile_row=t.row, tile_col=t.col,
                                    window=[t.y, t.x, t.height, t.width],
                                    valid_fraction=round(frac, 6),
                                    **tile_footprint(raster.transform, to_lonlat, t.y, t.x,
                                                     t.height, t.width)))
            if on_batch is not None:
                on_batch(len(pending))
            pending.clear()

        for t, img, invalid in _read_ahead(raster, part, 2 * batch):
            frac = 1.0 - float(invalid.mean())
            if frac <= 0.0 or frac < min_valid:
                skipped.append([t.row, t.col])
                continue
            pending.append((t, enc.prepare_tile(_to_rgb(img, raster.path), invalid, stretch,
                                                tile), frac))
            if len(pending) == batch:
                flush()
        if pending:
            flush()
        dim = enc.identity.dim
        out = np.concatenate(embeddings) if embeddings else np.zeros((0, dim), np.float32)
        return out, records, skipped

    # ----------------------------------------------------------------- querying
    def query(self, db: str | os.PathLike, text: str | None = None,
              image: str | os.PathLike | None = None, top_k: int = 10,
              out: str | os.PathLike | None = None, backend: str = 'auto',
              overwrite: bool = False, image_bands: Any = None) -> list[Hit]:
        """The ``top_k`` tiles of ``db`` most similar to ``text`` or ``image``.

        Args:
            db: Archive folder.
            text: A description (text tower).
            image: An image file (image tower, preprocessing of the module docstring).
            top_k: Number of hits.
            out: Optional ``.geojson`` / ``.gpkg`` file for the hits (all or nothing).
            backend: ``'auto'``, ``'numpy'`` or ``'faiss'`` (see :mod:`mmrs.apis.clip_index`).
            overwrite: Replace an existing ``out``.
            image_bands: Bands of ``image`` (default its first three).

        Returns:
            The hits, best first.

        Raises:
            ValueError: Neither or both of ``text``/``image``, empty text, ``top_k < 1``.
            ModelMismatchError: The archive holds another model's embeddings.
            FileExistsError: ``out`` exists and not ``overwrite`` (checked first).
        """
        from mmrs.geo.atomic import check_outputs
        if (text is None) == (image is None):
            raise ValueError('give exactly one of text or image to query with')
        if top_k < 1:
            raise ValueError(f'top-k must be >= 1, got {top_k}')
        if out is not None:
            check_outputs([out], overwrite)
        resolve_backend(backend)
        archive = TileArchive.open(db)
        archive.check_model(self.encoder.identity)
        vector = (self.encoder.encode_text(text) if text is not None else
                  self.encoder.encode_image_file(image, bands=image_bands))
        hits = self.search_vector(archive, vector, top_k, backend)
        if out is not None:
            write_hits(out, hits, overwrite=overwrite)
        return hits

    @staticmethod
    def search_vector(archive: TileArchive, vector: np.ndarray, top_k: int = 10,
                      backend: str = 'auto') -> list[Hit]:
        """Hits of one ``(D,)`` query embedding."""
        from rasterio.crs import CRS
        from rasterio.transform import Affine
        scores, rows = search(archive, vector, top_k, backend)
        hits, transformers = [], {}
        for rank, (score, loc) in enumerate(zip(scores[0], archive.locate(rows[0])), 1):
            rec, scene = loc.record, loc.scene
            if scene['id'] not in transformers:
                transformers[scene['id']] = _lonlat_transformer(CRS.from_wkt(scene['crs']))
            window = tuple(int(v) for v in rec['window'])
            lon, lat = lonlat_outline(Affine(*scene['transform']), transformers[scene['id']],
                                      *window)
            hits.append(Hit(rank=rank, score=float(score), scene=scene['path'],
                            scene_id=scene['id'], crs=scene['crs_name'], window=window,
                            tile=(int(rec['tile_row']), int(rec['tile_col'])),
                            lonlat=[[float(a), float(b)] for a, b in zip(lon, lat)],
                            lonlat_bounds=rec['lonlat_bounds'], polygon=rec['polygon']))
        return hits


def _read_ahead(raster: SingleRaster, tiles: Sequence[Any],
                size: int) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
    """``(tile, img, invalid)`` of each tile, read by a background thread ``size`` ahead."""
    stop = threading.Event()
    q: queue.Queue = queue.Queue(maxsize=max(size, 1))

    def read() -> None:
        try:
            for t in tiles:
                img, invalid = raster.read_window(t.y, t.x, t.height, t.width)
                if not _put(q, (t, img, invalid), stop):
                    return
        finally:
            _put(q, _END, stop)

    worker = _Worker(read, 'mmrs-clip-reader')
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            yield item
        worker.join_checked()
    finally:
        stop.set()
        worker.join(timeout=10)
