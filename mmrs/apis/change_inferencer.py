"""Streaming change detection on whole scenes: a GeoTIFF pair in, a georeferenced map out.

:class:`TiledInferencer` is the model-agnostic loop: a background thread reads and preprocesses
tiles (:mod:`mmrs.geo.raster`), the calling thread runs the model on batches, the tiles are
blended in bounded memory (:mod:`mmrs.geo.stitch`) and a second thread compresses and writes
the finished blocks (:mod:`mmrs.geo.writer`), so reading, inference and writing overlap.
Subclasses only say how a batch of tiles becomes probabilities (:meth:`predict_tiles`):
:class:`ChangeDetectionInferencer` does it for mmrs change detectors; a single-image
segmentor would read one raster and implement the same method.

Preprocessing is the one of ``tools/test.py``: the config's test pipeline after its loading
step (``PackChangeInputs`` and whatever the config adds) runs on each tile as the dataset
loader would have produced it (dtype kept, the loader's ``bands``/``to_float32``/``nodata``
options honoured), then the model's data preprocessor normalises it and the model's own
``test_step`` predicts it (``test_cfg`` included).
"""
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrs.geo.atomic import atomic_output
from mmrs.geo.raster import RESAMPLINGS, RasterPair, open_pair, parse_bands
from mmrs.geo.stitch import Stitcher
from mmrs.geo.tiling import Tile, TileGrid
from mmrs.geo.writer import GeoTiffWriter

_END = object()


@dataclass
class InferenceSummary:
    """What one scene's run produced (printed by ``tools/infer.py``).

    Attributes:
        out: Output file.
        protocol: Tiling / blending / preprocessing protocol (compare numbers only with
            the same protocol).
        height, width: Output size in pixels.
        tiles, skipped: Tiles in the grid and tiles not predicted (all nodata).
        changed_pixels: Valid pixels of a class other than 0.
        valid_pixels: Pixels not nodata.
        changed_area: Changed area in map units squared (``None`` without a geotransform).
        area_unit: Name of the map unit (``'metre'``, ``'degree'`` ...).
        changed_m2: Changed area in square metres (``None`` when unknown).
        wall_s: Wall time of the run.
    """

    out: str
    protocol: str
    height: int
    width: int
    tiles: int
    skipped: int
    changed_pixels: int = 0
    valid_pixels: int = 0
    changed_area: float | None = None
    area_unit: str | None = None
    changed_m2: float | None = None
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def mpix_per_s(self) -> float:
        """Output megapixels per second of wall time."""
        return self.height * self.width / 1e6 / max(self.wall_s, 1e-9)

    def __str__(self) -> str:
        area = ''
        if self.changed_area is not None:
            area = f', {self.changed_area:.6g} {self.area_unit or "map unit"}^2'
            if self.changed_m2 is not None and self.area_unit not in ('metre', 'meter'):
                area += f' ({self.changed_m2:.6g} m^2)'
        return (f'{self.out}: {self.height}x{self.width} px, {self.tiles} tiles '
                f'({self.skipped} all-nodata skipped), changed {self.changed_pixels} px{area}; '
                f'{self.wall_s:.2f} s, {self.mpix_per_s:.3g} Mpix/s\n  protocol: {self.protocol}')


class _Progress:
    """A one-line progress bar on stderr: tiles done, tiles/s, ETA."""

    def __init__(self, total: int, quiet: bool, label: str = 'tiles') -> None:
        self.total, self.quiet, self.label = total, quiet, label
        self.start = self._last = time.perf_counter()
        self.done = 0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.quiet or (now - self._last < 0.5 and self.done < self.total):
            return
        self._last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float('inf')
        eta_text = time.strftime('%H:%M:%S', time.gmtime(eta)) if math.isfinite(eta) else '?'
        sys.stderr.write(f'\r{self.label} {self.done}/{self.total} '
                         f'({100 * self.done / max(self.total, 1):.0f}%) {rate:.2f} tiles/s '
                         f'ETA {eta_text}')
        if self.done >= self.total:
            sys.stderr.write('\n')
        sys.stderr.flush()


