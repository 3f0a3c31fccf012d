"""Necks: bitemporal feature fusion and neck chaining."""
from .feature_fusion import FUSION_POLICIES, FeatureFusionNeck, fuse_features
from .sequential_neck import SequentialNeck

__all__ = ['FUSION_POLICIES', 'FeatureFusionNeck', 'fuse_features', 'SequentialNeck']
