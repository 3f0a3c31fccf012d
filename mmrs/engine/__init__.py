"""Runner extensions: hooks, model wrappers and optimizer wrappers."""
from .checkpoint_fit_hook import CheckpointFitHook
from .hooks import ChangePredictionWriterHook, ChangeVisualizationHook
from .hooks import FiniteCheckOptimWrapper, LossCheckHook, NonFiniteLossError
from .model_wrappers import DeviceAwareDistributedDataParallel
from .optim_wrappers import CPUAmpOptimWrapper

__all__ = ['ChangePredictionWriterHook', 'ChangeVisualizationHook', 'CheckpointFitHook',
           'CPUAmpOptimWrapper', 'DeviceAwareDistributedDataParallel', 'FiniteCheckOptimWrapper',
           'LossCheckHook', 'NonFiniteLossError']
