"""Output parity of mmrs' ``VMamba`` with the official ChangeMamba encoder (``Backbone_VSSM``).

The official code is not part of mmrs: point this script at a checkout of
https://github.com/ChenHongruixuan/MambaCD::

    python tools/model_converters/parity/vmamba_encoder.py --official-repo /path/to/MambaCD \\
        --variants tiny small base --out benchmarks/results/vmamba_encoder_parity.json

Its CUDA/triton-only pieces are replaced in-process as :mod:`official_mambacd` explains.

Every official parameter (norms included) is randomised, the state dict is loaded into mmrs'
``VMamba(arch=variant, norm_layer=...)`` with ``strict=True`` (same keys, same shapes), and the
four outputs of both models are compared on the same input (fp32, CPU). Exit status 1 when a
difference exceeds ``--atol``.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_mambacd import import_mambacd  # noqa: E402

from mmrs.models.backbones import VMamba  # noqa: E402

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


def randomise_(model: torch.nn.Module, seed: int) -> None:
    """Give every parameter a random value so that the comparison covers all of them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.02 if param.ndim > 1 else 0.1
            offset = 1.0 if name.endswith('weight') and param.ndim == 1 else 0.0
            param.copy_(torch.randn(param.shape, generator=gen) * scale + offset)


def compare(official, variant: str, norm_layer: str,
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
    parser.add_argument('--official-repo', type=Path, required=True,
                        help='root of a MambaCD checkout')
    parser.add_argument('--variants', nargs='+', default=['tiny'], choices=sorted(VARIANTS))
    parser.add_argument('--norm-layers', nargs='+', default=['ln', 'ln2d'],
                        choices=['ln', 'ln2d'])
    parser.add_argument('--size', type=int, nargs=2, default=(64, 96), metavar=('H', 'W'))
    parser.add_argument('--atol', type=float, default=1e-4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, help='write the results as JSON here')
    args = parser.parse_args(argv)
    official = import_mambacd(args.official_repo, 'changedetection.models.Mamba_backbone')
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
