"""Output parity of mmrs' ChangeViT configs with the official ChangeViT ``Trainer`` model.

Point it at a checkout of https://github.com/zhuduowang/ChangeViT::

    python tools/model_converters/parity/changevit.py --official-repo /path/to/ChangeViT \\
        --variants tiny small --out benchmarks/results/changevit_parity.json

The official model is built on CPU from that directory (imported at run time, nothing of it is
in mmrs). Its constructor loads DeiT / DINOv2 and torchvision ResNet-18 files; those loads are
answered in-process with empty state dicts (xFormers is not needed: without it the official
attention falls back to plain PyTorch). Every parameter and BatchNorm statistic is then
randomised, the state dict is saved, converted by ``tools/model_converters/changevit2mmrs.py``
(through mmrs' safe loader) and loaded with ``strict=True`` into the model of
``configs/changevit/changevit_<variant>_256x256_80k_levircd.py``. Both see the same 256x256
pair (the official code hard-codes a 16x16 token grid) in fp32; the official *pre-sigmoid*
output (its ``classfier``, captured by a hook) is compared with ``model.predict(torch.stack(
[t1, t2], 1), None)[0].seg_logits``. Exit status 1 when a difference exceeds ``--atol``.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[3]
for path in (REPO_ROOT, REPO_ROOT / 'tools' / 'model_converters'):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from changevit2mmrs import convert_file  # noqa: E402
from mmengine.config import Config  # noqa: E402

from mmrs.registry import MODELS  # noqa: E402
from mmrs.utils import register_all_modules, safe_torch_load  # noqa: E402


@contextmanager
def no_pretrained_downloads():
    """Answer the official constructor's checkpoint loads with empty state dicts."""
    import torch.utils.model_zoo as model_zoo
    real_load, real_url = torch.load, model_zoo.load_url

    def fake_load(path, *args, **kwargs):
        # the official Encoder deletes these two keys before a non-strict load
        state = {'pos_embed': None, 'patch_embed.proj.weight': None}
        return {'model': state} if 'deit' in str(path) else state

    torch.load, model_zoo.load_url = fake_load, lambda *a, **k: {}
    try:
        yield
    finally:
        torch.load, model_zoo.load_url = real_load, real_url


def import_trainer(repo: Path):
    """The official ``model.trainer.Trainer`` class from a ChangeViT checkout."""
    if not (repo / 'model' / 'trainer.py').is_file():
        raise FileNotFoundError(f'{repo} is not a ChangeViT checkout (no model/trainer.py)')
    sys.path.insert(0, str(repo))
    from model.trainer import Trainer
    return Trainer


def git_commit(repo: Path) -> str | None:
    """The checked-out commit of ``repo``, or ``None`` when it is not a git checkout."""
    try:
        return subprocess.run(['git', '-C', str(repo), 'rev-parse', 'HEAD'], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def randomise_(model: torch.nn.Module, seed: int) -> None:
    """Random weights of roughly unit activation scale; nothing zero or one.

    Weights ``N(0, 1 / fan_in)``, biases and position embeddings ``N(0, 0.02^2)``,
    norm scales ``1 + N(0, 0.1^2)``, norm shifts ``N(0, 0.1^2)``, BatchNorm running mean
    ``N(0, 0.1^2)`` and variance ``U(0.5, 1.5)``.
    """
    gen = torch.Generator().manual_seed(seed)
    norms = (torch.nn.LayerNorm, torch.nn.BatchNorm2d)
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if isinstance(module, norms):
                    base = 1.0 if name == 'weight' else 0.0
                    param.copy_(base + 0.1 * torch.randn(param.shape, generator=gen))
                elif param.ndim >= 2 and name == 'weight':
                    fan_in = param[0].numel() if not isinstance(
                        module, torch.nn.ConvTranspose2d) else param.shape[0] * param[0, 0].numel()
                    param.copy_(torch.randn(param.shape, generator=gen) / fan_in**0.5)
                else:
                    param.copy_(0.02 * torch.randn(param.shape, generator=gen))
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape,
                                                            generator=gen))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen)
                                         + 0.5)


def compare(trainer_cls, variant: str, batch: int, seed: int, workdir: Path) -> dict:
    """Max abs difference of the pre-sigmoid logits of one variant."""
    with no_pretrained_downloads():
        theirs = trainer_cls(variant).eval()
    randomise_(theirs, seed)
    captured = {}
    theirs.decoder.classfier.register_forward_hook(
        lambda module, args, out: captured.__setitem__('logits', out))

    src, dst = workdir / f'official_{variant}.pth', workdir / f'mmrs_{variant}.pth'
    torch.save(theirs.state_dict(), src)
    convert_file(src, dst)
    cfg = Config.fromfile(
        str(REPO_ROOT / f'configs/changevit/changevit_{variant}_256x256_80k_levircd.py'))
    ours = MODELS.build(cfg.model).eval()
    ours.load_state_dict(safe_torch_load(dst, map_location='cpu')['state_dict'], strict=True)

    gen = torch.Generator().manual_seed(seed + 1)
    t1, t2 = (torch.randn(batch, 3, 256, 256, generator=gen) for _ in range(2))
    with torch.no_grad():
        prob = theirs(t1, t2)
        ref = captured['logits']
        assert torch.allclose(ref.sigmoid(), prob), 'hook did not capture the classifier output'
        out = ours.predict(torch.stack([t1, t2], 1), None)
    mine = torch.stack([sample.seg_logits.data for sample in out])
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    return dict(
        max_abs_diff=float((mine - ref).abs().max()),
        logit_abs_max=float(ref.abs().max()),
        logit_std=float(ref.std()),
        output_shape=list(mine.shape),
        params_mmrs=n_ours,
        params_official=n_theirs,
        params_official_unused=n_theirs - n_ours)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', type=Path, required=True,
                        help='root of a ChangeViT checkout')
    parser.add_argument('--variants', nargs='+', default=['tiny', 'small'],
                        choices=['tiny', 'small'])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--atol', type=float, default=2e-6)
    parser.add_argument('--out', type=Path, default=None, help='JSON file for the results')
    parser.add_argument('--official-commit', default=None,
                        help='commit of the official code, recorded in the results (default: '
                        'asked from git when --official-repo is a checkout)')
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    register_all_modules()
    trainer_cls = import_trainer(args.official_repo.resolve())
    results = dict(command=' '.join(['python', 'tools/model_converters/parity/changevit.py',
                                     *(argv if argv is not None else sys.argv[1:])]),
                   official_commit=args.official_commit or git_commit(args.official_repo),
                   atol=args.atol, input='2 dates x (batch, 3, 256, 256), fp32, CPU',
                   variants={})
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            results['variants'][variant] = compare(trainer_cls, variant, args.batch,
                                                   args.seed, Path(tmp))
    results['passed'] = all(r['max_abs_diff'] <= args.atol
                            for r in results['variants'].values())
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + '\n')
    return 0 if results['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
