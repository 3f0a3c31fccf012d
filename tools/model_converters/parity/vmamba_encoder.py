"""Output parity of mmrs' ``VMamba`` with the official ChangeMamba encoder (``Backbone_VSSM``).

The official code is not part of mmrs: point this script at a checkout of
https://github.com/ChenHongruixuan/MambaCD (its ``classification/models/vmamba.py``)::

    python tools/model_converters/parity/vmamba_encoder.py \\
        --official-file /path/to/MambaCD/classification/models/vmamba.py \\
        --variants tiny small base --out benchmarks/results/vmamba_encoder_parity.json

The official file needs CUDA/triton-only pieces that do not exist on a CPU machine. Only
those are replaced, in this process, never on disk:

- ``csm_triton`` (triton cross-scan, unused by the ``v3noz`` path on the CPU) and
  ``fvcore.nn`` (FLOP counting) by empty stand-ins;
- the CUDA selective-scan autograd functions (``SelectiveScanOflex/Core/Mamba``) by
  :func:`mmrs.models.layers.selective_scan_reference`, the sequential loop written from the
  recurrence (not mmrs' fast path, which is what the comparison checks).

Every official parameter (norms included) is randomised, the state dict is loaded into mmrs'
``VMamba(arch=variant, norm_layer=...)`` with ``strict=True`` (same keys, same shapes), and the
four outputs of both models are compared on the same input (fp32, CPU). Exit status 1 when a
difference exceeds ``--atol``.
"""
import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from mmrs.models.backbones import VMamba  # noqa: E402
from mmrs.models.layers import selective_scan_reference  # noqa: E402

#: ChangeMamba's vssm1 settings (changedetection/configs/vssm1/*.yaml + config.py defaults).
VARIANTS = dict(
    tiny=dict(depths=[2, 2, 4, 2], dims=96, drop_path_rate=0.2),
    small=dict(depths=[2, 2, 15, 2], dims=96, drop_path_rate=0.3),
    base=dict(depths=[2, 2, 15, 2], dims=128, drop_path_rate=0.6),
)
COMMON = dict(patch_size=4, in_chans=3, num_classes=1000, ssm_d_state=1, ssm_ratio=2.0,
              ssm_dt_rank='auto', ssm_act_layer='silu', ssm_conv=3, ssm_conv_bias=False,
              ssm_drop_rate=0.0, ssm_init='v0', forward_type='v3noz', mlp_ratio=4.0,
              mlp_act_layer='gelu', mlp_drop_rate=0.0, patch_norm=True,
              downsample_version='v3', patchembed_version='v2', gmlp=False,
              use_checkpoint=False)


def load_official(path: Path) -> types.ModuleType:
    """Import the official ``vmamba.py`` with its CUDA-only pieces replaced (see above)."""
    if not path.is_file():
        raise FileNotFoundError(f'official vmamba.py not found: {path}')
    triton = types.ModuleType('csm_triton')
    triton.CrossScanTriton = triton.CrossMergeTriton = triton.CrossScanTriton1b1 = None
    fvcore, fvcore_nn = types.ModuleType('fvcore'), types.ModuleType('fvcore.nn')
    for name in ('FlopCountAnalysis', 'flop_count_str', 'flop_count', 'parameter_count'):
        setattr(fvcore_nn, name, None)
    fvcore.nn = fvcore_nn
    sys.modules.update({'csm_triton': triton, 'fvcore': fvcore, 'fvcore.nn': fvcore_nn})
    spec = importlib.util.spec_from_file_location('mambacd_vmamba_official', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def reference_apply(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                        *_):
        return selective_scan_reference(u, delta, A, B, C, D, delta_bias, delta_softplus)

    for name in ('SelectiveScanOflex', 'SelectiveScanCore', 'SelectiveScanMamba'):
        if hasattr(module, name):
            getattr(module, name).apply = staticmethod(reference_apply)
    return module


def randomise_(model: torch.nn.Module, seed: int) -> None:
    """Give every parameter a random value so that the comparison covers all of them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.02 if param.ndim > 1 else 0.1
            offset = 1.0 if name.endswith('weight') and param.ndim == 1 else 0.0
            param.copy_(torch.randn(param.shape, generator=gen) * scale + offset)


def compare(official: types.ModuleType, variant: str, norm_layer: str,
            size: tuple[int, int], seed: int) -> dict:
    """Max abs difference of the four outputs for one variant and norm layout."""
    theirs = official.Backbone_VSSM(out_indices=(0, 1, 2, 3), pretrained=None,
                                    norm_layer=norm_layer, **COMMON,
                                    **VARIANTS[variant]).eval()
    randomise_(theirs, seed)
    arch = dict(depths=VARIANTS[variant]['depths'], dims=VARIANTS[variant]['dims'],
                norm_layer=norm_layer)
    ours = VMamba(arch=arch, scan_backend='torch').eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)  # same keys and shapes
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        want, got = theirs(x), ours(x)
    return dict(
        variant=variant, norm_layer=norm_layer, input=[2, 3, *size],
        params=sum(p.numel() for p in ours.parameters()),
        max_abs_diff=max((a - b).abs().max().item() for a, b in zip(want, got)),
        max_abs_output=max(a.abs().max().item() for a in want))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-file', type=Path, required=True,
                        help="MambaCD's classification/models/vmamba.py")
    parser.add_argument('--variants', nargs='+', default=['tiny'], choices=sorted(VARIANTS))
    parser.add_argument('--norm-layers', nargs='+', default=['ln', 'ln2d'],
                        choices=['ln', 'ln2d'])
    parser.add_argument('--size', type=int, nargs=2, default=(64, 96), metavar=('H', 'W'))
    parser.add_argument('--atol', type=float, default=1e-4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, help='write the results as JSON here')
    args = parser.parse_args(argv)
    official = load_official(args.official_file)
    results = [compare(official, v, n, tuple(args.size), args.seed)
               for v in args.variants for n in args.norm_layers]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + '\n')
    return 0 if all(r['max_abs_diff'] <= args.atol for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
