"""Base datasets for bitemporal (binary and semantic) change detection.

A change dataset is a set of aligned files that share one name across folders: the date-1
image, the date-2 image and one or more label maps. The datasets here only pair *paths*
(loading is lazy, done by the pipeline) and emit the ``data_list`` entries described in
``docs/data_flow.md``.
"""
import copy
import logging
import os
import os.path as osp
from collections.abc import Sequence

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmrs.registry import DATASETS, TRANSFORMS

from .labels import check_label_encoding

#: Keys of ``data_prefix`` that hold label folders; each becomes a path key of the sample.
LABEL_KEYS = ('seg_map_path', 'seg_map_path_from', 'seg_map_path_to')


def split_prefix(split: str | None, folders: dict[str, str]) -> dict[str, str]:
    """Prefix every folder with ``split`` (``{'img_path_from': 'A'}`` → ``'train/A'``).

    Dataset families with one folder tree per split use it to turn their ``split`` argument
    into a ``data_prefix``; ``split=None`` (or ``''``) keeps the folders as they are.
    """
    if not split:
        return dict(folders)
    return {key: f'{split}/{folder}' for key, folder in folders.items()}


def _as_suffixes(suffix: str | Sequence[str]) -> tuple[str, ...]:
    return (suffix, ) if isinstance(suffix, str) else tuple(suffix)


def _match_suffix(name: str, suffixes: tuple[str, ...]) -> str | None:
    """Return the longest suffix of ``suffixes`` that ``name`` ends with (case-insensitive)."""
    hits = [s for s in suffixes if name.lower().endswith(s.lower())]
    return max(hits, key=len) if hits else None


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    suffix = _match_suffix(name, suffixes)
    if suffix:
        return name[:-len(suffix)]
    return osp.splitext(name)[0]


def _candidates(name: str, stem: str, suffixes: tuple[str, ...],
                same_name_first: bool) -> list[str]:
    """File names a partner of ``name`` may have, most likely first."""
    names = [name] if same_name_first or '' in suffixes else []
    names += [stem + s for s in suffixes if s]
    return list(dict.fromkeys(names))


