"""DOTA (Xia et al., "DOTA: A Large-scale Dataset for Object Detection in Aerial Images",
CVPR 2018; v1.5 / v2.0: Ding et al., TPAMI 2021), read as released.

The release (https://captain-whu.github.io/DOTA/dataset.html) has, per split::

    images/P0706.png            large aerial scenes (800 .. 20000 px a side)
    labelTxt/P0706.txt          "imagesource:GoogleEarth"   optional header lines
                                "gsd:0.2555"                (``gsd:null`` in v1.5 / v2.0)
                                "x1 y1 x2 y2 x3 y3 x4 y4 class difficult"   one object a line

Patches written by ``tools/data/dota/split.py`` (:mod:`mmrs.datasets.dota_split`) have the same
layout, file names ``<id>__<rate>__<x>___<y>`` and no header; their ``difficult`` may be 2 (an
object cut by the patch border that kept too little of its area).

:class:`DOTARawDataset` (named so it does not clash with mmrotate's ``DOTADataset``) yields
mmrotate-1.x-style samples: each instance has ``bbox`` = the quadrilateral (8 floats), so
``dict(type='mmdet.LoadAnnotations', with_bbox=True, box_type='qbox')`` gives ``gt_bboxes`` as
``QuadriBoxes`` (then ``mmrotate.ConvertBoxType`` -> ``RotatedBoxes``), ``gt_bboxes_labels`` and
``gt_ignore_flags``, and ``mmdet.PackDetInputs`` packs them. ``rbox`` holds the same object as a
le90 rotated box (``mmrotate``'s ``qbox2rbox``, the minimum-area rectangle).
"""
import os
import os.path as osp
import re
from collections.abc import Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from mmrs.registry import DATASETS

#: The 15 classes of DOTA-v1.0, in the official (devkit ``wordname_15``) order.
DOTA1_0_CLASSES = ('plane', 'baseball-diamond', 'bridge', 'ground-track-field', 'small-vehicle',
                   'large-vehicle', 'ship', 'tennis-court', 'basketball-court', 'storage-tank',
                   'soccer-ball-field', 'roundabout', 'harbor', 'swimming-pool', 'helicopter')
#: DOTA-v1.5 adds ``container-crane``.
DOTA1_5_CLASSES = DOTA1_0_CLASSES + ('container-crane', )
#: DOTA-v2.0 adds ``airport`` and ``helipad``.
DOTA2_0_CLASSES = DOTA1_5_CLASSES + ('airport', 'helipad')
#: Class list of each release version.
DOTA_CLASSES = {'v1.0': DOTA1_0_CLASSES, 'v1.5': DOTA1_5_CLASSES, 'v2.0': DOTA2_0_CLASSES}
#: mmrotate's palette (one colour per class of v2.0; the first 15 / 16 serve v1.0 / v1.5).
DOTA_PALETTE = ((165, 42, 42), (189, 183, 107), (0, 255, 0), (255, 0, 0), (138, 43, 226),
                (255, 128, 0), (255, 0, 255), (0, 255, 255), (255, 193, 193), (0, 51, 153),
                (255, 250, 205), (0, 139, 139), (255, 255, 0), (147, 116, 116), (0, 0, 255),
                (220, 20, 60), (119, 11, 32), (0, 0, 142))
#: Header keys a raw label file may start with.
HEADER_KEYS = ('imagesource', 'gsd')

#: ``<id>__<rate>__<x>___<y>``: the devkit's patch names (``P0706__1__0___0``,
#: ``P0706__0.5__824___0``). mmrotate's own split writes the patch size where the rate is.
PATCH_NAME = re.compile(r'^(?P<id>.+?)__(?P<rate>\d+(?:\.\d+)?)__(?P<x>\d+)___(?P<y>\d+)$')
#: File suffixes stripped before matching a patch name (``osp.splitext`` would cut ``.5__0___0``).
_FILE_SUFFIX = re.compile(r'\.(txt|png|jpe?g|tiff?|bmp)$', re.IGNORECASE)


def dota_classes(version: str) -> tuple[str, ...]:
    """The class list of a DOTA version (``'v1.0'``, ``'v1.5'`` or ``'v2.0'``)."""
    if version not in DOTA_CLASSES:
        raise ValueError(f'unknown DOTA version {version!r}; expected one of {list(DOTA_CLASSES)}')
    return DOTA_CLASSES[version]


def parse_patch_name(name: str) -> dict | None:
    """``{'ori_id', 'rate', 'x', 'y'}`` of a patch name (or file name), ``None`` if not one."""
    m = PATCH_NAME.match(_FILE_SUFFIX.sub('', osp.basename(name)))
    if m is None:
        return None
    return dict(ori_id=m['id'], rate=float(m['rate']), x=int(m['x']), y=int(m['y']))


