"""The CLIP image tower as a dense (multi-scale) backbone for segmentation and change detection.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML
2021; the towers are open_clip's (github.com/mlfoundations/open_clip, ``transformer.py``
``VisionTransformer`` and ``modified_resnet.py`` ``ModifiedResNet``), so every CLIP family
mmrs reads (OpenAI, LAION, RemoteCLIP, GeoRSCLIP, SkyCLIP, ...) loads by open_clip's names.

* **ViT**: the outputs of blocks ``out_indices`` (patch tokens, class token dropped) as maps of
  stride ``patch``; with ``feature_pyramid=True`` they become four maps at strides 4/8/16/32
  (power-of-two patches; patch 14 gives 3.5/7/14/28) by the simple feature pyramid of ViTDet
  (Li et al., ECCV 2022) in the form of mmseg's BEiT/MAE UPerNet: 2x2 transposed convolutions
  to upsample, identity, 2x2 max-pooling to downsample, the i-th returned block feeding the
  i-th level. The positional embedding is resampled (bicubic, class-token row kept) to the token
  grid of each input, so any size works.
* **ModifiedResNet** (RN50, RN101, RN50x4, ...): the outputs of the stages ``layer1..4``
  (strides 4, 8, 16, 32). The attention pool is not used and is removed; its keys
  (``attnpool.*``) in a checkpoint are ignored.

Sizes that are not a multiple of the patch (ViT) or of 32 (ResNet) are zero-padded at the
bottom/right and every output is cropped back to ``ceil(size / stride)``, the size a
stride-``s`` map of the unpadded input has, so padded content never reaches the caller's grid.
Zero is the normalised mean colour, as mmseg's ``SegDataPreProcessor`` pads.
"""
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor
from torch.utils.checkpoint import checkpoint as grad_checkpoint

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import ConfigType, OptMultiConfig
from .vmamba.backbone import inflate_rgb_stem

#: Stem conv inflation rules for ``in_channels != 3`` (see :func:`inflate_stem`).
STEM_INFLATIONS = ('zero', 'mean', 'cycle')


def build_visual_tower(model_name: str, model_cfg: Mapping | None = None,
                       quick_gelu: bool = False) -> nn.Module:
    """The randomly initialised image tower (``model.visual``) of an open_clip architecture.

    Same config as the mmrs ``CLIP`` (:func:`mmrs.models.clip.towers.get_clip_config`). Only
    the image tower is built, by open_clip's ``_build_vision_tower`` (what its ``CLIP`` calls),
    so no text tower is allocated (354 M parameters for ViT-H-14); open_clip releases without
    it build the whole model (``build_open_clip_model``) and keep ``visual``.

    Raises:
        ValueError: Unknown architecture or override keys (from ``get_clip_config``).
        TypeError: If the tower is a timm model (no open_clip ViT / ModifiedResNet).
    """
    from mmrs.models.clip.towers import build_open_clip_model, get_clip_config
    try:
        from open_clip.model import _build_vision_tower
    except ImportError:  # not part of open_clip's public API
        _build_vision_tower = None
    if _build_vision_tower is not None:
        cfg = get_clip_config(model_name, model_cfg, quick_gelu)
        visual = _build_vision_tower(cfg['embed_dim'], cfg['vision_cfg'],
                                     quick_gelu=cfg['quick_gelu'])
    else:
        visual = build_open_clip_model(model_name, model_cfg, quick_gelu).visual
    if not (is_vit(visual) or is_modified_resnet(visual)):
        raise TypeError(f'{model_name}: image tower {type(visual).__name__} is neither an '
                        'open_clip VisionTransformer nor a ModifiedResNet')
    return visual


def is_vit(visual: nn.Module) -> bool:
    """Whether ``visual`` is an open_clip ``VisionTransformer`` (by its parts)."""
    return all(hasattr(visual, k) for k in ('conv1', 'class_embedding', 'positional_embedding',
                                            'transformer'))


def is_modified_resnet(visual: nn.Module) -> bool:
    """Whether ``visual`` is an open_clip ``ModifiedResNet``."""
    return all(hasattr(visual, f'layer{i}') for i in range(1, 5)) and hasattr(visual, 'stem')


