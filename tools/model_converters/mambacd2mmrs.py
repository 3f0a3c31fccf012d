"""Convert an official ChangeMamba MambaBCD checkpoint to an mmrs checkpoint.

Chen et al., "ChangeMamba: Remote Sensing Change Detection With Spatiotemporal State Space Model",
IEEE TGRS 2024; checkpoints of github.com/ChenHongruixuan/MambaCD (``train_MambaBCD.py`` saves
``STMambaBCD.state_dict()``: ``encoder.*``, ``decoder.*``, ``main_clf.*``). The mmrs model
(``configs/changemamba/mambabcd_*``) uses the same names below its own prefixes, so conversion is a
prefix rename (:data:`mmrs.models.decode_heads.MAMBABCD_KEY_MAP`)::

    encoder.*  -> backbone.*
    decoder.*  -> decode_head.*
    main_clf.* -> decode_head.conv_seg.*

Usage::

    python tools/model_converters/mambacd2mmrs.py MambaBCD_Tiny_LEVIRCD+_F1_0.8803.pth \\
        mambabcd_tiny_mmrs.pth

The result is ``{'state_dict': ...}`` and loads with ``strict=True`` into the config's model
(``load_from=`` in a config, or ``tools/test.py CONFIG CKPT``).
"""
import argparse
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from mmrs.models.decode_heads import MAMBABCD_KEY_MAP
from mmrs.utils import safe_torch_load

#: Wrapper entries a checkpoint may keep its weights under (checked in this order).
WRAPPER_KEYS = ('state_dict', 'model', 'model_state_dict')


def unwrap(ckpt: Mapping) -> Mapping[str, Tensor]:
    """The state dict inside a checkpoint (``state_dict``/``model`` entry or the dict itself)."""
    for key in WRAPPER_KEYS:
        if isinstance(ckpt.get(key), Mapping):
            return ckpt[key]
    return ckpt


def convert_mambabcd(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official ``STMambaBCD`` state dict to the mmrs MambaBCD names.

    A ``module.`` prefix (DataParallel) is stripped first.

    Raises:
        KeyError: On a key under none of the official prefixes (not a MambaBCD checkpoint).
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        for src, dst in MAMBABCD_KEY_MAP.items():
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                break
        else:
            raise KeyError(f'{key!r} is not an official MambaBCD key (expected prefixes '
                           f'{sorted(MAMBABCD_KEY_MAP)})')
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', type=Path, help='official MambaBCD checkpoint')
    parser.add_argument('dst', type=Path, help='output mmrs checkpoint')
    args = parser.parse_args()
    state = convert_mambabcd(unwrap(safe_torch_load(args.src, map_location='cpu')))
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': state}, args.dst)
    print(f'{len(state)} tensors -> {args.dst}')


if __name__ == '__main__':
    main()
