"""Change detection datasets and transforms (registered in ``mmrs.registry``).

Importing this package registers every dataset and transform and nothing more: rasterio
(GDAL) and the synthetic-scene generator are imported when first used.
"""
from .base_change_dataset import (BaseChangeDataset, BaseSCDDataset, SplitFolderChangeDataset,
                                  split_prefix)
from .cdd import CDDDataset
from .clcd import CLCDDataset
from .dsifn import DSIFNDataset
from .labels import LABEL_ENCODINGS
from .landsat_scd import LandsatSCDDataset, landsat_from_to_to_semantic
from .levir_cd import LEVIRCDDataset
from .s2looking import S2LookingDataset
from .second import SECONDDataset
from .synthetic import SyntheticChangeDataset
from .sysu_cd import SYSUCDDataset
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all
from .whu_cd import WHUCDDataset

__all__ = [
    'BaseChangeDataset', 'BaseSCDDataset', 'SplitFolderChangeDataset', 'split_prefix',
    'LEVIRCDDataset', 'WHUCDDataset', 'CLCDDataset', 'SYSUCDDataset', 'S2LookingDataset', 'DSIFNDataset', 'CDDDataset',
    'SECONDDataset', 'LandsatSCDDataset', 'landsat_from_to_to_semantic',
    'SyntheticChangeDataset', 'LABEL_ENCODINGS'
] + list(_transforms_all)
