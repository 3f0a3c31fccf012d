"""What CLIP archive search does to a tile before and after the model: preprocessing, footprints,
and the identity of the model and of each scene file.

Preprocessing of a tile (the same for a query image):

1. **bands**: three bands taken as red, green, blue in the given order (``bands``; default the
   file's first three, or its single band repeated three times). CLIP was trained on RGB; the
   data preprocessor's ``to_rgb`` flag (a BGR->RGB swap for OpenCV-decoded files) does not
   apply to raster bands, which are read in the order given;
2. **scale to 0..255** (``stretch``): ``'none'`` keeps the values (uint8 data);
   ``'percentile[:LO,HI]'`` (default for every dtype but uint8; 2,98) maps each band's LO-th
   and HI-th percentile of the scene's valid pixels, measured once per scene on a decimated
   read of at most 1024 pixels a side, to 0 and 255 and clips; ``'fixed:MAX'`` or
   ``'fixed:MIN,MAX'`` maps ``[MIN, MAX]`` (default MIN 0) to 0..255 for every band, e.g.
   ``fixed:0,3000`` for Sentinel-2 L2A reflectance. The resolved values are recorded per
   scene in the archive;
3. **pad and fill**: an edge tile (shorter than ``tile``) is padded to ``tile x tile`` and its
   nodata pixels are filled, both with the data preprocessor's mean (0 after normalisation),
   so every tile keeps the archive's ground sampling distance;
4. **resize** to the tower's ``image_size`` and **normalise** with the model's
   ``data_preprocessor`` mean/std (OpenAI CLIP's by default), through
   :mod:`mmrs.models.clip.preprocess` (the code ``tools/analysis/clip_embed.py`` uses): a query
   image gets open_clip's evaluation transform (``preprocess_val``: antialiased bicubic resize
   of the shorter side, centre crop); a tile is resized whole to the tower's size with the
   same bicubic kernel and not cropped, since its footprint is its whole window (for a square
   tile and a square tower the two are the same operation, so a tile saved as a picture and
   used as a query meets its own input). The kernel is part of the archive's identity
   (``preprocessing.interpolation``): archives indexed with another one are refused.

Every tile record holds its grid position, its window ``(row_off, col_off, height, width)``,
its valid fraction, its footprint polygon in the scene CRS (four corners through the
geotransform, so rotated grids are exact), the same corners in WGS 84 lon/lat (pyproj) and
the lon/lat bounds of its outline densified to 8 segments per edge. A hit's GeoJSON polygon
is that densified outline, computed at query time from the scene's CRS and geotransform (so
the archive stays small). Scenes must be georeferenced with a CRS. Antimeridian-crossing
tiles are not split.

Identity: an archive records the :class:`~mmrs.apis.clip_index.ModelIdentity` of the model
that wrote it (embedding dim, hash of the model config, hash of the weights themselves, input
size and mean/std), so embeddings of another model are refused rather than silently compared;
a scene is recognised by :func:`file_fingerprint` (content, not name).
"""
import copy
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrs.apis.clip_index import ModelIdentity
from mmrs.geo.single import SingleRaster, open_single

#: Interpolation of tiles and query images (:data:`mmrs.models.clip.preprocess.INTERPOLATION`;
#: literal here so importing this module does not import torch).
INTERPOLATION = 'bicubic'
#: Longest side of the decimated read that measures a scene's percentiles.
STATS_SIDE = 1024
#: Segments per footprint edge before reprojecting to lon/lat.
DENSIFY = 8
#: Largest query image read whole (pixels per side).
MAX_QUERY_SIDE = 8192


