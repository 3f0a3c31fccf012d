"""CLCD: cropland change detection on Gaofen-2 imagery."""
from mmrs.registry import DATASETS

from .base_change_dataset import SplitFolderChangeDataset


@DATASETS.register_module()
class CLCDDataset(SplitFolderChangeDataset):
    """CLCD (Liu et al., 2022): 600 pairs of 512×512 Gaofen-2 crops, cropland changes.

    Layout (``data_root`` = the extracted ``CLCD`` folder)::

        {train,val,test}/time1/<name>.png  date 1, RGB
        {train,val,test}/time2/<name>.png  date 2, RGB
        {train,val,test}/label/<name>.png  change mask, 0 / 255

    Arguments: see :class:`SplitFolderChangeDataset` (``split`` picks the split folder).
    """

    FOLDERS = dict(img_path_from='time1', img_path_to='time2', seg_map_path='label')
    LABEL_ENCODING = '0/255'  # official release: 0 / 255
