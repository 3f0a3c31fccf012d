"""Scene classification datasets (one folder per class), read as the releases ship them.

Every release below is a folder per class with the images inside; the datasets here only
list paths (loading is lazy, done by the pipeline) and emit ``dict(img_path=..., gt_label=...)``
samples. Class indices follow the *sorted* folder names (Python ``sorted``, as torchvision's
``ImageFolder``, torchgeo and GeoRSCLIP's torchrs loaders order them), so a config and a
checkpoint trained elsewhere on ``ImageFolder`` agree on what label ``k`` means.

Each class also has a *display name* for text prompts (``'dense_residential'`` →
``'dense residential'``, UC Merced's ``'golfcourse'`` → ``'golf course'``). The display
names are the strings RemoteCLIP's evaluation code (ChenDelong1999/ITRA,
``itra/data/classname_and_prompt/<DATASET>.py``, ``new_classes``) prompts with, except
where ITRA kept a folder's spelling (AID ``'bareLand'``, WHU-RS19 ``'footballField'``,
``'railwayStation'``, ``'Commercial'``): those are spelled out here and ITRA's strings are
the ``'remoteclip'`` style of :func:`scene_class_names`. EuroSAT uses the descriptive names of
OpenAI CLIP's ``data/prompts.md`` (also CLIP_benchmark's ``en_classnames.json`` and ITRA's
``EuroSAT.py``): ``'AnnualCrop'`` → ``'annual crop land'``.

Splits: none of these releases has an official split. Zero-shot papers evaluate on the
whole set (GeoRSCLIP: torchrs ``ImageFolder`` over everything) or on a per-class hold-out
(RemoteCLIP/ITRA ``data_split``: the last 20% of each class folder). Both are available:
``split_ratio=0.8, split='test'`` keeps the last 20% of each class's *sorted* file list
(ITRA takes ``glob`` order, which depends on the file system, so its exact files cannot be
reproduced), and ``ann_file`` reads a list of files (e.g. torchgeo's ``resisc45-test.txt``
or ``eurosat-test.txt``: one file name or ``class/file`` per line).
"""
import os
import os.path as osp
import re
from collections.abc import Sequence

from mmengine.dataset import BaseDataset

from mmrs.registry import DATASETS, TRANSFORMS

#: Image suffixes listed by default (case-insensitive).
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp')
#: Class-name styles of :func:`scene_class_names`.
NAME_STYLES = ('display', 'folder', 'remoteclip', 'georsclip')


def display_name(folder: str) -> str:
    """Prompt string derived from a folder name: ``'dense_residential'`` and
    ``'DenseResidential'`` → ``'dense residential'`` (underscores, dashes and CamelCase
    humps become spaces, all lower case). Concatenated lower-case names (UC Merced's
    ``'golfcourse'``) cannot be split this way; the named datasets spell theirs out."""
    name = re.sub(r'(?<=[a-z0-9])(?=[A-Z])', ' ', folder)
    return ' '.join(re.split(r'[_\-\s/]+', name)).strip().lower()


def georsclip_name(folder: str) -> str:
    """GeoRSCLIP's class string (om-ai-lab/RS5M ``inference/inference_tool.py``,
    ``zeroshot_get_dataset``): the folder name with ``_`` and ``/`` replaced by spaces,
    lower-cased (``'DenseResidential'`` → ``'denseresidential'``)."""
    return folder.replace('_', ' ').replace('/', ' ').lower()


