"""The VMamba backbone with ChangeMamba's Tiny/Small/Base settings.

Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024 (arXiv:2401.10166), as the encoder of
Chen et al., "ChangeMamba: Remote Sensing Change Detection With Spatiotemporal State Space Model",
IEEE TGRS 2024. The arch settings are those of ChangeMamba's
``changedetection/configs/vssm1/vssm_{tiny_224_0229flex,small_224,base_224}.yaml`` (its
``config.py`` supplies the defaults they leave out: ``NORM_LAYER='ln'``, ``PATCH_SIZE=4``,
``SSM_ACT_LAYER='silu'``, ``MLP_ACT_LAYER='gelu'``, ``PATCH_NORM=True``, ``SSM_INIT='v0'``,
``GMLP=False``); the outputs are those of its ``Backbone_VSSM`` wrapper: the stage outputs
*before* downsampling, each through its own norm ``outnorm{i}``, returned ``(B, C_i, H_i, W_i)``.

State-dict keys equal the official ``Backbone_VSSM`` keys one for one (``patch_embed.*``,
``layers.{i}.blocks.{j}.*``, ``layers.{i}.downsample.*``, ``outnorm{i}.*``), so an official
encoder checkpoint loads after stripping its wrapper prefix (``encoder.`` in MambaBCD, the
``model`` entry and the ``classifier.*`` head in the VMamba ImageNet checkpoints).
"""
import copy
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner import CheckpointLoader
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import OptMultiConfig
from .blocks import VSSBlock, VSSStage, make_downsample, make_patch_embed_v2
from .layers import NORM_LAYOUTS, build_norm

#: Settings shared by ChangeMamba's three vssm1 configs (and the official defaults they rely on).
_COMMON = dict(
    ssm_d_state=1, ssm_ratio=2.0, ssm_dt_rank='auto', ssm_act_layer='silu', ssm_conv=3,
    ssm_conv_bias=False, ssm_drop_rate=0.0, ssm_init='v0', forward_type='v3noz', mlp_ratio=4.0,
    mlp_act_layer='gelu', mlp_drop_rate=0.0, gmlp=False, patch_size=4, patch_norm=True,
    patchembed_version='v2', downsample_version='v3', norm_layer='ln')

#: ``arch`` presets: ChangeMamba's vssm1 Tiny (``vssm_tiny_224_0229flex``), Small and Base.
ARCH_SETTINGS: dict[str, dict] = {
    'tiny': dict(_COMMON, depths=(2, 2, 4, 2), dims=96, drop_path_rate=0.2),
    'small': dict(_COMMON, depths=(2, 2, 15, 2), dims=96, drop_path_rate=0.3),
    'base': dict(_COMMON, depths=(2, 2, 15, 2), dims=128, drop_path_rate=0.6),
}

#: Key of the stem's first conv weight (the only tensor that depends on the input bands).
STEM_KEY = 'patch_embed.0.weight'


def inflate_rgb_stem(weight: Tensor | Mapping[str, Tensor], in_channels: int,
                     mode: str = 'mean') -> Tensor | dict[str, Tensor]:
    """Adapt a pretrained stem conv from its ``S`` input bands (3 for RGB) to ``in_channels``.

    The new weight of band ``c`` is a source band's (or the bands' mean) weight scaled by ``S / N``
    (``N = in_channels``), so the summed response keeps its magnitude:

    * ``mode='mean'``: ``w'[:, c] = mean_s(w[:, s]) * S / N``. A single-band (grey) image ``g``
      replicated into all ``N`` bands gives exactly the response the RGB stem gives to ``g``
      replicated into ``S`` bands.
    * ``mode='cycle'``: ``w'[:, c] = w[:, c % S] * S / N``. When ``S`` divides ``N``, an RGB
      image tiled ``N / S`` times (bands ``R, G, B, R, G, B, ...``) gives exactly the RGB stem's
      response to the RGB image.

    The bias is unchanged. ``N == S`` returns the input unchanged.

    Args:
        weight: The stem conv weight ``(O, S, k, k)``, or a state dict holding it under
            :data:`STEM_KEY` (then a shallow copy with that entry replaced is returned).
        in_channels: Target number of bands ``N``.
        mode: ``'mean'`` or ``'cycle'``.

    Returns:
        The ``(O, N, k, k)`` weight, or the state dict with it.

    Raises:
        ValueError: On an unknown mode, ``in_channels < 1`` or a non-4-D weight.
        KeyError: If a state dict lacks :data:`STEM_KEY`.
    """
    if isinstance(weight, Mapping):
        out = dict(weight)
        out[STEM_KEY] = inflate_rgb_stem(weight[STEM_KEY], in_channels, mode)
        return out
    if mode not in ('mean', 'cycle'):
        raise ValueError(f"mode must be 'mean' or 'cycle', got {mode!r}")
    if in_channels < 1 or weight.ndim != 4:
        raise ValueError(f'need in_channels >= 1 and a 4-D conv weight, got {in_channels} and '
                         f'{tuple(weight.shape)}')
    src = weight.shape[1]
    if in_channels == src:
        return weight
    if mode == 'mean':
        new = weight.mean(dim=1, keepdim=True).expand(-1, in_channels, -1, -1)
    else:
        new = weight[:, [c % src for c in range(in_channels)]]
    return (new * (src / in_channels)).contiguous()


