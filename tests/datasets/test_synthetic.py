"""Synthetic bitemporal GeoTIFF generator and ``SyntheticChangeDataset``.

Checks what users and ``make demo`` rely on: seeded determinism, exact labels, nuisance
changes that a plain difference threshold cannot separate from real change, georeferenced
files in the documented layout, idempotent and atomic folder writing, the CLI and the
registered dataset.
"""
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from mmrs.datasets.synthetic import (SEMANTIC_CLASSES, SyntheticChangeDataset, generate_pair,
                                     write_synthetic_dataset)
from mmrs.datasets.synthetic import changes, generator
from mmrs.datasets.synthetic.generator import SUBDIRS, sample_seed, tile_origin
from mmrs.datasets.synthetic.scene import BUILDING, GROUND, ROAD, VEGETATION, Scene

REPO_ROOT = Path(__file__).resolve().parents[2]
COUNTS = dict(train=4, val=2, test=3)
SIZE = 64


def f1_score(pred: np.ndarray, gt: np.ndarray) -> float:
    tp = np.sum(pred & gt)
    return 2 * tp / max(2 * tp + np.sum(pred & ~gt) + np.sum(~pred & gt), 1)


@pytest.fixture(scope='module')
def dataset_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic') / 'data'
    return write_synthetic_dataset(root, COUNTS['train'], COUNTS['val'], COUNTS['test'],
                                   size=SIZE, seed=3, bands=4)


def test_generate_pair_is_deterministic():
    first, again, other = generate_pair(7, SIZE), generate_pair(7, SIZE), generate_pair(8, SIZE)
    for name in ('img_from', 'img_to', 'class_from', 'class_to', 'change', 'label_from',
                 'label_to'):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.img_from, other.img_from)
    assert not np.array_equal(first.class_from, other.class_from)
    assert first.img_from.shape == (SIZE, SIZE, 3) and first.img_from.dtype == np.uint8
    assert generate_pair(7, SIZE, bands=4).img_to.shape == (SIZE, SIZE, 4)


def hand_made_scenes(size: int = 32) -> tuple[Scene, Scene, dict[str, np.ndarray]]:
    """Date-1 / date-2 land cover drawn by hand, and the labels they must give.

    Date 1: ground, a vegetation block (rows 20-27, columns 20-27) and one building (rows
    4-7, columns 4-7). Date 2: the building is demolished (ground), a road crosses row 15
    and the top half of the vegetation block is cleared (ground). Everything else is equal.
    """
    classes = np.full((size, size), GROUND, np.uint8)
    classes[20:28, 20:28] = VEGETATION
    ids = np.zeros((size, size), np.int32)
    classes[4:8, 4:8], ids[4:8, 4:8] = BUILDING, 1
    before = Scene(classes, ids, np.array([[0, 0, 0, 0], [0.7, 0.3, 0.2, 0.3]]),
                   np.zeros(2, np.int8))
    after = before.copy()
    after.classes[4:8, 4:8], after.building_ids[4:8, 4:8] = GROUND, 0
    after.classes[15, :] = ROAD
    after.classes[20:24, 20:28] = GROUND
    change = np.zeros((size, size), np.uint8)
    label_from = np.zeros((size, size), np.uint8)
    label_to = np.zeros((size, size), np.uint8)
    for rows, cols, frm, to in (((4, 8), (4, 8), BUILDING, GROUND), ((15, 16), (0, size), GROUND,
                                ROAD), ((20, 24), (20, 28), VEGETATION, GROUND)):
        area = np.s_[rows[0]:rows[1], cols[0]:cols[1]]
        change[area], label_from[area], label_to[area] = 1, frm, to
    return before, after, dict(change=change, label_from=label_from, label_to=label_to)