@DATASETS.register_module()
class SceneFolderDataset(BaseDataset):
    """A scene classification set laid out as ``<img folder>/<class>/<image>``.

    Args:
        data_root: Root that ``data_prefix['img_path']`` and ``ann_file`` are joined to.
        data_prefix: ``dict(img_path=...)``: the folder holding one sub-folder per class.
        ann_file: Optional split list: one image per line, as ``class/file.ext`` or a bare
            file name; a bare name is matched against the listed images by file name, then
            by stem (so a list of ``.jpg`` names selects EuroSAT's multispectral ``.tif``
            files too). Blank lines are ignored.
        split_ratio: Per-class hold-out instead of a list: the first
            ``int(n * split_ratio)`` sorted files of each class are ``'train'``, the rest
            ``'test'`` (RemoteCLIP's 8:2 protocol is ``0.8``). ``None`` keeps everything.
        split: ``'train'`` or ``'test'`` part of ``split_ratio``.
        extensions: Accepted image suffixes (case-insensitive).
        metainfo: Overrides; ``classes`` fixes the class folders and their order (default:
            the class's :attr:`METAINFO`, or every sub-folder, sorted), ``display_names``
            the prompt strings.
        strict_classes: With known classes, a class folder that is not one of them is an
            error (a wrong ``data_root`` is noticed at start-up).
        pipeline: Transforms applied to each sample.
        **kwargs: Forwarded to :class:`mmengine.dataset.BaseDataset`.

    Raises:
        FileNotFoundError: The image folder, a class folder or a listed file is missing, a
            class folder holds no image, or ``ann_file`` is missing (the message names it).
        ValueError: Bad ``split`` / ``split_ratio``, both ``ann_file`` and ``split_ratio``,
            unknown class folders, or an ``ann_file`` line that matches no or several images.
    """

    METAINFO: dict = dict(classes=None)
    #: Folder of the class sub-folders inside ``data_root`` in the release.
    DEFAULT_PREFIX: str = ''

    def __init__(self,
                 data_root: str = '',
                 data_prefix: dict | None = None,
                 ann_file: str = '',
                 split_ratio: float | None = None,
                 split: str = 'test',
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 metainfo: dict | None = None,
                 strict_classes: bool = True,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if split_ratio is not None:
            if not 0 < float(split_ratio) < 1:
                raise ValueError(f'split_ratio must be in (0, 1), got {split_ratio}')
            if ann_file:
                raise ValueError('give either ann_file or split_ratio, not both')
        self.split_ratio = None if split_ratio is None else float(split_ratio)
        self.split = split
        self.extensions = tuple(e.lower() for e in extensions)
        self.strict_classes = strict_classes
        self._given_display_names = (metainfo or {}).get('display_names')
        prefix = dict(img_path=self.DEFAULT_PREFIX) if data_prefix is None else dict(data_prefix)
        super().__init__(
            data_root=data_root,
            data_prefix=prefix,
            ann_file=ann_file,
            metainfo=metainfo,
            pipeline=[TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline],
            **kwargs)

    # ------------------------------------------------------------------ listing
    def _is_image(self, name: str) -> bool:
        return name.lower().endswith(self.extensions)

    def _class_folders(self, root: str) -> list[str]:
        if not osp.isdir(root):
            raise FileNotFoundError(f'scene image folder not found: {root!r}')
        found = sorted(n for n in os.listdir(root)
                       if osp.isdir(osp.join(root, n)) and not n.startswith('.'))
        known = self._metainfo.get('classes')
        if known is None:
            if not found:
                raise FileNotFoundError(f'no class sub-folders in scene image folder {root!r}')
            return found
        known = list(known)
        missing = [c for c in known if c not in found]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} class folder(s) missing in {root!r}: {missing[:10]}'
                + (f' (found {found[:10]})' if found else ' (it has no sub-folders)'))
        extra = [c for c in found if c not in known]
        if extra and self.strict_classes:
            raise ValueError(f'{root!r} has folder(s) that are not classes of '
                             f'{type(self).__name__}: {extra[:10]} (strict_classes=False '
                             'ignores them)')
        return known

    def _list_images(self, root: str, classes: list[str]) -> dict[str, list[str]]:
        images = {}
        for cls in classes:
            folder = osp.join(root, cls)
            names = sorted(n for n in os.listdir(folder)
                           if self._is_image(n) and osp.isfile(osp.join(folder, n)))
            if not names:
                raise FileNotFoundError(
                    f'class folder {folder!r} holds no image with suffix {self.extensions}')
            images[cls] = names
        return images

    def _read_ann_file(self) -> list[str]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ann_file not found: {self.ann_file!r}')
        with open(self.ann_file, encoding='utf-8') as f:
            lines = [line.strip() for line in f]
        lines = [line for line in lines if line]
        if not lines:
            raise ValueError(f'ann_file {self.ann_file!r} lists no images')
        for i, line in enumerate(lines):
            if len(line.split()) != 1:
                raise ValueError(f'{self.ann_file!r} line {i + 1}: expected one image path, '
                                 f'got {line!r}')
        return lines

    def _select_from_ann(self, images: dict[str, list[str]]) -> list[tuple[str, str]]:
        by_name: dict[str, list[tuple[str, str]]] = {}
        by_stem: dict[str, list[tuple[str, str]]] = {}
        for cls, names in images.items():
            for name in names:
                by_name.setdefault(name, []).append((cls, name))
                by_stem.setdefault(osp.splitext(name)[0], []).append((cls, name))
        chosen = []
        for line in self._read_ann_file():
            line = line.replace('\\', '/')
            cls, _, name = line.rpartition('/')
            cls = cls.rsplit('/', 1)[-1]
            hits = by_name.get(name) or by_stem.get(osp.splitext(name)[0], [])
            if cls:
                hits = [h for h in hits if h[0] == cls]
            if len(hits) != 1:
                what = 'no image' if not hits else f'{len(hits)} images ({hits[:3]})'
                raise ValueError(f'{line!r} listed in ann_file {self.ann_file!r} matches '
                                 f'{what} under {self.data_prefix["img_path"]!r}')
            chosen.append(hits[0])
        return chosen

    def _select_by_ratio(self, images: dict[str, list[str]]) -> list[tuple[str, str]]:
        chosen = []
        for cls, names in images.items():
            names = list(names)
            if self.split_ratio is not None:
                stop = int(len(names) * self.split_ratio)
                names = names[:stop] if self.split == 'train' else names[stop:]
            chosen += [(cls, n) for n in names]
        return chosen

    def load_data_list(self) -> list[dict]:
        """List ``dict(img_path, gt_label)`` for every selected image (class order fixed by
        ``metainfo['classes']``) and record the classes and display names in the metainfo."""
        root = self.data_prefix['img_path']
        classes = self._class_folders(root)
        images = self._list_images(root, classes)
        self._metainfo['classes'] = tuple(classes)
        names = self._given_display_names
        if names is None:
            own = type(self).METAINFO
            known = dict(zip(own.get('classes') or (), own.get('display_names') or ()))
            names = [known.get(c, display_name(c)) for c in classes]
        elif len(names) != len(classes):
            raise ValueError(f'metainfo display_names has {len(names)} entries for '
                             f'{len(classes)} classes')
        self._metainfo['display_names'] = tuple(names)
        chosen = (self._select_from_ann(images) if self.ann_file
                  else self._select_by_ratio(images))
        if not chosen:
            raise FileNotFoundError(f'no images selected under {root!r} (split={self.split!r}, '
                                    f'split_ratio={self.split_ratio})')
        index = {c: i for i, c in enumerate(classes)}
        return [dict(img_path=osp.join(root, cls, name), gt_label=index[cls])
                for cls, name in chosen]


