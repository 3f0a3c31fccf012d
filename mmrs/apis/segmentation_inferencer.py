"""Streaming single-image segmentation on whole scenes: one GeoTIFF in, a georeferenced class
map out, with any mmseg segmentor config.

:class:`SegmentationInferencer` reuses the tiling loop of
:class:`~mmrs.apis.change_inferencer.TiledInferencer` (background reader, batched model,
bounded-memory blending, block-wise writer) on one raster read by
:func:`mmrs.geo.single.open_single`; it only says how tiles become class probabilities.

The model is built from the config through the registries (``type='EncoderDecoder'`` with
``default_scope='mmseg'``, or ``type='mmseg.EncoderDecoder'`` with ``default_scope='mmrs'``).
Preprocessing is the config's test pipeline after its image-loading step, run on each tile as
that loader would have produced it:

- ``LoadImageFromFile`` (mmcv, the usual mmseg loader) decodes a TIFF with OpenCV, which gives
  3-channel BGR for ``color_type='color'`` (RGB(A) files; the alpha is dropped; a single band is
  repeated three times) and keeps the bands for ``'unchanged'`` (the first three reversed, as
  OpenCV does); ``to_float32`` is honoured;
- ``LoadSingleRSImageFromFile`` (mmseg's GDAL loader) keeps the bands in file order, float32
  unless ``to_float32=False``.

Annotation loading is dropped; the data preprocessor (mean/std, ``bgr_to_rgb``, padding) and
``test_step`` (``test_cfg`` included; mmseg resizes the logits back to the tile) follow. Class
probabilities are the softmax of the logits (sigmoid for one-channel heads).
"""
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrs.apis.change_inferencer import InferenceSummary, TiledInferencer
from mmrs.geo.single import SingleRaster, open_single
from mmrs.geo.tiling import Tile, TileGrid

#: Image loaders of mmseg/mmcv test pipelines that the windowed reader replaces.
IMAGE_LOADERS = ('LoadImageFromFile', 'LoadSingleRSImageFromFile')


def _split_pipeline(pipeline: Sequence[dict]) -> tuple[dict, list[dict]]:
    """``(loader step, steps after it)``: annotation loading dropped, other loaders refused."""
    loader, rest = None, []
    for step in pipeline:
        name = str(step.get('type', '')).split('.')[-1]
        if name in IMAGE_LOADERS and loader is None:
            loader = dict(step, type=name)
        elif name.startswith('Load') and 'Annotation' in name:
            continue
        elif name.startswith('Load'):
            raise ValueError(f'the test pipeline loads images with {name}, which whole-scene '
                             f'inference cannot replace; use one of {IMAGE_LOADERS}')
        else:
            rest.append(step)
    if loader is None:
        raise ValueError(f'the test pipeline has no image loader ({" / ".join(IMAGE_LOADERS)}):'
                         ' the preprocessing of test.py is unknown')
    return loader, rest


def as_loaded(img: np.ndarray, loader: dict) -> np.ndarray:
    """A ``(h, w, C)`` window as the config's image loader would have decoded the file."""
    if loader['type'] == 'LoadSingleRSImageFromFile':
        return img.astype(np.float32) if loader.get('to_float32', True) else img
    color = loader.get('color_type', 'color')
    if color == 'color':
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        elif img.shape[2] >= 3:
            img = img[..., 2::-1]
        else:
            raise ValueError(f'LoadImageFromFile(color_type="color") needs 1 or >= 3 bands, '
                             f'the raster has {img.shape[2]}')
    elif color == 'grayscale':
        raise ValueError('LoadImageFromFile(color_type="grayscale") converts colours with '
                         "OpenCV's weights; select one band with --bands and color_type="
                         '"unchanged" instead')
    elif img.shape[2] >= 3:
        img = np.concatenate([img[..., 2::-1], img[..., 3:]], axis=2)
    img = np.ascontiguousarray(img)
    return img.astype(np.float32) if loader.get('to_float32', False) else img


