"""Change detection datasets and transforms (registered in ``mmrs.registry``).

Importing this package registers every dataset and transform and nothing more: rasterio
(GDAL) and the synthetic-scene generator are imported when first used.
"""
from .base_change_dataset import (BaseChangeDataset, BaseSCDDataset, SplitFolderChangeDataset,
                                  split_prefix)
from .cdd import CDDDataset
from .clcd import CLCDDataset
from .dota import DOTA_CLASSES, DOTARawDataset, read_dota_label
from .dsifn import DSIFNDataset
from .labels import LABEL_ENCODINGS
from .landsat_scd import LandsatSCDDataset, landsat_from_to_to_semantic
from .levir_cd import LEVIRCDDataset, LEVIRCDPlusDataset
from .oscd import LoadBitemporalBandFiles, OSCDDataset
from .rs_captions import KarpathyCaptionDataset, RSICDDataset, RSITMDDataset, UCMCaptionsDataset
from .s2looking import S2LookingDataset
from .scene_classification import (AIDDataset, EuroSATDataset, PatternNetDataset,
                                   RESISC45Dataset, SceneFolderDataset, UCMercedDataset,
                                   WHURS19Dataset, scene_class_names)
from .second import SECONDDataset
from .synthetic import SyntheticChangeDataset
from .sysu_cd import SYSUCDDataset
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all
from .whu_cd import WHUCDDataset
from .xbd import LoadXBDAnnotations, XBDDataset, rasterize_xbd, read_xbd_json

__all__ = [
    'BaseChangeDataset', 'BaseSCDDataset', 'SplitFolderChangeDataset', 'split_prefix',
    'LEVIRCDDataset', 'LEVIRCDPlusDataset', 'WHUCDDataset', 'CLCDDataset', 'SYSUCDDataset',
    'S2LookingDataset', 'DSIFNDataset', 'CDDDataset',
    'SECONDDataset', 'LandsatSCDDataset', 'landsat_from_to_to_semantic',
    'SyntheticChangeDataset', 'LABEL_ENCODINGS', 'XBDDataset', 'LoadXBDAnnotations',
    'rasterize_xbd', 'read_xbd_json', 'OSCDDataset', 'LoadBitemporalBandFiles',
    'DOTARawDataset', 'DOTA_CLASSES', 'read_dota_label',
    'KarpathyCaptionDataset', 'RSICDDataset', 'RSITMDDataset', 'UCMCaptionsDataset',
    'SceneFolderDataset', 'RESISC45Dataset', 'AIDDataset', 'UCMercedDataset', 'EuroSATDataset',
    'WHURS19Dataset', 'PatternNetDataset', 'scene_class_names'
] + list(_transforms_all)
