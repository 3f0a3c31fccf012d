"""Streaming rotated object detection on whole scenes: a GeoTIFF (or a large PNG/JPEG) in,
rotated-box polygons (GeoJSON / GeoPackage), an overview picture and Task1 files out.

:class:`RotatedDetectionInferencer` runs any mmrotate 1.x detector config on a scene that is
never read whole:

1. the scene is cut into patches as the DOTA devkit's ``ImgSplit`` does (``patch`` 1024,
   ``overlap`` 200: starts ``0, stride, ...`` and the last patch moved back inside the scene;
   :func:`mmrs.datasets.dota_split.patch_origins`), read window by window
   (:func:`mmrs.geo.single.open_single`) by a background thread; a patch cut by a scene
   smaller than the patch is zero-padded to the patch size, as the devkit pads;
2. each patch goes through the config's test pipeline after its image loader (the window is
   decoded as that loader would have decoded the file: BGR for ``LoadImageFromFile``), then the
   model's data preprocessor and ``test_step`` (``test_cfg``: in-patch NMS, ``max_per_img``) in
   batches of ``batch`` patches;
3. the patch detections above ``score_thr`` are shifted to scene pixels and merged with
   class-wise rotated NMS (IoU ``nms_iou``, 0.1 as the devkit's ``ResultMerge`` and mmrotate),
   :func:`merge_detections`.

Memory: the reader keeps at most ``2 * batch`` patches ahead, the overview is a fixed-size
canvas filled window by window (:class:`Overview`) and only the detections (a few numbers each)
accumulate, so the peak does not grow with the scene's pixels. Formats without random access
(PNG, JPEG) are read one strip of patch rows at a time instead (``patch x width`` pixels), since
their decoders restart from the top for every window.

Outputs: every polygon is the rotated box's four corners in scene pixels (x = column, y = row,
pixel corners at integers), mapped through the geotransform into the image CRS when the image is
georeferenced. They are written with :func:`mmrs.geo.vector_io.write_vector` (GeoJSON is always
EPSG:4326 lon/lat by RFC 7946; GeoPackage keeps the image CRS). Without a geotransform the
coordinates stay pixels: a GeoPackage without CRS, or a GeoJSON that says so in a ``"crs_note"``
member (not RFC 7946: it has no CRS).
"""
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrs.apis.change_inferencer import _END, _Progress, _put, _Worker
from mmrs.geo.single import SingleRaster, open_single

#: Suffixes of the overview picture.
OVERVIEW_SUFFIXES = ('.png', '.jpg', '.jpeg')
#: GDAL drivers that decode windows without restarting from the top of the file.
RANDOM_ACCESS_DRIVERS = ('GTiff', 'COG', 'VRT', 'JP2OpenJPEG', 'HFA', 'MEM')


