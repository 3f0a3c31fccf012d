"""A plain ViT in the DINOv2 layout, without a class token: the encoder of ChangeViT.

Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; the block and state-dict
layout of DINOv2 (Oquab et al., TMLR 2024, github.com/facebookresearch/dinov2), as ChangeViT
(Zhu et al., arXiv:2406.12847, github.com/zhuduowang/ChangeViT, ``model/encoder.py``) uses
it: patch tokens only (no class or register token), pre-norm blocks, a final LayerNorm, the
tokens returned as a ``(B, C, H/p, W/p)`` map. The names (``patch_embed.proj``,
``pos_embed``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``)
are DINOv2's and timm's, so DeiT and DINOv2 checkpoints load by name
(:func:`vit_pretrain_state_dict`).

The position embedding is resampled to any token grid (bicubic, DINOv2's ``+0.1`` scale
offset). ``always_interpolate=True`` reproduces ChangeViT exactly: its ViT subtracts one
"class token" from the token count that it does not have, so the size check never matches
and the embedding is resampled even at the training size, which is not the identity.
"""
import math
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import OptMultiConfig

#: Keys of DeiT / DINOv2 checkpoints that ChangeViT does not load into its ViT: the position
#: embedding and patch-projection weight (deleted before loading: other grid / patch size),
#: class / distillation / mask / register tokens, the classifier, and the LayerScale gammas
#: of DINOv2 (ChangeViT's blocks have no LayerScale, so its loader drops them as unexpected).
DROPPED_PRETRAIN_KEYS = ('pos_embed', 'patch_embed.proj.weight', 'cls_token', 'dist_token',
                         'mask_token', 'register_tokens')
DROPPED_PRETRAIN_PARTS = ('.ls1.', '.ls2.')
DROPPED_PRETRAIN_PREFIXES = ('head.', 'head_dist.', 'fc_norm.')


def vit_pretrain_state_dict(ckpt: Mapping) -> dict[str, Tensor]:
    """The part of a DeiT (timm) or DINOv2 checkpoint that ChangeViT initialises its ViT with.

    Unwraps ``model``/``state_dict`` (DeiT's release is ``{'model': ...}``) and strips a
    ``module.`` prefix, then drops :data:`DROPPED_PRETRAIN_KEYS` and LayerScale / head
    entries, as the official ``Encoder`` does (``del state_dict['pos_embed']``,
    ``del state_dict['patch_embed.proj.weight']``, then a non-strict load).

    Raises:
        KeyError: If nothing ViT-like (``blocks.*``) is left: not a ViT checkpoint.
    """
    for key in ('model', 'state_dict'):
        if isinstance(ckpt.get(key), Mapping):
            ckpt = ckpt[key]
            break
    out = {}
    for key, value in ckpt.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        if (key in DROPPED_PRETRAIN_KEYS or key.startswith(DROPPED_PRETRAIN_PREFIXES)
                or any(part in key for part in DROPPED_PRETRAIN_PARTS)):
            continue
        out[key] = value
    if not any(key.startswith('blocks.') for key in out):
        raise KeyError('not a ViT checkpoint: no blocks.* keys (expected a DeiT or DINOv2 '
                       f'state dict); first keys: {list(ckpt)[:8]}')
    return out


