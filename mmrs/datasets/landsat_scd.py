"""Landsat-SCD: semantic change detection on Landsat scenes of Xinjiang (1990–2020)."""
import numpy as np

from mmrs.registry import DATASETS

from .base_change_dataset import BaseSCDDataset

#: Per-date class of each of the 10 "from-to" classes of the original ``label`` folder
#: (0 no change, 1 farmland→desert, 2 farmland→building, 3 desert→farmland,
#: 4 desert→building, 5 desert→water, 6 building→farmland, 7 building→desert,
#: 8 water→farmland, 9 water→desert), as converted by SCanNet's ``MCDlabel_to_SCDlabel``.
FROM_TO_TO_FROM = np.array([0, 1, 1, 2, 2, 2, 3, 3, 4, 4], dtype=np.uint8)
FROM_TO_TO_TO = np.array([0, 2, 3, 1, 3, 4, 1, 2, 1, 2], dtype=np.uint8)


def landsat_from_to_to_semantic(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split an original Landsat-SCD 10-class from-to map into (date-1, date-2) maps.

    Use it once to convert the original release into the ``labelA``/``labelB`` layout.
    """
    label = np.asarray(label)
    if label.size and int(label.max()) > 9:
        raise ValueError(f'from-to labels must be in 0..9, got max {int(label.max())}')
    return FROM_TO_TO_FROM[label], FROM_TO_TO_TO[label]


@DATASETS.register_module()
class LandsatSCDDataset(BaseSCDDataset):
    """Landsat-SCD (Yuan et al., 2022): 416×416 Landsat pairs, 4 land-cover classes.

    The original release has ``A/``, ``B/`` and a 10-class from-to map ``label/``; the
    semantic-change layout used by SCanNet / MambaCD (and expected here) splits it into
    per-date maps (see :func:`landsat_from_to_to_semantic`)::

        A/<name>.png           date 1, RGB
        B/<name>.png           date 2, RGB
        labelA/<name>.png      date-1 class where changed (index map 0–4)
        labelB/<name>.png      date-2 class where changed (index map 0–4)
        {train,val,test}_list.txt  one file name per line

    Classes: 0 unchanged [255, 255, 255], 1 farmland [0, 155, 0], 2 desert [255, 165, 0],
    3 building [230, 30, 100], 4 water [0, 170, 240] (SCanNet's colours, used to read the
    ``labelA_rgb`` / ``labelB_rgb`` colour variants as well). The binary change map is
    derived as ``labelA != 0``.

    Args:
        data_root: Release root.
        split: Selects ``ann_file='{split}_list.txt'``; ``None`` lists the whole ``A`` folder.
        data_prefix: Folders, default ``A``, ``B``, ``labelA``, ``labelB``.
        ann_file: Overrides the list file derived from ``split``.
        **kwargs: See :class:`BaseSCDDataset`.
    """

    METAINFO = dict(
        classes=('unchanged', 'changed'),
        palette=[[0, 0, 0], [255, 255, 255]],
        semantic_classes=('unchanged', 'farmland', 'desert', 'building', 'water'),
        semantic_palette=[[255, 255, 255], [0, 155, 0], [255, 165, 0], [230, 30, 100],
                          [0, 170, 240]])

    FOLDERS = dict(
        img_path_from='A',
        img_path_to='B',
        seg_map_path_from='labelA',
        seg_map_path_to='labelB')
    #: Only for a binary folder passed in ``data_prefix`` (the per-date form has none; the
    #: change map is derived from ``labelA``).
    LABEL_ENCODING = '0/255'

    def __init__(self,
                 data_root: str = '',
                 split: str | None = 'train',
                 data_prefix: dict | None = None,
                 ann_file: str | None = None,
                 img_suffix: str | tuple = '.png',
                 seg_map_suffix: str | tuple = '.png',
                 **kwargs) -> None:
        if ann_file is None:
            ann_file = f'{split}_list.txt' if split else ''
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix or dict(self.FOLDERS),
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            **kwargs)