# ---------------------------------------------------------------------------- geometry
def rbox_corners(boxes: np.ndarray) -> np.ndarray:
    """``(N, 5)`` rotated boxes ``(cx, cy, w, h, angle_rad)`` -> ``(N, 4, 2)`` corners.

    The angle turns the box's ``w`` axis from +x towards +y (clockwise on an image, whose y
    axis points down), as mmrotate's ``RotatedBoxes``.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    cos, sin = np.cos(b[:, 4]), np.sin(b[:, 4])
    u = np.stack([b[:, 2] / 2 * cos, b[:, 2] / 2 * sin], axis=1)
    v = np.stack([-b[:, 3] / 2 * sin, b[:, 3] / 2 * cos], axis=1)
    c = b[:, :2]
    return np.stack([c + u + v, c + u - v, c - u - v, c - u + v], axis=1)


def merge_detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                     iou_thr: float = 0.1, chunk: int = 64) -> np.ndarray:
    """Class-wise rotated NMS over a whole scene; kept indices by descending score.

    Greedy NMS decides a box only against boxes that overlap it, so it gives the same result
    when run separately on groups of boxes whose axis-aligned bounds touch (connected
    components, same class). Single boxes are kept as they are; the other groups are packed
    into NMS calls of about ``chunk`` boxes, because mmcv's CPU kernel compares every pair of
    a call: a scene with a million detections costs many small calls instead of one
    impossible quadratic one. The NMS itself is :func:`mmrs.models.ops.nms.batched_nms_rotated`
    (mmcv's kernel, classes kept apart on the CPU too).
    """
    import torch
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from mmrs.models.ops.nms import batched_nms_rotated
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    corners = rbox_corners(boxes)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    order = np.argsort(lo[:, 0], kind='stable')  # sweep along x for the overlapping pairs
    ends = np.searchsorted(lo[order, 0], hi[order, 0], side='right')
    rows, cols = [], []
    for k in np.flatnonzero(ends > np.arange(n) + 1):  # boxes with a later x-overlapping box
        a, b = order[k], order[k + 1:ends[k]]
        hit = (lo[b, 1] <= hi[a, 1]) & (lo[a, 1] <= hi[b, 1]) & (labels[b] == labels[a])
        rows.append(np.full(int(hit.sum()), a))
        cols.append(b[hit])
    pairs = (np.concatenate(rows), np.concatenate(cols)) if rows else \
        (np.zeros(0, np.int64), np.zeros(0, np.int64))
    graph = coo_matrix((np.ones(len(pairs[0]), bool), pairs), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    by_comp = np.argsort(component, kind='stable')
    groups = np.split(by_comp, np.flatnonzero(np.diff(component[by_comp])) + 1)
    keep = [np.concatenate([g for g in groups if len(g) == 1] or [np.zeros(0, np.int64)])]
    current: list[np.ndarray] = []
    size = 0
    multi = [g for g in groups if len(g) > 1]
    for i, group in enumerate(multi):
        current.append(group)
        size += len(group)
        if size >= chunk or i == len(multi) - 1:
            idx = np.concatenate(current)
            _, k = batched_nms_rotated(torch.from_numpy(boxes[idx]),
                                       torch.from_numpy(scores[idx]),
                                       torch.from_numpy(labels[idx]), float(iou_thr))
            keep.append(idx[k.numpy()])
            current, size = [], 0
    kept = np.concatenate(keep).astype(np.int64)
    return kept[np.argsort(-scores[kept], kind='stable')]


# ---------------------------------------------------------------------------- overview
def class_palette(classes: Sequence[str]) -> list[tuple[int, int, int]]:
    """RGB colour per class: DOTA's palette for DOTA classes, evenly spaced hues otherwise."""
    import colorsys

    from mmrs.datasets.dota import DOTA_CLASSES, DOTA_PALETTE
    for names in DOTA_CLASSES.values():
        if tuple(classes) == tuple(names)[:len(classes)] and len(classes) <= len(DOTA_PALETTE):
            return [tuple(int(v) for v in c) for c in DOTA_PALETTE[:len(classes)]]
    n = max(len(classes), 1)
    return [tuple(int(255 * v) for v in colorsys.hsv_to_rgb(i / n, 0.9, 1.0))
            for i in range(len(classes))]


def _segments(starts: Sequence[int], size: int, out: int) -> tuple[np.ndarray, list]:
    """Footprints ``[f_i, f_{i+1})`` of ``out`` overview pixels over ``size`` scene pixels,
    and for each window start the overview pixels whose footprint begins in its own span
    ``[start_k, start_{k+1})``."""
    foot = (np.arange(out + 1, dtype=np.int64) * size) // out
    uniq = sorted(set(int(s) for s in starts))
    owned = []
    for k, s in enumerate(uniq):
        end = uniq[k + 1] if k + 1 < len(uniq) else size
        owned.append((s, np.flatnonzero((foot[:-1] >= s) & (foot[:-1] < end))))
    return foot, owned


class Overview:
    """A downsampled picture of the scene, filled window by window (area average).

    Every overview pixel is the mean of the scene pixels of its footprint, taken from the one
    window whose span owns the footprint's first pixel (clipped to that window when the
    footprint is longer than the overlap), so each is written once and no seam appears; the
    canvas (at most ``max_side`` pixels a side, 3 bands) is the only memory it keeps.

    Args:
        height, width: Scene size.
        xs, ys: Column and row starts of the windows that will be added.
        max_side: Longest side of the overview (the scene's own size if smaller).
    """

    def __init__(self, height: int, width: int, xs: Sequence[int], ys: Sequence[int],
                 max_side: int = 2048) -> None:
        scale = min(1.0, max_side / max(height, width))
        self.height, self.width = height, width
        self.oh, self.ow = max(1, round(height * scale)), max(1, round(width * scale))
        self.fy, self.own_y = _segments(ys, height, self.oh)
        self.fx, self.own_x = _segments(xs, width, self.ow)
        self._own_y, self._own_x = dict(self.own_y), dict(self.own_x)
        self.canvas = np.zeros((self.oh, self.ow, 3), np.float32)
        self.dtype: np.dtype | None = None

    def add(self, y: int, x: int, img: np.ndarray) -> None:
        """Add the window at ``(y, x)`` (``(h, w, C)``, not padded)."""
        iy, ix = self._own_y.get(int(y)), self._own_x.get(int(x))
        if iy is None or ix is None or not iy.size or not ix.size:
            return
        self.dtype = img.dtype
        rgb = img[..., :3] if img.shape[2] >= 3 else img[..., :1].repeat(3, axis=2)
        h, w = rgb.shape[:2]
        part = self._reduce(rgb.astype(np.float32), self.fy, iy, y, h, axis=0)
        part = self._reduce(part, self.fx, ix, x, w, axis=1)
        self.canvas[iy[0]:iy[-1] + 1, ix[0]:ix[-1] + 1] = part

    @staticmethod
    def _reduce(arr: np.ndarray, foot: np.ndarray, idx: np.ndarray, start: int, length: int,
                axis: int) -> np.ndarray:
        lo = foot[idx] - start
        hi = np.minimum(foot[idx + 1] - start, length)
        first, last = int(lo[0]), int(hi[-1])
        sub = np.take(arr, np.arange(first, last), axis=axis)
        sums = np.add.reduceat(sub, lo - first, axis=axis)
        counts = (hi - lo).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = -1
        return sums / counts.reshape(shape)

    def picture(self) -> np.ndarray:
        """The canvas as 8-bit RGB (other dtypes stretched between the 2nd and 98th
        percentile of each band)."""
        if self.dtype is None or self.dtype == np.uint8:
            return np.clip(np.rint(self.canvas), 0, 255).astype(np.uint8)
        out = np.empty(self.canvas.shape, np.uint8)
        for b in range(3):
            lo, hi = np.percentile(self.canvas[..., b], [2, 98])
            scaled = (self.canvas[..., b] - lo) / max(hi - lo, 1e-12)
            out[..., b] = np.clip(np.rint(255 * scaled), 0, 255)
        return out

    def draw(self, corners: np.ndarray, labels: np.ndarray,
             palette: Sequence[tuple[int, int, int]], thickness: int = 2) -> np.ndarray:
        """The picture (BGR, for OpenCV) with the ``(N, 4, 2)`` scene-pixel polygons drawn."""
        import cv2
        pic = np.ascontiguousarray(self.picture()[..., ::-1])
        scale = np.array([self.ow / self.width, self.oh / self.height])
        for c in np.unique(labels):
            pts = np.rint(corners[labels == c] * scale * 16).astype(np.int32)
            r, g, b = palette[int(c) % len(palette)] if palette else (255, 0, 0)
            cv2.polylines(pic, list(pts), True, (b, g, r), thickness, cv2.LINE_AA, shift=4)
        return pic


# ---------------------------------------------------------------------------- results
@dataclass
class Detections:
    """Rotated detections of one scene, in scene pixels.

    Attributes:
        boxes: ``(N, 5)`` ``(cx, cy, w, h, angle_rad)`` (mmrotate's le90 ``RotatedBoxes``).
        scores: ``(N,)``.
        labels: ``(N,)`` class indices into ``classes``.
        classes: Class names.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.scores)

    def corners(self) -> np.ndarray:
        """``(N, 4, 2)`` corner polygons in scene pixels."""
        return rbox_corners(self.boxes)


@dataclass
class DetectionSummary:
    """What one scene's run produced (printed by ``tools/detect.py``).

    Attributes:
        out: Vector output.
        protocol: Patching / preprocessing / merge protocol.
        height, width: Scene size.
        patches, skipped: Patches in the grid and patches not predicted (all nodata).
        detections: Detections after the merge.
        per_class: Class name -> detections after the merge.
        raw_detections: Patch detections above the score threshold, before the merge.
        crs: ``'pixel'`` or the CRS of the polygons in ``out``.
        files: Every file written.
        wall_s: Wall time of the run.
    """

    out: str
    protocol: str
    height: int
    width: int
    patches: int
    skipped: int = 0
    detections: int = 0
    raw_detections: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    crs: str = 'pixel'
    files: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def __str__(self) -> str:
        counts = ', '.join(f'{k}: {v}' for k, v in self.per_class.items() if v) or 'none'
        return (f'{self.out}: {self.height}x{self.width} px, {self.patches} patches '
                f'({self.skipped} all-nodata skipped), {self.detections} detections '
                f'({self.raw_detections} before the merge; {counts}); polygons in {self.crs}; '
                f'{self.wall_s:.2f} s\n  protocol: {self.protocol}')


# ---------------------------------------------------------------------------- inferencer
class RotatedDetectionInferencer:
    """Whole-scene rotated object detection with an mmrotate 1.x detector config.

    Args:
        config: Config path (``mmrs::...`` and shipped names allowed) or ``Config``; the model
            is built through the registries (``default_scope`` ``'mmrs'`` with
            ``mmdet.``/``mmrotate.`` prefixes, or ``'mmrotate'``).
        checkpoint: Checkpoint file, loaded through mmrs' safe loader; ``None`` keeps the
            config's initial weights (tests).
        device: ``'cpu'``, ``'cuda'`` ...
        classes: Class names; default the checkpoint's ``dataset_meta``, else the config's
            dataset ``metainfo`` or dataset class, else ``class0, class1, ...``.
        allow_key_mismatch: Load a checkpoint that does not fit the model partially.

    Example:
        >>> det = RotatedDetectionInferencer('rotated_retinanet_dota.py', 'ckpt.pth')
        >>> print(det('scene.tif', 'ships.gpkg', overview='scene.jpg'))
    """

    def __init__(self, config: Any, checkpoint: str | None = None, device: str = 'cpu',
                 classes: Sequence[str] | None = None,
                 allow_key_mismatch: bool = False) -> None:
        import torch
        from mmengine.config import Config
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope
        from mmrotate.utils import register_all_modules

        import mmrs.datasets  # noqa: F401  (registers mmrs' transforms and datasets)
        import mmrs.models  # noqa: F401  (registers the models; CPU paths of rotated ops)
        from mmrs.apis.change_inferencer import TiledInferencer
        from mmrs.apis.segmentation_inferencer import _split_pipeline
        from mmrs.registry import MODELS
        from mmrs.utils.config_path import resolve_config

        register_all_modules(init_default_scope=False)
        cfg = config if isinstance(config, Config) else Config.fromfile(resolve_config(config))
        init_default_scope(cfg.get('default_scope', 'mmrs'))
        self.cfg, self.device = cfg, torch.device(device)
        self.model = MODELS.build(cfg.model)
        self._ckpt_meta: dict = {}
        if checkpoint is not None:
            self._ckpt_meta = self._load(checkpoint, allow_key_mismatch)
        self.model.to(self.device).eval()
        self.loader, steps = _split_pipeline(TiledInferencer._test_pipeline(cfg))
        self.pipeline = Compose(steps)
        self.classes = tuple(classes) if classes is not None else self._classes()

    def _load(self, checkpoint: str, allow_key_mismatch: bool) -> dict:
        """Load the weights (mmrs' safe loader); return the checkpoint's ``meta``."""
        from mmrs.utils.checkpoint import load_checkpoint_into
        return load_checkpoint_into(self.model, checkpoint, allow_key_mismatch)

    def _num_classes(self) -> int:
        """Classes of the detector's (last) box head; 0 when it has none."""
        import torch
        head = getattr(self.model, 'bbox_head', None)
        if head is None and hasattr(self.model, 'roi_head'):  # two-stage / cascade
            head = getattr(self.model.roi_head, 'bbox_head', None)
            head = head[-1] if isinstance(head, torch.nn.ModuleList) else head
        return int(getattr(head, 'num_classes', 0) or 0)

    def _classes(self) -> tuple[str, ...]:
        names = (self._ckpt_meta.get('dataset_meta') or {}).get('classes')
        if not names:
            dataset = (self.cfg.get('test_dataloader') or {}).get('dataset') or {}
            names = (dataset.get('metainfo') or {}).get('classes')
            if not names and dataset.get('type'):
                from mmrs.registry import DATASETS
                try:
                    cls = DATASETS.get(dataset['type'])
                    names = getattr(cls, 'METAINFO', {}).get('classes') if cls else None
                except Exception:  # noqa: BLE001  (unknown dataset type: fall back to indices)
                    names = None
        n = self._num_classes()
        names = tuple(str(c) for c in names) if names else ()
        if n and len(names) != n:
            names = tuple(f'class{i}' for i in range(n))
        return names

    # ------------------------------------------------------------------ per patch
    def prepare_patch(self, raster: SingleRaster, img: np.ndarray, name: str) -> Any:
        """The config's test steps on one (padded) patch, as its image loader would give it."""
        from mmrs.apis.segmentation_inferencer import as_loaded
        img = as_loaded(img, self.loader)
        results = dict(img=img, img_path=raster.path, img_id=name, img_shape=img.shape[:2],
                       ori_shape=img.shape[:2], scale_factor=(1.0, 1.0))
        return self.pipeline(results)

    def predict_patches(self, inputs: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]]:
        """``(boxes (N, 5), scores, labels)`` of each patch in patch pixels (``test_step``)."""
        import torch
        from mmrotate.structures.bbox import hbox2rbox, qbox2rbox
        data = dict(inputs=[d['inputs'] for d in inputs],
                    data_samples=[d['data_samples'] for d in inputs])
        with torch.no_grad():
            samples = self.model.test_step(data)
        out = []
        for sample in samples:
            pred = sample.pred_instances
            boxes = pred.bboxes
            boxes = boxes.tensor if hasattr(boxes, 'tensor') else torch.as_tensor(boxes)
            boxes = boxes.detach().float().cpu()
            if boxes.shape[-1] == 8:
                boxes = qbox2rbox(boxes)
            elif boxes.shape[-1] == 4:
                boxes = hbox2rbox(boxes)
            out.append((boxes.double().numpy().reshape(-1, 5),
                        pred.scores.detach().double().cpu().numpy().reshape(-1),
                        pred.labels.detach().cpu().numpy().astype(np.int64).reshape(-1)))
        return out

    def protocol(self, patch: int, overlap: int, score_thr: float, nms_iou: float) -> str:
        """Protocol line printed with every result."""
        return (f'DOTA split patches {patch}/{overlap} (stride {patch - overlap}, last patch '
                f'inside the scene, zero pad); per patch: config test pipeline '
                f'({self.loader["type"]}) + data_preprocessor + test_cfg; score > {score_thr}; '
                f'class-wise rotated NMS iou {nms_iou}')

    # ------------------------------------------------------------------ scene
    def detect(self, raster: SingleRaster, patch: int = 1024, overlap: int = 200,
               batch: int = 4, score_thr: float = 0.05, nms_iou: float = 0.1,
               overview: 'Overview | None' = None, quiet: bool = False,
               summary: DetectionSummary | None = None) -> Detections:
        """Detect over the opened ``raster`` (not closed here) and merge (no file written)."""
        from mmrs.datasets.dota_split import patch_origins
        if batch < 1:
            raise ValueError(f'batch must be >= 1, got {batch}')
        if patch < 16 or not 0 <= overlap < patch:
            raise ValueError(f'need patch >= 16 and 0 <= overlap < patch, got patch={patch}, '
                             f'overlap={overlap}')
        origins = patch_origins(raster.width, raster.height, patch, overlap)
        ys = sorted({y for _, y in origins})
        xs = sorted({x for x, _ in origins})
        stem = Path(raster.path).stem
        strips = raster.dataset.driver not in RANDOM_ACCESS_DRIVERS
        stop = threading.Event()
        tiles_q: queue.Queue = queue.Queue(maxsize=2 * batch)

        def windows() -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
            for y in ys:  # row by row: one strip a row for formats without random access
                h = min(patch, raster.height - y)
                if strips:
                    strip, inv_strip = raster.read_window(y, 0, h, raster.width)
                for x in xs:
                    w = min(patch, raster.width - x)
                    if strips:
                        yield y, x, strip[:, x:x + w], inv_strip[:, x:x + w]
                    else:
                        yield (y, x) + raster.read_window(y, x, h, w)

        def read() -> None:
            try:
                for y, x, img, invalid in windows():
                    if overview is not None:
                        overview.add(y, x, img)
                    item = None
                    if not invalid.all():
                        h, w = img.shape[:2]
                        if h < patch or w < patch:  # scene smaller than a patch
                            padded = np.zeros((max(h, patch), max(w, patch), img.shape[2]),
                                              img.dtype)
                            padded[:h, :w] = img
                            img = padded
                        item = self.prepare_patch(raster, img, f'{stem}__1__{x}___{y}')
                    if not _put(tiles_q, (y, x, item), stop):
                        return
            finally:
                _put(tiles_q, _END, stop)

        reader = _Worker(read, 'mmrs-patch-reader')
        progress = _Progress(len(origins), quiet, label='patches')
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        skipped = 0
        reader.start()
        try:
            pending: list = []
            finished = False
            while not finished:
                item = tiles_q.get()
                if item is _END:
                    finished = True
                elif item[2] is None:
                    skipped += 1
                    progress.update()
                else:
                    pending.append(item)
                if pending and (finished or len(pending) >= batch):
                    for (y, x, _), (boxes, scores, labels) in zip(
                            pending, self.predict_patches([p[2] for p in pending])):
                        ok = scores > score_thr
                        boxes = boxes[ok].copy()
                        boxes[:, 0] += x
                        boxes[:, 1] += y
                        parts.append((boxes, scores[ok], labels[ok]))
                    progress.update(len(pending))
                    pending = []
                if reader.error is not None:
                    raise reader.error
            reader.join_checked()
        except BaseException:
            stop.set()
            reader.join(timeout=10)
            raise
        boxes = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 5))
        scores = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
        labels = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
        keep = merge_detections(boxes, scores, labels, nms_iou)
        if summary is not None:
            summary.skipped, summary.raw_detections = skipped, len(scores)
        return Detections(boxes[keep], scores[keep], labels[keep], self.classes)

    def __call__(self, image: str, out: str | Path, overview: str | Path | None = None,
                 task1_dir: str | Path | None = None, patch: int = 1024, overlap: int = 200,
                 batch: int = 4, score_thr: float = 0.05, nms_iou: float = 0.1,
                 bands: str | Sequence[int] | None = None, nodata: float | None = None,
                 overview_size: int = 2048, overwrite: bool = False, quiet: bool = False,
                 gdal_cache_mb: int = 64) -> DetectionSummary:
        """Detect rotated objects in ``image`` and write the outputs (each all or nothing).

        Args:
            image: GeoTIFF / PNG / JPEG (anything GDAL opens).
            out: Polygons: ``.geojson`` (EPSG:4326 when georeferenced) or ``.gpkg`` (image
                CRS); properties ``class`` (name), ``label`` (index) and ``score``.
            overview: Also write a downsampled ``.png``/``.jpg`` with the boxes drawn.
            task1_dir: Also write DOTA Task1 files (``Task1_<class>.txt``, pixel corners,
                image name = the file's stem) there.
            patch, overlap: DOTA split patch size and overlap (devkit ``subsize``/``gap``).
            batch: Patches per forward pass.
            score_thr: Keep patch detections with a score above this.
            nms_iou: IoU of the class-wise rotated NMS merging the patches.
            bands: 1-based bands (``'1,2,3'``); default all but an alpha band.
            nodata: Nodata value overriding the file's (all-nodata patches are skipped).
            overview_size: Longest side of the overview in pixels.
            overwrite: Replace existing outputs.
            quiet: No progress bar.
            gdal_cache_mb: GDAL block cache during the run (GDAL's default, 5% of the RAM,
                fills with decoded blocks and makes the peak grow with the scene until full).

        Raises:
            FileExistsError: An output exists and not ``overwrite`` (checked before reading).
            FileNotFoundError, OSError: The image is missing or unreadable.
            ValueError: Unsupported output suffixes or bad patch parameters.
        """
        from mmrs.geo.atomic import check_outputs
        from mmrs.geo.vector_io import vector_format
        vector_format(out)
        if overview is not None and Path(overview).suffix.lower() not in OVERVIEW_SUFFIXES:
            raise ValueError(f'overview {overview}: unsupported suffix (use one of '
                             f'{OVERVIEW_SUFFIXES})')
        task1_files = [] if task1_dir is None else \
            [Path(task1_dir) / f'Task1_{c}.txt' for c in self.classes]
        check_outputs([out] + ([overview] if overview else []) + task1_files, overwrite)
        import rasterio
        start = time.perf_counter()
        with rasterio.Env(GDAL_CACHEMAX=int(gdal_cache_mb)), \
                open_single(image, bands=bands, nodata=nodata) as raster:
            origins_x = _starts_of(raster.width, patch, overlap)
            origins_y = _starts_of(raster.height, patch, overlap)
            canvas = Overview(raster.height, raster.width, origins_x, origins_y,
                              overview_size) if overview is not None else None
            summary = DetectionSummary(
                out=str(out), protocol=self.protocol(patch, overlap, score_thr, nms_iou),
                height=raster.height, width=raster.width,
                patches=len(origins_x) * len(origins_y))
            dets = self.detect(raster, patch, overlap, batch, score_thr, nms_iou, canvas,
                               quiet, summary)
            summary.crs = write_detections(out, dets, raster, overwrite)
        summary.files.append(str(out))
        if canvas is not None:
            _write_picture(overview, canvas.draw(dets.corners(), dets.labels,
                                                 class_palette(self.classes)), overwrite)
            summary.files.append(str(overview))
        if task1_dir is not None:
            summary.files += write_task1_files(task1_dir, Path(image).stem, dets)
        summary.detections = len(dets)
        summary.per_class = {c: int((dets.labels == i).sum()) for i, c in enumerate(self.classes)}
        summary.wall_s = time.perf_counter() - start
        return summary


