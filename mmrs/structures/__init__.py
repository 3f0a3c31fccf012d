"""Data samples that travel between datasets, models, metrics and visualizers."""
from .box_text import BOX_TEXT_PRESETS, BoxTextReport, RotatedBoxTextCodec
from .change_data_sample import ChangeDataSample
from .geometry import (FLIP_DIRECTIONS, compose_flips, crop_padding, flip_padding,
                       restore_label_map, rotate_padding, sample_meta, undo_orientation)

__all__ = [
    'BOX_TEXT_PRESETS', 'BoxTextReport', 'RotatedBoxTextCodec', 'ChangeDataSample',
    'FLIP_DIRECTIONS', 'compose_flips', 'crop_padding', 'flip_padding',
    'restore_label_map', 'rotate_padding', 'sample_meta', 'undo_orientation'
]
