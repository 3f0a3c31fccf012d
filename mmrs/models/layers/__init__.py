"""Functional building blocks shared by backbones: the selective scan and VMamba's cross-scan."""
from .cross_scan import cross_merge, cross_scan
from .scratch import release_scratch
from .selective_scan import available_cuda_backends, selective_scan, selective_scan_reference

__all__ = [
    'available_cuda_backends', 'cross_merge', 'cross_scan', 'release_scratch', 'selective_scan',
    'selective_scan_reference'
]
