"""SECOND: semantic change detection with six land-cover classes."""
from mmrs.registry import DATASETS

from .base_change_dataset import BaseSCDDataset, split_prefix


@DATASETS.register_module()
class SECONDDataset(BaseSCDDataset):
    """SECOND (Yang et al., 2021): 4,662 512×512 aerial pairs, per-date land-cover maps.

    Official layout (``data_root`` = the extracted release; only ``train`` has public
    labels, many users split it into train/val/test folders of the same shape)::

        {split}/im1/<name>.png      date 1, RGB
        {split}/im2/<name>.png      date 2, RGB
        {split}/label1/<name>.png   date-1 land cover where it changed (RGB colour map)
        {split}/label2/<name>.png   date-2 land cover where it changed (RGB colour map)

    There is no binary folder in the release: the loader derives the change map as
    ``label1 != 0``. Pass ``data_prefix`` with ``seg_map_path`` to use a pre-computed one.

    Classes (index = label value; colours of the official RGB labels, the palette also used
    by SCanNet's and open-cd's loaders): 0 unchanged [255, 255, 255], 1 water [0, 0, 255],
    2 ground (non-vegetated ground surface) [128, 128, 128], 3 low vegetation [0, 128, 0],
    4 tree [0, 255, 0], 5 building [128, 0, 0], 6 playground (sports field) [255, 0, 0].
    Both RGB colour maps and single-channel index maps (0–6, 255 = ignore) are accepted.

    Args:
        data_root: Release root.
        split: Split folder (``'train'``, ``'test'`` ...); ``None`` for a flat tree.
        data_prefix: Overrides the folders derived from ``split``.
        **kwargs: See :class:`BaseSCDDataset`.
    """

    METAINFO = dict(
        classes=('unchanged', 'changed'),
        palette=[[0, 0, 0], [255, 255, 255]],
        semantic_classes=('unchanged', 'water', 'ground', 'low vegetation', 'tree',
                          'building', 'playground'),
        semantic_palette=[[255, 255, 255], [0, 0, 255], [128, 128, 128], [0, 128, 0],
                          [0, 255, 0], [128, 0, 0], [255, 0, 0]])

    FOLDERS = dict(
        img_path_from='im1',
        img_path_to='im2',
        seg_map_path_from='label1',
        seg_map_path_to='label2')
    #: Only for a pre-computed binary folder passed in ``data_prefix`` (the release has
    #: none; the change map is then derived from ``label1``).
    LABEL_ENCODING = '0/255'

    def __init__(self,
                 data_root: str = '',
                 split: str | None = 'train',
                 data_prefix: dict | None = None,
                 img_suffix: str | tuple = '.png',
                 seg_map_suffix: str | tuple = '.png',
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix or split_prefix(split, self.FOLDERS),
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            **kwargs)
