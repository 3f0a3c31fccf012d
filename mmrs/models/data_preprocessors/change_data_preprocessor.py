"""Batch bitemporal samples: normalise per band, pad, stack to ``(N, 2, C, H, W)``.

The counterpart of mmseg's ``SegDataPreProcessor`` for image pairs (see
``docs/data_flow.md``). Unlike open-cd's ``DualInputSegDataPreProcessor`` it keeps the date
axis instead of concatenating 6 channels, accepts any band count and per-date statistics, and
pads at test time too, so batched inference works on samples of different sizes. As in mmseg,
label maps are padded for training only: at test time they stay as the pipeline made them and
the metrics compare them with predictions at the original size.
"""
from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, ModuleList
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import ConfigType, SampleList

#: Label maps padded with ``seg_pad_val`` in training (so padding is ignored by the losses).
SEG_FIELDS = ('gt_sem_seg', 'gt_sem_seg_from', 'gt_sem_seg_to', 'gt_damage_seg')


@MODELS.register_module()
class ChangeDataPreprocessor(BaseDataPreprocessor):
    """Move, normalise, pad and stack a batch of image pairs.

    Inputs from ``PackChangeInputs`` are ``(2, C, H, W)`` tensors (date axis first) of any
    dtype. They are cast to float32, normalised with ``(x - mean) / std`` per band, padded at
    the bottom and right and stacked to ``(N, 2, C, H, W)``. In training the label maps in
    :data:`SEG_FIELDS` are padded the same way with ``seg_pad_val``; in evaluation only the
    images are padded (mmseg's ``SegDataPreProcessor`` does the same), because predictions
    are restored to ``ori_shape`` and compared with labels at that size. ``nodata_mask``
    is never padded (it stays at the original size). Each data sample's metainfo gets
    ``img_shape`` (the size before this padding), ``pad_shape``, ``padding_size`` (left,
    right, top, bottom, as in mmseg) and ``batch_input_shape``; detectors cut
    ``padding_size`` off their logits.

    Args:
        mean: Per-band mean, of length ``C`` (shared by both dates) or ``2 * C`` (date 1's
            bands, then date 2's). ``None`` disables normalisation.
        std: Per-band standard deviation, same length as ``mean``.
        size: Fixed ``(H, W)`` to pad every sample to. Exclusive with ``size_divisor``.
        size_divisor: Pad the batch to the largest sample size rounded up to a multiple of
            this. With neither ``size`` nor ``size_divisor`` the batch is padded to its
            largest sample.
        pad_val: Value of padded image pixels (in normalised units, applied after
            normalisation).
        seg_pad_val: Value of padded label pixels.
        batch_augments: Configs of batch augmentations (``aug(inputs, data_samples)`` ->
            ``(inputs, data_samples)``), applied in training only.
        non_blocking: Whether to copy to the device without blocking.

    Raises:
        ValueError: If only one of ``mean``/``std`` is given, their lengths differ, or both
            ``size`` and ``size_divisor`` are given.
    """

    def __init__(self,
                 mean: Sequence[Number] | None = None,
                 std: Sequence[Number] | None = None,
                 size: tuple[int, int] | None = None,
                 size_divisor: int | None = None,
                 pad_val: Number = 0,
                 seg_pad_val: Number = 255,
                 batch_augments: list[ConfigType] | None = None,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if (mean is None) != (std is None):
            raise ValueError('mean and std must be given together')
        if mean is not None and len(mean) != len(std):
            raise ValueError(f'mean has {len(mean)} values but std has {len(std)}')
        if size is not None and size_divisor is not None:
            raise ValueError('give either size or size_divisor, not both')
        self._enable_normalize = mean is not None
        if self._enable_normalize:
            # 1-D buffers: whether they mean C or 2*C bands is decided per batch.
            self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32), False)
            self.register_buffer('std', torch.tensor(std, dtype=torch.float32), False)
        self.size = tuple(size) if size is not None else None
        self.size_divisor = size_divisor
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val
        self.batch_augments = (ModuleList([MODELS.build(aug) for aug in batch_augments])
                               if batch_augments else None)

    def _stats_for(self, num_bands: int) -> tuple[Tensor, Tensor]:
        """Mean and std shaped ``(2, C, 1, 1)`` for inputs with ``C = num_bands``.

        Raises:
            ValueError: If the statistics have neither ``C`` nor ``2 * C`` values.
        """
        n = self.mean.numel()
        if n == num_bands:
            shape = (1, num_bands, 1, 1)
        elif n == 2 * num_bands:
            shape = (2, num_bands, 1, 1)
        else:
            raise ValueError(
                f'mean/std have {n} values but the images have {num_bands} bands; give '
                f'{num_bands} values (shared by both dates) or {2 * num_bands} (date 1, '
                'then date 2)')
        return self.mean.view(shape), self.std.view(shape)

    def _target_size(self, sizes: list[tuple[int, int]]) -> tuple[int, int]:
        """The padded ``(H, W)`` of the batch."""
        if self.size is not None:
            return self.size
        h = max(s[0] for s in sizes)
        w = max(s[1] for s in sizes)
        if self.size_divisor is not None and self.size_divisor > 1:
            d = self.size_divisor
            h, w = (h + d - 1) // d * d, (w + d - 1) // d * d
        return h, w

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """Preprocess one batch from the dataloader.

        Args:
            data: ``{'inputs': list of (2, C, H, W) tensors (or one (N, 2, C, H, W) tensor),
                'data_samples': list of ChangeDataSample (optional)}``.
            training: Whether label maps are padded and batch augmentations run.

        Returns:
            ``{'inputs': (N, 2, C, H', W') float32 tensor, 'data_samples': the samples}``.

        Raises:
            ValueError: If an input is not ``(2, C, H, W)``, the band counts differ within the
                batch, a sample is larger than a fixed ``size``, or (training) a label map
                differs in size from its image.
        """
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, Tensor):
            inputs = list(inputs.unbind(0)) if inputs.dim() == 5 else [inputs]
        data_samples: SampleList | None = data.get('data_samples', None)
        for x in inputs:
            if x.dim() != 4 or x.shape[0] != 2:
                raise ValueError(f'expected (2, C, H, W) inputs, got {tuple(x.shape)}')
        if len({x.shape[1] for x in inputs}) > 1:
            raise ValueError(f'band counts differ in the batch: {[x.shape[1] for x in inputs]}')

        inputs = [x.float() for x in inputs]
        if self._enable_normalize:
            mean, std = self._stats_for(inputs[0].shape[1])
            inputs = [(x - mean) / std for x in inputs]

        sizes = [tuple(x.shape[-2:]) for x in inputs]
        th, tw = self._target_size(sizes)
        padded = []
        for i, x in enumerate(inputs):
            h, w = sizes[i]
            if h > th or w > tw:
                raise ValueError(f'sample of size {(h, w)} exceeds the padding size {(th, tw)}')
            padding = (0, tw - w, 0, th - h)
            padded.append(F.pad(x, padding, value=self.pad_val))
            if data_samples is not None:
                self._pad_sample(data_samples[i], padding, (h, w), (th, tw), training)
        batch = torch.stack(padded, dim=0)

        if training and self.batch_augments is not None:
            for aug in self.batch_augments:
                batch, data_samples = aug(batch, data_samples)
        return dict(inputs=batch, data_samples=data_samples)

    def _pad_sample(self, sample: Any, padding: tuple[int, int, int, int],
                    img_shape: tuple[int, int], pad_shape: tuple[int, int],
                    training: bool) -> None:
        """Record the padding in a sample's metainfo; in training pad its label maps too."""
        for field in SEG_FIELDS if training else ():
            if field in sample:
                pixel_data = getattr(sample, field)
                label = pixel_data.data
                if tuple(label.shape[-2:]) != tuple(img_shape):
                    raise ValueError(
                        f'{field} of {sample.metainfo.get("img_path", "a sample")} is '
                        f'{tuple(label.shape[-2:])} but its image is {tuple(img_shape)}; in '
                        'training the labels must go through the same geometric transforms '
                        'as the images (load annotations before them)')
                del pixel_data.data
                pixel_data.data = F.pad(label, padding, value=self.seg_pad_val)
        sample.set_metainfo(
            dict(img_shape=img_shape, pad_shape=pad_shape, batch_input_shape=pad_shape,
                 padding_size=padding))