def _named(pairs: Sequence[tuple[str, str]]) -> dict:
    """METAINFO from ``(folder, display name)`` pairs, in the sorted folder order."""
    folders = tuple(p[0] for p in pairs)
    assert list(folders) == sorted(folders), folders  # the order ImageFolder uses
    return dict(classes=folders, display_names=tuple(p[1] for p in pairs))


def _auto(folders: Sequence[str]) -> dict:
    return _named([(f, display_name(f)) for f in folders])


@DATASETS.register_module()
class RESISC45Dataset(SceneFolderDataset):
    """NWPU-RESISC45 (Cheng, Han & Lu, Proc. IEEE 2017): 31,500 RGB 256×256 JPEGs, 45
    classes × 700 (``airplane/airplane_001.jpg``). ``data_root``: the extracted
    ``NWPU-RESISC45`` folder. torchgeo's split lists (``resisc45-{train,val,test}.txt``) work
    as ``ann_file``."""

    METAINFO = _auto((
        'airplane', 'airport', 'baseball_diamond', 'basketball_court', 'beach', 'bridge',
        'chaparral', 'church', 'circular_farmland', 'cloud', 'commercial_area',
        'dense_residential', 'desert', 'forest', 'freeway', 'golf_course', 'ground_track_field',
        'harbor', 'industrial_area', 'intersection', 'island', 'lake', 'meadow',
        'medium_residential', 'mobile_home_park', 'mountain', 'overpass', 'palace',
        'parking_lot', 'railway', 'railway_station', 'rectangular_farmland', 'river',
        'roundabout', 'runway', 'sea_ice', 'ship', 'snowberg', 'sparse_residential', 'stadium',
        'storage_tank', 'tennis_court', 'terrace', 'thermal_power_station', 'wetland'))


