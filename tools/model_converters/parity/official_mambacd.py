"""Import the official ChangeMamba code (a user's MambaCD checkout) on a CPU-only machine.

Used by the parity scripts beside this file; nothing of the official code is copied into mmrs.
Only what cannot run without CUDA/triton is replaced, in this process, never on disk:

- ``csm_triton`` (triton cross-scan kernels, not used by the ``v3noz`` path once their import
  fails) and ``fvcore.nn`` (FLOP counting) by empty stand-ins;
- the CUDA selective-scan autograd functions (``SelectiveScanOflex/Core/Mamba``) by
  :func:`mmrs.models.layers.selective_scan_reference`, the sequential loop written from the
  recurrence (not mmrs' fast path, which is what the comparisons check);
- ``Tensor.cuda`` by the identity: the official ``ChangeDecoder`` builds its interleaved
  tensors with ``torch.empty(...).cuda()``.
"""
import importlib
import sys
import tempfile
import types
from pathlib import Path

import torch

from mmrs.models.layers import selective_scan_reference


def _stub_modules() -> None:
    triton = types.ModuleType('csm_triton')
    triton.CrossScanTriton = triton.CrossMergeTriton = triton.CrossScanTriton1b1 = None
    fvcore, fvcore_nn = types.ModuleType('fvcore'), types.ModuleType('fvcore.nn')
    for name in ('FlopCountAnalysis', 'flop_count_str', 'flop_count', 'parameter_count'):
        setattr(fvcore_nn, name, None)
    fvcore.nn = fvcore_nn
    sys.modules.update({'csm_triton': triton, 'fvcore': fvcore, 'fvcore.nn': fvcore_nn})


def _reference_apply(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, *_):
    return selective_scan_reference(u, delta, A, B, C, D, delta_bias, delta_softplus)


def import_mambacd(repo: Path, module: str) -> types.ModuleType:
    """Import ``MambaCD.<module>`` from the checkout ``repo`` with the replacements above.

    Args:
        repo: Root of a MambaCD checkout (holds ``classification/`` and ``changedetection/``).
        module: Dotted module path inside it, e.g. ``'changedetection.models.MambaBCD'``.

    Raises:
        FileNotFoundError: ``repo`` is not a MambaCD checkout.
    """
    repo = Path(repo).resolve()
    vmamba_file = repo / 'classification' / 'models' / 'vmamba.py'
    if not vmamba_file.is_file():
        raise FileNotFoundError(f'{repo} is not a MambaCD checkout: no {vmamba_file}')
    # The official code imports itself as the package "MambaCD": expose the checkout under it.
    link_root = Path(tempfile.mkdtemp(prefix='mambacd_'))
    (link_root / 'MambaCD').symlink_to(repo, target_is_directory=True)
    sys.path.insert(0, str(link_root))
    _stub_modules()
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # CPU-only run, see above
    vmamba = importlib.import_module('MambaCD.classification.models.vmamba')
    for name in ('SelectiveScanOflex', 'SelectiveScanCore', 'SelectiveScanMamba'):
        if hasattr(vmamba, name):
            getattr(vmamba, name).apply = staticmethod(_reference_apply)
    return importlib.import_module(f'MambaCD.{module}')
