"""Hooks registered in :data:`mmrs.registry.HOOKS`."""
from .change_visualization_hook import ChangeVisualizationHook

__all__ = ['ChangeVisualizationHook']
