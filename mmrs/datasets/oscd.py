"""OSCD: Onera Satellite Change Detection (Daudt et al., IGARSS 2018), read as distributed.

24 Sentinel-2 L1C image pairs of cities (2015–2018), 14 for training and 10 for testing,
with urban-change masks. Every date is a folder of 13 single-band GeoTIFFs whose pixel
size is the band's native resolution (10, 20 or 60 m) in ``imgs_1`` / ``imgs_2``; the
``imgs_1_rect`` / ``imgs_2_rect`` folders hold the same bands already resampled to the 10 m
grid (what torchgeo and most OSCD pipelines read). This module lists the band files of
each city (:class:`OSCDDataset`) and stacks them on one 10 m grid at load time
(:class:`LoadBitemporalBandFiles`, :func:`read_band_stack`).

Resampling to the 10 m grid uses each band's georeference when the files have one
(rasterio/GDAL ``reproject`` onto the grid of the reference band of date 1, ``B02`` by
default), else the nominal pixel-size ratio of the band (``B05`` = 2 × ``B02``), the
origins of both grids being the top-left corner. A band must cover the grid up to one of
its own pixels at every edge (20 m bands of an odd-sized 10 m crop are one 10 m pixel short
or long; the missing row/column takes the edge value, as the official notebook pads it);
anything further off is an error naming the file.
"""
import logging
import os
import os.path as osp
from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from mmrs.registry import DATASETS, TRANSFORMS

from .base_change_dataset import BaseChangeDataset
from .geo import pair_nodata_mask
from .io import read_raster
from .transforms.loading import effective_nodata

#: The 13 Sentinel-2 MSI bands in the order OSCD pipelines stack them (torchgeo, SeCo).
S2_BANDS = ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10',
            'B11', 'B12')
#: Native ground sampling distance of each band, in metres (ESA's S2 MSI user guide).
S2_RESOLUTION = dict(B01=60, B02=10, B03=10, B04=10, B05=20, B06=20, B07=20, B08=10, B8A=20,
                     B09=60, B10=60, B11=20, B12=20)
#: True-colour subset, red first.
RGB_BANDS = ('B04', 'B03', 'B02')
#: Official split: ``train.txt`` / ``test.txt`` of the release (comma-separated, one line).
TRAIN_CITIES = ('aguasclaras', 'bercy', 'bordeaux', 'nantes', 'paris', 'rennes', 'saclay_e',
                'abudhabi', 'cupertino', 'pisa', 'beihai', 'hongkong', 'beirut', 'mumbai')
TEST_CITIES = ('brasilia', 'montpellier', 'norcia', 'rio', 'saclay_w', 'valencia', 'dubai',
               'lasvegas', 'milano', 'chongqing')
RESAMPLINGS = ('nearest', 'bilinear', 'cubic')

_DUMMY_CRS = None  # a CRS for warping non-georeferenced bands by pixel ratio (created lazily)


