"""xBD (Gupta et al., "xBD: A Dataset for Assessing Building Damage from Satellite Imagery",
CVPR Workshops 2019): building localisation and damage grading of the xView2 challenge.

The release (https://xview2.org/dataset) has one folder per split (``train``, ``tier3``,
``test``, ``hold``), each with::

    images/<disaster>_<id>_pre_disaster.png         pre-event image, 1024x1024 RGB
    images/<disaster>_<id>_post_disaster.png        post-event image
    labels/<disaster>_<id>_{pre,post}_disaster.json building polygons: features.xy[*].wkt
                                                    (pixel coordinates), properties.subtype
                                                    (post only): no-damage, minor-damage,
                                                    major-damage, destroyed, un-classified
    targets/<disaster>_<id>_pre_disaster_target.png  localisation raster, 0 / 1
    targets/<disaster>_<id>_post_disaster_target.png damage raster, 0 background, 1..4 the
                                                    four grades, 5 un-classified

:class:`XBDDataset` pairs those paths; :class:`LoadXBDAnnotations` reads the targets or, when a
tile has none, rasterises the JSON polygons (rasterio + shapely), and emits
``gt_seg_map`` (localisation: 0, 1, 255 = ignore) and ``gt_damage_map`` (damage: 0
background, 1..4 grades, 255 = ignore), packed as ``gt_sem_seg`` / ``gt_damage_seg``.
"""
import json
import logging
import os
import os.path as osp
import re
import warnings
from collections.abc import Sequence

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmrs.registry import DATASETS, TRANSFORMS

from .labels import IGNORE_INDEX, check_label_encoding, format_values, single_channel
from .transforms.loading import LoadChangeAnnotations

#: Damage value of each ``subtype`` (the xView2 joint damage scale; 5 = un-classified).
XBD_SUBTYPES = {'no-damage': 1, 'minor-damage': 2, 'major-damage': 3, 'destroyed': 4,
                'un-classified': 5}
#: Value of un-classified buildings in the release's post targets and in rasterised labels.
UNCLASSIFIED = 5
#: The splits of the release (``tier3`` is the extra training tier, ``hold`` the holdout).
XBD_SPLITS = ('train', 'tier3', 'test', 'hold')
#: Where a tile's labels come from: targets if present else JSON, targets, JSON, or none.
LABEL_SOURCES = ('auto', 'targets', 'json', 'none')

_PRE_IMAGE = re.compile(r'^(?P<disaster>.+)_(?P<tile>\d+)_pre_disaster\.png$')
_LIST_SUFFIXES = ('_pre_disaster.png', '_post_disaster.png', '_pre_disaster',
                  '_post_disaster', '.png')


def _stem(line: str) -> str:
    """``<disaster>_<id>`` of a list-file line (a stem or a pre/post image name)."""
    name = osp.basename(line.strip())
    for suffix in _LIST_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


# ---------------------------------------------------------------------------- JSON labels
def read_xbd_json(path: str) -> tuple[list[tuple[object, str | None]], tuple[int, int] | None]:
    """Parse an xBD label file into ``[(shapely geometry, subtype or None), ...]`` + size.

    The pixel-space polygons (``features.xy``) are used; ``subtype`` is ``None`` in
    pre-event files. The size is ``(height, width)`` from ``metadata`` when given.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Not JSON, no ``features.xy`` list, a feature without a readable
            polygonal ``wkt``, or an unknown ``subtype`` (each message names ``path``).
    """
    from shapely import wkt as shapely_wkt
    from shapely.errors import ShapelyError

    if not osp.isfile(path):
        raise FileNotFoundError(f'xBD label file not found: {path!r}')
    try:
        with open(path, encoding='utf-8') as f:
            label = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f'xBD label file {path!r} is not valid JSON: {err}') from err
    features = label.get('features') if isinstance(label, dict) else None
    xy = features.get('xy') if isinstance(features, dict) else None
    if not isinstance(xy, list):
        raise ValueError(f"xBD label file {path!r} has no 'features': {{'xy': [...]}} list")
    shapes = []
    for k, feat in enumerate(xy):
        props = (feat.get('properties') or {}) if isinstance(feat, dict) else {}
        what = f"feature {k} (uid {props.get('uid')!r}) of xBD label file {path!r}"
        text = feat.get('wkt') if isinstance(feat, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"{what} has no 'wkt' polygon")
        try:
            geom = shapely_wkt.loads(text)
        except (ShapelyError, ValueError) as err:
            raise ValueError(f'{what} has an unreadable WKT {text[:60]!r}: {err}') from err
        if geom.geom_type not in ('Polygon', 'MultiPolygon'):
            raise ValueError(f'{what} is a {geom.geom_type}, expected a (Multi)Polygon')
        subtype = props.get('subtype')
        if subtype is not None and subtype not in XBD_SUBTYPES:
            raise ValueError(f'{what} has unknown damage subtype {subtype!r}; expected one of '
                             f'{sorted(XBD_SUBTYPES)}')
        shapes.append((geom, subtype))
    meta = label.get('metadata') or {}
    size = None
    if meta.get('height') is not None and meta.get('width') is not None:
        size = (int(meta['height']), int(meta['width']))
    return shapes, size