def _starts_of(size: int, patch: int, overlap: int) -> list[int]:
    from mmrs.datasets.dota_split import patch_origins
    return sorted({x for x, _ in patch_origins(size, 1, patch, overlap)})


# ---------------------------------------------------------------------------- writers
def write_detections(path: str | Path, dets: Detections, raster: SingleRaster,
                     overwrite: bool = False) -> str:
    """Write the polygons (image CRS when georeferenced); returns the coordinates' CRS name."""
    from shapely.geometry import Polygon

    from mmrs.geo.vector_io import Feature, FeatureStream, vector_format, write_vector
    corners = dets.corners()
    if raster.transform is not None:
        t = raster.transform
        x, y = corners[..., 0], corners[..., 1]
        corners = np.stack([t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f], axis=-1)
    names = dets.classes

    def features() -> Iterator[Feature]:
        for poly, score, label in zip(corners, dets.scores, dets.labels):
            name = names[label] if 0 <= label < len(names) else str(int(label))
            yield Feature(Polygon(poly), dict(**{'class': name}, label=int(label),
                                              score=float(score)))

    schema = {'class': 'str', 'label': 'int', 'score': 'float'}
    if raster.transform is None and vector_format(path) == 'geojson':
        _write_pixel_geojson(path, features(), overwrite)
        return 'pixel'
    crs = raster.crs if raster.transform is not None else None
    write_vector(path, FeatureStream(features(), crs, schema), overwrite=overwrite)
    if crs is None:
        return 'pixel'
    return 'EPSG:4326 (GeoJSON)' if vector_format(path) == 'geojson' else crs.to_string()


