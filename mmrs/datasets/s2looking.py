"""S2Looking: side-looking satellite building change detection."""
from mmrs.registry import DATASETS

from .base_change_dataset import SplitFolderChangeDataset


@DATASETS.register_module()
class S2LookingDataset(SplitFolderChangeDataset):
    """S2Looking (Shen et al., 2021): 5,000 1024×1024 off-nadir satellite pairs.

    The release also has ``label1`` / ``label2`` (per-date new / demolished buildings);
    only the binary ``label`` is used here.

    Layout (``data_root`` = the extracted ``S2Looking`` folder)::

        {train,val,test}/Image1/<name>.png  date 1, RGB
        {train,val,test}/Image2/<name>.png  date 2, RGB
        {train,val,test}/label/<name>.png   change mask, 0 / 255

    Arguments: see :class:`SplitFolderChangeDataset` (``split`` picks the split folder).
    """

    FOLDERS = dict(img_path_from='Image1', img_path_to='Image2', seg_map_path='label')
    LABEL_ENCODING = '0/255'  # official binary ``label``: 0 / 255
