"""DSIFN-CD: Google Earth pairs of six Chinese cities."""
from mmrs.registry import DATASETS

from .base_change_dataset import SplitFolderChangeDataset


@DATASETS.register_module()
class DSIFNDataset(SplitFolderChangeDataset):
    """DSIFN-CD (Zhang et al., 2020), the IFN release: 512×512 JPEG tiles.

    The masks are ``.png`` in ``train``/``val`` and ``.tif`` in ``test``, hence the suffix
    tuple.

    Layout (``data_root`` = the extracted ``DSIFN`` folder)::

        {train,val,test}/t1/<name>.jpg    date 1, RGB
        {train,val,test}/t2/<name>.jpg    date 2, RGB
        {train,val}/mask/<name>.png       change mask, 0 / 255
        test/mask/<name>.tif              change mask, 0 / 255

    Arguments: see :class:`SplitFolderChangeDataset` (``split`` picks the split folder).
    """

    FOLDERS = dict(img_path_from='t1', img_path_to='t2', seg_map_path='mask')
    LABEL_ENCODING = '0/255'  # IFN release: 0 / 255 in both the .png and .tif masks
    IMG_SUFFIX = '.jpg'
    SEG_MAP_SUFFIX = ('.png', '.tif')