@DATASETS.register_module()
class BaseChangeDataset(BaseDataset):
    """Binary change detection dataset: date-1 / date-2 images + an optional change label.

    Pairs are found by name: every image in the date-1 folder (or every name listed in
    ``ann_file``) must have a file of the same name (or the same stem with another suffix
    from ``img_suffix``) in the date-2 folder and, when ``data_prefix`` has a label key, a
    label with the same stem and a suffix from ``seg_map_suffix``. Missing partners raise
    (or are skipped with ``on_missing='skip'``) so a broken release is noticed at start-up
    rather than mid-epoch.

    Args:
        data_root: Root folder that relative prefixes and ``ann_file`` are joined to.
        data_prefix: Folders per path key: ``img_path_from``, ``img_path_to`` and optionally
            ``seg_map_path`` (leave it out for unlabelled, inference-only data).
        img_suffix: Image suffix or tuple of accepted suffixes.
        seg_map_suffix: Label suffix or tuple (e.g. DSIFN: ``('.png', '.tif')``).
        ann_file: Optional text file with one file name or stem per line (blank lines are
            ignored); without it the date-1 folder is listed.
        metainfo: Overrides for :attr:`METAINFO`.
        pipeline: Transforms applied to each sample.
        test_mode: Whether the dataset is used for testing.
        label_encoding: How the binary change labels of the release store "unchanged",
            "changed" and "ignore": ``'0/255'``, ``'0/1'``, ``'0/1/255'`` (255 = ignore) or
            ``'threshold'`` (values ``>= label_threshold`` are changed, for lossy JPEG
            labels); see :mod:`mmrs.datasets.labels`. ``None`` takes the class default
            :attr:`LABEL_ENCODING` (the release's official encoding). A label value the
            encoding does not allow is an error naming the file.
        label_threshold: Threshold of the ``'threshold'`` encoding.
        nodata: Nodata value of the images, overriding the files' nodata tags (e.g. ``0``
            for PNG tiles with black borders); ``None`` uses the GeoTIFF tags.
        ignore_nodata: Turn pixels that are nodata in either date into ignore (255) in every
            label map, so the loss and the metrics skip them. ``None`` (default): on when a
            date is georeferenced or ``nodata`` is set.
        on_missing: ``'raise'`` (default) or ``'skip'`` pairs with a missing partner file.
        **kwargs: Forwarded to :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=('unchanged', 'changed'), palette=[[0, 0, 0], [255, 255, 255]])
    #: Official binary label encoding of the release (``label_encoding=None`` takes it).
    #: ``'0/255'`` is what the public binary CD releases ship (and what open-cd binarises).
    LABEL_ENCODING: str = '0/255'

    def __init__(self,
                 data_root: str = '',
                 data_prefix: dict = dict(
                     img_path_from='A', img_path_to='B', seg_map_path='label'),
                 img_suffix: str | tuple = '.png',
                 seg_map_suffix: str | tuple = '.png',
                 ann_file: str = '',
                 metainfo: dict | None = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 label_encoding: str | None = None,
                 label_threshold: float = 128,
                 nodata: float | None = None,
                 ignore_nodata: bool | None = None,
                 on_missing: str = 'raise',
                 **kwargs) -> None:
        if on_missing not in ('raise', 'skip'):
            raise ValueError(f"on_missing must be 'raise' or 'skip', got {on_missing!r}")
        prefix = {k: v for k, v in copy.copy(dict(data_prefix)).items() if v is not None}
        for key in ('img_path_from', 'img_path_to'):
            if key not in prefix:
                raise KeyError(f'data_prefix needs {key!r}; got keys {sorted(prefix)}')
        self.img_suffix = _as_suffixes(img_suffix)
        self.seg_map_suffix = _as_suffixes(seg_map_suffix)
        self.label_encoding = check_label_encoding(
            self.LABEL_ENCODING if label_encoding is None else label_encoding)
        self.label_threshold = label_threshold
        self.nodata = None if nodata is None else float(nodata)
        self.ignore_nodata = ignore_nodata
        self.on_missing = on_missing
        super().__init__(
            data_root=data_root,
            data_prefix=prefix,
            ann_file=ann_file,
            metainfo=metainfo,
            # Built here from mmrs' registry so that bare names work without a default scope.
            pipeline=[TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline],
            test_mode=test_mode,
            **kwargs)

    # ------------------------------------------------------------------ listing
    def _date1_names(self, folder: str) -> list[str]:
        """File names of the date-1 images, from ``ann_file`` or by listing ``folder``."""
        if self.ann_file:
            return [self._resolve_ann_name(line, folder) for line in self._read_ann_file()]
        if not osp.isdir(folder):
            raise FileNotFoundError(f'date-1 image folder not found: {folder!r}')
        names = sorted(
            n for n in os.listdir(folder)
            if osp.isfile(osp.join(folder, n)) and _match_suffix(n, self.img_suffix) is not None)
        if not names:
            raise FileNotFoundError(
                f'no images with suffix {self.img_suffix} in date-1 folder {folder!r}')
        return names

    def _read_ann_file(self) -> list[str]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ann_file not found: {self.ann_file!r}')
        with open(self.ann_file, encoding='utf-8') as f:
            lines = [line.strip() for line in f]
        lines = [line for line in lines if line]
        if not lines:
            raise ValueError(f'ann_file {self.ann_file!r} lists no samples')
        return lines

    def _resolve_ann_name(self, line: str, folder: str) -> str:
        """Turn an ``ann_file`` line (a name or a stem) into a date-1 file name."""
        tried = []
        for name in _candidates(line, line, self.img_suffix, same_name_first=True):
            if osp.isfile(osp.join(folder, name)):
                return name
            tried.append(osp.join(folder, name))
        raise FileNotFoundError(
            f'{line!r} listed in ann_file {self.ann_file!r} has no date-1 image; tried {tried}')

    def _find_partner(self, key: str, name: str, stem: str, date1_path: str) -> str | None:
        """Path of the file for ``key`` that belongs to date-1 image ``name``."""
        folder = self.data_prefix[key]
        is_label = key in LABEL_KEYS
        suffixes = self.seg_map_suffix if is_label else self.img_suffix
        names = _candidates(name, stem, suffixes, same_name_first=not is_label)
        for cand in names:
            path = osp.join(folder, cand)
            if osp.isfile(path):
                return path
        expected = [osp.join(folder, n) for n in names]
        what = 'label' if is_label else 'date-2 image'
        msg = (f'missing partner file: no {what} {expected[0]!r}'
               + (f' (also tried {expected[1:]})' if len(expected) > 1 else '')
               + f' for date-1 image {date1_path!r}')
        if self.on_missing == 'raise':
            raise FileNotFoundError(msg)
        print_log(msg + '; skipping the pair', logger='current', level=logging.WARNING)
        return None

    # ------------------------------------------------------------------ samples
    def load_data_list(self) -> list[dict]:
        """Pair the files of every sample and return the ``data_list`` of the contract."""
        folder1 = self.data_prefix['img_path_from']
        label_keys = [k for k in LABEL_KEYS if k in self.data_prefix]
        data_list = []
        for name in self._date1_names(folder1):
            stem = _stem(name, self.img_suffix)
            path1 = osp.join(folder1, name)
            path2 = self._find_partner('img_path_to', name, stem, path1)
            labels = {k: self._find_partner(k, name, stem, path1) for k in label_keys}
            if path2 is None or any(v is None for v in labels.values()):
                continue
            info = dict(
                img_path=[path1, path2],
                seg_map_path=labels.get('seg_map_path'),
                label_map=None,
                reduce_zero_label=False,
                label_encoding=self.label_encoding,
                label_threshold=self.label_threshold,
                nodata=self.nodata,
                ignore_nodata=self.ignore_nodata,
                seg_fields=[],
                sample_idx=len(data_list))
            info.update(self._extra_info(labels))
            data_list.append(info)
        if not data_list:
            raise FileNotFoundError(f'no complete image pairs found under {folder1!r}')
        return data_list

    def _extra_info(self, labels: dict[str, str | None]) -> dict:
        """Hook for subclasses to add keys to each sample (e.g. semantic label paths)."""
        return {}



class SplitFolderChangeDataset(BaseChangeDataset):
    """A binary release laid out as ``{split}/<date-1 folder>``, ``{split}/<date-2 folder>``,
    ``{split}/<label folder>``: subclasses only name the folders and suffixes.

    Args:
        data_root: Release root.
        split: ``'train'``, ``'val'`` or ``'test'``; ``None`` for a flat tree without split
            folders.
        data_prefix: Overrides the folders derived from ``split``.
        img_suffix: Image suffix(es); ``None`` means the class default :attr:`IMG_SUFFIX`.
        seg_map_suffix: Label suffix(es); ``None`` means :attr:`SEG_MAP_SUFFIX`.
        **kwargs: See :class:`BaseChangeDataset`.
    """

    #: folder of each path kind inside a split folder
    FOLDERS: dict[str, str] = dict(img_path_from='A', img_path_to='B', seg_map_path='label')
    #: default image suffix(es) of the release
    IMG_SUFFIX: str | tuple = '.png'
    #: default label suffix(es) of the release
    SEG_MAP_SUFFIX: str | tuple = '.png'

    def __init__(self,
                 data_root: str = '',
                 split: str | None = 'train',
                 data_prefix: dict | None = None,
                 img_suffix: str | tuple | None = None,
                 seg_map_suffix: str | tuple | None = None,
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix or split_prefix(split, self.FOLDERS),
            img_suffix=self.IMG_SUFFIX if img_suffix is None else img_suffix,
            seg_map_suffix=self.SEG_MAP_SUFFIX if seg_map_suffix is None else seg_map_suffix,
            **kwargs)


@DATASETS.register_module()
class BaseSCDDataset(BaseChangeDataset):
    """Semantic change detection dataset: two images + per-date semantic maps.

    ``data_prefix`` takes ``seg_map_path_from`` / ``seg_map_path_to`` (per-date class maps,
    class 0 = "no change") and optionally ``seg_map_path`` (binary change map). Without a
    binary folder ``seg_map_path`` is ``None`` and :class:`LoadChangeAnnotations` derives the
    binary map as ``from != 0``. Each sample also carries ``semantic_classes`` and
    ``semantic_palette`` from the metainfo so the loader can validate class ids and convert
    RGB colour labels.
    """

    METAINFO = dict(
        classes=('unchanged', 'changed'),
        palette=[[0, 0, 0], [255, 255, 255]],
        semantic_classes=('unchanged', ),
        semantic_palette=[[255, 255, 255]])

    def __init__(self,
                 data_prefix: dict = dict(
                     img_path_from='A',
                     img_path_to='B',
                     seg_map_path_from='label1',
                     seg_map_path_to='label2'),
                 **kwargs) -> None:
        super().__init__(data_prefix=data_prefix, **kwargs)

    def _extra_info(self, labels: dict[str, str | None]) -> dict:
        return dict(
            seg_map_path_from=labels.get('seg_map_path_from'),
            seg_map_path_to=labels.get('seg_map_path_to'),
            semantic_classes=tuple(self.metainfo['semantic_classes']),
            semantic_palette=[list(c) for c in self.metainfo['semantic_palette']])
