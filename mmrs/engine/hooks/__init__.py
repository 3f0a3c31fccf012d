"""Hooks registered in :data:`mmrs.registry.HOOKS`."""
from .change_visualization_hook import ChangeVisualizationHook
from .prediction_writer_hook import ChangePredictionWriterHook
from .loss_check_hook import FiniteCheckOptimWrapper, LossCheckHook, NonFiniteLossError

__all__ = ['ChangeVisualizationHook', 'ChangePredictionWriterHook', 'FiniteCheckOptimWrapper',
           'LossCheckHook', 'NonFiniteLossError']