class SegmentationInferencer(TiledInferencer):
    """Whole-scene semantic segmentation with an mmseg segmentor.

    The output's bands are described as ``class`` and ``class_probability`` (the change
    inferencer writes ``change_class`` / ``change_probability``).

    Args:
        config: Config path (``mmrs::...`` and shipped names allowed) or ``Config``.
        checkpoint: Checkpoint file (mmrs' safe loader); ``None`` keeps the initial weights.
        device: ``'cpu'``, ``'cuda'`` ...
        amp: Mixed precision (float16 on CUDA, bfloat16 on the CPU).
        allow_key_mismatch: Load a checkpoint that does not fit the model partially.

    Example:
        >>> inferencer = SegmentationInferencer('my_segformer.py', 'ckpt.pth')
        >>> print(inferencer('scene.tif', 'classes.tif', probability=True))
    """

    band_descriptions = ('class', 'class_probability')

    def __init__(self, config: Any, checkpoint: str | None = None, device: str = 'cpu',
                 amp: bool = False, allow_key_mismatch: bool = False) -> None:
        import torch
        from mmengine.config import Config
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope
        from mmseg.models import BaseSegmentor
        from mmseg.utils import register_all_modules

        import mmrs.models  # noqa: F401  (registers mmrs' models for mixed configs)
        from mmrs.registry import MODELS
        from mmrs.utils.config_path import resolve_config

        register_all_modules(init_default_scope=False)
        cfg = config if isinstance(config, Config) else Config.fromfile(resolve_config(config))
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        self.cfg, self.device, self.amp = cfg, torch.device(device), amp
        self.model = MODELS.build(cfg.model)
        if not isinstance(self.model, BaseSegmentor):
            raise ValueError(f'{type(self.model).__name__} is not an mmseg segmentor '
                             '(mmseg.models.BaseSegmentor); change detectors go through '
                             'ChangeDetectionInferencer (tools/infer.py --t1/--t2)')
        if checkpoint is not None:
            self._load(checkpoint, allow_key_mismatch)
        self.model.to(self.device).eval()
        self.out_channels = int(self.model.decode_head.out_channels)
        self.channels = 1 if self.out_channels == 1 else self.out_channels
        self.threshold = float(getattr(self.model.decode_head, 'threshold', None) or 0.5)
        pipeline = self._test_pipeline(cfg)
        self.loader, steps = _split_pipeline(pipeline)
        self.pipeline = Compose(steps)

    def prepare_tile(self, pair: SingleRaster, tile: Tile, img1: np.ndarray,
                     img2: None, invalid: np.ndarray) -> Any:
        """Run the config's test steps on a tile, as its image loader would give it."""
        img = as_loaded(img1, self.loader)
        results = dict(img=img, img_path=pair.path, img_shape=img.shape[:2],
                       ori_shape=img.shape[:2], geo_meta=pair.geo_meta(tile.y, tile.x),
                       seg_fields=[], reduce_zero_label=False,
                       sample_idx=tile.row * 100000 + tile.col)
        return self.pipeline(results)

    def predict_tiles(self, pair: SingleRaster, tiles: Sequence[Tile],
                      inputs: Sequence[Any]) -> list[np.ndarray]:
        """Class probabilities of each tile through the segmentor's ``test_step``.

        mmseg's data preprocessor stacks a test batch without padding, so tiles of one shape
        (the scene's edge tiles are smaller) go through the model together.
        """
        import torch
        groups: dict[tuple, list[int]] = {}
        for i, d in enumerate(inputs):
            groups.setdefault(tuple(d['inputs'].shape), []).append(i)
        autocast = torch.autocast(self.device.type,
                                  dtype=torch.float16 if self.device.type == 'cuda'
                                  else torch.bfloat16, enabled=self.amp)
        probs: list = [None] * len(inputs)
        for members in groups.values():
            data = dict(inputs=[inputs[i]['inputs'] for i in members],
                        data_samples=[inputs[i]['data_samples'] for i in members])
            with torch.no_grad(), autocast:
                samples = self.model.test_step(data)
            for i, sample in zip(members, samples):
                logits = sample.seg_logits.data.float()
                p = logits.sigmoid() if logits.shape[0] == 1 else logits.softmax(dim=0)
                probs[i] = p.cpu().numpy()
        return probs

    def protocol(self, grid: TileGrid) -> str:
        mode = self.model.test_cfg.get('mode', 'whole') if self.model.test_cfg else 'whole'
        return (f'{grid.protocol()}; per tile: config test pipeline ({self.loader["type"]}) '
                f'+ data_preprocessor, test_cfg.mode={mode}, amp={self.amp}')

    def __call__(self, image: str, out: str | Path, probability: bool | str = False,
                 tile: int = 512, overlap: int = 128, batch: int = 8,
                 bands: str | Sequence[int] | None = None, blending: str = 'cosine',
                 cog: bool = False, overwrite: bool = False, quiet: bool = False,
                 nodata: float | None = None) -> InferenceSummary:
        """Predict the class map of ``image`` and write it to ``out`` (all or nothing).

        Args:
            image: Input raster.
            out: Output GeoTIFF: band 1 classes (nodata 255), with ``probability`` band 2 the
                probability of the predicted class.
            probability: ``True``/``'uint8'`` or ``'float32'``.
            tile, overlap, batch, blending: Tiling protocol (see :class:`TileGrid`).
            bands: 1-based bands (``'1,2,3'``); default all but an alpha band.
            cog: Cloud Optimized GeoTIFF output.
            overwrite: Replace an existing output.
            quiet: No progress bar.
            nodata: Nodata value overriding the file's.

        Returns:
            The run's :class:`InferenceSummary` (``changed_*`` count pixels of classes != 0).
        """
        from mmrs.geo.atomic import check_outputs
        check_outputs([out], overwrite)  # before opening anything
        with open_single(image, bands=bands, nodata=nodata) as raster:
            return self.run(raster, out, probability=probability, tile=tile, overlap=overlap,
                            batch=batch, blending=blending, cog=cog, overwrite=overwrite,
                            quiet=quiet)
