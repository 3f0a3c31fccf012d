"""Output parity of mmrs' MambaBDA configs with the official ``STMambaBDA`` (ChangeMamba).

Point it at a checkout of https://github.com/ChenHongruixuan/MambaCD::

    python tools/model_converters/parity/mambabda.py --official-repo /path/to/MambaCD \\
        --variants tiny small base --out benchmarks/results/mambabda_parity.json

The official model (``output_building=2``, ``output_damage=5``) gets random weights
(BatchNorm statistics too), its state dict goes through ``tools/model_converters/
mambacd2mmrs.py``'s conversion and loads with ``strict=True`` into the model of
``configs/changemamba/mambabda_<variant>_256x256_50k_xbd.py`` (``scan_backend='torch'``),
and the damage and localisation logits of both are compared on the same image pair (fp32,
CPU, at the input size). The official CUDA/triton pieces are replaced in-process as
:mod:`official_mambacd` explains. Exit status 1 when a difference exceeds ``--atol``.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[3]
for path in (REPO_ROOT, REPO_ROOT / 'tools' / 'model_converters',
             Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from mambabcd import randomise_with_bn_stats_  # noqa: E402
from mambacd2mmrs import convert_mambabda  # noqa: E402
from mmengine.config import Config  # noqa: E402
from official_mambacd import import_mambacd  # noqa: E402
from vmamba_encoder import COMMON, VARIANTS  # noqa: E402

from mmrs.registry import MODELS  # noqa: E402
from mmrs.utils import register_all_modules  # noqa: E402

OUTPUTS = ('damage', 'localization')


def compare(official, variant: str, size: tuple[int, int], seed: int) -> dict:
    """Max abs difference of the two logit maps of one variant."""
    settings = {k: v for k, v in COMMON.items() if k != 'num_classes'}
    theirs = official.STMambaBDA(output_building=2, output_damage=5, pretrained=None,
                                 norm_layer='ln', num_classes=1000, **settings,
                                 **VARIANTS[variant]).eval()
    randomise_with_bn_stats_(theirs, seed)
    cfg = Config.fromfile(
        str(REPO_ROOT / f'configs/changemamba/mambabda_{variant}_256x256_50k_xbd.py'))
    cfg.model.scan_backend = 'torch'  # encoder and both decoders: mmrs' portable scan
    ours = MODELS.build(cfg.model).eval()
    ours.load_state_dict(convert_mambabda(theirs.state_dict()), strict=True)
    gen = torch.Generator().manual_seed(seed + 1)
    pre, post = torch.randn(2, 3, *size, generator=gen), torch.randn(2, 3, *size, generator=gen)
    with torch.no_grad():
        building, damage = theirs(pre, post)
        want = (damage, building)  # mmrs order: damage head, localisation head
        got = ours.encode_decode(torch.stack([pre, post], 1), [dict(img_shape=size)] * 2)
    got = got.split([w.shape[1] for w in want], dim=1)
    diffs = {name: (w - g).abs().max().item() for name, w, g in zip(OUTPUTS, want, got)}
    return dict(variant=variant, input=[2, 3, *size],
                params_official=sum(p.numel() for p in theirs.parameters()),
                params_mmrs=sum(p.numel() for p in ours.parameters()),
                max_abs_diff=max(diffs.values()), max_abs_diff_per_output=diffs,
                max_abs_logit=max(w.abs().max().item() for w in want))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', type=Path, required=True,
                        help='root of a MambaCD checkout')
    parser.add_argument('--variants', nargs='+', default=['tiny'], choices=sorted(VARIANTS))
    parser.add_argument('--size', type=int, nargs=2, default=(64, 96), metavar=('H', 'W'))
    parser.add_argument('--atol', type=float, default=2e-5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, help='write the results as JSON here')
    args = parser.parse_args(argv)
    register_all_modules(init_default_scope=False)
    official = import_mambacd(args.official_repo, 'changedetection.models.STMambaBDA')
    results = [compare(official, v, tuple(args.size), args.seed) for v in args.variants]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + '\n')
    return 0 if all(r['max_abs_diff'] <= args.atol for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
