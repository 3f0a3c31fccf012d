"""Data samples that travel between datasets, models, metrics and visualizers."""
from .change_data_sample import ChangeDataSample

__all__ = ['ChangeDataSample']
