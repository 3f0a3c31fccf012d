"""Visualizer that draws one bitemporal sample as a row of titled panels a reviewer can judge.

Layout (top to bottom), see :mod:`mmrs.visualization.panels` for the sizes and colours:

- caption strip (``CAPTION_HEIGHT``): file stem, per-image change F1 / IoU (from the maps);
- row 1: ``date 1 | date 2 | prediction | ground truth`` (each with a ``TITLE_HEIGHT`` title,
  ``GAP`` pixels between panels). The prediction panel shows the predicted change on date 2
  (TP green, FP red); the ground-truth panel shows the labelled change (TP green, FN
  magenta, ignored pixels grey). Each panel thus keeps the exact shape of its own map while
  the colours tell where the two disagree. Without a counterpart the change is yellow;
- row 2, only for semantic change: the per-date semantic maps (predicted, then GT) over their
  date, classes coloured with ``semantic_palette`` from the dataset meta;
- legend strip (``LEGEND_HEIGHT`` per line).
"""
import os
import os.path as osp
import warnings
from collections.abc import Sequence

import cv2
import numpy as np
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from mmrs.registry import VISUALIZERS
from mmrs.structures import ChangeDataSample
from mmrs.structures.geometry import restore_label_map
from . import panels as P


def _label_map(data_sample: ChangeDataSample, key: str, hw: tuple[int, int]) -> np.ndarray | None:
    """``(H, W)`` int map of field ``key`` at the images' size ``hw``, or None.

    A sample that carries a prediction is drawn on the prediction's grid, the original size
    (``ori_shape``): its ground-truth maps are brought there with
    :func:`~mmrs.structures.restore_label_map`, exactly as the metrics do (pipeline padding
    cut off, flips undone; a resized label is a ``ValueError``). Other maps (e.g. a
    pipeline's output in ``browse_dataset.py``) are drawn as they are, nearest-resized with
    a warning if they do not match the images.
    """
    if data_sample is None or key not in data_sample:
        return None
    data = data_sample.get(key).data
    data = data.cpu().numpy() if hasattr(data, 'cpu') else np.asarray(data)
    if key.startswith('gt_') and 'pred_sem_seg' in data_sample:
        paths = data_sample.metainfo.get('img_path')
        data = restore_label_map(data, data_sample.metainfo, hw, field=key,
                                 where=f'img_path={paths}' if paths else 'sample')
    data = data.reshape(data.shape[-2:]).astype(np.int64)
    if data.shape != tuple(hw):
        warnings.warn(f'{key} has shape {data.shape} but the image is {tuple(hw)}; '
                      'resizing the map (nearest) for display only')
        data = cv2.resize(data.astype(np.int32), (hw[1], hw[0]),
                          interpolation=cv2.INTER_NEAREST).astype(np.int64)
    return data


def _stem(data_sample: ChangeDataSample | None, fallback: str) -> str:
    """File stem(s) of the pair: one stem when both dates share it (LEVIR-CD style)."""
    paths = data_sample.metainfo.get('img_path') if data_sample is not None else None
    if not paths:
        return fallback
    if isinstance(paths, str):
        paths = [paths]
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    return stems[0] if len(set(stems)) == 1 else ' | '.join(stems)


