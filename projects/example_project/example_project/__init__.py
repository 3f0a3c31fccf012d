"""An example downstream project: registers its own fusion neck into mmrs' MODELS registry.

Configs load it with ``custom_imports=dict(imports=['example_project'])`` (with this folder
on ``PYTHONPATH``); after that, ``type='GatedDiffNeck'`` resolves like any mmrs module.
"""
from .gated_diff_neck import GatedDiffNeck

__all__ = ['GatedDiffNeck']