def find_band_file(folder: str, band: str) -> str:
    """The file of ``band`` in a date folder: ``B02.tif`` (``imgs_*_rect``) or
    ``<product>_B02.tif`` (``imgs_*``, e.g. ``S2A_OPER_MSI_L1C_TL_..._B02.tif``).

    Raises:
        FileNotFoundError: The folder is missing or holds no file for ``band``.
        ValueError: More than one file matches.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'band folder not found: {folder!r}')
    want, tail = f'{band}.tif'.lower(), f'_{band}.tif'.lower()
    hits = sorted(n for n in os.listdir(folder) if n.lower() == want or n.lower().endswith(tail))
    if not hits:
        raise FileNotFoundError(f'missing band file: no {band}.tif or *_{band}.tif in {folder!r}')
    if len(hits) > 1:
        raise ValueError(f'{len(hits)} files for band {band} in {folder!r}: {hits}')
    return osp.join(folder, hits[0])


def _affine(meta: dict):
    from rasterio.transform import Affine
    return Affine(*meta['transform'][:6])


def _band_to_grid(path: str, band: str, ref_band: str, shape: tuple[int, int], arr: np.ndarray,
                  meta: dict, grid: dict) -> tuple:
    """``(src_transform, dst_transform, crs)`` mapping the band's pixels onto the grid."""
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    global _DUMMY_CRS
    if (meta['transform'] is None) != (grid['transform'] is None):
        which = 'has no' if meta['transform'] is None else 'has a'
        raise ValueError(f'band file {path!r} {which} georeference but the reference band '
                         f'{ref_band} does the opposite; cannot put them on one grid')
    if meta['transform'] is not None:
        if meta['crs'] != grid['crs'] and (
                meta['crs'] is None or grid['crs'] is None
                or CRS.from_wkt(meta['crs']) != CRS.from_wkt(grid['crs'])):
            raise ValueError(f'band file {path!r} is in another CRS than the reference band '
                             f'{ref_band} ({meta["crs"]!r:.60} vs {grid["crs"]!r:.60})')
        crs = CRS.from_wkt(meta['crs']) if meta['crs'] is not None else None
        src, dst = _affine(meta), _affine(grid)
    else:
        crs = None
        if arr.shape[:2] == tuple(shape):
            factor = 1.0
        elif band in S2_RESOLUTION and ref_band in S2_RESOLUTION:
            factor = S2_RESOLUTION[band] / S2_RESOLUTION[ref_band]
        else:
            raise ValueError(f'band file {path!r} is {arr.shape[0]}x{arr.shape[1]}, the grid '
                             f'{shape[0]}x{shape[1]}, and neither is georeferenced nor a '
                             'known Sentinel-2 band: its pixel size is unknown')
        src, dst = Affine.scale(factor), Affine.identity()
    if crs is None:
        _DUMMY_CRS = _DUMMY_CRS or CRS.from_epsg(3857)  # same on both sides: a no-op warp
        crs = _DUMMY_CRS
    return src, dst, crs


def _compose(first, second):
    """The affine ``first ∘ second`` (matrix product; spelled out because ``*`` is deprecated
    in affine 3 and ``@`` is missing from the affine 2 that rasterio 1.3 may bring)."""
    from rasterio.transform import Affine
    m = [[first.a, first.b, first.c], [first.d, first.e, first.f], [0, 0, 1]]
    n = [[second.a, second.b, second.c], [second.d, second.e, second.f], [0, 0, 1]]
    return Affine(*(np.array(m, float) @ np.array(n, float))[:2].ravel())


def _check_extent(path: str, rel, band_shape: tuple[int, int], shape: tuple[int, int]) -> None:
    """Raise unless the band (``rel``: band pixel -> grid pixel) covers the grid up to one
    band pixel at every edge."""
    (x0, y0), (x1, y1) = (rel.c, rel.f), (rel.a * band_shape[1] + rel.b * band_shape[0] + rel.c,
                                          rel.d * band_shape[1] + rel.e * band_shape[0] + rel.f)
    x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    tol_x, tol_y = abs(rel.a) + abs(rel.b) + 1e-6, abs(rel.d) + abs(rel.e) + 1e-6
    h, w = shape
    if abs(x0) > tol_x or abs(y0) > tol_y or abs(x1 - w) > tol_x or abs(y1 - h) > tol_y:
        raise ValueError(
            f'band file {path!r} does not match the extent of the reference grid: it covers '
            f'columns {x0:.4g}..{x1:.4g} and rows {y0:.4g}..{y1:.4g} of the {h}x{w} 10 m grid '
            f'(more than one band pixel off). Bands of one city must cover the same area.')