def rasterize_xbd(path: str, shape: Sequence[int] | None = None,
                  damage: bool = False) -> np.ndarray:
    """Rasterise an xBD label file: buildings 1 (``damage=False``) or their damage value.

    A pixel belongs to a polygon when its centre lies inside it (GDAL's rule, what
    ``rasterio.features.rasterize`` does without ``all_touched``); where polygons overlap the
    later one in the file wins. With ``damage=True`` the values are those of
    :data:`XBD_SUBTYPES` (un-classified = 5) and a building without ``subtype`` is an error.

    Args:
        path: The JSON label file.
        shape: ``(H, W)`` of the output; ``None`` takes the file's metadata. When both are
            known they must agree.
        damage: Burn damage values instead of 1.

    Raises:
        ValueError: Size mismatch or missing size, missing subtype, bad file (names ``path``).
    """
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.features import rasterize

    shapes, size = read_xbd_json(path)
    if shape is not None:
        shape = tuple(int(v) for v in shape[:2])
        if size is not None and size != shape:
            raise ValueError(f'xBD label file {path!r} is for a {size[0]}x{size[1]} image but '
                             f'the image is {shape[0]}x{shape[1]} (H x W)')
    shape = shape or size
    if shape is None:
        raise ValueError(f'xBD label file {path!r} has no metadata height/width and no image '
                         'size was given')
    burns = []
    for k, (geom, subtype) in enumerate(shapes):
        if damage and subtype is None:
            raise ValueError(f"feature {k} of xBD label file {path!r} has no 'subtype' "
                             '(damage labels come from the *_post_disaster.json files)')
        burns.append((geom, XBD_SUBTYPES[subtype] if damage else 1))
    if not burns:
        return np.zeros(shape, dtype=np.uint8)
    with warnings.catch_warnings():  # pixel coordinates: the identity transform is intended
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        return rasterize(burns, out_shape=shape, fill=0, dtype=np.uint8)