class TestKnownAnswerLabels:
    """The generator's labels checked against scenes whose answer is written out by hand."""

    @pytest.fixture
    def pair(self, monkeypatch):
        before, after, want = hand_made_scenes()
        monkeypatch.setattr(generator, 'draw_layout', lambda rng, size: before.copy())
        monkeypatch.setattr(generator, 'simulate_changes', lambda scene, rng: after.copy())
        return generate_pair(0, 32), want

    def test_labels_of_a_hand_made_scene(self, pair):
        pair, want = pair
        for key in ('change', 'label_from', 'label_to'):
            np.testing.assert_array_equal(getattr(pair, key), want[key], err_msg=key)

    def test_written_label_files(self, pair, tmp_path):
        pair, want = pair
        for sub in SUBDIRS:
            (tmp_path / sub).mkdir()
        generator.write_sample(tmp_path, 'x', pair)
        files = {}
        for sub in ('label', 'label_from', 'label_to'):
            with rasterio.open(tmp_path / sub / 'x.tif') as src:
                files[sub] = src.read(1)
        np.testing.assert_array_equal(files['label'], want['change'] * 255)  # 0 / 255
        np.testing.assert_array_equal(files['label_from'], want['label_from'])
        np.testing.assert_array_equal(files['label_to'], want['label_to'])

    def test_images_differ_exactly_at_the_known_change(self, without_nuisance, monkeypatch):
        before, after, want = hand_made_scenes()
        monkeypatch.setattr(generator, 'draw_layout', lambda rng, size: before.copy())
        monkeypatch.setattr(generator, 'simulate_changes', lambda scene, rng: after.copy())
        pair = generate_pair(0, 32)
        differs = (pair.img_from != pair.img_to).any(axis=-1)
        np.testing.assert_array_equal(differs, want['change'].astype(bool))

    def test_demolition_event_clears_class_and_roof(self):
        before, _, _ = hand_made_scenes()
        scene = before.copy()
        changes._demolish(scene, np.random.default_rng(0))  # the only building goes
        want = before.classes.copy()
        want[4:8, 4:8] = GROUND
        np.testing.assert_array_equal(scene.classes, want)
        assert not scene.building_ids.any()  # rendered as ground too, not as a roof


@pytest.fixture
def without_nuisance(monkeypatch):
    """Render both dates with the same season, no shadows and a noise-free sensor, so the
    only image differences left are land-cover differences."""
    real_render = generator.render
    monkeypatch.setattr(generator, 'render',
                        lambda scene, tex, season, shadow: real_render(scene, tex, 0.0, 0))
    monkeypatch.setattr(generator, 'acquire', lambda refl, rng, bands: np.clip(
        refl[..., :bands] * 255 + 0.5, 0, 255).astype(np.uint8))


@pytest.mark.parametrize('seed', range(30, 50))
def test_labels_equal_where_the_images_differ(without_nuisance, seed):
    """Measured on the images by numpy: a pixel is labelled changed iff it looks different.

    Seeds 32, 46 and 47 once built a new building on the footprint of a demolished one:
    visibly changed, labelled unchanged.
    """
    pair = generate_pair([seed, 1], 64)
    differs = (pair.img_from != pair.img_to).any(axis=-1)
    np.testing.assert_array_equal(pair.change.astype(bool), differs)
    changed = differs
    np.testing.assert_array_equal(pair.label_from == 0, ~changed)
    np.testing.assert_array_equal(pair.label_to == 0, ~changed)
    assert set(np.unique(pair.label_from[changed])) <= {1, 2, 3, 4, 5}
    assert (pair.label_from[changed] != pair.label_to[changed]).all()


def test_no_change_scene_differs_only_by_nuisance():
    pair = generate_pair(11, SIZE, allow_change=False)
    assert not pair.change.any() and not pair.label_from.any()
    np.testing.assert_array_equal(pair.class_from, pair.class_to)
    assert not np.array_equal(pair.img_from, pair.img_to)


def test_nuisance_defeats_a_difference_threshold():
    diffs, gts = [], []
    for i in range(6):
        pair = generate_pair([5, i], 128)
        gt = pair.change.astype(bool)
        diff = np.abs(pair.img_from.astype(int) - pair.img_to.astype(int)).mean(-1)
        assert diff[~gt].mean() > 2  # illumination / season / noise on unchanged pixels
        assert diff[gt].mean() > diff[~gt].mean()
        diffs.append(diff)
        gts.append(gt)
    diffs, gts = np.stack(diffs), np.stack(gts)
    assert diffs[gts].mean() > diffs[~gts].mean() + 15  # real change stays learnable
    best = max(f1_score(diffs > t, gts) for t in range(1, 128, 2))  # oracle threshold
    assert best < 0.9, f'a plain |A-B| threshold reaches F1 {best:.3f}: nuisance too weak'


