"""Loading transforms: bitemporal images (GeoTIFF-aware) and change labels.

GeoTIFFs are read with rasterio so every band, the dtype and the georeference (CRS, affine,
nodata) survive; PNG/JPG with OpenCV. Images are ``(H, W, C)`` in RGB(A) band order.
"""
import os.path as osp
import warnings
from collections.abc import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmrs.registry import TRANSFORMS

GEO_SUFFIXES = ('.tif', '.tiff')
BACKENDS = ('auto', 'rasterio', 'cv2')


def _check_bands(bands: Sequence[int] | None, count: int, path: str) -> list[int] | None:
    if bands is None:
        return None
    bands = [int(b) for b in bands]
    bad = [b for b in bands if not 1 <= b <= count]
    if not bands or bad:
        raise ValueError(f'{path!r} has {count} band(s); invalid 1-based band selection '
                         f'{bands} (bad: {bad})')
    return bands


def read_rasterio(path: str, bands: Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
    """Read a raster with rasterio as ``(H, W, C)`` plus its ``geo_meta``."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    if not osp.isfile(path):
        raise FileNotFoundError(f'raster file not found: {path!r}')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            with rasterio.open(path) as src:
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


def read_cv2(path: str, bands: Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
    """Read PNG/JPG (any format OpenCV decodes) unchanged as ``(H, W, C)`` RGB(A)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file not found: {path!r}')
    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise OSError(f'cannot decode image file {path!r} (corrupt or unsupported format)')
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    indexes = _check_bands(bands, arr.shape[2], path)
    if indexes is not None:
        arr = arr[..., [b - 1 for b in indexes]]
    meta = dict(crs=None, transform=None, nodata=None, count=int(arr.shape[2]),
                dtype=str(arr.dtype))
    return np.ascontiguousarray(arr), meta


def read_raster(path: str, backend: str = 'auto',
                bands: Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
    """Read ``path``: ``'auto'`` uses rasterio for ``.tif/.tiff`` and OpenCV otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    path = str(path)
    if backend == 'rasterio' or (backend == 'auto' and path.lower().endswith(GEO_SUFFIXES)):
        return read_rasterio(path, bands)
    return read_cv2(path, bands)


def _fmt_values(values: np.ndarray, limit: int = 10) -> str:
    more = f' ... ({len(values)} in all)' if len(values) > limit else ''
    return str([v.item() for v in values[:limit]]) + more


def binarize_change_label(label: np.ndarray, path: str, strict: bool = True,
                          threshold: int | None = 128) -> np.ndarray:
    """Map a change label to 0 unchanged / 1 changed / 255 ignore (uint8).

    Accepted encodings: {0, 1}; {0, 255}; {0, 1, 255} with 255 = ignore. Anything else is a
    ``ValueError`` naming ``path`` when ``strict``; otherwise values ``>= threshold`` (or
    ``> 0`` when ``threshold`` is None) become 1, which suits lossy (JPEG) labels.
    """
    values = np.unique(label)
    found = set(values.tolist())
    if found <= {0, 1} or (found <= {0, 1, 255} and 1 in found):
        return label.astype(np.uint8)
    if found <= {0, 255}:
        return (label == 255).astype(np.uint8)
    if strict:
        odd = values[~np.isin(values, (0, 1, 255))]
        raise ValueError(
            f'change label {path!r} has unexpected values {_fmt_values(odd)} (all values: '
            f'{_fmt_values(values)}); expected {{0, 1}}, {{0, 255}} or {{0, 1, 255}} with 255 '
            '= ignore. Use strict=False with label_threshold for lossy labels.')
    if threshold is None:
        return (label > 0).astype(np.uint8)
    return (label >= threshold).astype(np.uint8)


def rgb_to_index(rgb: np.ndarray, palette: Sequence[Sequence[int]]) -> tuple[np.ndarray, list]:
    """Convert an ``(H, W, 3)`` RGB colour map to class ids via ``palette`` (id = position).

    Returns the index map and the colours found that are not in the palette.
    """
    rgb = rgb[..., :3].astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pal = np.array([(int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in palette])
    uniq, inverse = np.unique(codes, return_inverse=True)
    lut = np.full(len(uniq), -1, dtype=np.int64)
    for i, code in enumerate(uniq):
        hit = np.flatnonzero(pal == code)
        if hit.size:
            lut[i] = hit[0]
    unknown = [[int(c >> 16), int((c >> 8) & 255), int(c & 255)] for c in uniq[lut < 0]]
    return lut[inverse].reshape(codes.shape).clip(0).astype(np.uint8), unknown


@TRANSFORMS.register_module()
class LoadBitemporalImages(BaseTransform):
    """Load the two images of ``results['img_path']`` and check they are aligned.

    Adds ``img`` (two ``(H, W, C)`` arrays, dtype kept), ``img_shape``, ``ori_shape`` and
    ``geo_meta`` (per date: CRS WKT, affine 6-tuple, nodata, band count, dtype). Mismatched
    H/W/C raises a ``ValueError`` naming both files: misaligned pairs fail loudly.

    Args:
        backend: ``'auto'`` (rasterio for ``.tif/.tiff``, OpenCV otherwise), ``'rasterio'``
            (everything rasterio opens) or ``'cv2'``.
        to_float32: Cast the images to float32.
        bands: Optional 1-based band indices to keep (same for both dates).
    """

    def __init__(self, backend: str = 'auto', to_float32: bool = False,
                 bands: Sequence[int] | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        self.backend = backend
        self.to_float32 = to_float32
        self.bands = list(bands) if bands is not None else None

    def transform(self, results: dict) -> dict:
        paths = results['img_path']
        if isinstance(paths, str) or len(paths) != 2:
            raise ValueError(f'img_path must hold two paths (date 1, date 2), got {paths!r}')
        imgs, metas = [], []
        for path in paths:
            img, meta = read_raster(path, self.backend, self.bands)
            imgs.append(img.astype(np.float32) if self.to_float32 else img)
            metas.append(meta)
        if imgs[0].shape != imgs[1].shape:
            raise ValueError(
                f'bitemporal images differ in (H, W, C): date 1 {paths[0]!r} is '
                f'{imgs[0].shape}, date 2 {paths[1]!r} is {imgs[1].shape}')
        results['img'] = imgs
        results['img_shape'] = imgs[0].shape[:2]
        results['ori_shape'] = imgs[0].shape[:2]
        results['geo_meta'] = metas
        return results


@TRANSFORMS.register_module()
class LoadChangeAnnotations(BaseTransform):
    """Load the binary change label and/or the per-date semantic maps of a sample.

    Binary (``seg_map_path`` → ``gt_seg_map``): one channel (a 3-channel label with equal
    channels is accepted; a colour label is an error), binarised by
    :func:`binarize_change_label`. Semantic (``seg_map_path_from/_to`` →
    ``gt_seg_map_from/_to``): index maps with values in ``0..K-1`` or 255, or RGB colour maps
    converted with the palette. Without ``seg_map_path`` but with semantic maps the binary
    map is derived as ``from != 0`` (255 where either date is ignored); without any label
    (inference data) nothing is added. Every map must match the image size.

    Args:
        binary: Load (or derive) ``gt_seg_map``.
        semantic: Load ``gt_seg_map_from`` / ``gt_seg_map_to``.
        label_threshold: Threshold for non-strict binarisation; ``None`` takes
            ``results['label_threshold']`` (set by the dataset, default 128).
        strict: Reject labels outside {0, 1} / {0, 255} / {0, 1, 255}; ``None`` takes
            ``results['label_strict']`` (default True).
        num_semantic_classes: ``K``; ``None`` takes ``len(results['semantic_classes'])``.
        semantic_palette: Label colours for RGB semantic maps; ``None`` takes
            ``results['semantic_palette']``.
        backend: Reader backend, as in :class:`LoadBitemporalImages`.
        ignore_index: Value marking ignored pixels.
    """

    def __init__(self, binary: bool = True, semantic: bool = False,
                 label_threshold: int | None = None, strict: bool | None = None,
                 num_semantic_classes: int | None = None,
                 semantic_palette: Sequence[Sequence[int]] | None = None,
                 backend: str = 'auto', ignore_index: int = 255) -> None:
        self.binary = binary
        self.semantic = semantic
        self.label_threshold = label_threshold
        self.strict = strict
        self.num_semantic_classes = num_semantic_classes
        self.semantic_palette = semantic_palette
        self.backend = backend
        self.ignore_index = ignore_index

    def _read(self, path: str, results: dict) -> np.ndarray:
        arr, _ = read_raster(path, self.backend)
        h, w = results['img'][0].shape[:2] if 'img' in results else arr.shape[:2]
        if arr.shape[:2] != (h, w):
            raise ValueError(
                f'label {path!r} is {arr.shape[0]}x{arr.shape[1]} but image '
                f'{results["img_path"][0]!r} is {h}x{w} (H x W)')
        return arr

    @staticmethod
    def _single_channel(arr: np.ndarray) -> np.ndarray | None:
        if arr.shape[2] == 1:
            return arr[..., 0]
        rgb = arr[..., :3]
        if (rgb == rgb[..., :1]).all():
            return rgb[..., 0]
        return None

    def _load_binary(self, path: str, results: dict) -> np.ndarray:
        label = self._single_channel(self._read(path, results))
        if label is None:
            raise ValueError(f'change label {path!r} is a colour (RGB) image; expected a '
                             'single-channel map with values {0, 1} or {0, 255}')
        strict = results.get('label_strict', True) if self.strict is None else self.strict
        threshold = self.label_threshold
        threshold = results.get('label_threshold', 128) if threshold is None else threshold
        return binarize_change_label(label, path, strict, threshold)

    def _load_semantic(self, path: str, results: dict) -> np.ndarray:
        arr = self._read(path, results)
        num = self.num_semantic_classes
        if num is None and results.get('semantic_classes') is not None:
            num = len(results['semantic_classes'])
        palette = self.semantic_palette or results.get('semantic_palette')
        label, unknown = None, []
        if arr.shape[2] >= 3 and palette:
            label, unknown = rgb_to_index(arr, palette)
            label = None if unknown else label
        if label is None:
            label = self._single_channel(arr)
        if label is None:
            raise ValueError(f'semantic label {path!r} is a colour image with colours not '
                             f'in the palette {palette}: {unknown[:10]}')
        values = np.unique(label)
        limit = num if num is not None else 256
        bad = values[(values >= limit) & (values != self.ignore_index) | (values < 0)]
        if bad.size:
            raise ValueError(f'semantic label {path!r} has values {_fmt_values(bad)} outside '
                             f'0..{limit - 1} and ignore {self.ignore_index}')
        label = label.astype(np.uint8)
        if results.get('label_map'):  # mmseg-style class remapping, old id -> new id
            lut = np.arange(256, dtype=np.uint8)
            lut[list(results['label_map'])] = list(results['label_map'].values())
            label = lut[label]
        return label

    def _add_field(self, results: dict, key: str, value: np.ndarray) -> None:
        results[key] = value
        fields = results.setdefault('seg_fields', [])
        if key not in fields:
            fields.append(key)

    def transform(self, results: dict) -> dict:
        if self.semantic:
            for date in ('from', 'to'):
                path = results.get(f'seg_map_path_{date}')
                if path:
                    self._add_field(results, f'gt_seg_map_{date}',
                                    self._load_semantic(path, results))
        if self.binary:
            path = results.get('seg_map_path')
            if path:
                self._add_field(results, 'gt_seg_map', self._load_binary(path, results))
            elif 'gt_seg_map_from' in results and 'gt_seg_map_to' in results:
                frm, to = results['gt_seg_map_from'], results['gt_seg_map_to']
                change = (frm != 0).astype(np.uint8)
                change[(frm == self.ignore_index) | (to == self.ignore_index)] = \
                    self.ignore_index
                self._add_field(results, 'gt_seg_map', change)
        return results
