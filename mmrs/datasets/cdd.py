"""CDD (a.k.a. SVCD): seasonal-variation change detection."""
from mmrs.registry import DATASETS

from .base_change_dataset import SplitFolderChangeDataset


@DATASETS.register_module()
class CDDDataset(SplitFolderChangeDataset):
    """CDD / SVCD (Lebedev et al., 2018), the ``Real/subset`` 256×256 crops.

    Labels are JPEG, so they hold compression noise around 0 and 255: the default
    ``label_encoding='threshold'`` makes values ``>= label_threshold`` (128) "changed".

    Layout (``data_root`` = ``ChangeDetectionDataset/Real/subset``)::

        {train,val,test}/A/<name>.jpg    date 1, RGB
        {train,val,test}/B/<name>.jpg    date 2, RGB
        {train,val,test}/OUT/<name>.jpg  change mask (JPEG), ~0 / ~255

    Arguments: see :class:`SplitFolderChangeDataset` (``split`` picks the split folder).
    """

    FOLDERS = dict(img_path_from='A', img_path_to='B', seg_map_path='OUT')
    IMG_SUFFIX = '.jpg'
    SEG_MAP_SUFFIX = '.jpg'
    LABEL_ENCODING = 'threshold'  # lossy JPEG masks: no exact 0/255 to check
