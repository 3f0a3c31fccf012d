"""Output parity of mmrs' MambaBCD configs with the official ``STMambaBCD`` (ChangeMamba).

Point it at a checkout of https://github.com/ChenHongruixuan/MambaCD::

    python tools/model_converters/parity/mambabcd.py --official-repo /path/to/MambaCD \\
        --variants tiny small base --out benchmarks/results/mambabcd_parity.json

The official model gets random weights (BatchNorm statistics too), its state dict goes through
``tools/model_converters/mambacd2mmrs.py``'s conversion and loads with ``strict=True`` into the
model of ``configs/changemamba/mambabcd_<variant>_256x256_20k_levircd.py`` (portable scan), and
both produce logits for the same image pair (fp32, CPU). The official CUDA/triton pieces are
replaced in-process as :mod:`official_mambacd` explains. Exit status 1 when a difference
exceeds ``--atol``.
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

from mambacd2mmrs import convert_mambabcd  # noqa: E402
from mmengine.config import Config  # noqa: E402
from official_mambacd import import_mambacd  # noqa: E402
from vmamba_encoder import COMMON, VARIANTS, randomise_  # noqa: E402

from mmrs.registry import MODELS  # noqa: E402
from mmrs.utils import register_all_modules  # noqa: E402


def randomise_with_bn_stats_(model: torch.nn.Module, seed: int) -> None:
    """:func:`vmamba_encoder.randomise_` plus random BatchNorm statistics (the decoder has BN)."""
    randomise_(model, seed)
    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)
            elif name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)


def compare(official, variant: str, size: tuple[int, int], seed: int) -> dict:
    """Max abs difference of the logits of one variant."""
    settings = {k: v for k, v in COMMON.items() if k != 'num_classes'}
    theirs = official.STMambaBCD(pretrained=None, norm_layer='ln', num_classes=1000,
                                 **settings, **VARIANTS[variant]).eval()
    randomise_with_bn_stats_(theirs, seed)
    cfg = Config.fromfile(
        str(REPO_ROOT / f'configs/changemamba/mambabcd_{variant}_256x256_20k_levircd.py'))
    cfg.model.scan_backend = 'torch'  # encoder and decoder: mmrs' portable scan
    ours = MODELS.build(cfg.model).eval()
    ours.load_state_dict(convert_mambabcd(theirs.state_dict()), strict=True)
    gen = torch.Generator().manual_seed(seed + 1)
    pre, post = torch.randn(2, 3, *size, generator=gen), torch.randn(2, 3, *size, generator=gen)
    with torch.no_grad():
        want = theirs(pre, post)
        got = ours.encode_decode(torch.stack([pre, post], 1), [dict(img_shape=size)] * 2)
    return dict(variant=variant, input=[2, 3, *size],
                params_official=sum(p.numel() for p in theirs.parameters()),
                params_mmrs=sum(p.numel() for p in ours.parameters()),
                max_abs_diff=(want - got).abs().max().item(),
                max_abs_logit=want.abs().max().item())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', type=Path, required=True,
                        help='root of a MambaCD checkout')
    parser.add_argument('--variants', nargs='+', default=['tiny'], choices=sorted(VARIANTS))
    parser.add_argument('--size', type=int, nargs=2, default=(64, 96), metavar=('H', 'W'))
    parser.add_argument('--atol', type=float, default=1e-5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, help='write the results as JSON here')
    args = parser.parse_args(argv)
    register_all_modules(init_default_scope=False)
    official = import_mambacd(args.official_repo, 'changedetection.models.MambaBCD')
    results = [compare(official, v, tuple(args.size), args.seed) for v in args.variants]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + '\n')
    return 0 if all(r['max_abs_diff'] <= args.atol for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
