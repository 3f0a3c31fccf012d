"""What a synthetic dataset folder is: classes, palette, splits, layout, CRS and ``meta.json``.

Kept apart from the generator (numpy drawing, OpenCV, rasterio writing) so that registering
and listing a :class:`~mmrs.datasets.synthetic.SyntheticChangeDataset` does not import any
generation code; :mod:`.generator` is imported only when a folder has to be written.
"""
import json
from pathlib import Path

GROUND, VEGETATION, WATER, ROAD, BUILDING = 1, 2, 3, 4, 5
#: Land-cover classes, id ``i + 1`` for entry ``i`` (ground = bare soil and dry grass).
LAND_COVER_CLASSES = ('ground', 'vegetation', 'water', 'road', 'building')
#: Semantic-change label values (SECOND convention): 0 = no change, else the date's class.
#: Index 0 is named 'unchanged' like in the other mmrs SCD datasets (SECOND, Landsat-SCD).
SEMANTIC_CLASSES = ('unchanged', *LAND_COVER_CLASSES)
SEMANTIC_PALETTE = [[255, 255, 255], [180, 130, 70], [40, 150, 40], [30, 90, 200],
                    [128, 128, 128], [220, 50, 50]]

DEFAULT_CRS = 'EPSG:32633'  # WGS 84 / UTM zone 33N
PIXEL_SIZE = 0.5  # metres
SPLITS = ('train', 'val', 'test')
#: Folders of a split: date 1, date 2, binary label (0 / 255), per-date semantic labels.
SUBDIRS = ('A', 'B', 'label', 'label_from', 'label_to')
DEFAULT_COUNTS = dict(train=200, val=40, test=40)
BAND_NAMES = ('red', 'green', 'blue', 'nir')
#: Bumped when the same parameters give other files (2: no building rebuilt on the footprint
#: of another, whose label was wrongly "unchanged").
FORMAT_VERSION = 2


def read_meta(root: str | Path) -> dict | None:
    """``root/meta.json`` as a dict, or ``None`` when absent or unreadable."""
    try:
        return json.loads((Path(root) / 'meta.json').read_text())
    except (OSError, ValueError):
        return None