def read_dota_label(path: str, classes: Sequence[str] | None = None,
                    version: str | None = 'v1.0') -> dict:
    """Parse a DOTA ``labelTxt`` file (raw release or split patch).

    Blank lines are skipped; ``imagesource:`` / ``gsd:`` lines are read as header (``gsd``
    ``None`` when ``null``); a 9-field line (no difficult) counts as difficult 0, as in the
    devkit's parser.

    Args:
        path: The label file.
        classes: Allowed class names; defaults to the class list of ``version``.
        version: Names the class list in error messages (and picks it when ``classes`` is
            ``None``). ``classes=None, version=None`` accepts any class name (``labels``
            are then -1), as the split tool does.

    Returns:
        ``dict(polys=(N, 8) float64, names=[str], labels=(N,) int64 (index in classes),
        difficult=(N,) int64, imagesource=str | None, gsd=float | None)``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A malformed line (names the file and the 1-based line number) or a class
            not in the list (names it and the version).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'DOTA label file not found: {path!r}')
    if classes is None and version is not None:
        classes = dota_classes(version)
    index = None if classes is None else {c: i for i, c in enumerate(classes)}
    polys, names, labels, difficult = [], [], [], []
    header: dict = dict(imagesource=None, gsd=None)
    with open(path, encoding='utf-8-sig') as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            where = f'{path!r} line {lineno}'
            key, sep, value = text.partition(':')
            if sep and key.strip() in HEADER_KEYS:
                value = value.strip()
                if key.strip() == 'gsd':
                    try:
                        header['gsd'] = (None if value.lower() in ('', 'null', 'none')
                                         else float(value))
                    except ValueError:
                        raise ValueError(
                            f'DOTA label {where}: gsd {value!r} is not a number') from None
                else:
                    header['imagesource'] = value
                continue
            fields = text.split()
            if len(fields) not in (9, 10):
                raise ValueError(f'DOTA label {where}: expected "x1 y1 x2 y2 x3 y3 x4 y4 class '
                                 f'difficult" (9 or 10 fields), got {len(fields)}: {text!r}')
            try:
                poly = [float(v) for v in fields[:8]]
            except ValueError:
                raise ValueError(
                    f'DOTA label {where}: coordinates must be numbers: {text!r}') from None
            if not np.isfinite(poly).all():
                raise ValueError(f'DOTA label {where}: non-finite coordinate: {text!r}')
            name = fields[8]
            if index is not None and name not in index:
                raise ValueError(f'DOTA label {where}: unknown class {name!r} for DOTA {version} '
                                 f'(classes: {", ".join(classes)})')
            diff = fields[9] if len(fields) == 10 else '0'
            if not diff.isdigit():
                raise ValueError(f'DOTA label {where}: difficult must be a non-negative integer, '
                                 f'got {diff!r}')
            polys.append(poly)
            names.append(name)
            labels.append(-1 if index is None else index[name])
            difficult.append(int(diff))
    return dict(polys=np.asarray(polys, dtype=np.float64).reshape(-1, 8), names=names,
                labels=np.asarray(labels, dtype=np.int64),
                difficult=np.asarray(difficult, dtype=np.int64), **header)


def quads_to_le90(polys: np.ndarray) -> np.ndarray:
    """(N, 8) quadrilaterals -> (N, 5) le90 rotated boxes ``(cx, cy, w, h, angle)`` (radians).

    mmrotate's ``qbox2rbox`` (OpenCV's minimum-area rectangle) regularised to le90: ``w >= h``,
    angle in [-pi/2, pi/2).
    """
    import torch
    from mmrotate.structures.bbox import RotatedBoxes, qbox2rbox

    polys = np.asarray(polys, dtype=np.float32).reshape(-1, 8)
    if len(polys) == 0:
        return np.zeros((0, 5), dtype=np.float32)
    rboxes = RotatedBoxes(qbox2rbox(torch.from_numpy(polys)))
    return rboxes.regularize_boxes('le90').numpy().astype(np.float32)


@DATASETS.register_module()
class DOTARawDataset(BaseDataset):
    """DOTA read from the raw release folders (or from split patches of the same layout).

    Args:
        version: ``'v1.0'`` (15 classes), ``'v1.5'`` (16) or ``'v2.0'`` (18); picks
            ``metainfo['classes']`` unless ``metainfo`` gives its own.
        data_prefix: ``img_path`` (images) and ``ann_path`` (label files) under ``data_root``;
            leave ``ann_path`` out (or ``None``) for unlabelled data (the test split): then the
            images are listed and each sample has no instances.
        img_suffix: Image file suffix (``.png`` in the release).
        ann_file: Optional list of image ids (or file names), one per line; otherwise every
            ``.txt`` in ``ann_path`` (every image when unlabelled), sorted.
        diff_thr: An object is ignored (``ignore_flag=1``) when its ``difficult > diff_thr``;
            the default 0 ignores difficult objects as the devkit's evaluation does
            (mmrotate's ``DOTADataset`` uses 100, i.e. trains on them).
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments (``pipeline``,
            ``test_mode``, ``filter_cfg=dict(filter_empty_gt=True)``, ...).

    Each sample: ``img_path``, ``img_id`` (file stem), ``file_name``, ``ann_path`` (or
    ``None``), ``imagesource``, ``gsd``, ``patch`` (``{'ori_id', 'rate', 'x', 'y'}`` for a
    split patch, else ``None``) and ``instances``: ``bbox`` (quadrilateral, 8 floats),
    ``rbox`` (le90), ``bbox_label``, ``ignore_flag``, ``difficult``.

    Raises:
        ValueError: Unknown version, an empty folder, or a bad label file (see
            :func:`read_dota_label`).
        FileNotFoundError: A missing folder, or an image missing for a label file.
    """

    METAINFO = dict(classes=DOTA1_0_CLASSES, palette=list(DOTA_PALETTE[:15]))

    def __init__(self, version: str = 'v1.0',
                 data_prefix: dict | None = None, img_suffix: str = '.png',
                 diff_thr: int = 0, metainfo: dict | None = None, **kwargs) -> None:
        classes = dota_classes(version)
        self.version = version
        self.img_suffix = img_suffix if img_suffix.startswith('.') else '.' + img_suffix
        self.diff_thr = int(diff_thr)
        base = dict(classes=classes, palette=list(DOTA_PALETTE[:len(classes)]))
        base.update(metainfo or {})
        if data_prefix is None:
            data_prefix = dict(img_path='images', ann_path='labelTxt')
        # mmengine joins every prefix with data_root: an absent label folder must not be there
        data_prefix = {k: v for k, v in data_prefix.items() if v is not None}
        super().__init__(metainfo=base, data_prefix=data_prefix, **kwargs)

    def _ids(self, img_dir: str, ann_dir: str | None) -> list[str]:
        if self.ann_file:
            with open(self.ann_file, encoding='utf-8') as f:
                lines = [ln.strip() for ln in f if ln.strip()]
            return [osp.splitext(osp.basename(ln))[0] if ln.endswith(('.txt', self.img_suffix))
                    else osp.basename(ln) for ln in lines]
        folder, suffix = (ann_dir, '.txt') if ann_dir else (img_dir, self.img_suffix)
        if not osp.isdir(folder):
            raise FileNotFoundError(f'DOTA folder not found: {folder!r}')
        ids = sorted(osp.splitext(n)[0] for n in os.listdir(folder) if n.endswith(suffix))
        if not ids:
            raise ValueError(f'no {suffix} files in DOTA folder {folder!r}')
        return ids

    def load_data_list(self) -> list[dict]:
        """One sample per label file (or image, when unlabelled)."""
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('ann_path')
        classes = self.metainfo['classes']
        data_list = []
        for img_id in self._ids(img_dir, ann_dir):
            img_path = osp.join(img_dir, img_id + self.img_suffix)
            if not osp.isfile(img_path):
                raise FileNotFoundError(f'DOTA image {img_path!r} not found (for id {img_id!r})')
            info = dict(img_path=img_path, img_id=img_id, file_name=img_id + self.img_suffix,
                        ann_path=None, imagesource=None, gsd=None,
                        patch=parse_patch_name(img_id), instances=[])
            if ann_dir:
                ann_path = osp.join(ann_dir, img_id + '.txt')
                label = read_dota_label(ann_path, classes, self.version)
                rboxes = quads_to_le90(label['polys'])
                info.update(ann_path=ann_path, imagesource=label['imagesource'], gsd=label['gsd'])
                info['instances'] = [
                    dict(bbox=poly.tolist(), rbox=rbox.tolist(), bbox_label=int(lab),
                         ignore_flag=int(diff > self.diff_thr), difficult=int(diff))
                    for poly, rbox, lab, diff in zip(label['polys'], rboxes, label['labels'],
                                                     label['difficult'])]
            data_list.append(info)
        return data_list

    def filter_data(self) -> list[dict]:
        """Drop samples without instances when ``filter_cfg=dict(filter_empty_gt=True)``."""
        if self.test_mode or not (self.filter_cfg or {}).get('filter_empty_gt', False):
            return self.data_list
        return [d for d in self.data_list if d['instances']]

    def get_cat_ids(self, idx: int) -> list[int]:
        """Class indices of the instances of sample ``idx`` (for class-aware samplers)."""
        return [ins['bbox_label'] for ins in self.get_data_info(idx)['instances']]
