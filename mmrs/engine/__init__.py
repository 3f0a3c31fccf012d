"""Runner extensions: hooks, model wrappers and optimizer wrappers."""
from .hooks import ChangeVisualizationHook
from .model_wrappers import DeviceAwareDistributedDataParallel
from .optim_wrappers import CPUAmpOptimWrapper

__all__ = ['ChangeVisualizationHook', 'CPUAmpOptimWrapper', 'DeviceAwareDistributedDataParallel']
