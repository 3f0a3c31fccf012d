"""SYSU-CD: 256×256 aerial pairs of Hong Kong (2007 → 2014)."""
from mmrs.registry import DATASETS

from .base_change_dataset import SplitFolderChangeDataset


@DATASETS.register_module()
class SYSUCDDataset(SplitFolderChangeDataset):
    """SYSU-CD (Shi et al., 2022): 20,000 256×256 aerial pairs, 0.5 m.

    Layout (``data_root`` = the extracted ``SYSU-CD`` folder)::

        {train,val,test}/time1/<name>.png  date 1, RGB
        {train,val,test}/time2/<name>.png  date 2, RGB
        {train,val,test}/label/<name>.png  change mask, 0 / 255

    Arguments: see :class:`SplitFolderChangeDataset` (``split`` picks the split folder).
    """

    FOLDERS = dict(img_path_from='time1', img_path_to='time2', seg_map_path='label')
    LABEL_ENCODING = '0/255'  # official release: 0 / 255