def resample_pos_embed(pos_embed: Tensor, src_grid: tuple[int, int], grid: tuple[int, int],
                       antialias: bool = False) -> Tensor:
    """Bicubically resample an open_clip ``(1 + h*w, C)`` positional embedding to ``grid``.

    Row 0 (the class token's) is kept; the ``src_grid`` patch rows are interpolated
    (``align_corners=False``) to ``grid``. Always interpolates (no same-size shortcut).
    """
    cls, patches = pos_embed[:1], pos_embed[1:]
    if patches.shape[0] != src_grid[0] * src_grid[1]:
        raise ValueError(f'positional embedding has {patches.shape[0]} patch rows, not '
                         f'{src_grid[0]}x{src_grid[1]}')
    square = patches.float().reshape(1, *src_grid, -1).permute(0, 3, 1, 2)
    out = F.interpolate(square, size=tuple(grid), mode='bicubic', align_corners=False,
                        antialias=antialias)
    out = out.permute(0, 2, 3, 1).reshape(-1, pos_embed.shape[1]).to(pos_embed.dtype)
    return torch.cat([cls, out], dim=0)


def inflate_stem(weight: Tensor, in_channels: int, mode: str = 'zero') -> Tensor:
    """Adapt an RGB stem / patch conv weight ``(O, 3, k, k)`` to ``in_channels`` bands.

    * ``'zero'``: the three RGB kernels are kept for bands 0..2 and the extra bands get zero
      kernels, so at initialisation an image whose first three bands are RGB gives exactly
      the RGB tower's features whatever its other bands hold (they are learnt from there).
      Needs ``in_channels >= 3``.
    * ``'mean'`` / ``'cycle'``: :func:`mmrs.models.backbones.inflate_rgb_stem` (mean or cycled
      RGB kernels scaled by ``3 / in_channels``).
    """
    if mode not in STEM_INFLATIONS:
        raise ValueError(f'stem_inflation must be one of {STEM_INFLATIONS}, got {mode!r}')
    if in_channels == weight.shape[1]:
        return weight
    if mode != 'zero':
        return inflate_rgb_stem(weight, in_channels, mode)
    if in_channels < weight.shape[1]:
        raise ValueError(f"stem_inflation='zero' needs in_channels >= {weight.shape[1]}, got "
                         f"{in_channels}; use 'mean'")
    extra = weight.new_zeros(weight.shape[0], in_channels - weight.shape[1], *weight.shape[2:])
    return torch.cat([weight, extra], dim=1).contiguous()


class SimpleFeaturePyramid(nn.Module):
    """Resample ``len(scales)`` same-stride maps, the i-th by ``scales[i]`` (ViTDet / BEiT).

    A scale ``2**k > 1`` is ``k`` 2x2 transposed convolutions with norm + GELU between them,
    ``1`` the identity, ``1 / 2**k`` a ``2**k`` max-pool (``ceil_mode``, so the size is the
    ceiling of the scaled input's).
    """

    def __init__(self, channels: int, scales: Sequence[float],
                 norm_cfg: ConfigType = dict(type='BN')) -> None:
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.levels = nn.ModuleList()
        for scale in self.scales:
            steps = math.log2(scale)
            if steps != round(steps):
                raise ValueError(f'pyramid scale {scale} is not a power of 2')
            steps = round(steps)
            if steps > 0:
                layers: list[nn.Module] = []
                for i in range(steps):
                    if i:
                        layers += [build_norm_layer(norm_cfg, channels)[1], nn.GELU()]
                    layers.append(nn.ConvTranspose2d(channels, channels, 2, stride=2))
                self.levels.append(nn.Sequential(*layers))
            elif steps == 0:
                self.levels.append(nn.Identity())
            else:
                self.levels.append(nn.MaxPool2d(2**-steps, ceil_mode=True))

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        """Apply level ``i`` to ``maps[i]``."""
        if len(maps) != len(self.levels):
            raise ValueError(f'{len(self.levels)} pyramid levels need as many maps, got '
                             f'{len(maps)}')
        return [level(x) for level, x in zip(self.levels, maps)]