def read_band_stack(paths: Sequence[str], bands: Sequence[str], grid_path: str,
                    grid_band: str = 'B02',
                    resampling: str = 'bilinear') -> tuple[np.ndarray, dict]:
    """Read single-band files and stack them ``(H, W, len(paths))`` on one grid.

    Args:
        paths: One file per band, in stacking order.
        bands: Their band names (``'B05'``...), used for the pixel-size ratio of
            non-georeferenced files and in errors.
        grid_path: File whose grid (size, georeference) every band is resampled to, e.g.
            date 1's ``B02``.
        grid_band: Band name of ``grid_path`` (for the pixel-size ratio).
        resampling: ``'nearest'``, ``'bilinear'`` or ``'cubic'`` (GDAL kernels).

    Returns:
        The stack (dtype: the common dtype of the files) and the ``geo_meta`` of the grid
        (``count`` = number of bands).

    Raises:
        ValueError: Bands in other CRSs, of mismatched extent, or with unknown pixel size.
    """
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.warp import reproject
    if resampling not in RESAMPLINGS:
        raise ValueError(f'resampling must be one of {RESAMPLINGS}, got {resampling!r}')
    if len(paths) != len(bands) or not paths:
        raise ValueError(f'need one band name per file, got {len(bands)} for {len(paths)}')
    ref_arr, grid = read_raster(grid_path, 'rasterio')
    shape = ref_arr.shape[:2]
    layers = []
    for path, band in zip(paths, bands):
        arr, meta = (ref_arr, grid) if path == grid_path else read_raster(path, 'rasterio')
        if arr.shape[2] != 1:
            raise ValueError(f'band file {path!r} has {arr.shape[2]} bands, expected 1')
        arr = arr[..., 0]
        if arr.shape == shape and meta['transform'] == grid['transform']:
            layers.append(arr)
            continue
        src, dst, crs = _band_to_grid(path, band, grid_band, shape, arr, meta, grid)
        _check_extent(path, _compose(~dst, src), arr.shape, shape)
        padded = np.pad(arr, 1, mode='edge')  # edge rows/columns for the last partial pixel
        out = np.zeros(shape, arr.dtype)
        reproject(padded, out, src_transform=_compose(src, Affine.translation(-1, -1)),
                  src_crs=crs, dst_transform=dst, dst_crs=crs,
                  resampling=getattr(Resampling, resampling), src_nodata=meta['nodata'],
                  dst_nodata=meta['nodata'])
        layers.append(out)
    stack = np.stack(layers, axis=-1)  # the common dtype of the files
    meta = dict(grid, count=len(layers), dtype=str(stack.dtype))
    return stack, meta


@TRANSFORMS.register_module()
class LoadBitemporalBandFiles(BaseTransform):
    """Load two dates stored as one file per band (OSCD) onto date 1's reference grid.

    Reads ``results['band_paths']`` (per date, one file per band) and
    ``results['band_names']``; without them (e.g. a visualisation hook passing only
    ``img_path``) the band files are looked up in the ``img_path`` folders with
    :func:`find_band_file` for ``bands``. Every band of both dates is resampled to the grid
    of ``results['grid_path']`` (band ``results['grid_band']``: date 1's ``B02`` from
    :class:`OSCDDataset`; else the first 10 m band of date 1), so both dates share one grid
    and ``geo_meta`` by construction.
    Adds the same keys as :class:`~mmrs.datasets.transforms.LoadBitemporalImages`
    (``img``, ``img_shape``, ``ori_shape``, ``geo_meta``, ``nodata_mask``).

    Args:
        resampling: ``'bilinear'`` (default), ``'nearest'`` or ``'cubic'``.
        bands: Band names used when the results carry no ``band_names``.
        to_float32: Cast the stacks to float32.
        nodata: Nodata value of both dates, overriding the dataset option and the files.
    """

    def __init__(self, resampling: str = 'bilinear', bands: Sequence[str] = S2_BANDS,
                 to_float32: bool = False, nodata: float | None = None) -> None:
        if resampling not in RESAMPLINGS:
            raise ValueError(f'resampling must be one of {RESAMPLINGS}, got {resampling!r}')
        self.resampling = resampling
        self.bands = tuple(bands)
        self.to_float32 = to_float32
        self.nodata = nodata

    def transform(self, results: dict) -> dict:
        bands = tuple(results.get('band_names') or self.bands)
        paths = results.get('band_paths') or [
            [find_band_file(folder, b) for b in bands] for folder in results['img_path']]
        grid_path, grid_band = results.get('grid_path'), results.get('grid_band')
        if grid_path is None:  # the first 10 m band of date 1
            grid_path, grid_band = next(
                ((p, b) for p, b in zip(paths[0], bands) if S2_RESOLUTION.get(b) == 10),
                (paths[0][0], bands[0]))
        imgs, metas = [], []
        for date_paths in paths:
            img, meta = read_band_stack(date_paths, bands, grid_path, grid_band or 'B02',
                                        self.resampling)
            imgs.append(img)
            metas.append(meta)
        if self.nodata is not None:
            results['nodata'] = float(self.nodata)
        results['geo_meta'] = metas
        mask = pair_nodata_mask(imgs, effective_nodata(results))
        if mask is not None:
            results['nodata_mask'] = mask
        else:
            results.pop('nodata_mask', None)
        results['img'] = [i.astype(np.float32) for i in imgs] if self.to_float32 else imgs
        results['img_shape'] = imgs[0].shape[:2]
        results['ori_shape'] = imgs[0].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(resampling={self.resampling!r}, '
                f'bands={self.bands}, to_float32={self.to_float32}, nodata={self.nodata})')


