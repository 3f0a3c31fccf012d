"""Which parameters of a CLIP model train: frozen towers, partial freezing and LoRA.

``apply_tuning(model, freeze=..., lora=...)`` works on any module that holds an open_clip
model (``open_clip.CLIP`` / ``CustomTextCLIP``, or an mmrs wrapper around one): it finds the
image tower (``visual``) and the text tower (``text``, or open_clip's unpacked
``transformer``/``token_embedding``/``positional_embedding``/``ln_final``/``text_projection``)
by name, so it does not depend on how the wrapper stores them.

Partial freezing, ``freeze=dict(image=..., text=..., logit_scale=...)`` (per tower):

- ``False``/``None``: train the tower; ``True``/``'all'``: freeze it (LiT-style locking);
- ``'except_last_N'``: freeze it except its last ``N`` blocks **and its head** (the modules
  after the blocks: ``ln_post``/``proj``/attention pools; ``ln_final``/``text_projection``;
  ``attnpool`` of ResNets; ``proj``/``pooler`` of HF text towers). This differs from open_clip's
  ``lock(unlocked_groups=N)``, where the projection alone is the last group;
- a list of part names relative to the tower (``['conv1', 'ln_pre', 'transformer.resblocks.0']``).

Blocks are ``transformer.resblocks`` (open_clip ViT and text transformers), ``layer1..4``
(ModifiedResNet), ``trunk.blocks`` (timm towers) and ``encoder.layer`` (HF text encoders).
BatchNorm layers whose parameters are all frozen become ``FrozenBatchNorm2d``
(open_clip's ``freeze_batch_norm_2d``) so their running statistics stop moving as well.

LoRA (Hu et al., ICLR 2022) is injected with ``peft`` (``LoraConfig`` +
``inject_adapter_in_model``), without a ``PeftModel`` wrapper so the mmengine model keeps its
API. Targets inside the selected blocks:

- ``'mlp'``: the MLP linears (open_clip ``mlp.c_fc``/``mlp.c_proj``; HF ``intermediate.dense``
  and the block's ``output.dense``);
- ``'attn'``: the query/key/value/output projections. open_clip's ``nn.MultiheadAttention``
  has no ``Linear`` to adapt (the packed ``in_proj_weight`` is a bare parameter, and
  ``out_proj`` is never *called*: ``F.multi_head_attention_forward`` reads its weight, so an
  adapter there would be silently ignored), so in the adapted blocks it is replaced by
  :class:`LinearMultiheadAttention`, the same computation with ``q_proj``/``k_proj``/
  ``v_proj``/``out_proj`` linears, which peft adapts like any other. HF attention linears
  (query/key/value/output dense) are adapted directly.

Why not peft's own ``MultiheadAttention`` LoRA layer: it merges and unmerges its adapters
around every forward and re-registers the base weights as *new* ``Parameter`` objects whenever
the module tree is walked (``named_parameters``, ``state_dict``), which breaks mmengine's
``init_weights`` bookkeeping (a ``KeyError`` at the start of ``runner.train()``) and anything
else that keys on parameter identity (FSDP's flat parameters). The tests check that every
injected adapter changes the output. :func:`merge_lora` folds the adapters in and restores
``nn.MultiheadAttention``, so an exported model has open_clip's own keys again.
"""
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

TOWERS = ('image', 'text')
#: Relative paths of the block list inside a tower, in the order tried.
_BLOCK_PATHS = ('transformer.resblocks', 'trunk.blocks', 'transformer.encoder.layer',
                'transformer.layer', 'encoder.layer')
_RESNET_STAGES = ('layer1', 'layer2', 'layer3', 'layer4')
#: First names of a tower's parts that come after its blocks.
_HEADS = {
    'image': ('ln_post', 'proj', 'attn_pool', 'attn_pool_contrastive', 'attnpool', 'head',
              'trunk.norm', 'trunk.fc_norm', 'trunk.head'),
    'text': ('ln_final', 'text_projection', 'proj', 'pooler', 'transformer.pooler'),
}
#: Parts of open_clip's ``CLIP`` text tower, unpacked as attributes of the model.
_CLIP_TEXT_PARTS = ('token_embedding', 'positional_embedding', 'cls_emb', 'transformer',
                    'ln_final', 'text_projection')