@MODELS.register_module()
class CLIPImageBackbone(BaseModule):
    """The image tower of an open_clip CLIP model returning multi-scale feature maps.

    Args:
        model_name: open_clip architecture (``RN50``, ``ViT-B-32``, ``ViT-B-16``,
            ``ViT-L-14``, ``ViT-H-14``, ...).
        model_cfg: Overrides merged into open_clip's model config (e.g.
            ``dict(vision_cfg=dict(width=64, layers=2))`` for tiny test towers).
        quick_gelu: QuickGELU activations (``True`` for OpenAI-initialised checkpoints).
        checkpoint: A full CLIP checkpoint of any family (file, URL or state dict), read by
            :func:`mmrs.models.clip.layouts.load_clip_state_dict`; its ``visual.*`` part is
            loaded strictly by :meth:`init_weights` (the runner calls it before training;
            ``tools/test.py`` loads the trained model instead, so the file is not needed there).
            Keys of the parts removed here (projection ``proj``, ``ln_post`` unless
            ``final_norm``, attention pools, blocks / stages after the last output) are
            ignored; a positional embedding of another grid is resampled.
        checkpoint_layout: Layout name for the loader (``'auto'`` detects it).
        out_indices: ViT blocks (negative from the end; default four evenly spaced ending at
            the last) or ResNet stages 0..3 (default all) whose outputs are returned.
        feature_pyramid: ViT only: turn the four block outputs into maps at strides
            ``patch / pyramid_scales`` (:class:`SimpleFeaturePyramid`). Without it the ViT
            returns the block outputs at stride ``patch``; they can then go through mmseg's
            ``MultiLevelNeck`` (``scales=[4, 2, 1, 0.5]``) in the neck instead.
        pyramid_scales: Resampling of each output; default: to strides 4/8/16/32 for patches
            that are powers of two, else ``(4, 2, 1, 0.5)``.
        pyramid_norm_cfg: Norm between the transposed convolutions (mmseg's BEiT: SyncBN).
        final_norm: Apply the tower's ``ln_post`` to every ViT output (open_clip's
            ``normalize_intermediates``).
        in_channels: Input bands. The RGB stem / patch conv (random or loaded) is inflated by
            :func:`inflate_stem` with ``stem_inflation``.
        stem_inflation: ``'zero'`` (default), ``'mean'`` or ``'cycle'``.
        frozen: Freeze the whole tower (the pyramid stays trainable); frozen parts are kept in
            eval mode.
        frozen_stages: Freeze the stem (``0``: patch conv, class and positional embedding,
            ``ln_pre``; ResNet: the 3-conv stem) and the first ``frozen_stages`` blocks /
            stages; ``-1`` freezes nothing.
        interpolate_antialias: Antialiased bicubic resampling of the positional embedding.
        with_cp: Gradient checkpointing of each ViT block while training.
        init_cfg: mmengine init config of the pyramid.

    Attributes:
        out_channels: Channels of each output.
        out_strides: Stride of each output (to the input).
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 model_cfg: Mapping | None = None,
                 quick_gelu: bool = False,
                 checkpoint: str | Mapping | None = None,
                 checkpoint_layout: str = 'auto',
                 out_indices: Sequence[int] | None = None,
                 feature_pyramid: bool = True,
                 pyramid_scales: Sequence[float] | None = None,
                 pyramid_norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 final_norm: bool = False,
                 in_channels: int = 3,
                 stem_inflation: str = 'zero',
                 frozen: bool = False,
                 frozen_stages: int = -1,
                 interpolate_antialias: bool = False,
                 with_cp: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.model_name = model_name
        self.checkpoint = checkpoint
        self.checkpoint_layout = checkpoint_layout
        self.in_channels = in_channels
        self.stem_inflation = stem_inflation
        self.frozen = frozen
        self.frozen_stages = frozen_stages
        self.interpolate_antialias = interpolate_antialias
        self.with_cp = with_cp
        self.final_norm = final_norm
        visual = build_visual_tower(model_name, model_cfg, quick_gelu)
        self.is_vit = is_vit(visual)
        all_keys = set(visual.state_dict())
        if self.is_vit:
            self._setup_vit(visual, out_indices, feature_pyramid, pyramid_scales,
                            pyramid_norm_cfg)
        else:
            self._setup_resnet(visual, out_indices)
        self.visual = visual
        #: Checkpoint keys (under ``visual.``) of the removed parts, ignored when loading.
        self.ignored_keys = frozenset(all_keys - set(visual.state_dict()))
        conv = visual.conv1
        new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                        conv.padding, bias=conv.bias is not None)
        with torch.no_grad():
            new.weight.copy_(inflate_stem(conv.weight, in_channels, stem_inflation))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        visual.conv1 = new
        self._freeze()

    def _setup_vit(self, visual: nn.Module, out_indices: Sequence[int] | None,
                   feature_pyramid: bool, pyramid_scales: Sequence[float] | None,
                   norm_cfg: ConfigType) -> None:
        blocks = visual.transformer.resblocks
        depth = len(blocks)
        if out_indices is None:
            out_indices = [depth * (i + 1) // 4 - 1 for i in range(4)]
        self.out_indices = self._check_indices(out_indices, depth, 'ViT block')
        patch = visual.conv1.kernel_size
        if patch[0] != patch[1]:
            raise ValueError(f'{self.model_name}: non-square patch {patch} is not supported')
        self.patch_size = patch[0]
        self.native_grid = tuple(visual.grid_size)
        width = visual.conv1.out_channels
        # Parts the dense features never use: removed, so that DDP sees no unused parameters.
        visual.transformer.resblocks = blocks[:max(self.out_indices) + 1]
        visual.proj = None
        for name in ('attn_pool', 'attn_pool_contrastive'):
            if getattr(visual, name, None) is not None:
                setattr(visual, name, None)
        if not self.final_norm:
            visual.ln_post = nn.Identity()
        visual.patch_dropout = nn.Identity()  # dropping tokens would break the token grid
        self.size_divisor = self.patch_size
        if feature_pyramid:
            if pyramid_scales is None:
                p = self.patch_size
                power_of_two = p >= 4 and p & (p - 1) == 0
                pyramid_scales = ([p / 4, p / 8, p / 16, p / 32] if power_of_two
                                  else [4, 2, 1, 0.5])
            if len(pyramid_scales) != len(self.out_indices):
                raise ValueError(f'{len(pyramid_scales)} pyramid scales for '
                                 f'{len(self.out_indices)} out_indices')
            self.pyramid = SimpleFeaturePyramid(width, pyramid_scales, norm_cfg)
            self.scales = self.pyramid.scales
        else:
            self.pyramid = None
            self.scales = (1.0, ) * len(self.out_indices)
        self.out_channels = [width] * len(self.out_indices)
        strides = [self.patch_size / s for s in self.scales]
        self.out_strides = [int(s) if s == int(s) else s for s in strides]

    def _setup_resnet(self, visual: nn.Module, out_indices: Sequence[int] | None) -> None:
        self.out_indices = self._check_indices(out_indices or (0, 1, 2, 3), 4, 'ResNet stage')
        last = max(self.out_indices)
        visual.attnpool = None
        for i in range(last + 2, 5):
            setattr(visual, f'layer{i}', None)
        self.pyramid = None
        self.size_divisor = 32
        self.patch_size = None
        width = visual.conv3.out_channels  # the stem width; stage i has 4 * width * 2**i
        self.out_channels = [width * 4 * 2**i for i in self.out_indices]
        self.out_strides = [4 * 2**i for i in self.out_indices]

    def _check_indices(self, indices: Sequence[int], depth: int, what: str) -> tuple[int, ...]:
        out = []
        for index in indices:
            if not -depth <= index < depth:
                raise ValueError(f'{self.model_name}: {what} index {index} out of range for '
                                 f'{depth}')
            out.append(index % depth)
        if sorted(set(out)) != out:
            raise ValueError(f'{self.model_name}: out_indices must be increasing, got {indices}')
        return tuple(out)

    # ---------------------------------------------------------------- freezing
    def _frozen_modules(self) -> list[nn.Module]:
        visual = self.visual
        if self.frozen:
            return [visual]
        if self.frozen_stages < 0:
            return []
        if self.is_vit:
            stem = [visual.conv1, visual.ln_pre]
            stages = list(visual.transformer.resblocks)
        else:
            stem = [getattr(visual, n) for n in ('conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3')]
            stages = [getattr(visual, f'layer{i}') for i in range(1, 5)]
            stages = [s for s in stages if s is not None]
        return stem + stages[:self.frozen_stages]

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        if self.is_vit and (self.frozen or self.frozen_stages >= 0):
            self.visual.class_embedding.requires_grad = False
            self.visual.positional_embedding.requires_grad = False

    def train(self, mode: bool = True) -> 'CLIPImageBackbone':
        """Set the mode, keeping frozen parts in eval mode (BatchNorm statistics fixed)."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    # ---------------------------------------------------------------- weights
    def init_weights(self) -> None:
        """Init the pyramid (``init_cfg``), then load ``checkpoint``'s ``visual.*`` weights."""
        super().init_weights()
        if self.checkpoint is None:
            return
        from mmrs.models.clip.layouts import load_clip_state_dict  # noqa: PLC0415
        state, layout = load_clip_state_dict(self.checkpoint, self.checkpoint_layout)
        name = self.checkpoint if isinstance(self.checkpoint, str) else '<state dict>'
        visual = {k[len('visual.'):]: v for k, v in state.items() if k.startswith('visual.')}
        if not visual:
            raise KeyError(f'{name}: no visual.* keys (layout {layout!r}); first keys: '
                           f'{list(state)[:8]}')
        self.load_visual_state_dict(visual, source=f'{name} ({layout})')
        print_log(f'CLIPImageBackbone: loaded the image tower of {name} (layout {layout})',
                  logger='current')

    def load_visual_state_dict(self, state: Mapping[str, Tensor], source: str = 'state dict'
                               ) -> None:
        """Load open_clip ``visual`` weights (keys without ``visual.``) strictly.

        :attr:`ignored_keys` are dropped, a 3-band stem is inflated, a positional embedding
        of another grid resampled; any other missing / unexpected key or misfit raises.

        Raises:
            KeyError: On missing or unexpected keys.
            ValueError: On shapes that do not fit.
        """
        state = {k: v for k, v in state.items() if k not in self.ignored_keys}
        own = self.visual.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f'{source}: the image tower does not fit {self.model_name}; missing '
                           f'{missing[:8]}, unexpected {unexpected[:8]}')
        stem = state['conv1.weight']
        if stem.shape[1] != self.in_channels:
            state['conv1.weight'] = inflate_stem(stem, self.in_channels, self.stem_inflation)
        pos = state.get('positional_embedding')
        if self.is_vit and pos is not None and pos.shape != own['positional_embedding'].shape:
            side = math.isqrt(pos.shape[0] - 1)
            if side * side != pos.shape[0] - 1:
                raise ValueError(f'{source}: positional embedding {tuple(pos.shape)} is not a '
                                 'square grid plus a class token')
            state['positional_embedding'] = resample_pos_embed(
                pos, (side, side), self.native_grid, self.interpolate_antialias)
        bad = [k for k, v in state.items() if v.shape != own[k].shape]
        if bad:
            raise ValueError(f'{source}: shapes do not fit {self.model_name}: ' + ', '.join(
                f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in bad[:5]))
        self.visual.load_state_dict(state, strict=True)

    # ---------------------------------------------------------------- forward
    def pos_embed_for(self, grid: tuple[int, int]) -> Tensor:
        """The ``(1 + h*w, C)`` positional embedding for a token grid ``(h, w)``."""
        pos = self.visual.positional_embedding
        if tuple(grid) == self.native_grid:
            return pos
        return resample_pos_embed(pos, self.native_grid, grid, self.interpolate_antialias)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Encode ``(B, in_channels, H, W)`` (normalised) images of any size.

        Returns:
            One map per output, ``(B, out_channels[i], ceil(H / s), ceil(W / s))`` with
            ``s = out_strides[i]``.

        Raises:
            ValueError: On a wrong number of bands.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'CLIPImageBackbone expects (B, {self.in_channels}, H, W), got '
                             f'{tuple(x.shape)}')
        size = x.shape[-2:]
        div = self.size_divisor
        pad_h, pad_w = -size[0] % div, -size[1] % div
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        maps = self._forward_vit(x) if self.is_vit else self._forward_resnet(x)
        return tuple(m[..., :math.ceil(size[0] / s), :math.ceil(size[1] / s)]
                     for m, s in zip(maps, self.out_strides))

    def _forward_vit(self, x: Tensor) -> list[Tensor]:
        visual = self.visual
        tokens = visual.conv1(x)
        b, c, h, w = tokens.shape
        tokens = tokens.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(tokens.dtype).view(1, 1, -1).expand(b, -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed_for((h, w)).to(tokens.dtype)
        tokens = visual.ln_pre(tokens)
        # open_clip < 2.23 runs its blocks sequence-first
        batch_first = getattr(visual.transformer, 'batch_first', False)
        if not batch_first:
            tokens = tokens.transpose(0, 1)
        maps = []
        for i, block in enumerate(visual.transformer.resblocks):
            if self.with_cp and self.training and tokens.requires_grad:
                tokens = grad_checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
            if i in self.out_indices:
                out = tokens if batch_first else tokens.transpose(0, 1)
                out = visual.ln_post(out[:, 1:])
                maps.append(out.transpose(1, 2).reshape(b, c, h, w))
        return self.pyramid(maps) if self.pyramid is not None else maps

    def _forward_resnet(self, x: Tensor) -> list[Tensor]:
        visual = self.visual
        x = visual.stem(x.to(visual.conv1.weight.dtype))
        maps = []
        for i in range(max(self.out_indices) + 1):
            x = getattr(visual, f'layer{i + 1}')(x)
            if i in self.out_indices:
                maps.append(x)
        return maps