def test_changed_fraction_within_bounds():
    fractions = np.array([generate_pair([2, i], SIZE).change.mean() for i in range(16)])
    assert fractions.max() <= 0.2 + 1e-9
    assert 0.03 <= fractions.mean() <= 0.2
    assert (fractions >= 0.02).mean() >= 0.9


def test_layout_and_georeferencing(dataset_root):
    meta = json.loads((dataset_root / 'meta.json').read_text())
    assert meta['counts'] == COUNTS and meta['seed'] == 3 and meta['bands'] == 4
    assert meta['semantic_classes'] == list(SEMANTIC_CLASSES)
    bounds = []
    for split, count in COUNTS.items():
        names = [f'{split}_{i:04d}.tif' for i in range(count)]
        for sub in SUBDIRS:
            assert sorted(p.name for p in (dataset_root / split / sub).iterdir()) == names
        for i, name in enumerate(names):
            expected = generate_pair(sample_seed(3, split, i), SIZE, 4,
                                     allow_change=i % 10 != 3,
                                     origin=tile_origin(split, i, SIZE))
            arrays = {}
            for sub in SUBDIRS:
                with rasterio.open(dataset_root / split / sub / name) as src:
                    assert src.crs.to_epsg() == 32633
                    assert src.transform == expected.transform
                    assert src.transform.a == 0.5 and src.transform.e == -0.5
                    assert src.dtypes[0] == 'uint8' and src.compression.name == 'deflate'
                    arrays[sub] = src.read()
                    if sub == 'A':
                        bounds.append(src.bounds)
            assert arrays['A'].shape == (4, SIZE, SIZE) and arrays['label'].shape[0] == 1
            np.testing.assert_array_equal(arrays['A'], np.moveaxis(expected.img_from, -1, 0))
            np.testing.assert_array_equal(arrays['B'], np.moveaxis(expected.img_to, -1, 0))
            np.testing.assert_array_equal(arrays['label'][0], expected.change * 255)
            np.testing.assert_array_equal(arrays['label_from'][0], expected.label_from)
            np.testing.assert_array_equal(arrays['label_to'][0], expected.label_to)
    # Tiles never overlap each other.
    for j, b in enumerate(bounds):
        for c in bounds[j + 1:]:
            assert b.right <= c.left or c.right <= b.left or b.top <= c.bottom or c.top <= b.bottom


def test_existing_folder_is_reused(dataset_root):
    meta_mtime = (dataset_root / 'meta.json').stat().st_mtime_ns
    tif = dataset_root / 'train' / 'A' / 'train_0000.tif'
    tif_mtime = tif.stat().st_mtime_ns
    again = write_synthetic_dataset(dataset_root, COUNTS['train'], COUNTS['val'],
                                    COUNTS['test'], size=SIZE, seed=3, bands=4)
    assert again == dataset_root
    assert (dataset_root / 'meta.json').stat().st_mtime_ns == meta_mtime
    assert tif.stat().st_mtime_ns == tif_mtime
    with pytest.raises(FileExistsError, match='seed=3'):
        write_synthetic_dataset(dataset_root, 4, 2, 3, size=SIZE, seed=4, bands=4)
    assert tif.stat().st_mtime_ns == tif_mtime