@DATASETS.register_module()
class AIDDataset(SceneFolderDataset):
    """AID (Xia et al., TGRS 2017): 10,000 RGB 600×600 JPEGs in 30 classes of 220–420
    (``Airport/airport_1.jpg``). ``data_root``: the extracted ``AID`` folder."""

    METAINFO = _auto((
        'Airport', 'BareLand', 'BaseballField', 'Beach', 'Bridge', 'Center', 'Church',
        'Commercial', 'DenseResidential', 'Desert', 'Farmland', 'Forest', 'Industrial', 'Meadow',
        'MediumResidential', 'Mountain', 'Park', 'Parking', 'Playground', 'Pond', 'Port',
        'RailwayStation', 'Resort', 'River', 'School', 'SparseResidential', 'Square', 'Stadium',
        'StorageTanks', 'Viaduct'))


@DATASETS.register_module()
class UCMercedDataset(SceneFolderDataset):
    """UC Merced Land Use (Yang & Newsam, ACM GIS 2010): 2,100 RGB TIFFs of about 256×256
    (a few are slightly smaller), 21 classes × 100 (``Images/agricultural/
    agricultural00.tif``). ``data_root``: the extracted ``UCMerced_LandUse`` folder."""

    DEFAULT_PREFIX = 'Images'
    METAINFO = _named((
        ('agricultural', 'agricultural'), ('airplane', 'airplane'),
        ('baseballdiamond', 'baseball diamond'), ('beach', 'beach'), ('buildings', 'buildings'),
        ('chaparral', 'chaparral'), ('denseresidential', 'dense residential'),
        ('forest', 'forest'), ('freeway', 'freeway'), ('golfcourse', 'golf course'),
        ('harbor', 'harbor'), ('intersection', 'intersection'),
        ('mediumresidential', 'medium residential'), ('mobilehomepark', 'mobile home park'),
        ('overpass', 'overpass'), ('parkinglot', 'parking lot'), ('river', 'river'),
        ('runway', 'runway'), ('sparseresidential', 'sparse residential'),
        ('storagetanks', 'storage tanks'), ('tenniscourt', 'tennis court')))


#: EuroSAT class folders and OpenAI CLIP's prompt names for them (CLIP ``data/prompts.md``).
EUROSAT_CLASSES = (
    ('AnnualCrop', 'annual crop land'), ('Forest', 'forest'),
    ('HerbaceousVegetation', 'brushland or shrubland'), ('Highway', 'highway or road'),
    ('Industrial', 'industrial buildings or commercial buildings'), ('Pasture', 'pasture land'),
    ('PermanentCrop', 'permanent crop land'),
    ('Residential', 'residential buildings or homes or apartments'), ('River', 'river'),
    ('SeaLake', 'lake or sea'))


@DATASETS.register_module()
class EuroSATDataset(SceneFolderDataset):
    """EuroSAT (Helber et al., JSTARS 2019): 27,000 Sentinel-2 64×64 patches in 10 classes.

    Two releases: ``variant='rgb'`` (``EuroSAT.zip``: ``2750/<Class>/<Class>_<n>.jpg``) and
    ``variant='ms'`` (``EuroSATallBands.zip``: ``ds/images/remote_sensing/otherDatasets/
    sentinel_2/tif/<Class>/<Class>_<n>.tif``, 13 bands B01–B12 with B8A after B08, uint16
    reflectance × 10000). The multispectral files need a raster loader and a band selection
    (:class:`~mmrs.datasets.transforms.bands.LoadMultiBandImage`,
    :class:`~mmrs.datasets.transforms.bands.SelectBands`). ``data_root``: the folder the
    archive was extracted into.
    """

    PREFIXES = dict(rgb='2750', ms='ds/images/remote_sensing/otherDatasets/sentinel_2/tif')
    METAINFO = _named(EUROSAT_CLASSES)

    def __init__(self, data_root: str = '', variant: str = 'rgb',
                 data_prefix: dict | None = None, **kwargs) -> None:
        if variant not in self.PREFIXES:
            raise ValueError(f'variant must be one of {sorted(self.PREFIXES)}, got {variant!r}')
        self.variant = variant
        if data_prefix is None:
            data_prefix = dict(img_path=self.PREFIXES[variant])
        super().__init__(data_root=data_root, data_prefix=data_prefix, **kwargs)


