"""Data preprocessors: batch bitemporal inputs for the detectors."""
from .change_data_preprocessor import SEG_FIELDS, ChangeDataPreprocessor

__all__ = ['SEG_FIELDS', 'ChangeDataPreprocessor']