# ---------------------------------------------------------------------------- scaling
@dataclass(frozen=True)
class Stretch:
    """How raster values become 0..255 (see the module docstring, step 2).

    Attributes:
        kind: ``'none'``, ``'percentile'`` or ``'fixed'``.
        low, high: Percentiles (``'percentile'`` before :meth:`resolve`), or the per-band
            values mapped to 0 and 255 (resolved ``'percentile'`` and ``'fixed'``).
    """

    kind: str
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @classmethod
    def parse(cls, text: 'str | Stretch | None') -> 'Stretch':
        """``'auto'``/``None``, ``'none'``, ``'percentile[:LO,HI]'``, ``'fixed:[MIN,]MAX'``.

        ``'auto'`` is returned as ``Stretch('auto')`` and decided per scene by dtype.

        Raises:
            ValueError: Anything else, or bounds that are not increasing.
        """
        if isinstance(text, Stretch):
            return text
        text = 'auto' if text is None else str(text).strip().lower()
        kind, _, args = text.partition(':')
        usage = ("stretch must be 'auto', 'none', 'percentile[:LO,HI]' or 'fixed:[MIN,]MAX', "
                 f'got {text!r}')
        try:
            values = [float(v) for v in args.split(',')] if args else []
        except ValueError:
            raise ValueError(usage) from None
        if kind in ('auto', 'none') and not values:
            return cls(kind)
        if kind == 'percentile' and len(values) in (0, 2):
            lo, hi = values or (2.0, 98.0)
            if not 0 <= lo < hi <= 100:
                raise ValueError(f'percentile stretch needs 0 <= LO < HI <= 100, got {text!r}')
            return cls('percentile', (lo,), (hi,))
        if kind == 'fixed' and len(values) in (1, 2):
            lo, hi = (0.0, values[0]) if len(values) == 1 else values
            if not hi > lo:
                raise ValueError(f'fixed stretch needs MIN < MAX, got {text!r}')
            return cls('fixed', (lo,), (hi,))
        raise ValueError(usage)

    def resolve(self, raster: SingleRaster, bands: int) -> 'Stretch':
        """The per-band values for one scene (``'auto'`` decided by dtype, percentiles
        measured on a decimated read)."""
        kind = self.kind
        if kind == 'auto':
            if raster.dtype == np.uint8:
                return Stretch('none')
            return Stretch('percentile', (2.0,), (98.0,)).resolve(raster, bands)
        if kind == 'none':
            return self
        if kind == 'fixed':
            return Stretch('fixed', self.low * bands if len(self.low) == 1 else self.low,
                           self.high * bands if len(self.high) == 1 else self.high)
        sample, invalid = _decimated(raster)
        valid = sample[~invalid].astype(np.float64)  # (N, C)
        if valid.size == 0:
            return Stretch('fixed', (0.0,) * bands, (255.0,) * bands)
        lo = np.percentile(valid, self.low[0], axis=0)
        hi = np.percentile(valid, self.high[0], axis=0)
        hi = np.where(hi > lo, hi, lo + 1.0)
        lo, hi = _as_bands(lo, bands), _as_bands(hi, bands)
        return Stretch('fixed', tuple(float(v) for v in lo), tuple(float(v) for v in hi))

    def apply(self, img: np.ndarray) -> np.ndarray:
        """``(h, w, C)`` raster values -> float32 in 0..255 (resolved stretches only)."""
        if self.kind == 'none':
            return img.astype(np.float32)
        if self.kind != 'fixed':
            raise RuntimeError(f'resolve() the {self.kind!r} stretch before applying it')
        from mmrs.models.clip.preprocess import linear_to_byte
        return linear_to_byte(img, self.low, self.high)

    def to_dict(self) -> dict:
        return dict(kind=self.kind, low=list(self.low), high=list(self.high))


def _as_bands(values: np.ndarray, bands: int) -> np.ndarray:
    values = np.atleast_1d(values)
    return np.repeat(values, bands) if values.size == 1 else values