class _Worker(threading.Thread):
    """A daemon thread whose exception is re-raised by :meth:`join_checked`."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._fn, self.error = target, None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as err:  # noqa: BLE001  (re-raised in the calling thread)
            self.error = err

    def join_checked(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put with a timeout loop so a stopped run never blocks a thread forever."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class _AreaCounter:
    """Changed pixels and their area (map units, and m^2 on projected or geographic CRSs).

    On a geographic CRS the area of a pixel is geodesic, on the CRS's ellipsoid (pyproj),
    computed once per output row (exact for north-up grids; rotated ones use the middle
    column).
    """

    def __init__(self, pair: RasterPair) -> None:
        self.pixel_area = pair.pixel_area()
        self.transform, self.changed, self.valid, self.m2 = pair.transform, 0, 0, 0.0
        self.unit, self.factor, self.geod, self.width = None, None, None, pair.width
        crs = pair.crs
        if crs is not None and self.pixel_area is not None:
            if crs.is_geographic:
                from pyproj import CRS as ProjCRS
                self.unit = 'degree'
                self.geod = ProjCRS.from_wkt(crs.to_wkt()).get_geod()
                self._row_m2 = np.full(pair.height, np.nan)
            else:
                try:
                    self.unit, self.factor = crs.linear_units_factor
                except Exception:  # noqa: BLE001  (CRS without a linear unit)
                    self.unit = crs.linear_units or None

    def _rows_m2(self, y: int, h: int) -> np.ndarray:
        rows = self._row_m2[y:y + h]
        for i in np.flatnonzero(np.isnan(rows)):
            r, c = y + i, (self.width // 2 if self.transform.b or self.transform.d else 0)
            lons, lats = self.transform @ (np.array([c, c + 1, c + 1, c], float),
                                           np.array([r, r, r + 1, r + 1], float))
            rows[i] = abs(self.geod.polygon_area_perimeter(lons, lats)[0])
        return rows

    def add(self, y: int, x: int, changed: np.ndarray, valid: np.ndarray) -> None:
        count = int(changed.sum())
        self.changed += count
        self.valid += int(valid.sum())
        if self.geod is not None:
            self.m2 += float((changed.sum(axis=1) * self._rows_m2(y, changed.shape[0])).sum())
        elif self.factor is not None:
            self.m2 += count * self.pixel_area * self.factor ** 2

    def fill(self, summary: InferenceSummary) -> None:
        summary.changed_pixels, summary.valid_pixels = self.changed, self.valid
        if self.pixel_area is not None:
            summary.changed_area = self.changed * self.pixel_area
            summary.area_unit = self.unit
            if self.geod is not None or self.factor is not None:
                summary.changed_m2 = self.m2


class TiledInferencer:
    """The tiling loop shared by whole-scene inferencers (see the module docstring).

    Subclasses implement :meth:`predict_tiles` and set :attr:`channels` (probability
    channels per tile: 1 for a binary map, K for K classes) and :attr:`threshold`.
    """

    #: Probability channels per tile (1: the change probability; K: class probabilities).
    channels: int = 1
    #: Probability above which a one-channel output is class 1.
    threshold: float = 0.5
    #: Descriptions of the output's class band and probability band.
    band_descriptions: tuple[str, str] = ('change_class', 'change_probability')

    @staticmethod
    def _test_pipeline(cfg: Any) -> list[dict]:
        """The config's test pipeline (test_dataloader's, else ``test_pipeline``)."""
        loader = cfg.get('test_dataloader') or {}
        pipeline = (loader.get('dataset') or {}).get('pipeline') or cfg.get('test_pipeline')
        if not pipeline:
            raise ValueError('the config has no test pipeline (test_dataloader.dataset.'
                             'pipeline or test_pipeline): its preprocessing is unknown')
        return [dict(step) for step in pipeline]

    def _load(self, checkpoint: str, allow_key_mismatch: bool) -> None:
        """Load ``checkpoint`` into ``self.model`` through mmrs' safe loader; refuse one that
        fits only partially unless ``allow_key_mismatch``."""
        from mmrs.utils.checkpoint import load_checkpoint_into
        load_checkpoint_into(self.model, checkpoint, allow_key_mismatch)

    def predict_tiles(self, pair: RasterPair, tiles: Sequence[Tile],
                      inputs: Sequence[Any]) -> list[np.ndarray]:
        """``(channels, h, w)`` float probabilities of each tile (in order)."""
        raise NotImplementedError

    def prepare_tile(self, pair: RasterPair, tile: Tile, img1: np.ndarray, img2: np.ndarray,
                     invalid: np.ndarray) -> Any:
        """Model input of one tile, built in the reader thread (default: the arrays)."""
        return img1, img2

    def protocol(self, grid: TileGrid) -> str:
        """Protocol line printed with every result."""
        return grid.protocol()

    def _classes(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Blended ``(C, h, w)`` probabilities -> (class map, probability of that class or
        of change for one channel)."""
        if values.shape[0] == 1:
            return (values[0] > self.threshold).astype(np.uint8), values[0]
        return values.argmax(axis=0).astype(np.uint8), values.max(axis=0)

    def run(self, pair: RasterPair, out: str | Path, probability: bool | str = False,
            tile: int = 512, overlap: int = 128, batch: int = 8, blending: str = 'cosine',
            cog: bool = False, compress: str = 'deflate', overwrite: bool = False,
            quiet: bool = False, queue_size: int | None = None,
            gdal_cache_mb: int = 64) -> InferenceSummary:
        """Predict ``pair`` tile by tile and write ``out`` (all or nothing).

        Args:
            pair: The opened pair (closed by the caller).
            out: Output GeoTIFF.
            probability: Add a probability band: ``True``/``'uint8'`` or ``'float32'``.
            tile, overlap, blending: See :class:`~mmrs.geo.tiling.TileGrid`.
            batch: Tiles per forward pass.
            cog: Write a Cloud Optimized GeoTIFF (with overviews).
            compress: GDAL compression of the output.
            overwrite: Replace an existing ``out``.
            quiet: No progress bar.
            queue_size: Tiles read ahead (default ``2 * batch``).
            gdal_cache_mb: GDAL block cache during the run. GDAL's default (5% of the RAM)
                fills with decoded input and written output blocks and makes the peak
                memory grow with the scene until it is full; a small cache keeps it flat
                (each block is read and written once anyway).

        Raises:
            FileExistsError: ``out`` exists and not ``overwrite`` (checked before reading).
        """
        if batch < 1:
            raise ValueError(f'batch must be >= 1, got {batch}')
        prob_dtype = 'uint8' if probability is True else (probability or None)
        grid = TileGrid(pair.height, pair.width, tile, overlap, blending)
        summary = InferenceSummary(out=str(out), protocol=self.protocol(grid),
                                   height=pair.height, width=pair.width, tiles=len(grid),
                                   skipped=0)
        import rasterio
        start = time.perf_counter()
        with rasterio.Env(GDAL_CACHEMAX=int(gdal_cache_mb)), \
                atomic_output(out, overwrite=overwrite) as tmp:
            writer = GeoTiffWriter(tmp, pair.height, pair.width, pair.crs, pair.transform,
                                   probability=prob_dtype, block=grid.block_size(), cog=cog,
                                   compress=compress, descriptions=self.band_descriptions)
            with writer:
                counter = self._loop(pair, grid, writer, batch, quiet,
                                     queue_size or 2 * batch, summary)
        summary.wall_s = time.perf_counter() - start
        counter.fill(summary)
        return summary

    def _loop(self, pair: RasterPair, grid: TileGrid, writer: GeoTiffWriter, batch: int,
              quiet: bool, queue_size: int, summary: InferenceSummary) -> _AreaCounter:
        stop = threading.Event()
        tiles_q: queue.Queue = queue.Queue(maxsize=queue_size)
        write_q: queue.Queue = queue.Queue(maxsize=max(queue_size, 4))

        def read() -> None:
            try:
                for t in grid:
                    img1, img2, invalid = pair.read(t.y, t.x, t.height, t.width)
                    item = None if invalid.all() else self.prepare_tile(pair, t, img1, img2,
                                                                        invalid)
                    if not _put(tiles_q, (t, item, invalid), stop):
                        return
            finally:
                _put(tiles_q, _END, stop)

        def write() -> None:
            while not stop.is_set():
                try:
                    item = write_q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    return
                writer.write(*item)

        reader, writer_thread = _Worker(read, 'mmrs-tile-reader'), _Worker(write, 'mmrs-writer')
        stitcher = Stitcher(grid, self.channels)
        counter, progress = _AreaCounter(pair), _Progress(len(grid), quiet)
        reader.start()
        writer_thread.start()
        try:
            pending: list = []
            finished = False
            while not finished:
                item = tiles_q.get()
                if item is _END:
                    finished = True
                else:
                    pending.append(item)
                ready = [p for p in pending if p[1] is not None]
                if not (finished or len(ready) >= batch or len(pending) >= 4 * batch):
                    continue
                probs = iter(self.predict_tiles(pair, [p[0] for p in ready],
                                                [p[1] for p in ready]) if ready else [])
                for t, inputs, invalid in pending:
                    p = next(probs) if inputs is not None else None
                    summary.skipped += inputs is None
                    block = stitcher.add(t, p)
                    h, w = block.values.shape[1:]
                    inv = invalid[:h, :w]
                    classes, prob = self._classes(block.values)
                    counter.add(block.y, block.x, (classes != 0) & ~inv, ~inv)
                    if writer_thread.error is not None:
                        raise writer_thread.error
                    _put(write_q, (block.y, block.x, classes, prob, inv), stop)
                progress.update(len(pending))
                pending = []
                if reader.error is not None:
                    raise reader.error
            reader.join_checked()
            _put(write_q, _END, stop)
            writer_thread.join_checked()
        except BaseException:
            stop.set()
            reader.join(timeout=10)
            writer_thread.join(timeout=10)
            raise
        return counter