@DATASETS.register_module()
class WHURS19Dataset(SceneFolderDataset):
    """WHU-RS19 (Dai & Yang 2010; Xia et al. 2010): 1,005 RGB 600×600 JPEGs of Google Earth
    in 19 classes of about 50 (``<Class>/<image>.jpg``; note the release's lower-case
    ``footballField`` and ``railwayStation``, which sort last). ``data_root``: the extracted
    ``WHU-RS19`` folder."""

    METAINFO = _named((
        ('Airport', 'airport'), ('Beach', 'beach'), ('Bridge', 'bridge'),
        ('Commercial', 'commercial'), ('Desert', 'desert'), ('Farmland', 'farmland'),
        ('Forest', 'forest'), ('Industrial', 'industrial'), ('Meadow', 'meadow'),
        ('Mountain', 'mountain'), ('Park', 'park'), ('Parking', 'parking'), ('Pond', 'pond'),
        ('Port', 'port'), ('Residential', 'residential'), ('River', 'river'),
        ('Viaduct', 'viaduct'), ('footballField', 'football field'),
        ('railwayStation', 'railway station')))


@DATASETS.register_module()
class PatternNetDataset(SceneFolderDataset):
    """PatternNet (Zhou et al., ISPRS J. 2018): 30,400 RGB 256×256 JPEGs, 38 classes × 800
    (``images/<class>/<image>.jpg``). ``data_root``: the extracted ``PatternNet``
    folder."""

    DEFAULT_PREFIX = 'images'
    METAINFO = _auto((
        'airplane', 'baseball_field', 'basketball_court', 'beach', 'bridge', 'cemetery',
        'chaparral', 'christmas_tree_farm', 'closed_road', 'coastal_mansion', 'crosswalk',
        'dense_residential', 'ferry_terminal', 'football_field', 'forest', 'freeway',
        'golf_course', 'harbor', 'intersection', 'mobile_home_park', 'nursing_home',
        'oil_gas_field', 'oil_well', 'overpass', 'parking_lot', 'parking_space', 'railway',
        'river', 'runway', 'runway_marking', 'shipping_yard', 'solar_panel',
        'sparse_residential', 'storage_tank', 'swimming_pool', 'tennis_court',
        'transformer_station', 'wastewater_treatment_plant'))


#: Where RemoteCLIP's evaluation strings (ITRA ``new_classes`` values) differ from the
#: display names above: ITRA kept these folder spellings.
REMOTECLIP_NAME_OVERRIDES: dict[str, dict[str, str]] = dict(
    AIDDataset=dict(BareLand='bareLand'),
    WHURS19Dataset=dict(Commercial='Commercial', footballField='footballField',
                        railwayStation='railwayStation'))


def scene_class_names(dataset: str | type, style: str = 'display',
                      classes: Sequence[str] | None = None) -> list[str]:
    """Prompt strings of a dataset's classes, in label order.

    Args:
        dataset: A registered dataset type name (``'RESISC45Dataset'``) or class.
        style: ``'display'`` (this module's display names), ``'folder'`` (the folder names),
            ``'remoteclip'`` (RemoteCLIP's / ITRA's evaluation strings) or ``'georsclip'``
            (GeoRSCLIP's: folder names with ``_``/``/`` → space, lower-cased).
        classes: Class folders to name instead of the dataset's ``METAINFO['classes']``.

    Raises:
        KeyError: ``dataset`` is not registered.
        ValueError: Unknown ``style``, or a dataset without fixed classes and no ``classes``.
    """
    if style not in NAME_STYLES:
        raise ValueError(f'style must be one of {NAME_STYLES}, got {style!r}')
    cls = DATASETS.get(dataset) if isinstance(dataset, str) else dataset
    if cls is None:
        raise KeyError(f'dataset type {dataset!r} is not registered in mmrs DATASETS')
    meta = getattr(cls, 'METAINFO', {}) or {}
    folders = list(classes) if classes is not None else list(meta.get('classes') or [])
    if not folders:
        raise ValueError(f'{cls.__name__} has no fixed classes; pass classes=[...]')
    if style == 'folder':
        return folders
    if style == 'georsclip':
        return [georsclip_name(f) for f in folders]
    known = dict(zip(meta.get('classes') or (), meta.get('display_names') or ()))
    names = [known.get(f, display_name(f)) for f in folders]
    if style == 'remoteclip':
        overrides = REMOTECLIP_NAME_OVERRIDES.get(cls.__name__, {})
        names = [overrides.get(f, n) for f, n in zip(folders, names)]
    return names
