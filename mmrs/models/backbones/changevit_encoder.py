"""The ChangeViT encoder: plain ViT + ResNet-18 detail capture + feature injector.

Zhu et al., "ChangeViT: Unleashing Plain Vision Transformers for Change Detection",
arXiv:2406.12847 (github.com/zhuduowang/ChangeViT). Per date:

- a plain ViT (:class:`~mmrs.models.backbones.DINOv2ViT`, stride 16) gives the semantic map
  ``c5``;
- the *detail-capture* module, the stem and first three stages of a ResNet-18 without its
  max-pool (official ``Encoder.detail_capture``), gives ``c2, c3, c4`` at strides 2, 4, 8
  (64, 128, 256 channels), with ``Dropout(0.01)`` after ``layer1``;
- the *feature injector* (official ``decoder.FeatureInjector``, which the official code
  runs inside its decoder, once per date) lets the ``c5`` tokens cross-attend to each of
  ``c2, c3, c4`` and fuses the three results with a 1x1 conv into the new ``c5``.

It returns ``(c2, c3, c4, c5)`` per date, so a parameter-free neck can pair the dates for
:class:`~mmrs.models.decode_heads.ChangeViTHead`. The official ResNet also builds
``layer4`` and ``fc`` and its ViT a DINOv2 ``mask_token``, none used in forward; they are
not built here (see ``configs/changevit/README.md``).
"""
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.models.backbones.resnet import BasicBlock
from mmseg.models.utils import ResLayer
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import ConfigType, OptMultiConfig
from .vmamba import inflate_rgb_stem


class DetailCapture(BaseModule):
    """ResNet-18 stem (no max-pool) and ``layer1..3``: torchvision's state-dict names.

    Args:
        in_channels: Input bands; an RGB ``conv1`` of a pretrained checkpoint is inflated
            (:func:`~mmrs.models.backbones.inflate_rgb_stem`, ``stem_inflation``).
        base_channels: Width of the stem and ``layer1`` (ResNet-18: 64); ``layer2``/``layer3``
            have 2x / 4x. Other values only make small test models.
        dropout: Dropout after ``layer1`` (official 0.01).
        norm_cfg: Norm layer config (BN).
        stem_inflation: ``'mean'`` or ``'cycle'``.
        init_cfg: ``dict(type='Pretrained', checkpoint='torchvision://resnet18')`` as the
            official; ``layer4``/``fc`` of the checkpoint are ignored.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, dropout: float = 0.01,
                 norm_cfg: ConfigType | None = None, stem_inflation: str = 'mean',
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        self.in_channels = in_channels
        self.stem_inflation = stem_inflation
        #: Output channels of ``layer1..3``.
        self.channels = (base_channels, base_channels * 2, base_channels * 4)
        self.conv1 = nn.Conv2d(in_channels, base_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, base_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        inplanes = base_channels
        for i, (planes, stride) in enumerate(zip(self.channels, (1, 2, 2)), start=1):
            self.add_module(f'layer{i}', ResLayer(BasicBlock, inplanes, planes, 2,
                                                  stride=stride, norm_cfg=norm_cfg))
            inplanes = planes
        self.drop = nn.Dropout(dropout)

    def init_weights(self) -> None:
        """Load a ``Pretrained`` ResNet-18 (stem inflated to the bands), else mmengine init."""
        cfg = self.init_cfg
        if not (isinstance(cfg, Mapping) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        ckpt = CheckpointLoader.load_checkpoint(cfg['checkpoint'], map_location='cpu')
        state = dict(ckpt.get('state_dict', ckpt))
        prefix = cfg.get('prefix')
        if prefix:
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        state = {k: v for k, v in state.items() if not k.startswith(('layer4.', 'fc.'))}
        if 'conv1.weight' in state and state['conv1.weight'].shape[1] != self.in_channels:
            state['conv1.weight'] = inflate_rgb_stem(state['conv1.weight'], self.in_channels,
                                                     self.stem_inflation)
        result = self.load_state_dict(state, strict=False)
        print_log(f'DetailCapture: loaded {cfg["checkpoint"]}; missing {result.missing_keys}, '
                  f'unexpected {result.unexpected_keys}', logger='current')
        self._is_init = True

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(c2, c3, c4)`` at strides 2, 4, 8."""
        x = self.relu(self.bn1(self.conv1(x)))
        c2 = self.drop(self.layer1(x))
        c3 = self.layer2(c2)
        return c2, c3, self.layer3(c3)