_EXCEPT_LAST = re.compile(r'except_last_(\d+)$')


class TuningError(ValueError):
    """A ``freeze``/``lora`` setting that cannot be applied to this model."""


@dataclass
class Tower:
    """One tower of a CLIP model, located by name inside the full model.

    Attributes:
        name: ``'image'`` or ``'text'``.
        root: Name prefix of the tower's parts in the full model, with a trailing dot, for a
            tower that is one module (``'clip.visual.'``); for open_clip's unpacked text tower the
            prefix of the CLIP model, and ``parts`` lists the members.
        parts: First-level names (relative to ``root``) that belong to the tower.
        module: The module whose ``get_submodule`` resolves paths relative to ``root``.
        blocks: Relative names of the tower's blocks, in order.
    """
    name: str
    root: str
    parts: tuple[str, ...]
    module: nn.Module
    blocks: list[str] = field(default_factory=list)

    def owns(self, relative: str) -> bool:
        return not self.parts or relative.split('.', 1)[0] in self.parts

    def relative(self, full_name: str) -> str | None:
        """The name relative to the tower, or None when ``full_name`` is not in it."""
        if not full_name.startswith(self.root):
            return None
        relative = full_name[len(self.root):]
        return relative if self.owns(relative) else None


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + '.')


def find_clip_core(model: nn.Module) -> tuple[str, nn.Module]:
    """The open_clip model inside ``model`` (a module with a ``visual`` tower) and its prefix.

    Raises:
        TuningError: There is no such module.
    """
    for name, module in model.named_modules():
        if isinstance(getattr(module, 'visual', None), nn.Module) and (
                isinstance(getattr(module, 'text', None), nn.Module)
                or isinstance(getattr(module, 'transformer', None), nn.Module)):
            return (name + '.' if name else ''), module
    raise TuningError(f'{type(model).__name__} holds no open_clip model (a module with a '
                      '`visual` image tower and a `text` or `transformer` text tower); '
                      'apply_tuning works on open_clip CLIP models')


def _blocks(module: nn.Module) -> list[str]:
    for path in _BLOCK_PATHS:
        try:
            blocks = module.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(blocks, (nn.ModuleList, nn.Sequential)) and len(blocks):
            return [f'{path}.{i}' for i in range(len(blocks))]
    if all(isinstance(getattr(module, s, None), nn.Module) for s in _RESNET_STAGES):
        return list(_RESNET_STAGES)
    return []


def find_towers(model: nn.Module) -> dict[str, Tower]:
    """The image and text towers of the open_clip model inside ``model``."""
    prefix, core = find_clip_core(model)
    towers = {'image': Tower('image', prefix + 'visual.', (), core.visual,
                             _blocks(core.visual))}
    if isinstance(getattr(core, 'text', None), nn.Module):
        towers['text'] = Tower('text', prefix + 'text.', (), core.text, _blocks(core.text))
    else:  # open_clip.CLIP unpacks the text tower into the model
        parts = tuple(p for p in _CLIP_TEXT_PARTS if getattr(core, p, None) is not None)
        towers['text'] = Tower('text', prefix, parts, core, _blocks(core))
    return towers


def _tower_params(model: nn.Module, tower: Tower) -> dict[str, nn.Parameter]:
    """``{relative name: parameter}`` of one tower."""
    params = {}
    for name, param in model.named_parameters():
        relative = tower.relative(name)
        if relative is not None:
            params[relative] = param
    return params


