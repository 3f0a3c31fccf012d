"""WHU-CD (WHU Building change detection), as the 256×256 crop used by BIT and open-cd."""
from mmrs.registry import DATASETS

from .base_change_dataset import BaseChangeDataset


@DATASETS.register_module()
class WHUCDDataset(BaseChangeDataset):
    """WHU Building CD (Ji et al., 2019), ``WHU-CD-256`` release (BIT / open-cd).

    Layout (``data_root`` = ``WHU-CD-256``)::

        A/<name>.png             date 1 (2012), RGB
        B/<name>.png             date 2 (2016), RGB
        label/<name>.png         change mask, 0 / 255
        list/{train,val,test}.txt  one file name (or stem) per line

    Some re-distributions ship ``.tif`` tiles; both suffixes are accepted by default.

    Args:
        data_root: Release root.
        split: Selects ``ann_file='list/{split}.txt'``; ``None`` lists the whole ``A`` folder.
        data_prefix: Folders, default ``A``, ``B``, ``label``.
        ann_file: Overrides the list file derived from ``split``.
        **kwargs: See :class:`BaseChangeDataset`.
    """

    FOLDERS = dict(img_path_from='A', img_path_to='B', seg_map_path='label')
    LABEL_ENCODING = '0/255'  # WHU-CD-256 (BIT / open-cd) masks: 0 / 255

    def __init__(self,
                 data_root: str = '',
                 split: str | None = 'train',
                 data_prefix: dict | None = None,
                 ann_file: str | None = None,
                 img_suffix: str | tuple = ('.png', '.tif'),
                 seg_map_suffix: str | tuple = ('.png', '.tif'),
                 **kwargs) -> None:
        if ann_file is None:
            ann_file = f'list/{split}.txt' if split else ''
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix or dict(self.FOLDERS),
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            **kwargs)
