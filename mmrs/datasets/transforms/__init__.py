"""Data transforms (registered in ``mmrs.registry.TRANSFORMS``): bitemporal pairs, single
multi-band images, captions."""
from ..labels import decode_change_label, rgb_to_index
from .bands import LoadMultiBandImage, SelectBands
from .captions import FormatCaptions, RandomCaption
from .formatting import PackChangeInputs
from .geometric import (PairedPad, PairedRandomCrop, PairedRandomFlip, PairedRandomResize,
                        PairedRandomRotate90, PairedResize, resize_array)
from .loading import LoadBitemporalImages, LoadChangeAnnotations, read_label, read_raster
from .photometric import BitemporalPhotoMetricDistortion, ExchangeTime

__all__ = [
    'LoadBitemporalImages', 'LoadChangeAnnotations', 'PairedRandomFlip',
    'PairedRandomRotate90', 'PairedRandomCrop', 'PairedResize', 'PairedRandomResize',
    'PairedPad', 'BitemporalPhotoMetricDistortion', 'ExchangeTime', 'PackChangeInputs',
    'decode_change_label', 'read_label', 'read_raster', 'rgb_to_index', 'resize_array',
    'LoadMultiBandImage', 'SelectBands', 'FormatCaptions', 'RandomCaption'
]