class CrossAttention(nn.Module):
    """Queries from ``x`` (``dim``), keys/values from ``y`` (``context_dim``): ``q``, ``kv``."""

    def __init__(self, dim: int, context_dim: int, num_heads: int, qkv_bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(context_dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        b, n, c = x.shape
        heads, hd = self.num_heads, c // self.num_heads
        q = self.q(x).reshape(b, n, heads, hd).transpose(1, 2)
        k, v = self.kv(y).reshape(b, y.shape[1], 2, heads, hd).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class InjectorBlock(nn.Module):
    """``x + attn(norm1(x), norm2(y))``, then ``x + mlp(norm3(x))`` (ReLU MLP, as official)."""

    def __init__(self, dim: int, context_dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(context_dim)
        self.attn = CrossAttention(dim, context_dim, num_heads)
        self.norm3 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Linear(dim, hidden))
        self.mlp.add_module('act', nn.ReLU())
        self.mlp.add_module('fc2', nn.Linear(hidden, dim))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), self.norm2(y))
        return x + self.mlp(self.norm3(x))


class FeatureInjector(nn.Module):
    """Inject ``c2, c3, c4`` into the ViT map ``c5`` by cross-attention, fuse with a 1x1 conv.

    State-dict names follow the official ``FeatureInjector`` (``c2_c5``, ``c3_c5``,
    ``c4_c5``, ``fuse``); its ``fuse`` conv gets the official Kaiming init.
    """

    def __init__(self, dim: int, context_dims: Sequence[int] = (64, 128, 256),
                 num_heads: int = 8, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        for name, ctx in zip(('c2_c5', 'c3_c5', 'c4_c5'), context_dims):
            self.add_module(name, InjectorBlock(dim, ctx, num_heads, mlp_ratio))
        self.fuse = nn.Conv2d(dim * 3, dim, 1, bias=False)
        nn.init.kaiming_normal_(self.fuse.weight, mode='fan_in', nonlinearity='relu')

    def forward(self, c2: Tensor, c3: Tensor, c4: Tensor, c5: Tensor) -> Tensor:
        b, c, h, w = c5.shape
        query = c5.flatten(2).transpose(1, 2)
        outs = [
            block(query, ctx.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
            for block, ctx in zip((self.c2_c5, self.c3_c5, self.c4_c5), (c2, c3, c4))
        ]
        return self.fuse(torch.cat(outs, dim=1))


@MODELS.register_module()
class ChangeViTEncoder(BaseModule):
    """ViT + detail capture + feature injector; ``(c2, c3, c4, c5)`` per image.

    Args:
        vit: Config of the ViT (``DINOv2ViT``); its ``in_channels`` is set from here.
        in_channels: Input bands of both the ViT and the ResNet stem.
        detail_base_channels: ResNet stem / ``layer1`` width (64; ``c2, c3, c4`` have 1x,
            2x, 4x).
        detail_dropout: Dropout after the ResNet's ``layer1``.
        injector_heads: Heads of the injector's cross-attention (official 8).
        injector_mlp_ratio: MLP ratio of the injector blocks.
        norm_cfg: Norm of the ResNet (BN).
        stem_inflation: How a pretrained RGB ResNet stem is adapted to ``in_channels``.
        resnet_init_cfg: ``init_cfg`` of the ResNet (``torchvision://resnet18`` officially).
        init_cfg: Initialisation config of the whole encoder.
    """

    def __init__(self,
                 vit: ConfigType,
                 in_channels: int = 3,
                 detail_base_channels: int = 64,
                 detail_dropout: float = 0.01,
                 injector_heads: int = 8,
                 injector_mlp_ratio: float = 4.0,
                 norm_cfg: ConfigType | None = None,
                 stem_inflation: str = 'mean',
                 resnet_init_cfg: OptMultiConfig = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.vit = MODELS.build(dict(vit, in_channels=in_channels))
        self.resnet = DetailCapture(in_channels, detail_base_channels, detail_dropout,
                                    norm_cfg, stem_inflation, init_cfg=resnet_init_cfg)
        dim = self.vit.embed_dims
        self.injector = FeatureInjector(dim, self.resnet.channels, injector_heads,
                                        injector_mlp_ratio)
        #: Channels of ``(c2, c3, c4, c5)``.
        self.out_channels = [*self.resnet.channels, dim]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c2, c3, c4, c5)`` at strides 2, 4, 8, 16 of a ``(B, C, H, W)`` batch.

        ``H`` and ``W`` must be multiples of the ViT's patch size (16).
        """
        c5 = self.vit(x)[0]
        c2, c3, c4 = self.resnet(x)
        return c2, c3, c4, self.injector(c2, c3, c4, c5)