@VISUALIZERS.register_module()
class ChangeLocalVisualizer(Visualizer):
    """Draw image pairs with their change prediction / ground truth into panel figures.

    Args:
        name: Instance name (mmengine's ``ManagerMixin``).
        image: Optional initial image (RGB).
        vis_backends: Visual backend configs; ``add_image`` goes to all of them.
        save_dir: Save directory of the backends.
        rgb_bands: Bands shown as R, G, B for images with 3 or more bands (pipeline order).
        percentiles: Per-band stretch range for images that are not 1-3 band ``uint8``.
        alpha: Opacity of the change / class colours over the image (1 = solid colour).
        overlay_on: ``'date2'`` draws the change maps over date 2, ``'grey'`` over a grey
            copy of date 2 (colours stand out better on colourful scenes).
        ignore_index: Label value that means "ignored" in ground-truth maps.
        **kwargs: Passed to :class:`mmengine.visualization.Visualizer`.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: np.ndarray | None = None,
                 vis_backends: list[dict] | None = None,
                 save_dir: str | None = None,
                 rgb_bands: Sequence[int] = (0, 1, 2),
                 percentiles: Sequence[float] = (2., 98.),
                 alpha: float = 0.6,
                 overlay_on: str = 'date2',
                 ignore_index: int = 255,
                 **kwargs) -> None:
        super().__init__(name, image, vis_backends, save_dir, **kwargs)
        if overlay_on not in ('date2', 'grey'):
            raise ValueError(f"overlay_on must be 'date2' or 'grey', got {overlay_on!r}")
        self.rgb_bands = tuple(rgb_bands)
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))
        self.alpha = alpha
        self.overlay_on = overlay_on
        self.ignore_index = ignore_index

    def to_rgb(self, img: np.ndarray) -> np.ndarray:
        """Displayable RGB ``uint8`` picture of one date (band choice + percentile stretch)."""
        return P.to_display_rgb(np.asarray(img), self.rgb_bands, self.percentiles)

    def draw_change_panels(self,
                           image_pair: tuple[np.ndarray, np.ndarray],
                           data_sample: ChangeDataSample | None = None,
                           draw_gt: bool = True,
                           draw_pred: bool = True,
                           caption: str | None = None) -> np.ndarray:
        """Compose the full figure (see the module docstring) and return it as RGB ``uint8``."""
        rgb1, rgb2 = self.to_rgb(image_pair[0]), self.to_rgb(image_pair[1])
        if rgb1.shape != rgb2.shape:
            raise ValueError(f'the two dates differ in size: {rgb1.shape[:2]} vs {rgb2.shape[:2]}')
        hw = rgb1.shape[:2]
        get = lambda key, on: _label_map(data_sample, key, hw) if on else None  # noqa: E731
        pred, gt = get('pred_sem_seg', draw_pred), get('gt_sem_seg', draw_gt)
        base = rgb2 if self.overlay_on == 'date2' else P.to_grey_rgb(rgb2)
        a, ign = self.alpha, self.ignore_index
        legend: list[tuple[str, P.Color] | None] = []

        row1 = [P.titled(rgb1, 'date 1'), P.titled(rgb2, 'date 2')]
        metrics = ''
        if pred is not None and gt is not None:
            tp, fp, fn = P.confusion_masks(pred, gt, ign)
            pred_panel = P.paint(P.paint(base, tp, P.TP_COLOR, a), fp, P.FP_COLOR, a)
            gt_panel = P.paint(P.paint(base, tp, P.TP_COLOR, a), fn, P.FN_COLOR, a)
            f1, iou = P.change_scores(pred, gt, ign)
            metrics = ('F1 -  IoU -  (no change)' if f1 is None else
                       f'F1 {f1:.3f}  IoU {iou:.3f}')
            legend += [('TP', P.TP_COLOR), ('FP (false alarm)', P.FP_COLOR),
                       ('FN (missed)', P.FN_COLOR)]
        else:
            pred_panel = None if pred is None else P.paint(base, pred == 1, P.CHANGE_COLOR, a)
            gt_panel = None if gt is None else P.paint(base, gt == 1, P.CHANGE_COLOR, a)
            if pred is not None or gt is not None:
                legend.append(('change', P.CHANGE_COLOR))
            if gt is not None:
                metrics = f'GT change {100 * float((gt == 1).mean()):.1f}%'
            elif pred is not None:
                metrics = f'predicted change {100 * float((pred == 1).mean()):.1f}%'
        if gt is not None and (gt == ign).any():
            gt_panel = P.paint(gt_panel, gt == ign, P.IGNORE_COLOR, a)
            legend.append(('ignore', P.IGNORE_COLOR))
        if pred_panel is not None:
            row1.append(P.titled(pred_panel, 'prediction'))
        if gt_panel is not None:
            row1.append(P.titled(gt_panel, 'ground truth'))
        rows = [P.hstack(row1)]

        row2, classes_seen = self._semantic_row(data_sample, (rgb1, rgb2), hw, draw_gt, draw_pred)
        if row2:
            rows.append(P.hstack(row2))
        body = P.vstack(rows, gap=P.GAP)
        width = body.shape[1]
        legend += self._semantic_legend(classes_seen)

        text = caption if caption is not None else _stem(data_sample, 'sample')
        if metrics:
            text = f'{text}   {metrics}'
        parts = [P.text_strip(width, P.CAPTION_HEIGHT, text), body]
        if legend:
            parts.append(P.legend_strip(width, legend))
        return np.concatenate(parts, axis=0)

    def _semantic_palette(self) -> list:
        meta = self.dataset_meta or {}
        palette = meta.get('semantic_palette')
        n = len(meta.get('semantic_classes') or ()) or 16
        return list(palette) if palette else P.default_palette(max(n, 2))

    def _semantic_row(self, data_sample, rgbs, hw, draw_gt, draw_pred):
        """Per-date semantic panels (pred then GT) and the set of classes they show."""
        palette = self._semantic_palette()
        panels, seen = [], set()
        for kind, on in (('pred', draw_pred), ('gt', draw_gt)):
            for date, (suffix, rgb) in enumerate((('from', rgbs[0]), ('to', rgbs[1])), 1):
                label = _label_map(data_sample, f'{kind}_sem_seg_{suffix}', hw) if on else None
                if label is None:
                    continue
                seen.update(int(c) for c in np.unique(label) if c not in (0, self.ignore_index))
                drawn = P.draw_semantic(rgb, label, palette, self.alpha, self.ignore_index)
                title = f"date {date} semantic ({'pred' if kind == 'pred' else 'GT'})"
                panels.append(P.titled(drawn, title))
        return panels, seen

    def _semantic_legend(self, classes: set[int]) -> list[tuple[str, P.Color] | None]:
        if not classes:
            return []
        palette = self._semantic_palette()
        names = list((self.dataset_meta or {}).get('semantic_classes') or ())
        return [None] + [(names[c] if c < len(names) else f'class {c}',
                          tuple(palette[c % len(palette)])) for c in sorted(classes)]

    @master_only
    def add_datasample(self,
                       name: str,
                       image_pair: tuple[np.ndarray, np.ndarray],
                       data_sample: ChangeDataSample | None = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: str | None = None,
                       step: int = 0,
                       caption: str | None = None) -> None:
        """Draw one sample; show it, write it to ``out_file``, or send it to the backends.

        As in mmseg's ``SegLocalVisualizer``: ``out_file`` (a PNG path, parents created)
        takes the place of the vis backends; without it the figure goes to every backend
        via ``add_image`` under ``name`` at ``step``.

        Args:
            name: Image identifier for the backends / window title.
            image_pair: The two dates, ``(H, W, C)`` or ``(H, W)``, any dtype, pipeline band
                order, at the size of the maps in ``data_sample`` (``ori_shape`` for
                predictions read back from disk).
            data_sample: Labels and/or predictions; ``None`` draws the two dates only.
            draw_gt: Whether to draw ground-truth maps (and the scores that need them).
            draw_pred: Whether to draw predicted maps.
            show: Display the figure in a window.
            wait_time: Seconds the window stays (0 = until a key press).
            out_file: PNG to write.
            step: Global step for the backends.
            caption: Replaces the file stem in the caption strip.
        """
        caption = caption if caption is not None else _stem(data_sample, name)
        drawn = self.draw_change_panels(image_pair, data_sample, draw_gt, draw_pred, caption)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
            if not cv2.imwrite(out_file, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
                raise OSError(f'could not write {out_file!r}')
        else:
            self.add_image(name, drawn, step)
