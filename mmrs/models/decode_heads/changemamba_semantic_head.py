"""ChangeMamba's single-date semantic decoder (MambaSCD land cover, MambaBDA localisation).

Chen et al., "ChangeMamba: Remote Sensing Change Detection With Spatiotemporal State Space
Model", IEEE TGRS 2024 (arXiv:2404.03425). Official code: github.com/ChenHongruixuan/MambaCD,
``changedetection/models/SemanticDecoder.py``. MambaSCD (``STMambaSCD.py``) runs one per date
(``decoder_T1`` / ``decoder_T2``, one classifier ``aux_clf`` shared by both); MambaBDA
(``STMambaBDA.py``) runs one on the pre-disaster image (``decoder_building``, building
localisation).

It is an FPN-like top-down path on *one* date's pyramid with a VSS block per level:

- deepest level: 1x1 conv to 128 channels, VSS block (``st_block_4_semantic``);
- levels 3, 2, 1: 1x1 conv + BN + ReLU (``trans_layer_i``), plus the bilinearly upsampled
  coarser output, residual smoothing block (``smooth_layer_i_semantic``), VSS block
  (``st_block_i_semantic``);
- a last residual block (``smooth_layer_0_semantic``) and the 1x1 classifier (mmseg's
  ``conv_seg``, the official ``aux_clf``).

Parameter names equal the official decoder's (``st_block_4_semantic.{0,2}.*`` and
``st_block_{3,2,1}_semantic.1.*`` -- the official ``nn.Sequential`` indices, layout permutes
included -- ``trans_layer_i.{0,1}.*``, ``smooth_layer_i_semantic.{conv1,bn1,conv2,bn2}.*``).
"""
from collections.abc import Sequence

import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmrs.registry import MODELS
from ..backbones.vmamba.blocks import VSSBlock
from ..backbones.vmamba.layers import NORM_LAYOUTS, Permute
from .changemamba_head import CHANGEMAMBA_SSM_CFG, ResBlock, _upsample_add


@MODELS.register_module()
class MambaSemanticHead(BaseDecodeHead):
    """ChangeMamba's semantic decoder on one date's four-level pyramid, with its classifier.

    Args:
        in_channels: Encoder channels, finest level first, four levels (one date, not the
            ``[pre, post]`` concatenation).
        channels: Width of the decoder (official: 128).
        norm_layer: Norm of the VSS blocks, ``'ln'`` (official vssm1) or ``'ln2d'``.
        ssm_cfg: :class:`~mmrs.models.backbones.vmamba.SS2D` arguments of the VSS blocks
            (default :data:`CHANGEMAMBA_SSM_CFG`, the encoder's); the ChangeMamba detectors'
            ``scan_backend`` overrides its scan backend.
        mlp_ratio: MLP ratio of the VSS blocks (official: 4).
        drop_path: Stochastic depth of every VSS block (official: 0.1).
        use_checkpoint: Gradient checkpointing of the VSS blocks.
        **kwargs: :class:`mmseg BaseDecodeHead` arguments (``num_classes``: official 7 for
            SECOND land cover -- "no change" included -- and 2 for xBD localisation).
            ``dropout_ratio`` defaults to 0 (none in the official model).

    Raises:
        ValueError: If there are not four input levels or the norm is unknown.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 128, norm_layer: str = 'ln',
                 ssm_cfg: dict | None = None, mlp_ratio: float = 4.0, drop_path: float = 0.1,
                 use_checkpoint: bool = False, **kwargs) -> None:
        in_channels = list(in_channels)
        if len(in_channels) != 4:
            raise ValueError(f'MambaSemanticHead needs four levels, got in_channels={in_channels}')
        if norm_layer not in NORM_LAYOUTS:
            raise ValueError(f'norm_layer must be one of {sorted(NORM_LAYOUTS)}, got '
                             f'{norm_layer!r}')
        kwargs.setdefault('dropout_ratio', 0.0)
        kwargs.setdefault('in_index', [0, 1, 2, 3])
        kwargs.setdefault('input_transform', 'multiple_select')
        kwargs.setdefault('loss_decode', dict(type='mmseg.CrossEntropyLoss', loss_weight=1.0))
        super().__init__(in_channels, channels, **kwargs)
        channel_first = NORM_LAYOUTS[norm_layer]
        ssm_cfg = dict(CHANGEMAMBA_SSM_CFG if ssm_cfg is None else ssm_cfg)

        def vss(pre: list[nn.Module]) -> nn.Sequential:
            # Official layout: [conv], (permute), VSSBlock, (permute).
            return nn.Sequential(
                *pre,
                nn.Identity() if channel_first else Permute(0, 2, 3, 1),
                VSSBlock(channels, drop_path, norm_layer, channel_first, ssm_cfg, mlp_ratio,
                         'gelu', 0.0, use_checkpoint),
                nn.Identity() if channel_first else Permute(0, 3, 1, 2),
            )

        self.st_block_4_semantic = vss([nn.Conv2d(in_channels[3], channels, 1)])
        for level in (3, 2, 1):
            self.add_module(f'st_block_{level}_semantic', vss([]))
        for level in (3, 2, 1):
            self.add_module(f'trans_layer_{level}', nn.Sequential(
                nn.Conv2d(in_channels[level - 1], channels, 1), nn.BatchNorm2d(channels),
                nn.ReLU()))
        for level in (3, 2, 1, 0):
            self.add_module(f'smooth_layer_{level}_semantic', ResBlock(channels))

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Class logits at the finest level (stride 4) from one date's four levels."""
        feats = self._transform_inputs(inputs)
        out = self.st_block_4_semantic(feats[3])
        for level in (3, 2, 1):
            out = _upsample_add(out, getattr(self, f'trans_layer_{level}')(feats[level - 1]))
            out = getattr(self, f'smooth_layer_{level}_semantic')(out)
            out = getattr(self, f'st_block_{level}_semantic')(out)
        return self.cls_seg(self.smooth_layer_0_semantic(out))
