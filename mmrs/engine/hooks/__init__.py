"""Hooks registered in :data:`mmrs.registry.HOOKS`."""
from .change_visualization_hook import ChangeVisualizationHook
from .prediction_writer_hook import ChangePredictionWriterHook

__all__ = ['ChangeVisualizationHook', 'ChangePredictionWriterHook']
