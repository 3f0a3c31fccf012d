"""Convert official ChangeViT checkpoints (or its DeiT / DINOv2 ViT init) to mmrs checkpoints.

Zhu et al., "ChangeViT: Unleashing Plain Vision Transformers for Change Detection",
arXiv:2406.12847, github.com/zhuduowang/ChangeViT. Its ``main.py`` saves
``Trainer.state_dict()`` (``best_model.pth``; ``checkpoint.pth.tar`` wraps it in
``state_dict``): ``encoder.vit.*``, ``encoder.resnet.*``, ``decoder.*``. The mmrs model
(``configs/changevit/``) keeps the official names below its own prefixes
(:data:`KEY_MAP`)::

    encoder.vit.*                 -> backbone.vit.*
    encoder.resnet.*              -> backbone.resnet.*
    decoder.structure_enhance.*   -> backbone.injector.*
    decoder.mlp.{i}.*             -> decode_head.diff.{i}.*
    decoder.up_c{5,4,3}.*         -> decode_head.up_c{5,4,3}.*
    decoder.classfier.0.*         -> decode_head.up_cls.*
    decoder.classfier.1.*         -> decode_head.conv_seg.*

and drops what the official model builds but never runs (:data:`UNUSED_PREFIXES`: ResNet
``layer4`` and ``fc``, the ViT's ``mask_token``). The result ``{'state_dict': ...}`` loads
with ``strict=True`` into the config's model (``load_from=``, or ``tools/test.py CONFIG
CKPT``).

``--kind vit`` (or ``auto`` on a checkpoint with ``blocks.*`` keys) converts the ViT weights
the official code initialises its encoder with (DeiT-T ``deit_tiny_patch16_224-a1311bcf.pth``
for ChangeViT-T, DINOv2 ``dinov2_vits14_pretrain.pth`` for -S) into a state dict for
``model.backbone.vit.init_cfg=dict(type='Pretrained', checkpoint=...)``: as the official, the
position embedding and the patch-projection weight are dropped (other grid and patch size:
they start from the random init), as are the class / mask tokens, the classifier and
DINOv2's LayerScale gammas (ChangeViT's blocks have none). ``DINOv2ViT`` applies the same
filter to a raw DeiT / DINOv2 file, so this step is optional.

Usage::

    python tools/model_converters/changevit2mmrs.py best_model.pth changevit_s_mmrs.pth
    python tools/model_converters/changevit2mmrs.py dinov2_vits14_pretrain.pth vit_s.pth
"""
import argparse
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from mmrs.models.backbones.vit_dinov2 import vit_pretrain_state_dict
from mmrs.utils import safe_torch_load

#: Official key prefix -> mmrs key prefix.
KEY_MAP: dict[str, str] = {
    'encoder.vit.': 'backbone.vit.',
    'encoder.resnet.': 'backbone.resnet.',
    'decoder.structure_enhance.': 'backbone.injector.',
    'decoder.mlp.': 'decode_head.diff.',
    'decoder.up_c5.': 'decode_head.up_c5.',
    'decoder.up_c4.': 'decode_head.up_c4.',
    'decoder.up_c3.': 'decode_head.up_c3.',
    'decoder.classfier.0.': 'decode_head.up_cls.',
    'decoder.classfier.1.': 'decode_head.conv_seg.',
}
#: Official entries built but unused in forward; not part of the mmrs model.
UNUSED_PREFIXES = ('encoder.vit.mask_token', 'encoder.resnet.layer4.', 'encoder.resnet.fc.')
#: Wrapper entries a checkpoint may keep its weights under (checked in this order).
WRAPPER_KEYS = ('state_dict', 'model', 'model_state_dict')


def unwrap(ckpt: Mapping) -> dict[str, Tensor]:
    """The state dict inside a checkpoint, with a DataParallel ``module.`` prefix stripped."""
    for key in WRAPPER_KEYS:
        if isinstance(ckpt.get(key), Mapping):
            ckpt = ckpt[key]
            break
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in ckpt.items()}


def convert_changevit(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official ChangeViT ``Trainer`` state dict to the mmrs names.

    Raises:
        KeyError: On a key under none of the official prefixes (not a ChangeViT checkpoint).
    """
    out = {}
    for key, value in unwrap(state_dict).items():
        if key.startswith(UNUSED_PREFIXES):
            continue
        for src, dst in KEY_MAP.items():
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                break
        else:
            raise KeyError(f'{key!r} is not an official ChangeViT key (expected prefixes '
                           f'{sorted(KEY_MAP)})')
    return out


def detect_kind(state_dict: Mapping[str, Tensor]) -> str:
    """``'changevit'`` (a trained model) or ``'vit'`` (a DeiT / DINOv2 encoder).

    Raises:
        ValueError: If the keys fit neither.
    """
    keys = list(unwrap(state_dict))
    if any(k.startswith(('encoder.', 'decoder.')) for k in keys):
        return 'changevit'
    if any(k.startswith('blocks.') for k in keys):
        return 'vit'
    raise ValueError(f'neither a ChangeViT (encoder.*/decoder.*) nor a ViT (blocks.*) '
                     f'checkpoint; first keys: {keys[:8]}')


def convert_file(src: Path, dst: Path, kind: str = 'auto') -> dict[str, Tensor]:
    """Load ``src`` with mmrs' safe loader, convert, save ``{'state_dict': ...}`` to ``dst``.

    Raises:
        ValueError: If ``src`` is not a checkpoint dict or ``kind`` does not fit it (the
            message names the file).
    """
    ckpt = safe_torch_load(src, map_location='cpu')
    if not isinstance(ckpt, Mapping):
        raise ValueError(f'{src}: expected a checkpoint dict, got {type(ckpt).__name__}')
    try:
        kind = detect_kind(ckpt) if kind == 'auto' else kind
        state = convert_changevit(ckpt) if kind == 'changevit' else vit_pretrain_state_dict(
            unwrap(ckpt))
    except (KeyError, ValueError) as error:
        raise ValueError(f'{src}: {error}') from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': state}, dst)
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', type=Path, help='official ChangeViT, DeiT or DINOv2 checkpoint')
    parser.add_argument('dst', type=Path, help='output mmrs checkpoint')
    parser.add_argument('--kind', choices=('auto', 'changevit', 'vit'), default='auto',
                        help='what src is (default: from its keys)')
    args = parser.parse_args()
    state = convert_file(args.src, args.dst, args.kind)
    print(f'{len(state)} tensors -> {args.dst}')


if __name__ == '__main__':
    main()
