"""Convert official ChangeMamba / VMamba checkpoints to mmrs checkpoints.

Chen et al., "ChangeMamba: Remote Sensing Change Detection With Spatiotemporal State Space Model",
IEEE TGRS 2024; checkpoints of github.com/ChenHongruixuan/MambaCD. The training scripts save the
bare ``state_dict()`` of the official model; the mmrs models (``configs/changemamba/``) use the
same names below their own prefixes, so conversion is a prefix rename:

=========  ======================================================================================
model      official prefix -> mmrs prefix
=========  ======================================================================================
mambabcd   ``encoder.`` -> ``backbone.``, ``decoder.`` -> ``decode_head.``, ``main_clf.`` ->
           ``decode_head.conv_seg.`` (:data:`mmrs.models.decode_heads.MAMBABCD_KEY_MAP`)
mambascd   ``encoder.``, ``decoder_bcd.`` -> ``decode_head.``, ``main_clf_cd.`` ->
           ``decode_head.conv_seg.``, ``decoder_T1.`` / ``decoder_T2.`` ->
           ``semantic_head_from.`` / ``semantic_head_to.``, ``aux_clf.`` -> *both*
           ``semantic_head_{from,to}.conv_seg.`` (one shared module;
           :data:`mmrs.models.change_detectors.MAMBASCD_KEY_MAP`)
mambabda   ``encoder.``, ``decoder_damage.`` -> ``decode_head.``, ``main_clf.`` ->
           ``decode_head.conv_seg.``, ``decoder_building.`` -> ``localization_head.``,
           ``aux_clf.`` -> ``localization_head.conv_seg.`` (``MAMBABDA_KEY_MAP``)
vmamba     the ImageNet classification checkpoints of the VMamba encoder (``vssm_{tiny,small,
           base}_*_ckpt_epoch_*.pth``, weights under ``model``): the classifier (``classifier.*``
           and the legacy ``norm.*`` / ``head.*``) is dropped, the legacy names the official
           ``VSSM._load_from_state_dict`` renames are renamed the same way, and the encoder's
           ``outnorm{i}`` (absent from the checkpoint, freshly initialised by the official
           ``Backbone_VSSM``) are added as identity LayerNorms. The result loads with
           ``strict=True`` into ``VMamba`` (``backbone.init_cfg=dict(type='Pretrained',
           checkpoint=...)``).
=========  ======================================================================================

Usage::

    python tools/model_converters/mambacd2mmrs.py MambaBCD_Tiny_LEVIRCD+_F1_0.8803.pth out.pth
    python tools/model_converters/mambacd2mmrs.py --model vmamba \\
        vssm_tiny_0230_ckpt_epoch_262.pth vmamba_tiny_imagenet.pth

``--model auto`` (default) recognises the model from the keys. The result is
``{'state_dict': ...}`` and loads with ``strict=True`` into the config's model (``load_from=``,
``tools/test.py CONFIG CKPT``) or, for ``vmamba``, into the backbone.
"""
import argparse
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from mmrs.models.change_detectors import MAMBABDA_KEY_MAP, MAMBASCD_KEY_MAP
from mmrs.models.decode_heads import MAMBABCD_KEY_MAP
from mmrs.utils import safe_torch_load

#: Wrapper entries a checkpoint may keep its weights under (checked in this order).
WRAPPER_KEYS = ('state_dict', 'model', 'model_state_dict')

#: Key maps of the full models, by ``--model`` name.
KEY_MAPS: dict[str, Mapping[str, str | tuple[str, ...]]] = {
    'mambabcd': MAMBABCD_KEY_MAP,
    'mambascd': MAMBASCD_KEY_MAP,
    'mambabda': MAMBABDA_KEY_MAP,
}
MODELS = (*KEY_MAPS, 'vmamba')

#: Legacy VMamba names renamed by the official ``VSSM._load_from_state_dict`` (pattern ->
#: replacement, applied to the start of a key).
VMAMBA_LEGACY_NAMES = ((r'patch_embed\.proj\.', 'patch_embed.0.'),
                       (r'patch_embed\.norm\.', 'patch_embed.2.'),
                       (r'(layers\.\d+\.blocks\.\d+)\.ln_1\.', r'\1.norm.'),
                       (r'(layers\.\d+\.blocks\.\d+)\.self_attention\.', r'\1.op.'))
#: Top-level prefixes of the ImageNet classifier.
VMAMBA_HEAD_PREFIXES = ('classifier.', 'norm.', 'head.')


def unwrap(ckpt: Mapping) -> Mapping[str, Tensor]:
    """The state dict inside a checkpoint (``state_dict``/``model`` entry or the dict itself)."""
    for key in WRAPPER_KEYS:
        if isinstance(ckpt.get(key), Mapping):
            return ckpt[key]
    return ckpt


def _strip_module(key: str) -> str:
    return key[len('module.'):] if key.startswith('module.') else key


