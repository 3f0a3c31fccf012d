"""The base class of every mmrs change detector.

It plays the role of mmseg's ``BaseSegmentor`` for image pairs: a detector receives the
``(N, 2, C, H, W)`` batch of :class:`~mmrs.models.data_preprocessors.ChangeDataPreprocessor`
and returns :class:`~mmrs.structures.ChangeDataSample` predictions. What all detectors share
lives here: the ``forward`` modes, whole-image and sliding-window inference (batched over
windows, overlaps averaged as in mmseg), and turning logits into predictions at each sample's
original size, which makes batched testing on samples of different sizes correct.
"""
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample
from mmrs.structures.geometry import crop_padding, undo_orientation
from mmrs.utils.typing_utils import OptConfigType, OptMultiConfig, OptSampleList, SampleList


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class BaseChangeDetector(BaseModel, metaclass=ABCMeta):
    """Base class of change detectors.

    Subclasses implement :meth:`extract_feat`, :meth:`loss`, :meth:`predict` and
    :meth:`_forward`; those that want the shared :meth:`inference` (``whole``/``slide``)
    also implement :meth:`encode_decode`, returning logits at the input's spatial size.

    ``test_cfg`` keys read here:

    - ``mode``: ``'whole'`` (default) or ``'slide'``.
    - ``crop_size``, ``stride``: window size and step of ``slide`` (int or ``(h, w)``).
    - ``crop_batch_size``: how many windows are run in one forward pass (default 1; each pass
      holds ``crop_batch_size * N`` crops).
    - ``threshold``: probability above which a single-channel output counts as change
      (default: the decode head's ``threshold``, else 0.5).

    Args:
        train_cfg: Training config, passed to the heads' ``loss``.
        test_cfg: Testing config, see above.
        data_preprocessor: Config (or module) of the data preprocessor, built in the mmrs
            registry so that ``type='ChangeDataPreprocessor'`` works without a default scope;
            ``None`` means a ``ChangeDataPreprocessor`` that only casts, pads and stacks.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ChangeDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.train_cfg = ConfigDict(train_cfg or {})
        self.test_cfg = ConfigDict(test_cfg or {})
        #: ``align_corners`` of the final resize; subclasses copy their decode head's.
        self.align_corners = False

    def forward(self,
                inputs: Tensor,
                data_samples: OptSampleList = None,
                mode: str = 'tensor') -> dict[str, Tensor] | SampleList | Any:
        """Dispatch to :meth:`loss`, :meth:`predict` or :meth:`_forward`.

        Args:
            inputs: ``(N, 2, C, H, W)`` batch from the data preprocessor.
            data_samples: One :class:`ChangeDataSample` per pair (labels for ``loss``).
            mode: ``'loss'`` (dict of losses), ``'predict'`` (data samples with
                predictions) or ``'tensor'`` (raw head outputs).

        Raises:
            RuntimeError: If ``mode`` is unknown.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'invalid mode {mode!r}; expected "loss", "predict" or "tensor"')

    @abstractmethod
    def extract_feat(self, inputs: Tensor) -> Any:
        """Features of a ``(N, 2, C, H, W)`` batch, as the decode head consumes them."""

    @abstractmethod
    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict[str, Tensor]:
        """Losses of a batch with labels."""

    @abstractmethod
    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Predictions at each sample's ``ori_shape``, written into the data samples."""

    @abstractmethod
    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Any:
        """Raw network outputs, without post-processing."""

    def encode_decode(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        """Logits ``(N, K, H, W)`` at the spatial size of ``inputs`` (used by inference).

        Raises:
            NotImplementedError: Unless a subclass implements it.
        """
        raise NotImplementedError(
            f'{type(self).__name__} must implement encode_decode to use whole/slide inference')

    @property
    def threshold(self) -> float:
        """Probability threshold for single-channel (sigmoid) outputs."""
        value = self.test_cfg.get('threshold', None)
        if value is None:
            value = getattr(getattr(self, 'decode_head', None), 'threshold', None)
        return 0.5 if value is None else float(value)

    @staticmethod
    def batch_img_metas(inputs: Tensor, data_samples: OptSampleList) -> list[dict]:
        """Metainfo of each sample, or whole-input defaults when there are no samples."""
        if data_samples is not None:
            return [sample.metainfo for sample in data_samples]
        shape = tuple(inputs.shape[-2:])
        return [dict(ori_shape=shape, img_shape=shape, pad_shape=shape)
                for _ in range(inputs.shape[0])]

    def inference(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        """Logits of the padded batch, by ``test_cfg.mode`` (``whole`` or ``slide``).

        Raises:
            ValueError: If the mode is unknown.
        """
        mode = self.test_cfg.get('mode', 'whole')
        if mode == 'whole':
            return self.whole_inference(inputs, batch_img_metas)
        if mode == 'slide':
            return self.slide_inference(inputs, batch_img_metas)
        raise ValueError(f'unknown test mode {mode!r}; expected "whole" or "slide"')

    def whole_inference(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        """Run the whole padded batch at once; logits ``(N, K, H, W)``."""
        size = tuple(inputs.shape[-2:])
        metas = [dict(meta, pad_shape=size) for meta in batch_img_metas]
        logits = self.encode_decode(inputs, metas)
        return self._resize_to(logits, size)

    def slide_inference(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        """Run overlapping windows and average the logits where they overlap.

        Windows follow mmseg's grid (the last row/column is shifted back inside the image;
        an image smaller than the window is run whole). ``crop_batch_size`` windows are
        concatenated along the batch axis per forward pass.

        Returns:
            Logits ``(N, K, H, W)``.

        Raises:
            ValueError: If ``test_cfg`` lacks ``crop_size`` or ``stride``.
        """
        if 'crop_size' not in self.test_cfg or 'stride' not in self.test_cfg:
            raise ValueError("test_cfg mode='slide' needs crop_size and stride")
        h_stride, w_stride = _pair(self.test_cfg.stride)
        h_crop, w_crop = _pair(self.test_cfg.crop_size)
        per_pass = max(int(self.test_cfg.get('crop_batch_size', 1)), 1)
        n = inputs.shape[0]
        h_img, w_img = inputs.shape[-2:]
        h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
        w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
        windows = []
        for h_idx in range(h_grids):
            for w_idx in range(w_grids):
                y2 = min(h_idx * h_stride + h_crop, h_img)
                x2 = min(w_idx * w_stride + w_crop, w_img)
                windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))

        preds: Tensor | None = None
        count = inputs.new_zeros((1, 1, h_img, w_img))
        for start in range(0, len(windows), per_pass):
            chunk = windows[start:start + per_pass]
            crops = torch.cat([inputs[..., y1:y2, x1:x2] for y1, y2, x1, x2 in chunk])
            crop_shape = tuple(crops.shape[-2:])
            metas = [dict(meta, img_shape=crop_shape, pad_shape=crop_shape)
                     for _ in chunk for meta in batch_img_metas]
            logits = self._resize_to(self.encode_decode(crops, metas), crop_shape)
            if preds is None:
                preds = logits.new_zeros((n, logits.shape[1], h_img, w_img))
            for k, (y1, y2, x1, x2) in enumerate(chunk):
                preds[..., y1:y2, x1:x2] += logits[k * n:(k + 1) * n]
                count[..., y1:y2, x1:x2] += 1
        assert (count > 0).all(), 'sliding windows must cover every pixel'
        return preds / count

    def _resize_to(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(
            logits, size=tuple(size), mode='bilinear', align_corners=self.align_corners)

    def restore_logits(self, logits: Tensor, img_meta: dict) -> Tensor:
        """Bring one sample's ``(K, H, W)`` logits of the padded batch to ``ori_shape``.

        In this order (the inverse of the pipeline's normal form, see
        :mod:`mmrs.structures.geometry`): the preprocessor's ``padding_size`` is cut off
        (``img_shape`` without it), then the pipeline's ``img_padding_size`` (``PairedPad``),
        so padding is never stretched into the image; recorded quarter turns
        (``rotate90_k``) and the ``flip`` are undone; the result is resized bilinearly to
        ``ori_shape``. Missing keys mean "nothing to undo".

        Raises:
            ValueError: If the recorded flip direction is unknown or a padding does not fit.
        """
        if img_meta.get('padding_size') is not None:
            logits = crop_padding(logits, img_meta['padding_size'])
        else:
            h, w = tuple(img_meta.get('img_shape', logits.shape[-2:]))[:2]
            logits = logits[:, :h, :w]
        logits = crop_padding(logits, img_meta.get('img_padding_size'))
        logits = undo_orientation(logits, img_meta)
        ori_shape = tuple(img_meta.get('ori_shape', logits.shape[-2:]))[:2]
        return self._resize_to(logits[None], ori_shape)[0]

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """Write ``seg_logits`` and ``pred_sem_seg`` into the data samples.

        Args:
            seg_logits: Logits ``(N, K, H, W)`` of the padded batch.
            data_samples: The batch's samples; ``None`` creates new ones (no crop/resize).

        Returns:
            The samples, each with ``seg_logits`` (``(K, H0, W0)``, before softmax/sigmoid)
            and ``pred_sem_seg`` (``(1, H0, W0)`` long: argmax for ``K > 1``,
            ``sigmoid > threshold`` for ``K == 1``) at ``ori_shape``.
        """
        n, k = seg_logits.shape[:2]
        if data_samples is None:
            data_samples = [ChangeDataSample() for _ in range(n)]
        for i, sample in enumerate(data_samples):
            logits = self.restore_logits(seg_logits[i], sample.metainfo)
            if k > 1:
                pred = logits.argmax(dim=0, keepdim=True)
            else:
                pred = (logits.sigmoid() > self.threshold).long()
            sample.set_data(
                dict(seg_logits=PixelData(data=logits), pred_sem_seg=PixelData(data=pred)))
        return data_samples
