"""The one raster reader of mmrs: images and label maps for datasets, panels and evaluation.

``read_raster`` reads an *image* (any band count and dtype) and ``read_label`` a *label map*;
both return ``(array (H, W, C), meta)`` where ``meta`` is the ``geo_meta`` dict of
``docs/data_flow.md`` (``crs`` WKT or ``None``, ``transform`` as the 6-tuple ``(a, b, c, d, e,
f)`` of a rasterio ``Affine`` or ``None``, ``nodata``, ``count``, ``dtype``).

- GeoTIFF (``.tif``/``.tiff``) goes through rasterio, so every band, the dtype and the
  georeference survive.
- Other images go through OpenCV (``IMREAD_UNCHANGED``: 16-bit and alpha kept, BGR(A)
  turned into RGB(A)).
- Other label files go through pillow: a palette ("P" mode) PNG gives its *indices*, which is
  what label files store (OpenCV would expand the palette into colours).

rasterio is imported inside the functions that need it, so ``import mmrs.datasets`` stays
cheap (GDAL loads only when a GeoTIFF is read). With ``backend_args`` (as in mmengine's
fileio), or for a URI such as ``s3://...``, the bytes are fetched with
:func:`mmengine.fileio.get`, which reaches remote storage too.
"""
import io
import os.path as osp
import warnings
from collections.abc import Sequence
from typing import BinaryIO

import cv2
import numpy as np

GEO_SUFFIXES = ('.tif', '.tiff')
#: Image readers: ``'auto'`` = rasterio for ``.tif/.tiff``, OpenCV otherwise.
BACKENDS = ('auto', 'rasterio', 'cv2')
#: Label readers: ``'auto'`` = rasterio for ``.tif/.tiff``, pillow otherwise.
LABEL_BACKENDS = ('auto', 'rasterio', 'pillow')


def _check_backend(backend: str, allowed: tuple[str, ...]) -> None:
    if backend not in allowed:
        raise ValueError(f'backend must be one of {allowed}, got {backend!r}')


def _is_geotiff(path: str) -> bool:
    return path.lower().endswith(GEO_SUFFIXES)


def _open_bytes(path: str, backend_args: dict | None) -> bytes:
    """Bytes of ``path`` through mmengine's fileio (local or remote storage)."""
    from mmengine.fileio import get
    try:
        return get(path, backend_args=backend_args)
    except FileNotFoundError as err:
        raise FileNotFoundError(f'raster file not found: {path!r}') from err


def _is_local(path: str, backend_args: dict | None) -> bool:
    """Local file read by path; URIs (``s3://``, ``http://`` ...) or explicit
    ``backend_args`` go through mmengine's fileio."""
    return backend_args is None and '://' not in path


def _source(path: str, backend_args: dict | None) -> str | BinaryIO:
    """``path`` itself for local reads, else an in-memory file of its bytes."""
    if _is_local(path, backend_args):
        if not osp.isfile(path):
            raise FileNotFoundError(f'raster file not found: {path!r}')
        return path
    return io.BytesIO(_open_bytes(path, backend_args))


def _check_bands(bands: Sequence[int] | None, count: int, path: str) -> list[int] | None:
    if bands is None:
        return None
    bands = [int(b) for b in bands]
    bad = [b for b in bands if not 1 <= b <= count]
    if not bands or bad:
        raise ValueError(f'{path!r} has {count} band(s); invalid 1-based band selection '
                         f'{bands} (bad: {bad})')
    return bands


def _plain_meta(arr: np.ndarray) -> dict:
    return dict(crs=None, transform=None, nodata=None, count=int(arr.shape[2]),
                dtype=str(arr.dtype))


def _select(arr: np.ndarray, bands: Sequence[int] | None, path: str) -> np.ndarray:
    indexes = _check_bands(bands, arr.shape[2], path)
    if indexes is not None:
        arr = arr[..., [b - 1 for b in indexes]]
    return np.ascontiguousarray(arr)