# ---------------------------------------------------------------------------- loader
@TRANSFORMS.register_module()
class LoadXBDAnnotations(LoadChangeAnnotations):
    """Load the localisation and damage maps of an xBD tile.

    From the targets (``seg_map_path``, ``damage_map_path``) when the sample has them, else
    by rasterising the JSON polygons (``label_json_path``, see :func:`rasterize_xbd`).

    - ``gt_seg_map`` (localisation): the pre-event target decoded with the dataset's
      ``label_encoding`` (``'0/1'`` for the release, ``'0/255'`` for masks written as
      0 / 255), or the pre-event polygons; 0 background, 1 building, 255 ignore.
    - ``gt_damage_map`` (damage): the post-event target, values 0..5 (a value outside is an
      error naming the file), or the post-event polygons; 0 background, 1 no damage,
      2 minor, 3 major, 4 destroyed; un-classified (5) becomes ``unclassified_to``.

    Both maps join ``seg_fields`` when loaded before any geometric transform, so flips,
    rotations and crops move them with the images (see :class:`LoadChangeAnnotations`).

    Args:
        localization: Load ``gt_seg_map``.
        damage: Load ``gt_damage_map``.
        unclassified_to: Value of un-classified buildings; ``None`` takes the dataset's
            ``results['unclassified_to']`` (default 255 = ignore, which is what MambaCD's
            evaluation does with them: its 5-class confusion matrix drops values >= 5).
        ignore_damage_background: Set damage background (0) to ``ignore_index``, as
            MambaCD's training loader does (its damage loss sees building pixels only).
            Leave it off for evaluation: the metrics need the background.
        label_encoding: Localisation target encoding; ``None`` takes the dataset's.
        backend: Label reader, see :class:`LoadChangeAnnotations`.
        ignore_index: Ignore value.
    """

    def __init__(self, localization: bool = True, damage: bool = True,
                 unclassified_to: int | None = None, ignore_damage_background: bool = False,
                 label_encoding: str | None = None, backend: str = 'auto',
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__(binary=True, semantic=False, label_encoding=label_encoding,
                         backend=backend, ignore_index=ignore_index)
        if unclassified_to is not None and not 0 <= unclassified_to <= 255:
            raise ValueError(f'unclassified_to must be in 0..255, got {unclassified_to}')
        self.localization = localization
        self.damage = damage
        self.unclassified_to = unclassified_to
        self.ignore_damage_background = ignore_damage_background

    def _damage_target(self, path: str, results: dict) -> np.ndarray:
        arr = self._read(path, results)
        label = single_channel(arr)
        if label is None:
            raise ValueError(f'xBD damage target {path!r} is a colour image with '
                             f'{arr.shape[2]} different channels; expected values 0..5')
        values = np.unique(label)
        bad = values[(values < 0) | (values > UNCLASSIFIED)]
        if bad.size:
            raise ValueError(f'xBD damage target {path!r} has values {format_values(bad)} '
                             f'outside 0 (background), 1..4 (damage grades), 5 (un-classified)')
        return label.astype(np.uint8)

    def _json_map(self, path: str, results: dict, damage: bool) -> np.ndarray:
        return rasterize_xbd(path, results.get('ori_shape'), damage=damage)

    def transform(self, results: dict) -> dict:
        maps: dict[str, np.ndarray] = {}
        jsons = results.get('label_json_path') or (None, None)
        if self.localization:
            if results.get('seg_map_path'):
                maps['gt_seg_map'] = self._load_binary(results['seg_map_path'], results)
            elif jsons[0]:
                maps['gt_seg_map'] = self._json_map(jsons[0], results, damage=False)
        if self.damage:
            label = None
            if results.get('damage_map_path'):
                label = self._damage_target(results['damage_map_path'], results)
            elif jsons[1]:
                label = self._json_map(jsons[1], results, damage=True)
            if label is not None:
                to = self.unclassified_to
                to = results.get('unclassified_to', self.ignore_index) if to is None else to
                label[label == UNCLASSIFIED] = to
                if self.ignore_damage_background:
                    label[label == 0] = self.ignore_index
                maps['gt_damage_map'] = label
        mask = results.get('nodata_mask')
        if maps and mask is not None and self._ignores_nodata(results):
            for label in maps.values():
                label[mask] = self.ignore_index
        in_fields = self._untransformed(results)
        for key, value in maps.items():
            results[key] = value
            fields = results.setdefault('seg_fields', [])
            if in_fields and key not in fields:
                fields.append(key)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(localization={self.localization}, '
                f'damage={self.damage}, unclassified_to={self.unclassified_to}, '
                f'ignore_damage_background={self.ignore_damage_background}, '
                f'label_encoding={self.label_encoding!r}, backend={self.backend!r})')


# ---------------------------------------------------------------------------- dataset
@DATASETS.register_module()
class XBDDataset(BaseDataset):
    """xBD as distributed: pre/post images, JSON polygons and rasterised targets per split.

    Every ``images/<disaster>_<id>_pre_disaster.png`` of the selected split folder(s) (or
    every ``<disaster>_<id>`` listed in ``ann_file``) is paired with its post-event image and
    its labels (see the module docstring for the layout). Missing files raise
    ``FileNotFoundError`` naming the path (``on_missing='skip'`` drops the tile with a
    warning instead), so a broken download is noticed at start-up.

    Each sample: ``img_path=[pre, post]``, ``seg_map_path`` (pre target or ``None``),
    ``damage_map_path`` (post target or ``None``), ``label_json_path=[pre json, post json]``
    (or ``None``), ``label_source`` (``'targets'``, ``'json'`` or ``None``), ``disaster``,
    ``tile_id``, ``label_encoding``, ``unclassified_to`` and the keys every change dataset
    emits (``label_map``, ``reduce_zero_label``, ``nodata``, ``ignore_nodata``,
    ``seg_fields``, ``sample_idx``). Load labels with :class:`LoadXBDAnnotations`.

    Args:
        data_root: Release root (holding the split folders).
        split: One split or several (``('train', 'tier3')`` as the xView2 winners trained).
        ann_file: Optional list file (relative to ``data_root``) with one
            ``<disaster>_<id>`` (or pre/post image name) per line, as MambaCD's
            ``test_list.txt``; each must exist in one of the splits.
        disasters: Keep only these disasters (e.g. ``('hurricane-harvey',)``); an unknown
            name is an error listing the disasters found.
        label_source: ``'auto'`` (targets when both exist, else the JSON labels),
            ``'targets'``, ``'json'`` or ``'none'`` (unlabelled inference).
        target_dir: Folder of the rasterised targets inside a split folder.
        target_suffix: Suffix of a target after ``..._pre_disaster`` (``'_target.png'`` in
            the release; ``'.png'`` for masks written as ``masks/<name>_pre_disaster.png``).
        label_encoding: Localisation target encoding (``'0/1'`` in the release).
        unclassified_to: Damage value given to un-classified buildings (255 = ignore).
        on_missing: ``'raise'`` or ``'skip'`` tiles with a missing file.
        metainfo, pipeline, test_mode, **kwargs: As :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(
        classes=('background', 'building'),
        palette=[[0, 0, 0], [255, 255, 255]],
        damage_classes=('background', 'no-damage', 'minor-damage', 'major-damage',
                        'destroyed'),
        # colours of MambaCD's infer_MambaBDA.py
        damage_palette=[[0, 0, 0], [70, 181, 121], [167, 187, 27], [228, 189, 139],
                        [181, 70, 70]])

    def __init__(self,
                 data_root: str = '',
                 split: str | Sequence[str] = 'train',
                 ann_file: str = '',
                 disasters: Sequence[str] | None = None,
                 label_source: str = 'auto',
                 target_dir: str = 'targets',
                 target_suffix: str = '_target.png',
                 label_encoding: str = '0/1',
                 unclassified_to: int = IGNORE_INDEX,
                 on_missing: str = 'raise',
                 metainfo: dict | None = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 **kwargs) -> None:
        splits = (split, ) if isinstance(split, str) else tuple(split)
        if not splits:
            raise ValueError('split must name at least one split folder')
        if label_source not in LABEL_SOURCES:
            raise ValueError(f'label_source must be one of {LABEL_SOURCES}, got '
                             f'{label_source!r}')
        if on_missing not in ('raise', 'skip'):
            raise ValueError(f"on_missing must be 'raise' or 'skip', got {on_missing!r}")
        self.splits = splits
        self.disasters = None if disasters is None else tuple(disasters)
        self.label_source = label_source
        self.target_dir = target_dir
        self.target_suffix = target_suffix
        self.label_encoding = check_label_encoding(label_encoding)
        self.unclassified_to = int(unclassified_to)
        self.on_missing = on_missing
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            metainfo=metainfo,
            pipeline=[TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline],
            test_mode=test_mode,
            **kwargs)

    # ------------------------------------------------------------------ listing
    def _split_dir(self, split: str) -> str:
        return osp.join(self.data_root, split)

    def _list_split(self, split: str) -> list[str]:
        folder = osp.join(self._split_dir(split), 'images')
        if not osp.isdir(folder):
            raise FileNotFoundError(f'xBD image folder not found: {folder!r} (split '
                                    f'{split!r}; expected one of {XBD_SPLITS} under data_root)')
        return sorted(m.group('disaster') + '_' + m.group('tile')
                      for m in map(_PRE_IMAGE.match, os.listdir(folder)) if m)

    def _stems(self) -> list[tuple[str, str]]:
        """``(split, <disaster>_<id>)`` of every selected tile, in a stable order."""
        listed = {split: self._list_split(split) for split in self.splits}
        if not self.ann_file:
            return [(split, stem) for split in self.splits for stem in listed[split]]
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ann_file not found: {self.ann_file!r}')
        with open(self.ann_file, encoding='utf-8') as f:
            stems = [_stem(line) for line in f if line.strip()]
        if not stems:
            raise ValueError(f'ann_file {self.ann_file!r} lists no tiles')
        where = {}
        for split in self.splits:
            for stem in listed[split]:
                where.setdefault(stem, []).append(split)
        out = []
        for stem in stems:
            found = where.get(stem, [])
            if not found:
                raise FileNotFoundError(
                    f'{stem!r} listed in ann_file {self.ann_file!r} has no '
                    f'images/{stem}_pre_disaster.png in the split folders {list(self.splits)}')
            if len(found) > 1:
                raise ValueError(f'{stem!r} listed in ann_file {self.ann_file!r} is in several '
                                 f'split folders {found}; select one split')
            out.append((found[0], stem))
        return out

    def _missing(self, msg: str) -> None:
        if self.on_missing == 'raise':
            raise FileNotFoundError(msg)
        print_log(msg + '; skipping the tile', logger='current', level=logging.WARNING)

    def _labels(self, split: str, stem: str) -> dict | None:
        """Label paths of a tile per ``label_source``; ``None`` when they are missing."""
        root = self._split_dir(split)
        targets = [osp.join(root, self.target_dir, f'{stem}_{d}_disaster{self.target_suffix}')
                   for d in ('pre', 'post')]
        jsons = [osp.join(root, 'labels', f'{stem}_{d}_disaster.json') for d in ('pre', 'post')]
        none = dict(seg_map_path=None, damage_map_path=None, label_json_path=None,
                    label_source=None)
        if self.label_source == 'none':
            return none
        have_targets = all(osp.isfile(p) for p in targets)
        if self.label_source == 'targets' or (self.label_source == 'auto' and have_targets):
            missing = [p for p in targets if not osp.isfile(p)]
            if missing:
                self._missing(f'missing xBD target(s) {missing} for tile {stem!r}')
                return None
            return dict(none, seg_map_path=targets[0], damage_map_path=targets[1],
                        label_source='targets')
        missing = [p for p in jsons if not osp.isfile(p)]
        if missing:
            also = '' if self.label_source == 'json' else f' (and no targets {targets})'
            self._missing(f'missing xBD label file(s) {missing}{also} for tile {stem!r}')
            return None
        return dict(none, label_json_path=jsons, label_source='json')

    def _check_disasters(self, stems: list[tuple[str, str]]) -> None:
        found = sorted({stem.rsplit('_', 1)[0] for _, stem in stems})
        unknown = sorted(set(self.disasters) - set(found))
        if unknown:
            raise ValueError(f'disasters {unknown} are not in splits {list(self.splits)} of '
                             f'{self.data_root!r}; found: {found}')

    def load_data_list(self) -> list[dict]:
        """Pair the files of every selected tile (see the class docstring for the keys)."""
        stems = self._stems()
        if self.disasters is not None:
            self._check_disasters(stems)
            stems = [(s, t) for s, t in stems if t.rsplit('_', 1)[0] in self.disasters]
        data_list = []
        for split, stem in stems:
            images = osp.join(self._split_dir(split), 'images')
            pre = osp.join(images, f'{stem}_pre_disaster.png')
            post = osp.join(images, f'{stem}_post_disaster.png')
            if not osp.isfile(post):
                self._missing(f'missing post-disaster image {post!r} for pre-disaster image '
                              f'{pre!r}')
                continue
            labels = self._labels(split, stem)
            if labels is None:
                continue
            disaster, tile = stem.rsplit('_', 1)
            data_list.append(dict(
                img_path=[pre, post],
                **labels,
                disaster=disaster,
                tile_id=tile,
                split=split,
                label_encoding=self.label_encoding,
                unclassified_to=self.unclassified_to,
                label_map=None,
                reduce_zero_label=False,
                nodata=None,
                ignore_nodata=None,
                seg_fields=[],
                sample_idx=len(data_list)))
        if not data_list:
            raise FileNotFoundError(f'no complete xBD tiles found in splits {list(self.splits)} '
                                    f'of {self.data_root!r}')
        return data_list