def _frozen_names(tower: Tower, names: Iterable[str], spec: Any) -> set[str]:
    """The relative parameter names of ``tower`` that ``spec`` freezes."""
    names = list(names)
    if spec is None or spec is False or spec == 'none':
        return set()
    if spec is True or spec == 'all':
        return set(names)
    if isinstance(spec, str):
        match = _EXCEPT_LAST.match(spec)
        if match is None:
            raise TuningError(f'freeze.{tower.name}={spec!r}: use False, "all", '
                              '"except_last_N" or a list of part names')
        keep = int(match.group(1))
        if keep > len(tower.blocks):
            raise TuningError(f'freeze.{tower.name}={spec!r}: the {tower.name} tower has only '
                              f'{len(tower.blocks)} blocks')
        if not tower.blocks:
            raise TuningError(f'freeze.{tower.name}={spec!r}: found no blocks in the '
                              f'{tower.name} tower (looked for {", ".join(_BLOCK_PATHS)})')
        trainable = tower.blocks[len(tower.blocks) - keep:] + list(_HEADS[tower.name])
        return {n for n in names if not any(_under(n, t) for t in trainable)}
    if isinstance(spec, Sequence):
        frozen = set()
        for part in spec:
            hits = {n for n in names if _under(n, str(part))}
            if not hits:
                tops = sorted({n.split('.', 1)[0] for n in names})
                raise TuningError(f'freeze.{tower.name}: no parameter is named {part!r} or '
                                  f'lies under it; the tower\'s parts are {tops}')
            frozen |= hits
        return frozen
    raise TuningError(f'freeze.{tower.name}={spec!r}: use False, "all", "except_last_N" or '
                      'a list of part names')


def _freeze_batch_norms(model: nn.Module) -> None:
    """Turn every BatchNorm2d with no trainable parameter into FrozenBatchNorm2d."""
    from open_clip.utils import freeze_batch_norm_2d
    match = {name: True for name, m in model.named_modules()
             if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm))
             and not any(p.requires_grad for p in m.parameters())}
    if match:
        freeze_batch_norm_2d(model, module_match=match)


class LinearMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention``'s computation with its projections as ``nn.Linear`` layers.

    Built from an existing module (same weights, same outputs up to float rounding) so that
    LoRA can adapt ``q_proj``/``k_proj``/``v_proj``/``out_proj``; supports what open_clip's
    blocks use: one embedding size for query/key/value, float or boolean ``attn_mask`` of shape
    ``(L, S)`` or ``(N * heads, L, S)``, ``key_padding_mask``, ``need_weights=False``.

    Raises:
        TuningError: The module uses features this class does not reproduce (separate
            key/value sizes, ``bias_k``/``bias_v``, ``add_zero_attn``).
    """

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise TuningError('LoRA on attention supports nn.MultiheadAttention with one '
                              'embedding size and without bias_k/bias_v/add_zero_attn')
        dim, bias = mha.embed_dim, mha.in_proj_bias is not None
        weights = mha.in_proj_weight.detach().chunk(3)
        biases = mha.in_proj_bias.detach().chunk(3) if bias else (None,) * 3
        for name, weight, b in zip(('q_proj', 'k_proj', 'v_proj'), weights, biases):
            layer = nn.Linear(dim, dim, bias=bias, device=weight.device, dtype=weight.dtype)
            layer.weight.data.copy_(weight)
            if bias:
                layer.bias.data.copy_(b)
            setattr(self, name, layer)
        self.out_proj = nn.Linear(dim, dim, bias=mha.out_proj.bias is not None,
                                  device=weights[0].device, dtype=weights[0].dtype)
        self.out_proj.load_state_dict(mha.out_proj.state_dict())
        self.embed_dim, self.num_heads = dim, mha.num_heads
        self.batch_first, self.dropout = mha.batch_first, mha.dropout

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = False,
                attn_mask: Tensor | None = None, **kwargs: Any) -> tuple[Tensor, None]:
        if need_weights:
            raise TuningError('LinearMultiheadAttention does not return attention weights '
                              '(need_weights=True)')
        if not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        n, length, _ = query.shape
        heads, head_dim = self.num_heads, self.embed_dim // self.num_heads

        def split(x: Tensor) -> Tensor:  # (N, L, E) -> (N, heads, L, head_dim)
            return x.reshape(n, -1, heads, head_dim).transpose(1, 2)

        q, k, v = split(self.q_proj(query)), split(self.k_proj(key)), split(self.v_proj(value))
        mask = None
        if attn_mask is not None:
            mask = _additive(attn_mask, q.dtype)
            if mask.ndim == 3:
                mask = mask.reshape(n, heads, length, -1)
        if key_padding_mask is not None:
            padding = _additive(key_padding_mask, q.dtype)[:, None, None, :]
            mask = padding if mask is None else mask + padding
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        out = self.out_proj(out.transpose(1, 2).reshape(n, length, self.embed_dim))
        return (out if self.batch_first else out.transpose(0, 1)), None

    def to_multihead_attention(self) -> nn.MultiheadAttention:
        """The equivalent ``nn.MultiheadAttention`` (for export with open_clip's keys)."""
        weight = self.q_proj.weight
        mha = nn.MultiheadAttention(self.embed_dim, self.num_heads, dropout=self.dropout,
                                    bias=self.q_proj.bias is not None,
                                    batch_first=self.batch_first, device=weight.device,
                                    dtype=weight.dtype)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([self.q_proj.weight, self.k_proj.weight,
                                                self.v_proj.weight]))
            if self.q_proj.bias is not None:
                mha.in_proj_bias.copy_(torch.cat([self.q_proj.bias, self.k_proj.bias,
                                                  self.v_proj.bias]))
        mha.out_proj.load_state_dict(self.out_proj.state_dict())
        return mha


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean mask (True = masked out, nn.MultiheadAttention's convention) as -inf/0."""
    if mask.dtype == torch.bool:
        return torch.zeros_like(mask, dtype=dtype).masked_fill_(mask, float('-inf'))
    return mask.to(dtype)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition('.')
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _lora_targets(tower: Tower, targets: Sequence[str], last_blocks: int | None) -> list[str]:
    """Full module names to adapt in ``tower``; for ``'attn'`` first replaces the blocks'
    ``nn.MultiheadAttention`` by :class:`LinearMultiheadAttention`."""
    unknown = set(targets) - {'attn', 'mlp'}
    if unknown:
        raise TuningError(f'lora.targets: {sorted(unknown)} not among "attn", "mlp"')
    if not tower.blocks:
        raise TuningError(f'lora: found no transformer blocks in the {tower.name} tower')
    blocks = tower.blocks if last_blocks is None else tower.blocks[-last_blocks:]
    names = []
    for block in blocks:
        module = tower.module.get_submodule(block)
        mha = [n for n, m in module.named_modules() if isinstance(m, nn.MultiheadAttention)]
        if 'attn' in targets:
            for sub in mha:
                _replace(module, sub, LinearMultiheadAttention(module.get_submodule(sub)))
            mha = []
        for sub, m in module.named_modules():
            path = sub.split('.')
            in_attn = any(p in ('attn', 'attention', 'self_attn') for p in path)
            if isinstance(m, nn.Linear) and not any(_under(sub, a) for a in mha):
                if ('attn' in targets and in_attn) or ('mlp' in targets and not in_attn):
                    names.append(f'{block}.{sub}')
    return [tower.root + n for n in names]


def _inject_lora(model: nn.Module, towers: Mapping[str, Tower], cfg: Mapping[str, Any]
                 ) -> list[str]:
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as error:  # optional dependency
        raise ImportError('LoRA fine-tuning needs peft: pip install peft') from error
    cfg = dict(cfg)
    options = dict(r=cfg.pop('r', 8), lora_alpha=cfg.pop('alpha', 16),
                   lora_dropout=cfg.pop('dropout', 0.0), bias='none')
    chosen = tuple(cfg.pop('towers', TOWERS))
    targets = tuple(cfg.pop('targets', ('attn', 'mlp')))
    last_blocks = cfg.pop('last_blocks', None)
    cfg.pop('trainable', None)
    if cfg:
        raise TuningError(f'lora: unknown keys {sorted(cfg)}; use r, alpha, dropout, towers, '
                          'targets, last_blocks, trainable')
    if set(chosen) - set(TOWERS):
        raise TuningError(f'lora.towers: {chosen} must be among {TOWERS}')
    names = [n for t in chosen for n in _lora_targets(towers[t], targets, last_blocks)]
    if not names:
        raise TuningError(f'lora: nothing to adapt for targets {targets} in {chosen}')
    # exact names: peft matches a key equal to a target or ending with "." + target
    inject_adapter_in_model(LoraConfig(target_modules=names, **options), model)
    return names


def lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The peft LoRA layers inside ``model`` (``(name, layer)``)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return []
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base layer and put the plain layers back (in place).

    Also turns every :class:`LinearMultiheadAttention` back into ``nn.MultiheadAttention``:
    the merged model has open_clip's own structure and state-dict keys again (loadable without
    peft) and gives the same outputs as the adapted one.
    """
    for name, layer in lora_layers(model):
        layer.merge()
        _replace(model, name, layer.get_base_layer())
    for name, module in list(model.named_modules()):
        if isinstance(module, LinearMultiheadAttention):
            _replace(model, name, module.to_multihead_attention())
    return model


def count_parameters(model: nn.Module) -> dict[str, dict[str, int]]:
    """``{'image'|'text'|'other'|'total': {'total': n, 'trainable': n}}`` (element counts)."""
    towers = find_towers(model)
    counts = {k: dict(total=0, trainable=0) for k in (*TOWERS, 'other', 'total')}
    for name, param in model.named_parameters():
        group = next((t for t, tower in towers.items()
                      if tower.relative(name) is not None), 'other')
        for key in (group, 'total'):
            counts[key]['total'] += param.numel()
            counts[key]['trainable'] += param.numel() if param.requires_grad else 0
    return counts


def apply_tuning(model: nn.Module, freeze: Mapping[str, Any] | None = None,
                 lora: Mapping[str, Any] | None = None) -> dict[str, dict[str, int]]:
    """Freeze parts of a CLIP model or add LoRA adapters, and log what trains.

    Call it after the pretrained weights are loaded and before the optimiser is built.

    Args:
        model: A module holding an open_clip model (see the module docstring).
        freeze: ``dict(image=SPEC, text=SPEC, logit_scale=bool)``, SPEC one of ``False``,
            ``'all'``, ``'except_last_N'`` or a list of part names of that tower.
        lora: ``dict(r=8, alpha=16, dropout=0.0, towers=('image', 'text'),
            targets=('attn', 'mlp'), last_blocks=None, trainable=('logit_scale',))``: adapters
            in the (last ``last_blocks``) blocks of the chosen towers; everything else is frozen
            except the parameters named (or lying under the names) in ``trainable``.

    Returns:
        The parameter counts of :func:`count_parameters` after tuning.

    Raises:
        TuningError: A setting names a tower, block or part the model does not have, or both
            ``freeze`` and ``lora`` are given (``lora.trainable`` says what else trains).
        ImportError: ``lora`` is given and peft is not installed.
    """
    if freeze and lora:
        raise TuningError('give freeze or lora, not both: with LoRA everything but the '
                          'adapters is frozen; list other parameters in lora.trainable')
    towers = find_towers(model)
    if freeze:
        freeze = dict(freeze)
        unknown = set(freeze) - {*TOWERS, 'logit_scale'}
        if unknown:
            raise TuningError(f'freeze: unknown keys {sorted(unknown)}; use image, text, '
                              'logit_scale')
        for name, tower in towers.items():
            params = _tower_params(model, tower)
            for relative in _frozen_names(tower, params, freeze.get(name)):
                params[relative].requires_grad_(False)
        if freeze.get('logit_scale'):
            for name, param in model.named_parameters():
                if name.rsplit('.', 1)[-1] in ('logit_scale', 'logit_bias'):
                    param.requires_grad_(False)
        _freeze_batch_norms(model)
    adapted: list[str] = []
    if lora:
        adapted = _inject_lora(model, towers, lora)
        keep = tuple(lora.get('trainable', ('logit_scale',)))
        for name, param in model.named_parameters():
            param.requires_grad_('lora_' in name or any(
                _under(name, k) or name.endswith('.' + k) for k in keep))
        _freeze_batch_norms(model)
    counts = count_parameters(model)
    lines = [f'{k}: {v["trainable"]:,} of {v["total"]:,} parameters trainable'
             for k, v in counts.items() if v['total']]
    if adapted:
        lines.append(f'LoRA adapters in {len(adapted)} layers')
    print_log('CLIP tuning: ' + '; '.join(lines), logger='current')
    return counts