@MODELS.register_module()
class VMamba(BaseModule):
    """VMamba encoder returning normalised multi-scale features (ChangeMamba's ``Backbone_VSSM``).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` (:data:`ARCH_SETTINGS`) or a dict with at least
            ``depths`` and ``dims`` (an int ``d`` means ``[d, 2d, 4d, 8d]``); keys it leaves out
            take the ChangeMamba values (``drop_path_rate``: the official default 0.1). Keys:
            those of :data:`ARCH_SETTINGS` entries.
        in_channels: Input bands. Pretrained RGB stems are inflated on load (see ``init_cfg``).
        out_indices: Stages whose outputs are returned (each gets an ``outnorm{i}``).
        drop_path_rate: Overrides the arch's stochastic depth (linearly increasing over all
            blocks from 0 to this value).
        scan_backend: ``'auto'``, ``'torch'`` (portable) or ``'cuda'`` for the selective scan.
        chunk_size: Chunk length of the portable scan.
        use_checkpoint: Gradient checkpointing of every block while training.
        stem_inflation: ``mode`` of :func:`inflate_rgb_stem` used when a pretrained stem has
            another number of bands than ``in_channels``.
        init_cfg: ``dict(type='Pretrained', checkpoint=..., prefix=None)`` loads an official or
            mmrs checkpoint (the ``model``/``state_dict`` entry, minus ``prefix`` such as
            ``'encoder.'``; the ImageNet ``classifier.*`` head is dropped; missing ``outnorm``
            keys keep their init), otherwise the usual mmengine init configs.

    Raises:
        ValueError: On an unknown arch name, missing arch keys, bad ``out_indices`` or an
            unsupported option (``gmlp``, ``patch_size != 4``, ``ssm_init != 'v0'``).
    """

    def __init__(self, arch: str | Mapping = 'tiny', in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), drop_path_rate: float | None = None,
                 scan_backend: str = 'auto', chunk_size: int = 64, use_checkpoint: bool = False,
                 stem_inflation: str = 'mean', init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        cfg = self._arch(arch)
        if drop_path_rate is not None:
            cfg['drop_path_rate'] = drop_path_rate
        depths = list(cfg['depths'])
        dims = cfg['dims']
        if isinstance(dims, int):
            dims = [int(dims * 2 ** i) for i in range(len(depths))]
        dims = list(dims)
        if len(dims) != len(depths):
            raise ValueError(f'dims {dims} and depths {depths} differ in length')
        out_indices = tuple(out_indices)
        if not out_indices or any(not 0 <= i < len(depths) for i in out_indices):
            raise ValueError(f'out_indices {out_indices} must be non-empty stage indices '
                             f'< {len(depths)}')
        norm = cfg['norm_layer']
        if norm not in NORM_LAYOUTS:
            raise ValueError(f'norm_layer must be one of {sorted(NORM_LAYOUTS)}, got {norm!r}')
        self.arch_settings = cfg
        self.in_channels = in_channels
        self.dims = dims
        self.out_indices = out_indices
        self.channel_first = NORM_LAYOUTS[norm]
        self.stem_inflation = stem_inflation
        #: Inputs must be multiples of the deepest stride (4 * 2 ** (stages - 1); 32 for 4 stages).
        self.size_divisor = 4 * 2 ** (len(depths) - 1)

        self.patch_embed = make_patch_embed_v2(in_channels, dims[0], norm, self.channel_first,
                                               cfg['patch_norm'])
        ssm_cfg = dict(d_state=cfg['ssm_d_state'], ssm_ratio=cfg['ssm_ratio'],
                       dt_rank=cfg['ssm_dt_rank'], act=cfg['ssm_act_layer'], d_conv=cfg['ssm_conv'],
                       conv_bias=cfg['ssm_conv_bias'], dropout=cfg['ssm_drop_rate'],
                       forward_type=cfg['forward_type'], scan_backend=scan_backend,
                       chunk_size=chunk_size)
        dpr = torch.linspace(0, cfg['drop_path_rate'], sum(depths), device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            blocks = [VSSBlock(dims[i], dpr[start + j], norm, self.channel_first, ssm_cfg,
                               cfg['mlp_ratio'], cfg['mlp_act_layer'], cfg['mlp_drop_rate'],
                               use_checkpoint) for j in range(depth)]
            down = (make_downsample(dims[i], dims[i + 1], norm, self.channel_first,
                                    cfg['downsample_version'])
                    if i < len(depths) - 1 else nn.Identity())
            self.layers.append(VSSStage(blocks, down))
        for i in out_indices:
            self.add_module(f'outnorm{i}', build_norm(norm, dims[i]))
        self.apply(self._init_module)

    @staticmethod
    def _arch(arch: str | Mapping) -> dict:
        if isinstance(arch, str):
            if arch not in ARCH_SETTINGS:
                raise ValueError(f'arch must be one of {sorted(ARCH_SETTINGS)} or a dict, '
                                 f'got {arch!r}')
            cfg = copy.deepcopy(ARCH_SETTINGS[arch])
        else:
            missing = {'depths', 'dims'} - set(arch)
            unknown = set(arch) - set(ARCH_SETTINGS['tiny'])
            if missing or unknown:
                raise ValueError(f'custom arch: missing keys {sorted(missing)}, unknown keys '
                                 f'{sorted(unknown)}')
            cfg = {**copy.deepcopy(_COMMON), 'drop_path_rate': 0.1, **copy.deepcopy(dict(arch))}
        if cfg['gmlp'] or cfg['patch_size'] != 4 or cfg['ssm_init'] != 'v0' \
                or cfg['patchembed_version'] != 'v2':
            raise ValueError('only gmlp=False, patch_size=4, ssm_init="v0" and '
                             'patchembed_version="v2" are implemented')
        return cfg

    @staticmethod
    def _init_module(m: nn.Module) -> None:
        """The official ``VSSM._init_weights``: linear ``trunc_normal(0.02)``, LayerNorm (1, 0)."""
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def out_channels(self) -> list[int]:
        """Channels of the returned features, in ``out_indices`` order."""
        return [self.dims[i] for i in self.out_indices]

    def init_weights(self) -> None:
        """Load a ``Pretrained`` checkpoint (stem inflated to the bands), else mmengine init."""
        cfg = self.init_cfg
        if not (isinstance(cfg, Mapping) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        ckpt = CheckpointLoader.load_checkpoint(cfg['checkpoint'], map_location='cpu')
        state = self.adapt_state_dict(ckpt, prefix=cfg.get('prefix'))
        result = self.load_state_dict(state, strict=False)
        print_log(f'VMamba: loaded {cfg["checkpoint"]}; missing {result.missing_keys}, '
                  f'unexpected {result.unexpected_keys}', logger='current')
        self._is_init = True

    def adapt_state_dict(self, ckpt: Mapping, prefix: str | None = None) -> dict[str, Tensor]:
        """Turn a checkpoint into this module's state dict: unwrap, strip, drop head, inflate stem.

        Args:
            ckpt: A checkpoint (``{'model': sd}``, ``{'state_dict': sd}``) or a state dict.
            prefix: Keep only keys starting with it and strip it (e.g. ``'encoder.'``).
        """
        for key in ('state_dict', 'model'):
            if key in ckpt and isinstance(ckpt[key], Mapping):
                ckpt = ckpt[key]
                break
        state = dict(ckpt)
        if prefix:
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        state = {k: v for k, v in state.items() if not k.startswith('classifier.')}
        if STEM_KEY in state and state[STEM_KEY].shape[1] != self.in_channels:
            state = inflate_rgb_stem(state, self.in_channels, self.stem_inflation)
        return state

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Encode ``(B, in_channels, H, W)`` images, ``H`` and ``W`` multiples of the stride.

        Returns:
            For each ``i`` in ``out_indices``: ``(B, dims[i], H / (4 * 2**i), W / (4 * 2**i))``.

        Raises:
            ValueError: On a wrong number of bands or a size that is not a multiple of
                :attr:`size_divisor` (pad the input, e.g. with the data preprocessor's
                ``size_divisor``).
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'expected (B, {self.in_channels}, H, W) input, got {tuple(x.shape)}')
        h, w = x.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise ValueError(f'VMamba needs H and W divisible by {self.size_divisor}, got {h}x{w}')
        x = self.patch_embed(x)
        outs = []
        for i, layer in enumerate(self.layers):
            o, x = layer(x)
            if i in self.out_indices:
                o = getattr(self, f'outnorm{i}')(o)
                outs.append(o if self.channel_first else o.permute(0, 3, 1, 2).contiguous())
            if i >= max(self.out_indices):
                break
        return tuple(outs)
