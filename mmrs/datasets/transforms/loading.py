"""Loading transforms: bitemporal images (GeoTIFF-aware) and change labels.

Images and labels are read by the one reader of :mod:`mmrs.datasets.io` (rasterio for GeoTIFF,
OpenCV for other images, pillow for other label files). Images are ``(H, W, C)`` in RGB(A)
band order. Binary labels are decoded with the dataset's ``label_encoding``
(:mod:`mmrs.datasets.labels`); nodata pixels become ignore (see :mod:`mmrs.datasets.geo`).
"""
from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmrs.registry import TRANSFORMS

from ..geo import check_pair_alignment, is_georeferenced, pair_nodata_mask
from ..io import BACKENDS, LABEL_BACKENDS, read_label, read_raster
from ..labels import (IGNORE_INDEX, check_label_encoding, decode_change_label, format_values,
                      rgb_to_index, single_channel)

__all__ = ['LoadBitemporalImages', 'LoadChangeAnnotations', 'read_raster', 'read_label',
           'rgb_to_index', 'decode_change_label']


def effective_nodata(results: dict) -> list[float | None]:
    """Per-date nodata value: the configured ``results['nodata']``, else the file's tag."""
    configured = results.get('nodata')
    metas = results.get('geo_meta') or [None, None]
    return [configured if configured is not None else (m or {}).get('nodata') for m in metas]


@TRANSFORMS.register_module()
class LoadBitemporalImages(BaseTransform):
    """Load the two images of ``results['img_path']`` and check that they line up.

    Adds ``img`` (two ``(H, W, C)`` arrays, dtype kept), ``img_shape``, ``ori_shape``,
    ``geo_meta`` (per date: CRS WKT, affine 6-tuple, nodata, band count, dtype) and, when a
    nodata value applies to a date, ``nodata_mask``: ``(H, W)`` bool at the loaded size, True
    where either date is nodata (all bands equal the nodata value; NaN counts for floats).
    The nodata value of a date is ``nodata`` (this argument), else ``results['nodata']``
    (the dataset's ``nodata`` option), else the file's nodata tag.

    Checks, each a ``ValueError`` naming both files: equal ``(H, W, C)``; and, when both
    dates are georeferenced, the same CRS, pixel size and origin (up to
    ``align_tolerance`` pixels at any corner of the tile).

    Args:
        backend: ``'auto'`` (rasterio for ``.tif/.tiff``, OpenCV otherwise), ``'rasterio'``
            (everything rasterio opens) or ``'cv2'``.
        to_float32: Cast the images to float32.
        bands: Optional 1-based band indices to keep (same for both dates).
        nodata: Nodata value for both dates, overriding the dataset option and the files.
        check_alignment: Compare the georeference of the two dates.
        align_tolerance: Largest accepted misplacement of a tile corner, in pixels (the
            default only absorbs float rounding).
    """

    def __init__(self, backend: str = 'auto', to_float32: bool = False,
                 bands: Sequence[int] | None = None, nodata: float | None = None,
                 check_alignment: bool = True, align_tolerance: float = 0.01) -> None:
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if align_tolerance < 0:
            raise ValueError(f'align_tolerance must be >= 0 pixels, got {align_tolerance}')
        self.backend = backend
        self.to_float32 = to_float32
        self.bands = list(bands) if bands is not None else None
        self.nodata = nodata
        self.check_alignment = check_alignment
        self.align_tolerance = align_tolerance

    def transform(self, results: dict) -> dict:
        paths = results['img_path']
        if isinstance(paths, str) or len(paths) != 2:
            raise ValueError(f'img_path must hold two paths (date 1, date 2), got {paths!r}')
        imgs, metas = [], []
        for path in paths:
            img, meta = read_raster(path, self.backend, self.bands)
            imgs.append(img)
            metas.append(meta)
        if imgs[0].shape != imgs[1].shape:
            raise ValueError(
                f'bitemporal images differ in (H, W, C): date 1 {paths[0]!r} is '
                f'{imgs[0].shape}, date 2 {paths[1]!r} is {imgs[1].shape}')
        if self.check_alignment:
            check_pair_alignment(metas, paths, imgs[0].shape[:2], self.align_tolerance)
        if self.nodata is not None:
            results['nodata'] = float(self.nodata)
        results['geo_meta'] = metas
        mask = pair_nodata_mask(imgs, effective_nodata(results))
        if mask is not None:
            results['nodata_mask'] = mask
        else:
            results.pop('nodata_mask', None)
        results['img'] = [img.astype(np.float32) for img in imgs] if self.to_float32 else imgs
        results['img_shape'] = imgs[0].shape[:2]
        results['ori_shape'] = imgs[0].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(backend={self.backend!r}, '
                f'to_float32={self.to_float32}, bands={self.bands}, nodata={self.nodata}, '
                f'check_alignment={self.check_alignment}, '
                f'align_tolerance={self.align_tolerance})')


