"""XView2Metric against the official scorer, MambaCD's evaluator and hand-counted tiles.

Oracles, none of them mmrs code:

- the official ``xview2_metrics.py`` (DIUx-xView/xView2_scoring) run end to end on PNG files
  (its ``XviewMetrics`` class: file naming, value checks, per-tile rows, F1s, harmonic mean,
  score), imported from a checkout or git mirror (``MMRS_XVIEW2_SCORING``, default
  ``../.mirror/DIUx-xView+xView2_scoring/repo``); pandas is replaced by a 5-line column
  summer if it is not installed and the process pool by a serial map;
- MambaCD's ``utils_func/metrics.py`` ``Evaluator`` driven as ``infer_MambaBDA.py`` drives it
  (``MMRS_MAMBACD_REPO``, default ``../.mirror/ChenHongruixuan+MambaCD/repo``);
- tiles whose counts are worked out by hand in the comments.

The first two skip when their source is absent.
"""
import importlib.util
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from PIL import Image

from mmrs.evaluation import XView2Metric
from mmrs.registry import METRICS
from mmrs.structures import ChangeDataSample

REPO_ROOT = Path(__file__).resolve().parents[2]
MIRRORS = REPO_ROOT.parent / '.mirror'
EPS = 1e-6
GRADES = ('no_damage', 'minor_damage', 'major_damage', 'destroyed')


def sample(lp, lt, dp, dt, name: str = 'tile') -> ChangeDataSample:
    """A ChangeDataSample holding the four maps (H, W arrays)."""
    s = ChangeDataSample(metainfo=dict(img_path=[f'{name}_pre.png', f'{name}_post.png']))
    for key, value in (('pred_sem_seg', lp), ('gt_sem_seg', lt), ('pred_damage_seg', dp),
                       ('gt_damage_seg', dt)):
        setattr(s, key, PixelData(data=torch.as_tensor(np.asarray(value)).long()[None]))
    return s


def evaluate(tiles, as_dict: bool = False, **kwargs) -> dict[str, float]:
    metric = XView2Metric(**kwargs)
    for t in tiles:
        s = sample(*t)
        metric.process({}, [s.to_dict() if as_dict else s])
    return metric.compute_metrics(metric.results)