def test_user_data_is_never_overwritten(tmp_path):
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='no synthetic meta.json'):
        write_synthetic_dataset(tmp_path / 'mine', 1, 1, 1, size=SIZE)
    assert (tmp_path / 'mine' / 'notes.txt').read_text() == 'keep me'
    (tmp_path / 'empty').mkdir()
    write_synthetic_dataset(tmp_path / 'empty', 1, 0, 0, size=SIZE)  # empty dir is filled
    assert (tmp_path / 'empty' / 'train' / 'A' / 'train_0000.tif').is_file()


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    real_write, calls = generator.write_sample, []

    def flaky_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError('disk full')
        real_write(*args, **kwargs)

    monkeypatch.setattr(generator, 'write_sample', flaky_write)
    with pytest.raises(RuntimeError, match='disk full'):
        write_synthetic_dataset(tmp_path / 'data', 4, 1, 1, size=SIZE)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor a temporary folder


def test_concurrent_writers_share_one_dataset(tmp_path):
    """DDP ranks build the dataset at the same time: all succeed, one copy, no leftovers."""
    root = tmp_path / 'shared'
    context = multiprocessing.get_context('fork')
    with context.Pool(3) as pool:
        results = pool.starmap(write_synthetic_dataset, [(str(root), 2, 1, 1, 32, 5)] * 3)
    assert all(Path(r) == root for r in results)
    assert [p.name for p in tmp_path.iterdir()] == ['shared']  # temporary folders removed
    assert len(list((root / 'train' / 'A').glob('*.tif'))) == 2


def test_writer_that_loses_the_race_reuses_the_winner(tmp_path, monkeypatch):
    """The folder appears complete between the first check and the emptiness check."""
    root = write_synthetic_dataset(tmp_path / 'won', 2, 1, 1, size=32, seed=5)
    real_read_meta, calls = generator.read_meta, []

    def read_meta_late(path):
        calls.append(path)
        return None if len(calls) == 1 else real_read_meta(path)

    monkeypatch.setattr(generator, 'read_meta', read_meta_late)
    assert write_synthetic_dataset(root, 2, 1, 1, size=32, seed=5) == root
    assert len(calls) == 2


def test_cli_writes_layout(tmp_path):
    out = tmp_path / 'cli'
    cmd = [sys.executable, str(REPO_ROOT / 'tools' / 'data' / 'generate_synthetic.py'),
           '--out', str(out), '--num-train', '2', '--num-val', '1', '--num-test', '1',
           '--size', str(SIZE), '--seed', '5', '--bands', '4']
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    for split, count in (('train', 2), ('val', 1), ('test', 1)):
        for sub in SUBDIRS:
            assert len(list((out / split / sub).glob('*.tif'))) == count
    with rasterio.open(out / 'val' / 'A' / 'val_0000.tif') as src:
        assert src.count == 4 and src.crs.to_epsg() == 32633
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['seed'] == 5 and meta['bands'] == 4 and meta['size'] == SIZE


def test_registered_dataset(tmp_path):
    import mmrs.datasets  # noqa: F401  (registers the dataset classes)
    from mmrs.registry import DATASETS

    counts = dict(train=3, val=2, test=1)
    cfg = dict(type='SyntheticChangeDataset', data_root=str(tmp_path / 'ds'),
               num_samples=counts, size=SIZE, seed=1)
    val = DATASETS.build(dict(cfg, split='val'))
    assert isinstance(val, SyntheticChangeDataset) and len(val) == 2
    meta_mtime = (tmp_path / 'ds' / 'meta.json').stat().st_mtime_ns
    train = DATASETS.build(dict(cfg, split='train'))
    assert len(train) == 3
    assert (tmp_path / 'ds' / 'meta.json').stat().st_mtime_ns == meta_mtime  # no regeneration
    info = train.get_data_info(0)
    assert [Path(p).parent.name for p in info['img_path']] == ['A', 'B']
    assert info['img_path'][0].endswith('train/A/train_0000.tif')
    for key, folder in (('seg_map_path', 'label'), ('seg_map_path_from', 'label_from'),
                        ('seg_map_path_to', 'label_to')):
        assert Path(info[key]).is_file() and Path(info[key]).parent.name == folder
    assert tuple(train.metainfo['semantic_classes']) == SEMANTIC_CLASSES
    assert train.metainfo['classes'] == ('unchanged', 'changed')
    with pytest.raises(FileNotFoundError):
        DATASETS.build(dict(cfg, data_root=str(tmp_path / 'missing'), generate=False))
