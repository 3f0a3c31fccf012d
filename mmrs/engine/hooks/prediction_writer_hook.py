"""Hook that writes every test prediction as a raster at the original size (``--pred-dir``).

One file per sample, named after date 1's image: ``<stem>.tif`` (GeoTIFF) when date 1 is
georeferenced, else ``<stem>.png``. Values: 0 = unchanged, 1 = changed, 255 = nodata
(:data:`NODATA`). A semantic change detector's per-date class maps are written beside it as
``<stem>_from`` / ``<stem>_to`` (0 = no change, 1..K, 255 = nodata).
"""
import os
import os.path as osp
import tempfile
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from mmengine.hooks import Hook

from mmrs.registry import HOOKS
from mmrs.structures import ChangeDataSample

#: Value written where either date is nodata (also the GeoTIFF's nodata tag).
NODATA = 255

#: Prediction fields written and the suffix of their file stem.
PRED_FIELDS = (('pred_sem_seg', ''), ('pred_sem_seg_from', '_from'),
               ('pred_sem_seg_to', '_to'))


def _as_uint8_map(sample: ChangeDataSample, field: str, where: str) -> np.ndarray:
    data = getattr(sample, field).data
    data = data.detach().cpu().numpy() if hasattr(data, 'detach') else np.asarray(data)
    data = data.reshape(data.shape[-2:])
    bad = data[(data < 0) | (data >= NODATA)]
    if bad.size:
        raise ValueError(f'{field} of {where} has values {np.unique(bad)[:10].tolist()} that '
                         f'do not fit the 0..{NODATA - 1} encoding (255 = nodata)')
    return data.astype(np.uint8)


def _write_atomic(path: str, write: Any) -> None:
    """Write with ``write(tmp_path)`` next to ``path``, then rename: no partial file is left."""
    folder, name = osp.split(path)
    stem, ext = osp.splitext(name)
    fd, tmp = tempfile.mkstemp(prefix=f'.{stem}.', suffix=f'.partial{ext}', dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_png(path: str, array: np.ndarray) -> None:
    """Write a ``uint8`` map as a single-channel PNG (atomically)."""

    def write(tmp: str) -> None:
        if not cv2.imwrite(tmp, array):
            raise OSError(f'could not write {path!r}')

    _write_atomic(path, write)


def write_geotiff(path: str, array: np.ndarray, crs: str | None,
                  transform: Sequence[float] | None) -> None:
    """Write a ``uint8`` map as a one-band GeoTIFF with ``crs``/``transform``, nodata 255."""
    import rasterio  # imported here: reading or writing PNG needs no GDAL
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    profile = dict(driver='GTiff', height=array.shape[0], width=array.shape[1], count=1,
                   dtype='uint8', nodata=NODATA, compress='deflate',
                   crs=CRS.from_wkt(crs) if crs else None,
                   transform=Affine(*transform) if transform is not None else Affine.identity())

    def write(tmp: str) -> None:
        with rasterio.open(tmp, 'w', **profile) as dst:
            dst.write(array, 1)

    _write_atomic(path, write)


@HOOKS.register_module()
class ChangePredictionWriterHook(Hook):
    """Write each test prediction at the original size, with nodata and georeference.

    Predictions (``pred_sem_seg`` and, for semantic change detection, ``pred_sem_seg_from``
    / ``_to``) are at ``ori_shape``, the grid of the source rasters, so the georeference of
    that grid is written: date 1's ``ori_geo_meta`` (set once a geometric transform changed
    the pipeline's grid) or else its ``geo_meta``. Pixels of the sample's ``nodata_mask``
    (either date nodata) are written as 255. The output is a GeoTIFF (``uint8``, CRS,
    transform, nodata tag 255, deflate) when date 1 has a CRS or a transform, else a PNG.
    Files are written to a temporary name and renamed, so an interrupted run leaves no
    truncated file. In distributed testing each process writes its own samples.

    Args:
        out_dir: Folder for the files (created; a relative path is relative to the working
            directory of the process).

    Raises:
        ValueError: When two samples of one run have the same date-1 file stem (their files
            would overwrite each other), or a prediction / nodata mask does not have the
            sample's ``ori_shape``.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str) -> None:
        if not out_dir:
            raise ValueError('ChangePredictionWriterHook needs an out_dir')
        self.out_dir = str(out_dir)
        self._written: dict[str, str] = {}

    def before_test(self, runner: Any) -> None:
        """Create the folder and forget the stems of an earlier run."""
        os.makedirs(self.out_dir, exist_ok=True)
        self._written = {}

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Sequence[ChangeDataSample] | None = None) -> None:
        """Write every sample of the batch."""
        for sample in outputs or ():
            self.write_sample(sample)

    def write_sample(self, sample: ChangeDataSample) -> list[str]:
        """Write one sample's prediction file(s) and return their paths."""
        os.makedirs(self.out_dir, exist_ok=True)
        meta = sample.metainfo
        paths = meta.get('img_path')
        first = paths[0] if isinstance(paths, (list, tuple)) and paths else paths
        where = f'img_path={paths}'
        if not first:
            raise ValueError('cannot name the prediction file of a sample without img_path')
        # Samples whose date-1 path is a folder (OSCD: one folder of band files per date and
        # city) carry their own name; the others are named after date 1's file.
        stem = meta.get('sample_name') or osp.splitext(osp.basename(str(first)))[0]
        if stem in self._written and self._written[stem] != str(first):
            raise ValueError(f'two test samples share the file stem {stem!r} '
                             f'({self._written[stem]!r} and {first!r}); their predictions '
                             f'would overwrite each other in {self.out_dir!r}')
        self._written[stem] = str(first)

        nodata = None
        if 'nodata_mask' in sample:
            nodata = sample.nodata_mask.data
            nodata = nodata.detach().cpu().numpy() if hasattr(nodata, 'detach') else nodata
            nodata = np.asarray(nodata, dtype=bool).reshape(np.shape(nodata)[-2:])
        geo = meta.get('ori_geo_meta') or meta.get('geo_meta') or [None]
        date1 = geo[0] or {}
        crs, transform = date1.get('crs'), date1.get('transform')
        georeferenced = crs is not None or transform is not None
        ori_shape = tuple(meta.get('ori_shape') or ())[:2]

        written = []
        for field, suffix in PRED_FIELDS:
            if field not in sample:
                continue
            array = _as_uint8_map(sample, field, where)
            if ori_shape and array.shape != ori_shape:
                raise ValueError(f'{field} of {where} is {array.shape}, not the original size '
                                 f'{ori_shape}; predictions must be restored before writing')
            if nodata is not None:
                if nodata.shape != array.shape:
                    raise ValueError(f'nodata_mask of {where} is {nodata.shape} but {field} '
                                     f'is {array.shape}')
                array = array.copy()
                array[nodata] = NODATA
            path = osp.join(self.out_dir, f'{stem}{suffix}.{"tif" if georeferenced else "png"}')
            if georeferenced:
                write_geotiff(path, array, crs, transform)
            else:
                write_png(path, array)
            written.append(path)
        return written