def random_tiles(n: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """(loc pred, loc target, damage pred, damage target) with square buildings.

    The damage target's buildings differ from the localisation target's in places (moved
    or new buildings), which is where the official and MambaCD rules disagree.
    """
    rng = np.random.default_rng(seed)
    tiles = []
    for _ in range(n):
        lt = np.zeros((size, size), np.uint8)
        dt = np.zeros((size, size), np.uint8)
        for _ in range(size // 8):
            y, x = rng.integers(0, size - 12, 2)
            h, w = rng.integers(3, 12, 2)
            lt[y:y + h, x:x + w] = 1
            dt[y:y + h, x:x + w] = rng.integers(1, 5)
        dt[rng.random((size, size)) < 0.02] = 0
        extra = rng.random((size, size)) < 0.01
        dt[extra] = rng.integers(1, 5, extra.sum())
        lp = np.where(rng.random((size, size)) < 0.85, lt, 1 - lt).astype(np.uint8)
        dp = np.where(rng.random((size, size)) < 0.6, dt,
                      rng.integers(0, 5, (size, size))).astype(np.uint8)
        tiles.append((lp, lt, dp, dt))
    return tiles


# ----------------------------------------------------------------------------- oracles
def _source(env: str, default: Path, path: str) -> str:
    """Text of ``path`` from a checkout or a (bare) git repository, else skip."""
    root = Path(os.environ.get(env, default))
    if (root / path).is_file():
        return (root / path).read_text()
    try:
        return subprocess.run(['git', '-C', str(root), 'show', f'HEAD:{path}'], check=True,
                              capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip(f'{path} not found in {root} (set {env})')


def _import(name: str, text: str, folder: Path) -> types.ModuleType:
    file = folder / f'{name}.py'
    file.write_text(text)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Frame:
    """What ``xview2_metrics.py`` uses of ``pandas.DataFrame``: build from rows, sum a column."""

    def __init__(self, rows, columns):
        self.columns = {c: np.array([row[i] for row in rows]) for i, c in enumerate(columns)}

    def __getitem__(self, column):
        return self.columns[column]


class _SerialPool:

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return [fn(item) for item in items]


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    text = _source('MMRS_XVIEW2_SCORING', MIRRORS / 'DIUx-xView+xView2_scoring' / 'repo',
                   'xview2_metrics.py')
    stub = None
    if importlib.util.find_spec('pandas') is None:
        stub = sys.modules['pandas'] = types.ModuleType('pandas')
        stub.DataFrame = _Frame
    try:
        module = _import('official_xview2_metrics', text, tmp_path_factory.mktemp('scorer'))
    finally:
        if stub is not None:
            del sys.modules['pandas']
    module.Pool = _SerialPool  # the scorer maps tiles over a process pool
    return module


@pytest.fixture(scope='module')
def mambacd_evaluator(tmp_path_factory):
    text = _source('MMRS_MAMBACD_REPO', MIRRORS / 'ChenHongruixuan+MambaCD' / 'repo',
                   'changedetection/utils_func/metrics.py')
    return _import('mambacd_metrics', text, tmp_path_factory.mktemp('mambacd')).Evaluator


def official_scores(module, tiles, folder: Path) -> dict[str, float]:
    """Run the official scorer on the tiles written as its 1024x1024 PNG files."""
    pred, targ = folder / 'predictions', folder / 'targets'
    pred.mkdir()
    targ.mkdir()
    for k, (lp, lt, dp, dt) in enumerate(tiles):
        for arr, path in ((lp, pred / f'test_localization_{k:05d}_prediction.png'),
                          (dp, pred / f'test_damage_{k:05d}_prediction.png'),
                          (lt, targ / f'test_localization_{k:05d}_target.png'),
                          (dt, targ / f'test_damage_{k:05d}_target.png')):
            Image.fromarray(arr.astype(np.uint8)).save(path)
    m = module.XviewMetrics(pred, targ)
    out = dict(score=m.score, damage_f1=m.df1, localization_f1=m.lf1)
    out.update({f'damage_f1_{g}': f1 for g, f1 in zip(GRADES, m.df1s)})
    return out


def mambacd_scores(evaluator_cls, tiles) -> dict[str, float]:
    """``infer_MambaBDA.py``'s evaluation loop over the tiles."""
    loc, clf = evaluator_cls(num_class=2), evaluator_cls(num_class=5)
    for lp, lt, dp, dt in tiles:
        loc.add_batch(lt[None].astype(np.int64), lp[None].astype(np.int64))
        keep = lt[None] > 0
        clf.add_batch(dt[None][keep].astype(np.int64), dp[None][keep].astype(np.int64))
    loc_f1 = loc.Pixel_F1_score()
    f1s = clf.Damage_F1_socore()
    with np.errstate(divide='ignore'):
        harmonic = len(f1s) / np.sum(1.0 / f1s)
    return {'mambacd/loc_f1': loc_f1, 'mambacd/damage_f1': harmonic,
            'mambacd/oa_f1': 0.3 * loc_f1 + 0.7 * harmonic,
            **{f'mambacd/damage_f1_{g}': f1 for g, f1 in zip(GRADES, f1s)}}


# ----------------------------------------------------------------------------- tests
class TestAgainstOfficialCode:

    def test_equals_the_official_scorer(self, official, tmp_path) -> None:
        tiles = random_tiles(3, 1024, seed=1)
        want = official_scores(official, tiles, tmp_path)
        got = evaluate(tiles)
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key
        assert 0.2 < got['score'] < 0.9  # a non-degenerate case

    def test_absent_grade_and_empty_tiles_equal_the_official_scorer(self, official,
                                                                    tmp_path) -> None:
        dt = np.zeros((1024, 1024), np.uint8)
        for grade in (1, 2, 3):
            dt[100:200, 100 * grade:100 * grade + 100] = grade
        lt = (dt > 0).astype(np.uint8)
        empty = np.zeros_like(lt)
        tiles = [(lt, lt, dt, dt), (empty, empty, empty, empty)]  # no "destroyed" anywhere
        want = official_scores(official, tiles, tmp_path)
        got = evaluate(tiles)
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-15), key
        assert got['damage_f1_destroyed'] == 0 and got['damage_f1'] < 1e-5

    def test_mambacd_convention_equals_its_evaluator(self, mambacd_evaluator) -> None:
        tiles = random_tiles(4, 96, seed=2)
        want = mambacd_scores(mambacd_evaluator, tiles)
        got = evaluate(tiles)
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-9), key
        official = evaluate(tiles, conventions='xview2')
        assert not any(k.startswith('mambacd/') for k in official)
        assert official['damage_f1'] != pytest.approx(got['mambacd/damage_f1'], abs=1e-3)


# One tile of 10 pixels, worked out by hand:
#   index      0  1  2  3  4  5  6  7  8  9
LT = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])   # localisation target
LP = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])   # localisation prediction
DT = np.array([1, 2, 3, 4, 0, 0, 2, 0, 0, 0])   # damage target (6: a post-only building)
DP = np.array([1, 2, 3, 4, 2, 3, 2, 1, 0, 0])   # damage prediction
# Localisation: TP = {0, 1, 2, 4}, FN = {3}, FP = {5}: P = R = F1 = 0.8.
# Official damage: DP * LP = [1, 2, 3, 0, 2, 3, 0, 0, 0, 0], scored where DT > 0 = {0, 1, 2, 3,
#   6}: (gt, pred) = (1, 1) (2, 2) (3, 3) (4, 0) (2, 0) -> F1 grade 1 = 1, grade 2: TP 1,
#   FN 1 -> 2/3, grade 3 = 1, grade 4: TP 0 -> 0.
# MambaCD damage: scored where LT == 1 = {0..4}, DP as is: (1, 1) (2, 2) (3, 3) (4, 4) (0, 2)
#   -> grades 1, 3, 4: F1 1; grade 2: TP 1, FP 1 -> P 1/2, R 1 -> 2/3.
HAND = [(LP[None], LT[None], DP[None], DT[None])]