def _write_pixel_geojson(path: str | Path, features: Iterator[Any], overwrite: bool) -> None:
    """A GeoJSON FeatureCollection in pixel coordinates (no CRS, so not RFC 7946)."""
    import json

    from shapely.geometry import mapping

    from mmrs.geo.atomic import atomic_output
    from mmrs.geo.vector_io import orient_ccw
    with atomic_output(path, overwrite) as tmp, open(tmp, 'w', encoding='utf-8') as out:
        out.write('{"type": "FeatureCollection", "crs_note": "pixel coordinates (x = column, '
                  'y = row downwards): the image is not georeferenced", "features": [')
        for k, feature in enumerate(features):
            record = {'type': 'Feature', 'geometry': mapping(orient_ccw(feature.geometry)),
                      'properties': feature.properties}
            out.write((',\n' if k else '\n') + json.dumps(record, allow_nan=False))
        out.write('\n]}\n')


def _write_picture(path: str | Path, bgr: np.ndarray, overwrite: bool) -> None:
    import cv2

    from mmrs.geo.atomic import atomic_output
    ok, data = cv2.imencode(Path(path).suffix.lower(), bgr)
    if not ok:
        raise OSError(f'cannot encode the overview {path}')
    with atomic_output(path, overwrite) as tmp:
        Path(tmp).write_bytes(data.tobytes())


def write_task1_files(out_dir: str | Path, image_id: str, dets: Detections) -> list[str]:
    """DOTA Task1 files (``Task1_<class>.txt``: ``image score x1 y1 ... x4 y4``), one per class
    (empty for classes without detections), in scene pixel corners."""
    from mmrs.datasets.dota_merge import write_task1
    polys = dets.corners().reshape(-1, 8)
    per_class = {}
    for i, name in enumerate(dets.classes):
        sel = dets.labels == i
        per_class[name] = ([image_id] * int(sel.sum()), dets.scores[sel], polys[sel])
    return write_task1(str(out_dir), per_class, dets.classes)


__all__ = ['RotatedDetectionInferencer', 'DetectionSummary', 'Detections', 'Overview',
           'merge_detections', 'rbox_corners', 'class_palette', 'write_detections',
           'write_task1_files']
