"""LEVIR-CD: building change detection on 1024×1024 Google Earth tiles (0.5 m)."""
from mmrs.registry import DATASETS

from .base_change_dataset import SplitFolderChangeDataset


@DATASETS.register_module()
class LEVIRCDDataset(SplitFolderChangeDataset):
    """LEVIR-CD (Chen & Shi, 2020) and its cropped 256×256 variants.

    Official layout (``data_root`` = the extracted release)::

        {train,val,test}/A/<name>.png      date 1, RGB
        {train,val,test}/B/<name>.png      date 2, RGB
        {train,val,test}/label/<name>.png  change mask, 0 = unchanged, 255 = changed

    Arguments: see :class:`SplitFolderChangeDataset` (``split`` picks the split folder).
    """

    FOLDERS = dict(img_path_from='A', img_path_to='B', seg_map_path='label')
    LABEL_ENCODING = '0/255'  # official release: 0 unchanged, 255 changed