def resize_pos_embed(pos_embed: Tensor, grid: tuple[int, int], offset: float = 0.1,
                     antialias: bool = False) -> Tensor:
    """Bicubically resample a square ``(1, N, C)`` patch position embedding to ``grid``.

    As DINOv2: with ``offset > 0`` the scale factor is ``(grid + offset) / sqrt(N)`` (a
    workaround for floating point rounding of the output size), so the result at
    ``grid == (sqrt(N), sqrt(N))`` is *not* the input; ``offset=0`` resizes to the size.

    Raises:
        ValueError: If ``N`` is not a square.
    """
    n, dim = pos_embed.shape[1:]
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f'position embedding of {n} tokens is not a square grid')
    square = pos_embed.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = (int(grid[0]), int(grid[1]))  # plain ints also while traced (FLOP counting)
    if offset:
        scale = ((grid[0] + offset) / side, (grid[1] + offset) / side)
        out = F.interpolate(square, scale_factor=scale, mode='bicubic', antialias=antialias)
    else:
        out = F.interpolate(square, size=grid, mode='bicubic', antialias=antialias)
    assert tuple(out.shape[-2:]) == tuple(grid), (out.shape, grid)
    return out.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample (scaled at train time)."""

    def __init__(self, prob: float = 0.0) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (DINOv2/timm names)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dims {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(
            2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """``fc1 -> act -> fc2`` (timm's ``Mlp`` names)."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel residual scale ``gamma`` (DINOv2's ``ls1``/``ls2``)."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, ), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class TransformerBlock(nn.Module):
    """Pre-norm ViT block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, layer_scale: float | None = None,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` conv projection (the ``patch_embed.proj`` name)."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


@MODELS.register_module()
class DINOv2ViT(BaseModule):
    """Plain ViT without class token, returning its final normalised tokens as a map.

    Args:
        img_size: Training size; sets the learned position grid ``img_size / patch_size``.
        patch_size: Patch (and output stride) size.
        in_channels: Input bands.
        embed_dims: Token width.
        num_layers: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``embed_dims``.
        qkv_bias: Bias of the ``qkv`` projection.
        drop_path_rate: Stochastic depth, increased linearly to this over the blocks.
        layer_scale: LayerScale init value, ``None`` for none (ChangeViT: none).
        interpolate_offset: DINOv2's scale offset of the position resampling.
        interpolate_antialias: Antialiased bicubic resampling.
        always_interpolate: Resample the position embedding at the training grid too
            (ChangeViT's behaviour, see the module docstring).
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` loads a raw DeiT / DINOv2
            checkpoint the way ChangeViT does (:func:`vit_pretrain_state_dict`); with
            ``prefix`` (e.g. ``'backbone.vit.'`` of a trained mmrs ChangeViT) the entries
            under it are loaded as they are, position embedding included. Anything else is
            mmengine's init after the timm ViT init (trunc-normal 0.02 linears and position
            embedding, zero biases).

    Raises:
        ValueError: If ``img_size`` is not a multiple of ``patch_size``.
    """

    def __init__(self,
                 img_size: int = 256,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dims: int = 384,
                 num_layers: int = 12,
                 num_heads: int = 6,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 drop_path_rate: float = 0.0,
                 layer_scale: float | None = None,
                 interpolate_offset: float = 0.1,
                 interpolate_antialias: bool = False,
                 always_interpolate: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if img_size % patch_size:
            raise ValueError(f'img_size {img_size} is not a multiple of patch_size {patch_size}')
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.interpolate_offset = interpolate_offset
        self.interpolate_antialias = interpolate_antialias
        self.always_interpolate = always_interpolate
        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch_size)**2, embed_dims))
        # linspace(0, drop_path_rate, num_layers), in Python so that meta-device builds work
        rates = [drop_path_rate * i / max(num_layers - 1, 1) for i in range(num_layers)]
        self.blocks = ModuleList([
            TransformerBlock(embed_dims, num_heads, mlp_ratio, qkv_bias, rate, layer_scale)
            for rate in rates
        ])
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)
        self._timm_init()

    def _timm_init(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def init_weights(self) -> None:
        """Load a ``Pretrained`` checkpoint as ChangeViT does, else mmengine's init."""
        cfg = self.init_cfg
        if not (isinstance(cfg, Mapping) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        ckpt = CheckpointLoader.load_checkpoint(cfg['checkpoint'], map_location='cpu')
        prefix = cfg.get('prefix')
        if prefix:
            ckpt = ckpt.get('state_dict', ckpt)
            state = {k[len(prefix):]: v for k, v in ckpt.items() if k.startswith(prefix)}
            if not state:
                raise KeyError(f'{cfg["checkpoint"]}: no keys start with {prefix!r}')
        else:
            state = vit_pretrain_state_dict(ckpt)
        own = self.state_dict()
        bad = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
        if bad:
            raise ValueError(f'{cfg["checkpoint"]}: shapes do not fit this ViT: ' + ', '.join(
                f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in bad[:5]))
        result = self.load_state_dict(state, strict=False)
        print_log(f'DINOv2ViT: loaded {cfg["checkpoint"]}; kept at init: '
                  f'{result.missing_keys}; unexpected: {result.unexpected_keys}',
                  logger='current')
        self._is_init = True

    def pos_embed_for(self, grid: tuple[int, int]) -> Tensor:
        """The position embedding for a token grid ``(h, w)``."""
        side = math.isqrt(self.pos_embed.shape[1])
        if tuple(grid) == (side, side) and not self.always_interpolate:
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, grid, self.interpolate_offset,
                                self.interpolate_antialias)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        """Encode ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of ``patch_size``.

        Returns:
            One map ``(B, embed_dims, H / patch_size, W / patch_size)``.

        Raises:
            ValueError: On a wrong band count or a size that is not a multiple of the patch.
        """
        if x.shape[1] != self.in_channels:
            raise ValueError(f'DINOv2ViT expects {self.in_channels} bands, got {x.shape[1]}')
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f'input size {(h, w)} is not a multiple of the patch size '
                             f'{self.patch_size}; pad it (data preprocessor size_divisor)')
        grid = (h // self.patch_size, w // self.patch_size)
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = tokens + self.pos_embed_for(grid)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return (tokens.transpose(1, 2).reshape(x.shape[0], self.embed_dims, *grid), )