def _loader_options(pipeline: Sequence[dict]) -> tuple[dict, list[dict]]:
    """Split a test pipeline into the loading step's options and the steps after it.

    The loading step (``LoadBitemporalImages``) is replaced by the windowed reader; label
    loading is dropped (no labels at inference time); everything else runs on each tile.
    """
    options: dict = {}
    rest = []
    for step in pipeline:
        name = str(step.get('type', '')).split('.')[-1]
        if name == 'LoadBitemporalImages':
            options = {k: step[k] for k in ('bands', 'to_float32', 'nodata') if k in step}
        elif name.startswith('Load') and 'Annotation' in name:
            continue
        elif name.startswith('Load'):
            raise ValueError(f'the test pipeline loads images with {name}, which whole-scene '
                             'inference cannot replace; use a config whose test pipeline '
                             'starts with LoadBitemporalImages')
        else:
            rest.append(step)
    return options, rest


class ChangeDetectionInferencer(TiledInferencer):
    """Whole-scene change detection with an mmrs change detector.

    Args:
        config: Config path (``mmrs::...`` and shipped names allowed) or ``Config``.
        checkpoint: Checkpoint file, loaded through mmrs' safe loader; ``None`` keeps the
            config's initial weights (tests).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'`` ...
        amp: Mixed precision (float16 on CUDA, bfloat16 on the CPU).
        allow_key_mismatch: Load a checkpoint that does not fit the model partially.

    Example:
        >>> inferencer = ChangeDetectionInferencer('configs/fc_siam_diff/...py', 'ckpt.pth')
        >>> summary = inferencer('t1.tif', 't2.tif', 'change.tif', probability=True)
        >>> print(summary)
    """

    def __init__(self, config: Any, checkpoint: str | None = None, device: str = 'cpu',
                 amp: bool = False, allow_key_mismatch: bool = False) -> None:
        import torch
        from mmengine.config import Config
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope

        import mmrs.datasets  # noqa: F401  (registers the transforms)
        import mmrs.models  # noqa: F401  (registers the models)
        from mmrs.registry import MODELS
        from mmrs.utils.config_path import resolve_config

        cfg = config if isinstance(config, Config) else Config.fromfile(resolve_config(config))
        init_default_scope(cfg.get('default_scope', 'mmrs'))
        self.cfg, self.device, self.amp = cfg, torch.device(device), amp
        self.model = MODELS.build(cfg.model)
        if checkpoint is not None:
            self._load(checkpoint, allow_key_mismatch)
        self.model.to(self.device).eval()
        num = getattr(self.model, 'out_channels', None) or \
            getattr(getattr(self.model, 'decode_head', None), 'out_channels', 2)
        self.out_channels = int(num)
        self.channels = 1 if self.out_channels <= 2 else self.out_channels
        self.threshold = float(self.model.threshold) if self.out_channels == 1 else 0.5
        pipeline = self._test_pipeline(cfg)
        self.loader_options, steps = _loader_options(pipeline)
        self.pipeline = Compose(steps)
        self._last_protocol = ''


    # ---------------------------------------------------------------- per tile
    def prepare_tile(self, pair: RasterPair, tile: Tile, img1: np.ndarray, img2: np.ndarray,
                     invalid: np.ndarray) -> Any:
        """Run the config's test steps on a tile, as the dataset loader would give it."""
        imgs = [img1, img2]
        if self.loader_options.get('to_float32'):
            imgs = [img.astype(np.float32) for img in imgs]
        results = dict(img=imgs, img_path=list(pair.paths), img_shape=img1.shape[:2],
                       ori_shape=img1.shape[:2], geo_meta=pair.geo_meta(tile.y, tile.x),
                       seg_fields=[], sample_idx=tile.row * 100000 + tile.col)
        if self.loader_options.get('nodata') is not None:
            results['nodata'] = float(self.loader_options['nodata'])
        if any(v is not None for v in pair.nodata) or pair.reprojected:
            results['nodata_mask'] = invalid
        return self.pipeline(results)

    def predict_tiles(self, pair: RasterPair, tiles: Sequence[Tile],
                      inputs: Sequence[Any]) -> list[np.ndarray]:
        """Probabilities of each tile through the model's ``test_step``."""
        import torch
        data = dict(inputs=[d['inputs'] for d in inputs],
                    data_samples=[d['data_samples'] for d in inputs])
        autocast = torch.autocast(self.device.type,
                                  dtype=torch.float16 if self.device.type == 'cuda'
                                  else torch.bfloat16, enabled=self.amp)
        with torch.no_grad(), autocast:
            samples = self.model.test_step(data)
        probs = []
        for sample in samples:
            logits = sample.seg_logits.data.float()
            if logits.shape[0] == 1:
                p = logits.sigmoid()
            else:
                p = logits.softmax(dim=0)
                p = p[1:2] if p.shape[0] == 2 else p
            probs.append(p.cpu().numpy())
        return probs

    def protocol(self, grid: TileGrid) -> str:
        mode = self.model.test_cfg.get('mode', 'whole')
        return (f'{grid.protocol()}; per tile: config test pipeline + data_preprocessor, '
                f'test_cfg.mode={mode}, amp={self.amp}')

    # ---------------------------------------------------------------- scene
    def __call__(self, t1: str, t2: str, out: str | Path, probability: bool | str = False,
                 tile: int = 512, overlap: int = 128, batch: int = 8,
                 bands: str | Sequence[int] | None = None, reproject: bool = False,
                 resampling: str = 'bilinear', blending: str = 'cosine', cog: bool = False,
                 overwrite: bool = False, quiet: bool = False,
                 nodata: float | None = None) -> InferenceSummary:
        """Predict the change map of a pair and write it to ``out``.

        Args:
            t1, t2: Date 1 and date 2 rasters.
            out: Output GeoTIFF (class band, optional probability band).
            probability: Add a probability band (``True``/``'uint8'`` or ``'float32'``).
            tile, overlap, batch, blending: Tiling protocol (see :class:`TileGrid`).
            bands: 1-based bands of both dates (``'1,2,3'``); default the config loader's
                ``bands``, else all.
            reproject: Warp date 2 onto date 1's grid when they differ.
            resampling: Resampling of the warp (:data:`mmrs.geo.raster.RESAMPLINGS`).
            cog: Cloud Optimized GeoTIFF output.
            overwrite: Replace an existing output.
            quiet: No progress bar.
            nodata: Nodata value of both dates; default the config loader's, else the files'.

        Returns:
            The run's :class:`InferenceSummary`.
        """
        if resampling not in RESAMPLINGS:
            raise ValueError(f'resampling must be one of {RESAMPLINGS}, got {resampling!r}')
        from mmrs.geo.atomic import check_outputs
        check_outputs([out], overwrite)  # before opening anything
        bands = parse_bands(bands) if bands is not None else self.loader_options.get('bands')
        if nodata is None:
            nodata = self.loader_options.get('nodata')
        with open_pair(t1, t2, bands=bands, reproject=reproject, resampling=resampling,
                       nodata=nodata) as pair:
            return self.run(pair, out, probability=probability, tile=tile, overlap=overlap,
                            batch=batch, blending=blending, cog=cog, overwrite=overwrite,
                            quiet=quiet)
