"""Hook that draws change predictions during validation and testing (``--show-dir``)."""
import os.path as osp
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.visualization import Visualizer

from mmrs.registry import HOOKS
from mmrs.structures import ChangeDataSample
from mmrs.visualization.panels import read_image


#: Pipeline steps that load the two dates' images (OSCD reads one file per band).
IMAGE_LOADERS = ('LoadBitemporalImages', 'LoadBitemporalBandFiles')


def _find_loader_cfg(cfg: Config | dict | None, mode: str) -> dict | None:
    """The image-loading step (:data:`IMAGE_LOADERS`) of ``cfg.{mode}_dataloader``'s
    pipeline, if any.

    Wrapper datasets (``RepeatDataset``, ``ConcatDataset``...) are followed through their
    ``dataset`` / first ``datasets`` entry.
    """
    if not isinstance(cfg, (Config, dict)):
        return None
    dataset = (cfg.get(f'{mode}_dataloader') or {}).get('dataset')
    while isinstance(dataset, dict) and 'pipeline' not in dataset:
        inner = dataset.get('dataset') or (dataset.get('datasets') or [None])[0]
        dataset = inner
    if not isinstance(dataset, dict):
        return None
    for step in dataset.get('pipeline') or []:
        if isinstance(step, dict) and str(step.get('type', '')).endswith(IMAGE_LOADERS):
            return dict(step)
    return None


@HOOKS.register_module()
class ChangeVisualizationHook(Hook):
    """Draw bitemporal predictions with the current visualizer (``ChangeLocalVisualizer``).

    The two dates are read back from ``data_sample.img_path`` (predictions are at
    ``ori_shape``, so the images from disk line up with them), not taken from the batch,
    which is normalised and padded. They are read the way the pipeline reads them: with
    ``img_loader`` if given, else with the ``LoadBitemporalImages`` step found in the
    runner's ``{val,test}_dataloader`` pipeline (same ``bands``/``backend``, so ``rgb_bands``
    of the visualizer refers to the same band order), else a default one. With
    ``backend_args`` (remote storage) a small reader built on :func:`mmengine.fileio.get`
    is used instead, because the loading transform reads local files.

    - Validation: when ``draw`` is True, every ``interval``-th iteration the first sample of
      the batch goes to the visualizer's vis backends.
    - Test: when ``draw`` is True, every sample is drawn. If ``test_out_dir`` is set (as
      ``tools/test.py --show-dir DIR`` does), each figure is written to
      ``work_dir/timestamp/test_out_dir/<stem>.png`` (an absolute ``test_out_dir`` is used
      as is); otherwise figures go to the vis backends.

    Args:
        draw: Whether to draw at all; off by default because reading and drawing cost time.
        interval: Validation iterations between two drawings.
        show: Display each figure in a window (the vis backends are then dropped, as in
            mmseg, because showing is meant for interactive inspection).
        wait_time: Seconds a shown window stays open.
        backend_args: File backend arguments used to read the images.
        test_out_dir: Folder (relative to ``work_dir/timestamp``) for the test figures.
        img_loader: Config of the loading transform, e.g.
            ``dict(type='LoadBitemporalImages', bands=[4, 3, 2])``.
    """

    def __init__(self,
                 draw: bool = False,
                 interval: int = 50,
                 show: bool = False,
                 wait_time: float = 0.,
                 backend_args: dict | None = None,
                 test_out_dir: str | None = None,
                 img_loader: dict | None = None) -> None:
        self._visualizer: Visualizer = Visualizer.get_current_instance()
        if draw and not hasattr(self._visualizer, 'draw_change_panels'):
            raise TypeError(
                f'ChangeVisualizationHook needs a ChangeLocalVisualizer, but the current '
                f'visualizer is a {type(self._visualizer).__name__}; set '
                "visualizer=dict(type='ChangeLocalVisualizer', ...) in the config")
        self.draw = draw
        self.interval = interval
        self.show = show
        if show:
            self._visualizer._vis_backends = {}
            warnings.warn('show=True: figures are displayed and not stored in the vis '
                          'backends.')
        self.wait_time = wait_time
        self.backend_args = backend_args.copy() if backend_args else None
        self.test_out_dir = test_out_dir
        self.img_loader = dict(img_loader) if img_loader else None
        self._loaders: dict[str, Callable | None] = {}
        self._test_index = 0

    def _build_loader(self, runner: Runner, mode: str) -> Callable | None:
        """The pipeline's image-loading transform for ``mode``, or None for the fallback."""
        if self.backend_args:
            return None
        cfg = self.img_loader or _find_loader_cfg(getattr(runner, 'cfg', None), mode)
        cfg = dict(cfg or dict(type='LoadBitemporalImages'))
        cfg.pop('to_float32', None)  # keep the file dtype: uint8 RGB is then shown unstretched
        try:
            import mmrs.datasets  # noqa: F401  (fills TRANSFORMS)
            from mmrs.registry import TRANSFORMS
            return TRANSFORMS.build(cfg)
        except (ImportError, KeyError) as err:
            warnings.warn(f'cannot build image loader {cfg}: {err}; using a plain reader')
            return None

    def _load_pair(self, runner: Runner, mode: str,
                   data_sample: ChangeDataSample) -> tuple[np.ndarray, np.ndarray]:
        if mode not in self._loaders:
            self._loaders[mode] = self._build_loader(runner, mode)
        loader, paths = self._loaders[mode], list(data_sample.img_path)
        if loader is None:
            return read_image(paths[0], self.backend_args), read_image(paths[1], self.backend_args)
        imgs = loader(dict(img_path=paths))['img']
        return imgs[0], imgs[1]

    @staticmethod
    def _stem(data_sample: ChangeDataSample) -> str:
        return osp.splitext(osp.basename(data_sample.img_path[0]))[0]

    def after_val_iter(self, runner: Runner, batch_idx: int, data_batch: dict,
                       outputs: Sequence[ChangeDataSample]) -> None:
        """Send the first sample of every ``interval``-th batch to the vis backends."""
        if not self.draw or not outputs:
            return
        total_curr_iter = runner.iter + batch_idx
        if total_curr_iter % self.interval != 0:
            return
        sample = outputs[0]
        self._visualizer.add_datasample(
            f'val_{self._stem(sample)}',
            self._load_pair(runner, 'val', sample),
            data_sample=sample,
            show=self.show,
            wait_time=self.wait_time,
            step=total_curr_iter)

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence[ChangeDataSample]) -> None:
        """Draw every test sample, to ``test_out_dir`` when set, else to the backends."""
        if not self.draw:
            return
        out_dir = None
        if self.test_out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
        for sample in outputs:
            self._test_index += 1
            stem = self._stem(sample)
            self._visualizer.add_datasample(
                f'test_{stem}',
                self._load_pair(runner, 'test', sample),
                data_sample=sample,
                show=self.show,
                wait_time=self.wait_time,
                out_file=None if out_dir is None else osp.join(out_dir, f'{stem}.png'),
                step=self._test_index)
