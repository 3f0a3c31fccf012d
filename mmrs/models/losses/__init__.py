"""Losses registered by mmrs (mmseg losses are used by prefix, e.g. mmseg.CrossEntropyLoss)."""
from .bce_dice import BCEDiceLoss
from .contrastive import CLIPContrastiveLoss
from .semantic_consistency import SemanticConsistencyLoss

__all__: list[str] = ['BCEDiceLoss', 'CLIPContrastiveLoss', 'SemanticConsistencyLoss']
