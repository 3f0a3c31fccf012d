"""Losses registered by mmrs (mmseg losses are used by prefix, e.g. mmseg.CrossEntropyLoss)."""
from .semantic_consistency import SemanticConsistencyLoss

__all__: list[str] = ['SemanticConsistencyLoss']