@TRANSFORMS.register_module()
class LoadChangeAnnotations(BaseTransform):
    """Load the binary change label and/or the per-date semantic maps of a sample.

    Binary (``seg_map_path`` → ``gt_seg_map``): one channel (a 3/4-channel label with equal
    R, G, B is accepted; a colour label is an error), decoded with the dataset's
    ``label_encoding`` (:func:`~mmrs.datasets.labels.decode_change_label`). Semantic
    (``seg_map_path_from/_to`` → ``gt_seg_map_from/_to``): index maps with values in
    ``0..K-1`` or 255 (palette PNGs give their indices), or RGB colour maps converted with the
    palette. Without ``seg_map_path`` but with semantic maps the binary map is derived as
    ``from != 0`` (255 where either date is ignored); without any label (inference data)
    nothing is added.

    Labels are read at the original size and must match ``results['ori_shape']``. When the
    images have not been transformed yet (``img_shape == ori_shape`` and no flip/rotation
    recorded) the maps join ``seg_fields`` so later geometric transforms move them with the
    images; otherwise (an mmseg-style test pipeline: load, resize, load annotations, pack)
    they stay at the original size, outside ``seg_fields``, as metrics compare there.

    Nodata: where ``results['nodata_mask']`` is True, every label map is set to
    ``ignore_index`` when ignoring nodata is on: ``ignore_nodata`` here, else the dataset's
    ``results['ignore_nodata']``; ``None`` means on when a date is georeferenced or a nodata
    value was configured.

    Args:
        binary: Load (or derive) ``gt_seg_map``.
        semantic: Load ``gt_seg_map_from`` / ``gt_seg_map_to``.
        label_encoding: Binary label encoding; ``None`` takes ``results['label_encoding']``
            (set by the dataset), default ``'0/255'``.
        label_threshold: Threshold of the ``'threshold'`` encoding; ``None`` takes
            ``results['label_threshold']`` (default 128).
        num_semantic_classes: ``K``; ``None`` takes ``len(results['semantic_classes'])``.
        semantic_palette: Label colours for RGB semantic maps; ``None`` takes
            ``results['semantic_palette']``.
        backend: Label reader: ``'auto'`` (rasterio for ``.tif/.tiff``, pillow otherwise),
            ``'rasterio'`` or ``'pillow'``.
        ignore_index: Value marking ignored pixels.
        ignore_nodata: Set nodata pixels to ``ignore_index``; ``None`` takes the dataset's
            option (see above).
    """

    def __init__(self, binary: bool = True, semantic: bool = False,
                 label_encoding: str | None = None, label_threshold: float | None = None,
                 num_semantic_classes: int | None = None,
                 semantic_palette: Sequence[Sequence[int]] | None = None,
                 backend: str = 'auto', ignore_index: int = IGNORE_INDEX,
                 ignore_nodata: bool | None = None) -> None:
        if backend not in LABEL_BACKENDS:
            raise ValueError(f'backend must be one of {LABEL_BACKENDS}, got {backend!r}')
        self.binary = binary
        self.semantic = semantic
        self.label_encoding = (check_label_encoding(label_encoding)
                               if label_encoding is not None else None)
        self.label_threshold = label_threshold
        self.num_semantic_classes = num_semantic_classes
        self.semantic_palette = semantic_palette
        self.backend = backend
        self.ignore_index = ignore_index
        self.ignore_nodata = ignore_nodata

    def _read(self, path: str, results: dict) -> np.ndarray:
        arr, _ = read_label(path, self.backend)
        shape = results.get('ori_shape')
        if shape is not None and arr.shape[:2] != tuple(shape):
            raise ValueError(
                f'label {path!r} is {arr.shape[0]}x{arr.shape[1]} but image '
                f'{results["img_path"][0]!r} is {shape[0]}x{shape[1]} (H x W)')
        return arr

    def _load_binary(self, path: str, results: dict) -> np.ndarray:
        arr = self._read(path, results)
        encoding = self.label_encoding or results.get('label_encoding') or '0/255'
        label = single_channel(arr)
        if label is None and encoding == 'threshold' and arr.shape[2] in (3, 4):
            # lossy (JPEG) grey labels: chroma noise makes R, G, B drift slightly apart
            label = arr[..., :3].astype(np.float32).mean(axis=-1)
        if label is None:
            raise ValueError(f'change label {path!r} is a colour image with {arr.shape[2]} '
                             'different channels; expected a single-channel map')
        threshold = self.label_threshold
        threshold = results.get('label_threshold', 128) if threshold is None else threshold
        return decode_change_label(label, encoding, path, threshold, self.ignore_index)

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
            label = single_channel(arr)
        if label is None:
            raise ValueError(f'semantic label {path!r} is a colour image with colours not '
                             f'in the palette {palette}: {unknown[:10]}')
        values = np.unique(label)
        limit = num if num is not None else 256
        bad = values[(values >= limit) & (values != self.ignore_index) | (values < 0)]
        if bad.size:
            raise ValueError(f'semantic label {path!r} has values {format_values(bad)} '
                             f'outside 0..{limit - 1} and ignore {self.ignore_index}')
        label = label.astype(np.uint8)
        if results.get('label_map'):  # mmseg-style class remapping, old id -> new id
            lut = np.arange(256, dtype=np.uint8)
            lut[list(results['label_map'])] = list(results['label_map'].values())
            label = lut[label]
        return label

    def _ignores_nodata(self, results: dict) -> bool:
        option = self.ignore_nodata
        if option is None:
            option = results.get('ignore_nodata')
        if option is None:
            metas = results.get('geo_meta') or []
            option = any(is_georeferenced(m) for m in metas) or \
                results.get('nodata') is not None
        return bool(option)

    @staticmethod
    def _untransformed(results: dict) -> bool:
        """Whether the images still have their loaded geometry (no transform ran yet)."""
        if 'ori_shape' not in results:
            return True
        moved = results.get('flip') or results.get('rotate90_k', 0) % 4
        return tuple(results.get('img_shape', results['ori_shape'])) == \
            tuple(results['ori_shape']) and not moved

    def _derive_binary(self, frm: np.ndarray | None,
                       to: np.ndarray | None) -> np.ndarray | None:
        """``from != 0`` (class 0 = no change), ignore where either date is ignored."""
        if frm is None or to is None:
            return None
        change = (frm != 0).astype(np.uint8)
        change[(frm == self.ignore_index) | (to == self.ignore_index)] = self.ignore_index
        return change

    def transform(self, results: dict) -> dict:
        maps: dict[str, np.ndarray] = {}
        if self.semantic:
            for date in ('from', 'to'):
                path = results.get(f'seg_map_path_{date}')
                if path:
                    maps[f'gt_seg_map_{date}'] = self._load_semantic(path, results)
        if self.binary:
            path = results.get('seg_map_path')
            if path:
                maps['gt_seg_map'] = self._load_binary(path, results)
            else:
                derived = self._derive_binary(
                    maps.get('gt_seg_map_from', results.get('gt_seg_map_from')),
                    maps.get('gt_seg_map_to', results.get('gt_seg_map_to')))
                if derived is not None:
                    maps['gt_seg_map'] = derived
        mask = results.get('nodata_mask')
        if maps and mask is not None and self._ignores_nodata(results):
            for label in maps.values():
                if label.shape == mask.shape:  # a map derived from transformed maps
                    label[mask] = self.ignore_index  # already carries their ignore
        in_fields = self._untransformed(results)
        for key, value in maps.items():
            results[key] = value
            fields = results.setdefault('seg_fields', [])
            if in_fields and key not in fields:
                fields.append(key)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(binary={self.binary}, semantic={self.semantic}, '
                f'label_encoding={self.label_encoding!r}, '
                f'label_threshold={self.label_threshold}, backend={self.backend!r}, '
                f'ignore_index={self.ignore_index}, ignore_nodata={self.ignore_nodata})')