class TestHandCounted:

    def test_official_rule(self) -> None:
        got = evaluate(HAND)
        assert got['localization_f1'] == pytest.approx(0.8)
        assert got['localization_precision'] == pytest.approx(0.8)
        f1s = [1.0, 2 / 3, 1.0, 0.0]
        for grade, f1 in zip(GRADES, f1s):
            assert got[f'damage_f1_{grade}'] == pytest.approx(f1, abs=1e-12)
        assert got['damage_recall_minor_damage'] == pytest.approx(0.5)
        harmonic = 4 / sum(1 / (f + EPS) for f in f1s)
        assert got['damage_f1'] == pytest.approx(harmonic, rel=1e-12)
        assert got['score'] == pytest.approx(0.3 * 0.8 + 0.7 * harmonic, rel=1e-12)

    def test_mambacd_rule(self) -> None:
        got = evaluate(HAND)
        for grade, f1 in zip(GRADES, [1.0, 2 / 3, 1.0, 1.0]):
            assert got[f'mambacd/damage_f1_{grade}'] == pytest.approx(f1, abs=1e-6)
        assert got['mambacd/damage_f1'] == pytest.approx(4 / 4.5, abs=1e-6)
        assert got['mambacd/oa_f1'] == pytest.approx(0.3 * 0.8 + 0.7 * 4 / 4.5, abs=1e-6)

    def test_counts_are_summed_over_tiles_not_averaged(self) -> None:
        one = np.ones((1, 2), np.int64)
        zero = np.zeros((1, 2), np.int64)
        # tile A: 2 TP; tile B: 2 FN (micro F1 = 2 TP / (4 + 2) = 2/3, a mean would be 1/2)
        got = evaluate([(one, one, one, one), (zero, one, zero, one)])
        assert got['localization_f1'] == pytest.approx(2 / 3)
        assert got['damage_f1_no_damage'] == pytest.approx(2 / 3)

    def test_empty_tiles_give_zero_not_nan(self) -> None:
        z = np.zeros((4, 4), np.int64)
        got = evaluate([(z, z, z, z)])
        assert all(math.isfinite(v) for v in got.values())
        assert got['localization_f1'] == 0 and got['mambacd/oa_f1'] == 0
        assert got['damage_f1'] == pytest.approx(EPS)  # 4 / (4 / 1e-6), as the scorer
        assert got['score'] == pytest.approx(0.7 * EPS)

    def test_ignored_pixels_do_not_count(self) -> None:
        lt = np.array([[1, 255]])
        dt = np.array([[3, 255]])
        got = evaluate([(np.array([[1, 0]]), lt, np.array([[3, 4]]), dt)])
        assert got['localization_f1'] == 1 and got['damage_f1_major_damage'] == 1
        assert got['damage_f1_destroyed'] == 0

    def test_dicts_and_samples_and_percent(self) -> None:
        tiles = random_tiles(2, 32, seed=5)
        fractions = evaluate(tiles)
        assert evaluate(tiles, as_dict=True) == fractions
        percent = evaluate(tiles, percent=True)
        assert percent['score'] == pytest.approx(100 * fractions['score'])
        built = METRICS.build(dict(type='XView2Metric', conventions=['xview2']))
        assert isinstance(built, XView2Metric)


class TestBadInputs:

    def test_prediction_out_of_range_names_the_tile(self) -> None:
        with pytest.raises(ValueError, match=r"pred_damage_seg \(img_path=\['tile_pre.*\[7\]"):
            evaluate([(LP[None], LT[None], np.where(DP == 3, 7, DP)[None], DT[None])])
        with pytest.raises(ValueError, match=r'pred_sem_seg.*\[2\]'):
            evaluate([(LP[None] * 2, LT[None], DP[None], DT[None])])

    def test_unclassified_left_in_the_target_is_an_error(self) -> None:
        with pytest.raises(ValueError, match=r'gt_damage_seg.*\[5\]'):
            evaluate([(LP[None], LT[None], DP[None], np.where(DT == 4, 5, DT)[None])])

    def test_missing_damage_prediction_and_shape_mismatch(self) -> None:
        s = sample(LP[None], LT[None], DP[None], DT[None])
        del s.pred_damage_seg
        with pytest.raises(KeyError, match='pred_damage_seg'):
            XView2Metric().process({}, [s])
        with pytest.raises(ValueError, match='pred_damage_seg'):
            evaluate([(LP[None], LT[None], DP[None, :5], DT[None])])
        with pytest.raises(ValueError, match='unknown xView2 conventions'):
            XView2Metric(conventions='mmseg')
