"""Export a fine-tuned CLIP-family runner checkpoint as a plain open_clip state dict.

    python tools/model_converters/clip_export.py CONFIG CKPT OUT [--overwrite]
        [--cfg-options key=value ...]

``CKPT`` is what ``tools/train.py CONFIG`` saved (an mmengine runner checkpoint: ``meta``,
``state_dict`` with the model's ``clip.`` keys, optimizer state ...). A model trained with
``model.tuning=dict(lora=...)`` (e.g. ``configs/clip/remoteclip_vit_b32_finetune_lora_rsitmd.py``)
has peft's key names in it (``...attn.q_proj.base_layer.weight``, ``...lora_A.default.weight``,
attention split into ``q_proj``/``k_proj``/``v_proj``), which neither open_clip nor the
families' loaders know. This tool

1. builds ``CONFIG``'s model with its ``tuning`` (``model.checkpoint`` is ignored: the runner
   checkpoint holds every weight), so its structure is the trained one;
2. loads ``CKPT`` into it **strictly** (weights only, through
   :func:`mmrs.utils.checkpoint.safe_torch_load`; a DDP ``module.`` prefix is stripped): a
   missing, unexpected or resized key is an error that lists the keys;
3. folds the LoRA adapters into their base layers if there are any
   (:func:`mmrs.models.clip.tuning.merge_lora`, which also restores ``nn.MultiheadAttention``);
4. writes the open_clip model's ``state_dict()`` (``visual.*``, ``transformer.*``,
   ``token_embedding.weight``, ..., ``logit_scale``; ``text.*`` for HF text towers) as a bare
   dict of CPU tensors, atomically (temporary file renamed into place); an existing ``OUT`` is
   refused unless ``--overwrite``.

``OUT`` is a family file like ``RemoteCLIP-ViT-B-32.pt``: ``CLIP(checkpoint=OUT)`` (any
family's ``checkpoint_layout`` that reads open_clip keys, or ``'auto'``), ``tools/test.py
<zero-shot or retrieval config> OUT`` and open_clip's own ``model.load_state_dict`` load it
strictly, without peft. Its embeddings equal the fine-tuned model's up to float rounding.
"""
import argparse
import os.path as osp
import re
import sys
from typing import Any

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

TOOL = 'tools/model_converters/clip_export.py'
#: Key fragments of peft's layers, which must not survive the export.
ADAPTER_MARKS = ('lora_', '.base_layer.')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the training config (path, mmrs::path or shipped name)')
    parser.add_argument('checkpoint', help='runner checkpoint saved by tools/train.py')
    parser.add_argument('out', help='output open_clip state dict (.pt / .pth)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing OUT')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def build_model(config: str, cfg_options: dict | None = None) -> Any:
    """The config's CLIP model with its tuning applied and no pretrained weights loaded.

    Raises:
        ValueError: The config has no model or does not build a :class:`~mmrs.models.clip.CLIP`.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmrs.registry import MODELS
    from mmrs.utils.config_path import resolve_config
    from mmrs.utils.setup_env import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(resolve_config(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not isinstance(cfg.get('model'), dict):
        raise ValueError(f'config {config!r} has no model dict')
    if str(cfg.model.get('type', '')).split('.')[-1] != 'CLIP':
        raise ValueError(f"config {config!r} builds {cfg.model.get('type')!r}; clip_export "
                         "exports CLIP models (model = dict(type='CLIP', ...)), e.g. the "
                         'configs/clip/*_finetune_*.py training configs')
    cfg.model.checkpoint = None  # every weight comes from the runner checkpoint
    init_default_scope(cfg.get('default_scope', 'mmrs'))
    return MODELS.build(cfg.model).eval()


def read_runner_state(path: str) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a runner checkpoint (or a bare state dict), weights only, with a
    DDP ``module.`` prefix removed.

    Raises:
        FileNotFoundError: No such file. ValueError: Not a state dict.
        UnsafeCheckpointError: The file needs full unpickling and the user did not opt in.
    """
    from mmrs.utils.checkpoint import safe_torch_load
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    obj = safe_torch_load(path, map_location='cpu')
    state = obj.get('state_dict', obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'checkpoint {path!r} is not an mmrs runner checkpoint (no '
                         "'state_dict' of tensors)")
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def load_strictly(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a readable error.

    Raises:
        CheckpointKeyMismatchError: Missing / unexpected / resized keys (listed), e.g. a LoRA
            checkpoint exported with the full fine-tuning config or the other way round.
    """
    from mmrs.utils.checkpoint import CheckpointKeyMismatchError, find_key_mismatches
    mismatch = find_key_mismatches(model.state_dict(), state, revise_keys=())
    if mismatch:
        lora_ckpt = any('lora_' in k for k in state)
        lora_model = any('lora_' in k for k in model.state_dict())
        hint = ''
        if lora_ckpt != lora_model:
            hint = (' The checkpoint has {} LoRA adapters and the model {}: export with the '
                    'config it was trained with (model.tuning).').format(
                        'its' if lora_ckpt else 'no', 'some' if lora_model else 'none')
        raise CheckpointKeyMismatchError(f'{name} does not fit the config\'s model:\n'
                                         f'{mismatch.describe()}\n{hint}'.rstrip())
    model.load_state_dict(state, strict=True)


def export_state_dict(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], int]:
    """Merge LoRA (in place) and return ``(open_clip state dict on the CPU, merged layers)``.

    Raises:
        RuntimeError: Adapter keys survived the merge (a layer the merge does not know).
    """
    from mmrs.models.clip.tuning import lora_layers, merge_lora
    merged = len(lora_layers(model))
    if merged:
        merge_lora(model)
    from mmrs.models.clip.tuning import LinearMultiheadAttention
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.clip.state_dict().items()}
    left = sorted(k for k in state if any(m in k for m in ADAPTER_MARKS))
    left += [n for n, m in model.clip.named_modules() if isinstance(m, LinearMultiheadAttention)]
    if left:
        raise RuntimeError(f'{len(left)} adapter key(s) left after merging LoRA, e.g. '
                           f'{left[:3]}; the export would not load into open_clip')
    return state, merged


def export(config: str, checkpoint: str, out: str, overwrite: bool = False,
           cfg_options: dict | None = None) -> dict[str, Any]:
    """Steps 1-4 of the module docstring; returns a summary (``keys``, ``lora_layers``,
    ``out``)."""
    from mmrs.geo.atomic import atomic_output, check_outputs
    check_outputs([out], overwrite)  # refuse before the slow part
    model = build_model(config, cfg_options)
    load_strictly(model, read_runner_state(checkpoint), f'checkpoint {checkpoint!r}')
    state, merged = export_state_dict(model)
    with atomic_output(out, overwrite=overwrite) as tmp:
        torch.save(state, tmp)
    return dict(out=out, keys=len(state), lora_layers=merged)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmrs.utils.checkpoint import CheckpointKeyMismatchError, UnsafeCheckpointError
    try:
        summary = export(args.config, args.checkpoint, args.out, args.overwrite,
                         args.cfg_options)
    except KeyboardInterrupt:
        print(f'{TOOL}: interrupted; no partial output was left', file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, OSError, ValueError, RuntimeError,
            CheckpointKeyMismatchError, UnsafeCheckpointError, ImportError) as error:
        print(f'{TOOL}: error: {error}', file=sys.stderr)
        return 2
    lora = (f", {summary['lora_layers']} LoRA layers merged" if summary['lora_layers']
            else ', no LoRA adapters')
    print(f"wrote {summary['out']}: open_clip state dict of {summary['keys']} tensors{lora}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
