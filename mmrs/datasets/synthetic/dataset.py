"""``SyntheticChangeDataset``: procedurally generated bitemporal GeoTIFFs, made on first use.

Registering the class imports only :mod:`.spec`; the generator (and with it rasterio) is
imported when a dataset is built and its folder has to be written.
"""
import logging
import os.path as osp

from mmengine.logging import print_log

from mmrs.registry import DATASETS

from ..base_change_dataset import BaseSCDDataset
from .spec import (DEFAULT_COUNTS, FORMAT_VERSION, SEMANTIC_CLASSES, SEMANTIC_PALETTE, SPLITS,
                   read_meta)


@DATASETS.register_module()
class SyntheticChangeDataset(BaseSCDDataset):
    """Synthetic binary + semantic change detection scenes (see :mod:`.generator`).

    Useful to run and test whole pipelines without downloading anything: scenes are drawn
    procedurally (ground, vegetation, water, roads, buildings), date 2 has real changes
    (construction, demolition, new roads, cleared vegetation) plus illumination / season /
    noise / blur nuisances that are not change. Labels are exact. Files are georeferenced
    GeoTIFFs (EPSG:32633, 0.5 m pixels)::

        {data_root}/meta.json
        {data_root}/{split}/A/<split>_<i>.tif           date 1, uint8 RGB (+ NIR)
        {data_root}/{split}/B/<split>_<i>.tif           date 2
        {data_root}/{split}/label/<split>_<i>.tif       binary change, 0 / 255
        {data_root}/{split}/label_from/<split>_<i>.tif  date-1 class where changed, else 0
        {data_root}/{split}/label_to/<split>_<i>.tif    date-2 class where changed, else 0

    Semantic classes (label value: name): 0 unchanged, 1 ground, 2 vegetation, 3 water,
    4 road, 5 building.

    Args:
        data_root: Dataset folder; generated there when ``generate`` and the split is
            missing (all splits at once, atomically; an existing folder with the same
            parameters is reused, a non-empty folder with other content raises).
        split: ``'train'``, ``'val'`` or ``'test'``.
        num_samples: Samples per split, default ``dict(train=200, val=40, test=40)``;
            missing keys take the defaults.
        size: Tile size in pixels.
        seed: Generator seed; the same seed gives identical files.
        bands: 3 (RGB) or 4 (RGB + NIR).
        generate: Whether to generate missing data; ``False`` only reads an existing folder.
        **kwargs: See :class:`~mmrs.datasets.base_change_dataset.BaseSCDDataset`
            (``pipeline``, ``test_mode``, ``metainfo`` ...).
    """

    METAINFO = dict(
        classes=('unchanged', 'changed'),
        palette=[[0, 0, 0], [255, 255, 255]],
        semantic_classes=SEMANTIC_CLASSES,
        semantic_palette=SEMANTIC_PALETTE)
    LABEL_ENCODING = '0/255'  # the generator writes ``change * 255``

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_samples: dict[str, int] | None = None,
                 size: int = 128,
                 seed: int = 0,
                 bands: int = 3,
                 generate: bool = True,
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        counts = {**DEFAULT_COUNTS, **(num_samples or {})}
        if generate and not osp.isdir(osp.join(data_root, split)):
            from .generator import write_synthetic_dataset  # only when data must be made
            write_synthetic_dataset(data_root, counts['train'], counts['val'], counts['test'],
                                    size=size, seed=seed, bands=bands)
        meta = read_meta(data_root)
        wanted = dict(seed=seed, size=size, bands=bands, counts=counts,
                      format_version=FORMAT_VERSION)
        if meta is not None and any(meta.get(k) != v for k, v in wanted.items()):
            print_log(
                f'{data_root} holds synthetic data generated with '
                f'{ {k: meta.get(k) for k in wanted} }, not {wanted}; using it as it is',
                logger='current', level=logging.WARNING)
        folders = ('A', 'B', 'label', 'label_from', 'label_to')
        keys = ('img_path_from', 'img_path_to', 'seg_map_path', 'seg_map_path_from',
                'seg_map_path_to')
        kwargs.setdefault('img_suffix', '.tif')
        kwargs.setdefault('seg_map_suffix', '.tif')
        super().__init__(
            data_root=data_root,
            data_prefix={k: f'{split}/{f}' for k, f in zip(keys, folders)},
            **kwargs)
