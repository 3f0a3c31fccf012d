"""Packing a bitemporal sample into model inputs and a :class:`ChangeDataSample`."""
from collections.abc import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData

from mmrs.registry import TRANSFORMS
from mmrs.structures import ChangeDataSample

#: Label maps of the results dict and the ``ChangeDataSample`` fields they become.
LABEL_FIELDS = (('gt_seg_map', 'gt_sem_seg'), ('gt_seg_map_from', 'gt_sem_seg_from'),
                ('gt_seg_map_to', 'gt_sem_seg_to'), ('gt_damage_map', 'gt_damage_seg'))

#: Metainfo copied from the results when present. Besides paths and shapes it carries the
#: pipeline geometry that predictions and labels are restored with (``img_padding_size``,
#: ``flip``/``flip_direction``, ``rotate90_k``, see :mod:`mmrs.structures.geometry`), the
#: crop window, and the georeference of the pipeline grid (``geo_meta``) and of the
#: original grid (``ori_geo_meta``, present once a geometric transform ran).
DEFAULT_META_KEYS = ('img_path', 'seg_map_path', 'seg_map_path_from', 'seg_map_path_to',
                     'ori_shape', 'img_shape', 'pad_shape', 'img_padding_size',
                     'scale_factor', 'flip', 'flip_direction', 'rotate90_k', 'crop_bbox',
                     'geo_meta', 'ori_geo_meta', 'sample_idx', 'sample_name',
                     'damage_map_path')


@TRANSFORMS.register_module()
class PackChangeInputs(BaseTransform):
    """Pack images into a ``(2, C, H, W)`` tensor and labels into a ``ChangeDataSample``.

    ``inputs`` keeps uint8 images as uint8 (normalisation happens in the data
    preprocessor, on the device) and turns every other dtype into float32. Label maps
    become ``PixelData`` with a ``(1, H, W)`` long tensor; ``results['nodata_mask']`` (an
    ``(H, W)`` bool map at the original size, from the loader) becomes the field
    ``nodata_mask`` (``(1, H, W)`` bool). The ``meta_keys`` present in the results
    (including ``geo_meta``) go to the sample's metainfo, and so does
    ``transformed_gt_fields``: the sample fields (``gt_sem_seg``...) whose maps went
    through geometric transforms with the image, i.e. are on the pipeline's grid rather
    than the original one (the metrics restore them, see
    :func:`mmrs.structures.restore_label_map`).

    Args:
        meta_keys: Keys copied to the metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        imgs = [img[..., None] if img.ndim == 2 else img for img in results['img']]
        stacked = np.stack([np.ascontiguousarray(img) for img in imgs])  # (2, H, W, C)
        if stacked.dtype != np.uint8:
            stacked = stacked.astype(np.float32)
        inputs = torch.from_numpy(np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)))

        sample = ChangeDataSample()
        for key, field in LABEL_FIELDS:
            if results.get(key) is not None:
                data = torch.from_numpy(np.ascontiguousarray(results[key]).astype(np.int64))
                setattr(sample, field, PixelData(data=data[None]))
        if results.get('nodata_mask') is not None:
            mask = np.ascontiguousarray(results['nodata_mask']).astype(bool)
            if mask.ndim != 2:
                raise ValueError(f'nodata_mask must be (H, W), got shape {mask.shape} for '
                                 f'{results.get("img_path")}')
            sample.nodata_mask = PixelData(data=torch.from_numpy(mask)[None])
        meta = {k: results[k] for k in self.meta_keys if k in results}
        moved = set(results.get('transformed_seg_fields') or ())
        meta['transformed_gt_fields'] = tuple(
            field for key, field in LABEL_FIELDS if key in moved and results.get(key) is not None)
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