def read_rasterio(path: str, bands: Sequence[int] | None = None,
                  backend_args: dict | None = None) -> tuple[np.ndarray, dict]:
    """Read a raster with rasterio as ``(H, W, C)`` plus its ``geo_meta``.

    A raster counts as georeferenced when it has a CRS or a non-identity geotransform;
    otherwise ``crs`` and ``transform`` are ``None`` (a plain TIFF behaves like a PNG).
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    source = _source(path, backend_args)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            with rasterio.open(source) as src:
                indexes = _check_bands(bands, src.count, path)
                arr = src.read(indexes)
                georeferenced = src.crs is not None or not src.transform.is_identity
                meta = dict(
                    crs=src.crs.to_wkt() if src.crs is not None else None,
                    transform=tuple(float(v) for v in tuple(src.transform)[:6])
                    if georeferenced else None,
                    nodata=float(src.nodata) if src.nodata is not None else None)
    except RasterioIOError as err:
        raise OSError(f'cannot read raster {path!r}: {err}') from err
    arr = np.moveaxis(arr, 0, -1)
    meta.update(count=int(arr.shape[-1]), dtype=str(arr.dtype))
    return arr, meta


def read_cv2(path: str, bands: Sequence[int] | None = None,
             backend_args: dict | None = None) -> tuple[np.ndarray, dict]:
    """Read PNG/JPG (any format OpenCV decodes) unchanged as ``(H, W, C)`` RGB(A)."""
    if _is_local(path, backend_args):
        if not osp.isfile(path):
            raise FileNotFoundError(f'image file not found: {path!r}')
        arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    else:
        arr = cv2.imdecode(np.frombuffer(_open_bytes(path, backend_args), np.uint8),
                           cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise OSError(f'cannot decode image file {path!r} (corrupt or unsupported format)')
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    arr = _select(arr, bands, path)
    return arr, _plain_meta(arr)


def read_pillow(path: str, backend_args: dict | None = None) -> tuple[np.ndarray, dict]:
    """Read a label file with pillow as ``(H, W, C)``, keeping the stored values.

    Palette ("P") images give their palette indices, grey ("L", "I;16", "I", "F") images
    their values, 1-bit ("1") images 0/1, colour images their channels (RGB(A)).
    """
    from PIL import Image, UnidentifiedImageError

    source = _source(path, backend_args)
    try:
        with Image.open(source) as img:
            img.load()
            mode = img.mode
            if mode == '1':
                arr = np.asarray(img, dtype=np.uint8)  # bits 0/1, as stored
            elif mode in ('PA', 'LA'):
                arr = np.asarray(img)[..., 0]  # index / grey, alpha dropped
            elif mode in ('P', 'L', 'I', 'F', 'RGB', 'RGBA') or mode.startswith('I;16'):
                arr = np.asarray(img)
            else:
                raise ValueError(f'label file {path!r} has unsupported pillow mode {mode!r}')
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise OSError(f'cannot decode label file {path!r}: {err}') from err
    if arr.ndim == 2:
        arr = arr[..., None]
    arr = np.ascontiguousarray(arr)
    return arr, _plain_meta(arr)


def read_raster(path: str, backend: str = 'auto', bands: Sequence[int] | None = None,
                backend_args: dict | None = None) -> tuple[np.ndarray, dict]:
    """Read an image as ``(H, W, C)`` (dtype kept) plus its ``geo_meta``.

    Args:
        path: File path (or URI when ``backend_args`` is given).
        backend: ``'auto'`` (rasterio for ``.tif/.tiff``, OpenCV otherwise), ``'rasterio'``
            (everything GDAL opens) or ``'cv2'``.
        bands: Optional 1-based band indices to keep, in that order.
        backend_args: mmengine fileio arguments; when given, the bytes are fetched with
            :func:`mmengine.fileio.get` (remote storage) instead of opening the path.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OSError: The file cannot be decoded (message names ``path``).
        ValueError: Invalid ``backend`` or ``bands``.
    """
    _check_backend(backend, BACKENDS)
    path = str(path)
    if backend == 'rasterio' or (backend == 'auto' and _is_geotiff(path)):
        return read_rasterio(path, bands, backend_args)
    return read_cv2(path, bands, backend_args)


def read_label(path: str, backend: str = 'auto',
               backend_args: dict | None = None) -> tuple[np.ndarray, dict]:
    """Read a label map as ``(H, W, C)`` with the values stored in the file.

    Args:
        path: File path (or URI when ``backend_args`` is given).
        backend: ``'auto'`` (rasterio for ``.tif/.tiff``, pillow otherwise), ``'rasterio'`` or
            ``'pillow'``. Pillow keeps palette indices of "P" mode PNGs.
        backend_args: As in :func:`read_raster`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OSError: The file cannot be decoded (message names ``path``).
    """
    _check_backend(backend, LABEL_BACKENDS)
    path = str(path)
    if backend == 'rasterio' or (backend == 'auto' and _is_geotiff(path)):
        return read_rasterio(path, None, backend_args)
    return read_pillow(path, backend_args)