def rename(state_dict: Mapping[str, Tensor], key_map: Mapping[str, str | tuple[str, ...]],
           model: str = 'ChangeMamba') -> dict[str, Tensor]:
    """Rename official keys by prefix; a prefix with several targets is copied to each.

    A ``module.`` prefix (DataParallel) is stripped first.

    Raises:
        KeyError: On a key under none of the official prefixes (not a ``model`` checkpoint).
    """
    out = {}
    for key, value in state_dict.items():
        key = _strip_module(key)
        for src, dst in key_map.items():
            if key.startswith(src):
                for prefix in (dst, ) if isinstance(dst, str) else dst:
                    out[prefix + key[len(src):]] = value
                break
        else:
            raise KeyError(f'{key!r} is not an official {model} key (expected prefixes '
                           f'{sorted(key_map)})')
    return out


def convert_mambabcd(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official ``STMambaBCD`` state dict to the mmrs MambaBCD names."""
    return rename(state_dict, MAMBABCD_KEY_MAP, 'MambaBCD')


def convert_mambascd(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official ``STMambaSCD`` state dict to the mmrs MambaSCD names."""
    return rename(state_dict, MAMBASCD_KEY_MAP, 'MambaSCD')


def convert_mambabda(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official ``STMambaBDA`` state dict to the mmrs MambaBDA names."""
    return rename(state_dict, MAMBABDA_KEY_MAP, 'MambaBDA')


def convert_vmamba_imagenet(state_dict: Mapping[str, Tensor],
                            out_indices: Sequence[int] = (0, 1, 2, 3)) -> dict[str, Tensor]:
    """An official VMamba ImageNet (``VSSM``) state dict as an mmrs ``VMamba`` state dict.

    Args:
        state_dict: The checkpoint's ``model`` entry.
        out_indices: Stages whose ``outnorm{i}`` are added (identity LayerNorm, the state the
            official ``Backbone_VSSM`` gives them).

    Raises:
        KeyError: If a key is not a VMamba encoder or classifier key (e.g. a MambaBCD
            checkpoint: use ``--model mambabcd``), or a stage in ``out_indices`` is missing.
    """
    out = {}
    for key, value in state_dict.items():
        key = _strip_module(key)
        if key.startswith(VMAMBA_HEAD_PREFIXES):
            continue
        if not key.startswith(('patch_embed.', 'layers.')):
            raise KeyError(f'{key!r} is not a VMamba ImageNet key (expected patch_embed.*, '
                           f'layers.*, classifier.*)')
        for pattern, replacement in VMAMBA_LEGACY_NAMES:
            key = re.sub(f'^{pattern}', replacement, key)
        out[key] = value
    for i in out_indices:
        norm = f'layers.{i}.blocks.0.norm.weight'
        if norm not in out:
            raise KeyError(f'no stage {i} in the checkpoint ({norm} is missing); pass the '
                           'out_indices of the backbone')
        ref = out[norm]
        out[f'outnorm{i}.weight'] = torch.ones_like(ref)
        out[f'outnorm{i}.bias'] = torch.zeros_like(ref)
    return out


def detect_model(state_dict: Mapping[str, Tensor]) -> str:
    """The ``--model`` name of an official state dict, recognised by its prefixes.

    Raises:
        ValueError: If the keys match no known model.
    """
    keys = [_strip_module(k) for k in state_dict]
    if any(k.startswith('decoder_T1.') for k in keys):
        return 'mambascd'
    if any(k.startswith('decoder_damage.') for k in keys):
        return 'mambabda'
    if any(k.startswith('decoder.') for k in keys):
        return 'mambabcd'
    if any(k.startswith('patch_embed.') for k in keys):
        return 'vmamba'
    raise ValueError(f'not a ChangeMamba or VMamba checkpoint: keys start with '
                     f'{sorted({k.split(".")[0] for k in keys})[:8]}')


CONVERTERS = {
    'mambabcd': convert_mambabcd,
    'mambascd': convert_mambascd,
    'mambabda': convert_mambabda,
    'vmamba': convert_vmamba_imagenet,
}


def convert(state_dict: Mapping[str, Tensor], model: str = 'auto') -> dict[str, Tensor]:
    """Convert with the converter of ``model`` (``'auto'``: :func:`detect_model`)."""
    if model == 'auto':
        model = detect_model(state_dict)
    if model not in CONVERTERS:
        raise ValueError(f'model must be "auto" or one of {MODELS}, got {model!r}')
    return CONVERTERS[model](state_dict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', type=Path, help='official checkpoint')
    parser.add_argument('dst', type=Path, help='output mmrs checkpoint')
    parser.add_argument('--model', default='auto', choices=('auto', *MODELS),
                        help='official model of the checkpoint (default: from its keys)')
    args = parser.parse_args()
    if not args.src.is_file():
        parser.error(f'{args.src}: no such file')
    try:
        state = convert(unwrap(safe_torch_load(args.src, map_location='cpu')), args.model)
    except (KeyError, ValueError) as exc:
        raise SystemExit(f'{args.src}: {exc}') from exc
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': state}, args.dst)
    print(f'{len(state)} tensors -> {args.dst}')


if __name__ == '__main__':
    main()