def read_city_list(path: str) -> list[str]:
    """Cities of an OSCD split file (``aguasclaras,bercy,...``; commas and/or new lines)."""
    with open(path, encoding='utf-8') as f:
        cities = [c.strip() for c in f.read().replace('\n', ',').split(',')]
    cities = [c for c in cities if c]
    if not cities:
        raise ValueError(f'city list {path!r} is empty')
    return cities


def read_dates(path: str) -> tuple[str, str] | None:
    """``('20161130', '20170829')`` from a city's ``dates.txt`` (``date_1: 20161130``)."""
    if not osp.isfile(path):
        return None
    values = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.strip():
                key, sep, value = line.partition(':')
                if not sep:
                    raise ValueError(f'{path!r}: expected "date_1: YYYYMMDD", got {line!r}')
                values[key.strip()] = value.strip()
    if 'date_1' not in values or 'date_2' not in values:
        raise ValueError(f'{path!r} lacks date_1 / date_2 (found {sorted(values)})')
    return values['date_1'], values['date_2']


@DATASETS.register_module()
class OSCDDataset(BaseChangeDataset):
    """OSCD (Daudt et al., 2018): one sample per city, 13 Sentinel-2 bands per date.

    Layout under ``data_root`` (the three archives of the release, extracted)::

        Onera Satellite Change Detection dataset - Images/
            train.txt, test.txt                  comma-separated city lists (14 / 10)
            <city>/imgs_1/<product>_B01.tif ... _B12.tif, _B8A.tif   native 10/20/60 m
            <city>/imgs_1_rect/B01.tif ...       the same bands resampled to 10 m
            <city>/imgs_2/, imgs_2_rect/         date 2
            <city>/pair/img1.png, img2.png       RGB previews (unused)
            <city>/dates.txt                     date_1: YYYYMMDD / date_2: YYYYMMDD
        Onera Satellite Change Detection dataset - Train Labels/<city>/cm/
            cm.png                               0 unchanged, 255 changed
            <city>-cm.tif                        1 unchanged, 2 changed
        Onera Satellite Change Detection dataset - Test Labels/<city>/cm/  (same)

    Each sample carries ``img_path`` (the two date folders), ``band_paths`` (per date, one
    file per band in ``bands`` order), ``band_names``, ``grid_path`` (date 1's
    ``ref_band``, the 10 m grid every band is resampled to by
    :class:`LoadBitemporalBandFiles`), ``city`` and ``dates``. Missing band or label files
    and unknown cities raise at construction, naming the file or city.

    Args:
        data_root: Folder holding the extracted release.
        split: ``'train'`` or ``'test'``: the cities of ``train.txt`` / ``test.txt``
            (the official lists :data:`TRAIN_CITIES` / :data:`TEST_CITIES` when the file is
            absent) and the matching label folder.
        cities: Explicit cities instead of the split file (labels are looked up in the
            train, then the test label folder).
        bands: Band names to stack, in that order (e.g. :data:`RGB_BANDS`).
        ref_band: Band whose date-1 grid all bands are resampled to (a 10 m band).
        rect: Read ``imgs_*_rect`` (default: bands already on the 10 m grid, what torchgeo
            reads) instead of the native-resolution ``imgs_*``.
        label_format: ``'png'`` (``cm/cm.png``, 0/255) or ``'tif'`` (``<city>-cm.tif``,
            1/2, decoded with the strict ``'1/2'`` encoding unless ``label_encoding`` is given).
        with_label: List the change maps (False for inference on unlabelled cities).
        **kwargs: See :class:`~mmrs.datasets.BaseChangeDataset` (``label_encoding``,
            ``nodata``, ``ignore_nodata``, ``on_missing``, ``pipeline`` ...).
    """

    METAINFO = dict(classes=('unchanged', 'changed'), palette=[[0, 0, 0], [255, 255, 255]])
    LABEL_ENCODING = '0/255'  # cm/cm.png of the release
    IMAGES_DIR = 'Onera Satellite Change Detection dataset - Images'
    LABEL_DIRS = dict(train='Onera Satellite Change Detection dataset - Train Labels',
                      test='Onera Satellite Change Detection dataset - Test Labels')
    OFFICIAL_CITIES = dict(train=TRAIN_CITIES, test=TEST_CITIES)

    def __init__(self, data_root: str = '', split: str | None = 'train',
                 cities: Sequence[str] | None = None, bands: Sequence[str] = S2_BANDS,
                 ref_band: str = 'B02', rect: bool = True, label_format: str = 'png',
                 with_label: bool = True, **kwargs) -> None:
        if cities is None and split not in self.LABEL_DIRS:
            raise ValueError(f"split must be one of {tuple(self.LABEL_DIRS)} (OSCD has no "
                             f"validation split) or cities must be given; got {split!r}")
        unknown = [b for b in (*bands, ref_band) if b not in S2_BANDS]
        if unknown or not bands:
            raise ValueError(f'unknown Sentinel-2 band(s) {unknown} (bands {tuple(bands)}); '
                             f'OSCD has {S2_BANDS}')
        if label_format not in ('png', 'tif'):
            raise ValueError(f"label_format must be 'png' or 'tif', got {label_format!r}")
        if label_format == 'tif' and kwargs.get('label_encoding') is None:
            kwargs.update(label_encoding='1/2')  # 1 no change, 2 change
        self.split, self.cities = split, list(cities) if cities is not None else None
        self.bands, self.ref_band = tuple(bands), ref_band
        self.rect, self.label_format, self.with_label = rect, label_format, with_label
        super().__init__(data_root=data_root, img_suffix='.tif', seg_map_suffix='.png',
                         data_prefix=dict(img_path_from=self.IMAGES_DIR,
                                          img_path_to=self.IMAGES_DIR), **kwargs)

    def _city_list(self, images: str) -> tuple[list[str], str]:
        if self.cities is not None:
            return self.cities, 'cities argument'
        path = osp.join(images, f'{self.split}.txt')
        if osp.isfile(path):
            return read_city_list(path), path
        print_log(f'OSCD split file {path!r} not found; using the official {self.split} list',
                  logger='current', level=logging.WARNING)
        return list(self.OFFICIAL_CITIES[self.split]), f'official {self.split} list'

    def _label_path(self, city: str) -> str:
        name = 'cm.png' if self.label_format == 'png' else f'{city}-cm.tif'
        splits = [self.split] if self.cities is None else list(self.LABEL_DIRS)
        tried = [osp.join(self.data_root, self.LABEL_DIRS[s], city, 'cm', name) for s in splits]
        for path in tried:
            if osp.isfile(path):
                return path
        raise FileNotFoundError(f'missing label of city {city!r}: {" or ".join(tried)}')

    def _sample(self, images: str, city: str) -> dict:
        rect = '_rect' if self.rect else ''
        folders = [osp.join(images, city, f'imgs_{d}{rect}') for d in (1, 2)]
        band_paths = [[find_band_file(f, b) for b in self.bands] for f in folders]
        return dict(
            img_path=folders, band_paths=band_paths, band_names=self.bands,
            grid_path=find_band_file(folders[0], self.ref_band), grid_band=self.ref_band,
            seg_map_path=self._label_path(city) if self.with_label else None,
            city=city, sample_name=city, dates=read_dates(osp.join(images, city, 'dates.txt')))

    def load_data_list(self) -> list[dict]:
        """One entry per city of the split (see the class docstring)."""
        images = self.data_prefix['img_path_from']
        if not osp.isdir(images):
            raise FileNotFoundError(f'OSCD images folder not found: {images!r}')
        cities, source = self._city_list(images)
        data_list = []
        for city in cities:
            if not osp.isdir(osp.join(images, city)):
                raise FileNotFoundError(f'unknown city {city!r} (from {source}): no folder '
                                        f'{osp.join(images, city)!r}')
            try:
                info = self._sample(images, city)
            except FileNotFoundError as err:
                if self.on_missing == 'raise':
                    raise
                print_log(f'{err}; skipping city {city!r}', logger='current',
                          level=logging.WARNING)
                continue
            info.update(label_map=None, reduce_zero_label=False,
                        label_encoding=self.label_encoding, label_threshold=self.label_threshold,
                        nodata=self.nodata, ignore_nodata=self.ignore_nodata, seg_fields=[],
                        sample_idx=len(data_list))
            data_list.append(info)
        if not data_list:
            raise FileNotFoundError(f'no complete OSCD city under {images!r}')
        return data_list