def _decimated(raster: SingleRaster, side: int = STATS_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The whole scene read at most ``side`` pixels a side (nearest; overviews used when the
    file has them) and its invalid mask by :meth:`SingleRaster.read_window`'s rule."""
    from rasterio.enums import Resampling

    from mmrs.datasets.geo import nodata_mask
    f = max(raster.height, raster.width) / side
    oh, ow = (raster.height, raster.width) if f <= 1 else (
        max(1, round(raster.height / f)), max(1, round(raster.width / f)))
    ds = raster.dataset
    arr = ds.read(raster.bands, out_shape=(len(raster.bands), oh, ow),
                  resampling=Resampling.nearest)
    img = np.moveaxis(arr, 0, -1)
    invalid = nodata_mask(img, raster.nodata)
    invalid = np.zeros((oh, ow), bool) if invalid is None else invalid
    if raster.mask_band:
        invalid |= ds.dataset_mask(out_shape=(oh, ow), resampling=Resampling.nearest) == 0
    if img.dtype.kind == 'f':
        invalid |= ~np.isfinite(img).all(axis=-1)
    return img, invalid


# ---------------------------------------------------------------------------- geometry
def _crs_name(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f'EPSG:{epsg}' if epsg is not None else crs.to_wkt()


def _lonlat_transformer(crs: Any) -> Any:
    from pyproj import CRS as ProjCRS
    from pyproj import Transformer
    return Transformer.from_crs(ProjCRS.from_user_input(crs.to_wkt()), ProjCRS.from_epsg(4326),
                                always_xy=True)


def _window_ring(transform: Any, y: int, x: int, h: int, w: int,
                 segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of the window's outline, ``segments`` per edge, closed (first point
    repeated), starting at the top-left corner and going clockwise on the image."""
    t = np.arange(segments) / segments
    cols = np.concatenate([x + t * w, np.full(segments, x + w), x + w - t * w,
                           np.full(segments, x), [x]])
    rows = np.concatenate([np.full(segments, y), y + t * h, np.full(segments, y + h),
                           y + h - t * h, [y]])
    a = transform
    return a.a * cols + a.b * rows + a.c, a.d * cols + a.e * rows + a.f


def tile_footprint(transform: Any, to_lonlat: Any, y: int, x: int, h: int,
                   w: int) -> dict[str, Any]:
    """Footprint of the pixel window ``(y, x, h, w)``: ``polygon`` (scene CRS) and ``lonlat``
    (WGS 84), closed rings of the four corners, and ``lonlat_bounds``
    ``[west, south, east, north]`` of the outline densified to :data:`DENSIFY` segments per
    edge (what a curved edge reaches between the corners)."""
    xs, ys = _window_ring(transform, y, x, h, w, 1)
    lon, lat = to_lonlat.transform(xs, ys, errcheck=True)
    dlon, dlat = lonlat_outline(transform, to_lonlat, y, x, h, w)
    return dict(polygon=[[float(a), float(b)] for a, b in zip(xs, ys)],
                lonlat=[[float(a), float(b)] for a, b in zip(lon, lat)],
                lonlat_bounds=[float(dlon.min()), float(dlat.min()), float(dlon.max()),
                               float(dlat.max())])


def lonlat_outline(transform: Any, to_lonlat: Any, y: int, x: int, h: int, w: int,
                   segments: int = DENSIFY) -> tuple[np.ndarray, np.ndarray]:
    """``(lon, lat)`` of the window's outline densified to ``segments`` per edge (closed):
    the polygon written to GeoJSON, computed when a query needs it rather than stored."""
    xs, ys = _window_ring(transform, y, x, h, w, segments)
    lon, lat = to_lonlat.transform(xs, ys, errcheck=True)
    return np.asarray(lon), np.asarray(lat)


# ---------------------------------------------------------------------------- identity
def file_fingerprint(path: str | os.PathLike, block: int = 1 << 22) -> dict[str, Any]:
    """``size`` and ``sha256`` of the first and last ``block`` bytes and 16 evenly spaced
    64 KiB samples: recognises the same file under another name without reading it all."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, 'rb') as f:
        if size <= 2 * block:
            digest.update(f.read())
        else:
            digest.update(f.read(block))
            for i in range(1, 17):
                f.seek(block + (size - 2 * block) * i // 17)
                digest.update(f.read(1 << 16))
            f.seek(size - block)
            digest.update(f.read(block))
    return dict(size=size, sha256=digest.hexdigest())


#: State-dict prefixes that do not change embeddings (hashed apart or not at all).
UNHASHED_PREFIXES = ('loss_module.', 'data_preprocessor.')
#: Model config keys that do not change embeddings (the weights hash covers the weights).
UNHASHED_KEYS = ('checkpoint', 'checkpoint_layout', 'init_cfg', 'loss', 'tuning')


def state_dict_hash(module: Any) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and bytes, in key order),
    without :data:`UNHASHED_PREFIXES` (the normalisation is compared on its own)."""
    import torch
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if name.startswith(UNHASHED_PREFIXES):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{t.dtype}:{tuple(t.shape)};'.encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def config_hash(model_cfg: Any) -> str:
    """SHA-256 of a model config (canonical JSON) without :data:`UNHASHED_KEYS`: the same
    weights indexed with a training config (loss, tuning) and queried with an inference one
    are the same model; the tokenizer and the architecture are part of the identity."""
    cfg = _plain(model_cfg)
    if isinstance(cfg, dict):
        cfg = {k: v for k, v in cfg.items() if k not in UNHASHED_KEYS}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=repr).encode()).hexdigest()


def _plain(obj: Any) -> Any:
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------- encoder
class CLIPTileEncoder:
    """A CLIP model plus the tile preprocessing of the module docstring.

    Args:
        model: Anything with ``encode_image(images, normalize=True)``,
            ``encode_texts(texts, normalize=True)`` and ``image_size`` (a
            :class:`mmrs.models.clip.CLIP`); its ``data_preprocessor.mean/std`` are used
            when present.
        device: Torch device.
        model_cfg: The config the model was built from (hashed into the identity).
        description: Config / checkpoint names for messages.
    """

    def __init__(self, model: Any, device: str = 'cpu', model_cfg: Any = None,
                 description: str = '') -> None:
        import torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        size = getattr(model, 'image_size')
        self.image_size = (int(size), int(size)) if isinstance(size, (int, np.integer)) else \
            tuple(int(s) for s in size)
        from mmrs.models.clip.preprocess import model_mean_std
        mean, std = model_mean_std(model)
        self.mean = tuple(float(v) for v in mean.tolist())
        self.std = tuple(float(v) for v in std.tolist())
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f'the data preprocessor has {len(self.mean)} mean values; CLIP '
                             'search needs a 3-channel (RGB) image tower')
        self.model_cfg = model_cfg
        #: The whole config (``from_config``), saved beside the archive.
        self.cfg: Any = None
        self._identity: ModelIdentity | None = None
        self.description = description

    @classmethod
    def from_config(cls, config: Any, checkpoint: str | None = None, device: str = 'cpu',
                    cfg_options: dict | None = None) -> 'CLIPTileEncoder':
        """Build the config's ``model`` (a ``CLIP``) and load ``checkpoint`` into it.

        The checkpoint goes through the model's own loader (``CLIP(checkpoint=...)``:
        :mod:`mmrs.models.clip.layouts` reads the remote-sensing families' layouts and mmrs
        training checkpoints, weights only, and loads them strictly).

        Raises:
            FileNotFoundError: Missing config or checkpoint (named).
            ValueError: The model has no ``encode_image``/``encode_texts``.
        """
        from mmengine.config import Config
        from mmengine.registry import init_default_scope

        import mmrs.models  # noqa: F401  (registers the models)
        import mmrs.models.clip  # noqa: F401  (registers CLIP)
        from mmrs.registry import MODELS
        from mmrs.utils.config_path import resolve_config
        cfg = config if isinstance(config, Config) else Config.fromfile(resolve_config(config))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmrs'))
        if 'model' not in cfg:
            raise ValueError(f'config {getattr(cfg, "filename", config)!r} has no `model`')
        model_cfg = copy.deepcopy(cfg.model)
        if checkpoint is not None:
            if '://' not in str(checkpoint) and not Path(checkpoint).is_file():
                raise FileNotFoundError(f'checkpoint {str(checkpoint)!r} does not exist')
            model_cfg['checkpoint'] = str(checkpoint)
        model = MODELS.build(model_cfg)
        for name in ('encode_image', 'encode_texts', 'image_size'):
            if not hasattr(model, name):
                raise ValueError(f'{type(model).__name__} (config {cfg.filename!r}) has no '
                                 f'{name}: CLIP search needs a CLIP model (type="CLIP")')
        desc = f'config {cfg.filename}, checkpoint {checkpoint}'
        encoder = cls(model, device=device, model_cfg=model_cfg, description=desc)
        encoder.cfg = cfg
        return encoder

    @property
    def identity(self) -> ModelIdentity:
        """The embeddings' :class:`ModelIdentity` (dim measured with one forward pass)."""
        if self._identity is None:
            import torch
            probe = torch.zeros(1, 3, *self.image_size, device=self.device)
            with torch.no_grad():
                dim = int(self.model.encode_image(probe).shape[-1])
            cfg = self.model_cfg if self.model_cfg is not None else dict(
                type=type(self.model).__name__)
            self._identity = ModelIdentity(
                dim=dim, config_hash=config_hash(cfg), weights_hash=state_dict_hash(self.model),
                preprocessing=dict(image_size=list(self.image_size),
                                   mean=[round(v, 6) for v in self.mean],
                                   std=[round(v, 6) for v in self.std],
                                   interpolation=INTERPOLATION),
                description=self.description)
        return self._identity

    def prepare_tile(self, img: np.ndarray, invalid: np.ndarray, stretch: Stretch,
                     tile: int) -> np.ndarray:
        """``(h, w, 3)`` raster window -> ``(3, tile, tile)`` float32 in 0..255, padded and
        nodata-filled with the mean (steps 2-3 of the module docstring)."""
        h, w = img.shape[:2]
        values = stretch.apply(img)
        canvas = np.empty((tile, tile, 3), np.float32)
        canvas[:] = np.asarray(self.mean, np.float32)
        canvas[:h, :w] = values
        canvas[:h, :w][invalid] = np.asarray(self.mean, np.float32)
        return np.ascontiguousarray(canvas.transpose(2, 0, 1))

    def _normalise(self, batch: Any) -> Any:
        """Prepared ``(B, 3, tile, tile)`` tiles -> the tower's normalised input: resized
        whole (no crop) with the query's bicubic kernel, then mean/std."""
        import torch

        from mmrs.models.clip.preprocess import normalize, resize_exact
        x = resize_exact(batch.to(self.device, torch.float32), self.image_size)
        return normalize(x, self.mean, self.std)

    def encode_tiles(self, tiles: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, D)`` float32 normalised embeddings of prepared tiles (step 4)."""
        import torch
        x = self._normalise(torch.from_numpy(np.stack(tiles)))
        with torch.no_grad():
            emb = self.model.encode_image(x, normalize=True)
        return emb.float().cpu().numpy()

    def encode_text(self, text: str) -> np.ndarray:
        """``(D,)`` normalised embedding of one text.

        Raises:
            ValueError: Empty text.
        """
        import torch
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f'the query text is empty ({text!r}); give a description such as '
                             '"an airport with two runways"')
        with torch.no_grad():
            emb = self.model.encode_texts([text.strip()], normalize=True)
        return emb.float().cpu().numpy()[0]

    def encode_image_file(self, path: str | os.PathLike, bands: Any = None,
                          stretch: 'str | Stretch | None' = 'auto') -> np.ndarray:
        """``(D,)`` normalised embedding of a whole image file (PNG/JPEG/GeoTIFF...), resized
        on its shorter side and centre-cropped to the tower's input
        (:func:`mmrs.models.clip.preprocess.prepare_image`, as ``tools/analysis/clip_embed.py``).

        Raises:
            FileNotFoundError, OSError: Missing or unreadable file (named).
            ValueError: Bad bands, an image larger than :data:`MAX_QUERY_SIDE`.
        """
        import torch

        from mmrs.models.clip.preprocess import prepare_image
        with open_single(str(path), bands=_default_bands(path, bands)) as raster:
            if max(raster.height, raster.width) > MAX_QUERY_SIDE:
                raise ValueError(f'query image {str(path)!r} is {raster.height}x{raster.width};'
                                 f' crop it to at most {MAX_QUERY_SIDE} pixels a side')
            resolved = Stretch.parse(stretch).resolve(raster, 3)
            img, invalid = raster.read_window(0, 0, raster.height, raster.width)
            img = _to_rgb(img, path)
            values = resolved.apply(img)
            values[invalid] = np.asarray(self.mean, np.float32)
        x = prepare_image(values, self.image_size, self.mean, self.std)[None]
        with torch.no_grad():
            emb = self.model.encode_image(x.to(self.device), normalize=True)
        return emb.float().cpu().numpy()[0]


def _absolute(path: str | None) -> str | None:
    if path is None or '://' in str(path):
        return path
    return os.path.abspath(str(path))


def _default_bands(path: Any, bands: Any) -> Any:
    """``bands`` or, when ``None``, the first three of a file with three or more bands."""
    if bands is not None:
        return bands
    from mmrs.geo.raster import open_raster
    from rasterio.enums import ColorInterp
    with open_raster(str(path)) as ds:
        colour = [i + 1 for i, c in enumerate(ds.colorinterp) if c != ColorInterp.alpha]
    return colour[:3] if len(colour) >= 3 else None


def _to_rgb(img: np.ndarray, path: Any) -> np.ndarray:
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.shape[2] != 3:
        raise ValueError(f'{str(path)!r}: CLIP needs 3 bands (red, green, blue) or 1, got '
                         f'{img.shape[2]}; choose them with --bands R,G,B')
    return img
