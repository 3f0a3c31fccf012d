"""Visualizers and panel helpers for bitemporal change detection."""
from .change_visualizer import ChangeLocalVisualizer
from .panels import (CAPTION_HEIGHT, CHANGE_COLOR, FN_COLOR, FP_COLOR, GAP, IGNORE_COLOR,
                     LEGEND_HEIGHT, TITLE_HEIGHT, TP_COLOR, change_scores, read_image,
                     to_display_rgb)

__all__ = [
    'ChangeLocalVisualizer', 'to_display_rgb', 'change_scores', 'read_image', 'TP_COLOR',
    'FP_COLOR', 'FN_COLOR', 'CHANGE_COLOR', 'IGNORE_COLOR', 'GAP', 'TITLE_HEIGHT',
    'CAPTION_HEIGHT', 'LEGEND_HEIGHT'
]
