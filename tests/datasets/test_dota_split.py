"""DOTA split (``mmrs.datasets.dota_split`` and ``tools/data/dota/split.py``).

Oracles: patch grids and clipped labels worked out by hand for small synthetic scenes, and
the official devkit's ``ImgSplit.py`` (exported from its mirror, run in-process) on the real
P0706 / P1888 scenes: same patch names, label lines and pixels.
"""
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmrs.datasets.dota_split import (format_rate, patch_name, patch_origins, split_dataset,
                                      split_image)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get('MMRS_SHARED_DATA', REPO_ROOT.parent / 'shared' / 'data'))
DEVKIT = REPO_ROOT.parent / '.mirror' / 'CAPTAIN-WHU+DOTA_devkit' / 'repo'


def _scene(root: Path, name: str, size: tuple[int, int], label: str | None) -> Path:
    (root / 'images').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    cv2.imwrite(str(root / 'images' / f'{name}.png'), img)
    if label is not None:
        (root / 'labelTxt').mkdir(exist_ok=True)
        (root / 'labelTxt' / f'{name}.txt').write_text(label)
    return root


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


class TestGrid:

    def test_origins(self) -> None:
        # slide 300: 0, 300, 600 and the last start moved back to end at the border
        assert patch_origins(1000, 100, 400, 100) == [(0, 0), (300, 0), (600, 0)]
        assert [x for x, _ in patch_origins(1001, 10, 400, 100)] == [0, 300, 600, 601]
        assert patch_origins(50, 60, 400, 100) == [(0, 0)]
        assert patch_origins(200, 200, 128, 28) == [(0, 0), (0, 72), (72, 0), (72, 72)]
        with pytest.raises(ValueError, match='gap < subsize'):
            patch_origins(10, 10, 100, 100)

    def test_names(self) -> None:
        assert patch_name('P0706', 1, 0, 0) == 'P0706__1__0___0'
        assert patch_name('P0706', 1.0, 824, 0) == 'P0706__1__824___0'
        assert format_rate(0.5) == '0.5' and format_rate(1.5) == '1.5'
        with pytest.raises(ValueError, match='positive'):
            format_rate(0)


class TestSynthetic:
    # 200 x 200 scene, 128 patches with gap 28 -> starts 0 and 72 on both axes
    LABEL = ('imagesource:GoogleEarth\ngsd:0.5\n'
             '110 10 150 10 150 30 110 30 plane 0\n'   # 18/40 inside patch x=0 -> difficult 2
             '100 50 130 50 130 70 100 70 ship 1\n'    # 28/30 inside patch x=0 -> keeps 1
             '111 151 151 151 151 171 111 171 harbor 0\n')

    def test_labels_by_hand(self, tmp_path: Path) -> None:
        src = _scene(tmp_path / 'src', 'S1', (200, 200), self.LABEL)
        names = split_image(str(src / 'images' / 'S1.png'), str(src / 'labelTxt' / 'S1.txt'),
                            str(tmp_path / 'out'), subsize=128, gap=28)
        assert sorted(names) == ['S1__1__0___0', 'S1__1__0___72', 'S1__1__72___0',
                                 'S1__1__72___72']
        lab = tmp_path / 'out' / 'labelTxt'
        assert _lines(lab / 'S1__1__0___0.txt') == [
            '110.0 10.0 128.0 10.0 128.0 30.0 110.0 30.0 plane 2',
            '100.0 50.0 128.0 50.0 128.0 70.0 100.0 70.0 ship 1']
        assert _lines(lab / 'S1__1__72___0.txt') == [
            '38.0 10.0 78.0 10.0 78.0 30.0 38.0 30.0 plane 0',
            '28.0 50.0 58.0 50.0 58.0 70.0 28.0 70.0 ship 1']
        # harbor: y 151..171 lies in rows up=72 only; x 111..151 cut by patch x=0 at 128
        assert _lines(lab / 'S1__1__0___72.txt') == [
            '111.0 79.0 128.0 79.0 128.0 99.0 111.0 99.0 harbor 2']
        assert _lines(lab / 'S1__1__72___72.txt') == [
            '39.0 79.0 79.0 79.0 79.0 99.0 39.0 99.0 harbor 0']
        img = cv2.imread(str(tmp_path / 'out' / 'images' / 'S1__1__72___0.png'), -1)
        full = cv2.imread(str(src / 'images' / 'S1.png'), -1)
        assert img.dtype == np.uint8 and img.shape == (128, 128, 3)
        np.testing.assert_array_equal(img, full[0:128, 72:200])

    def test_rate_truncation_and_padding(self, tmp_path: Path) -> None:
        src = _scene(tmp_path / 'src', 'S2', (200, 200), self.LABEL)
        args = (str(src / 'images' / 'S2.png'), str(src / 'labelTxt' / 'S2.txt'))
        assert split_image(*args, str(tmp_path / 'p'), subsize=128, gap=28,
                           rates=[0.5]) == ['S2__0.5__0___0']
        # 111 * 0.5 = 55.5 is truncated to 55 as the devkit does
        assert _lines(tmp_path / 'p' / 'labelTxt' / 'S2__0.5__0___0.txt')[2] == \
            '55.0 75.0 75.0 75.0 75.0 85.0 55.0 85.0 harbor 0'
        img = cv2.imread(str(tmp_path / 'p' / 'images' / 'S2__0.5__0___0.png'), -1)
        assert img.shape == (128, 128, 3) and not img[100:].any() and not img[:, 100:].any()
        split_image(*args, str(tmp_path / 'np'), subsize=128, gap=28, rates=[0.5], padding=False)
        img = cv2.imread(str(tmp_path / 'np' / 'images' / 'S2__0.5__0___0.png'), -1)
        assert img.shape == (100, 100, 3)

    def test_self_intersecting_quad(self, tmp_path: Path) -> None:
        # a bow-tie (as in mmrotate's P0004 test patch): kept when inside, dropped when cut
        src = _scene(tmp_path / 'src', 'B', (200, 200),
                     '10 30 12 10 7 17 60 38 plane 0\n100 30 102 10 97 17 150 38 ship 0\n')
        split_image(str(src / 'images' / 'B.png'), str(src / 'labelTxt' / 'B.txt'),
                    str(tmp_path / 'o'), subsize=128, gap=28)
        lab = tmp_path / 'o' / 'labelTxt'
        assert _lines(lab / 'B__1__0___0.txt') == [
            '10.0 30.0 12.0 10.0 7.0 17.0 60.0 38.0 plane 0']
        assert _lines(lab / 'B__1__72___0.txt') == [
            '28.0 30.0 30.0 10.0 25.0 17.0 78.0 38.0 ship 0']

    def test_read_back_as_dataset(self, tmp_path: Path) -> None:
        from mmrs.datasets import DOTARawDataset
        src = _scene(tmp_path / 'src', 'S1', (200, 200), self.LABEL)
        split_dataset(str(src / 'images'), str(src / 'labelTxt'), str(tmp_path / 'o'),
                      subsize=128, gap=28)
        ds = DOTARawDataset(data_root=str(tmp_path / 'o'))
        info = ds.get_data_info(0)
        assert len(ds) == 4 and info['img_id'] == 'S1__1__0___0'
        assert info['patch'] == dict(ori_id='S1', rate=1.0, x=0, y=0)
        assert [(i['bbox_label'], i['difficult'], i['ignore_flag']) for i in info['instances']] \
            == [(0, 2, 1), (6, 1, 1)]  # plane (cut: difficult 2), ship

    def test_empty_unlabelled_and_errors(self, tmp_path: Path) -> None:
        src = _scene(tmp_path / 'src', 'E', (150, 150), '')
        names = split_dataset(str(src / 'images'), str(src / 'labelTxt'), str(tmp_path / 'o'),
                              subsize=100, gap=20)
        assert len(names) == 4
        assert all((tmp_path / 'o' / 'labelTxt' / f'{n}.txt').read_text() == '' for n in names)
        assert split_dataset(str(src / 'images'), str(src / 'labelTxt'), str(tmp_path / 's'),
                             subsize=100, gap=20, skip_empty=True) == []
        split_dataset(str(src / 'images'), None, str(tmp_path / 'u'), subsize=100, gap=20)
        assert not (tmp_path / 'u' / 'labelTxt').exists()
        assert len(os.listdir(tmp_path / 'u' / 'images')) == 4
        _scene(src, 'NoLabel', (20, 20), None)
        with pytest.raises(FileNotFoundError, match=r"NoLabel\.txt"):
            split_dataset(str(src / 'images'), str(src / 'labelTxt'), str(tmp_path / 'x'))
        (src / 'images' / 'broken.png').write_bytes(b'not a png')
        with pytest.raises(FileNotFoundError, match='cannot read DOTA image'):
            split_image(str(src / 'images' / 'broken.png'), None, str(tmp_path / 'x'))

    def test_cli(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        src = _scene(tmp_path / 'src', 'C', (200, 200), self.LABEL)
        tool = _load_tool('split')
        assert tool.main(['--img-dir', str(src / 'images'), '--ann-dir', str(src / 'labelTxt'),
                          '--out-dir', str(tmp_path / 'o'), '--subsize', '128', '--gap', '28',
                          '--rates', '0.5', '1.0', '--nproc', '2']) == 0
        assert sorted(os.listdir(tmp_path / 'o' / 'labelTxt')) == [
            'C__0.5__0___0.txt', 'C__1__0___0.txt', 'C__1__0___72.txt', 'C__1__72___0.txt',
            'C__1__72___72.txt']
        assert tool.main(['--img-dir', str(tmp_path / 'none'), '--out-dir',
                          str(tmp_path / 'z')]) == 1
        assert 'image folder not found' in capsys.readouterr().err


def _load_tool(name: str):
    """The CLI module ``tools/data/dota/<name>.py``, imported in-process (fast)."""
    spec = importlib.util.spec_from_file_location(
        f'dota_{name}_tool', REPO_ROOT / 'tools' / 'data' / 'dota' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_equals_devkit_on_real_scenes(tmp_path: Path) -> None:
    """ImgSplit.py vs split_dataset(padding=False) on P0706 + P1888, rates 1 and 0.5."""
    real = SHARED / 'dota_samples' / 'example'
    if not (DEVKIT.is_dir() and (real / 'images' / 'P0706.png').is_file()):
        pytest.skip('DOTA devkit mirror or real DOTA samples not available')
    devkit = tmp_path / 'devkit'
    devkit.mkdir()
    for f in ('ImgSplit.py', 'dota_utils.py'):
        text = subprocess.run(['git', '-C', str(DEVKIT), 'show', f'HEAD:{f}'], check=True,
                              capture_output=True, text=True).stdout
        (devkit / f).write_text(text)
    src = tmp_path / 'src'
    for sub in ('images', 'labelTxt'):
        (src / sub).mkdir(parents=True)
    for i in ('P0706', 'P1888'):
        os.symlink(real / 'images' / f'{i}.png', src / 'images' / f'{i}.png')
        os.symlink(real / 'labelTxt' / f'{i}.txt', src / 'labelTxt' / f'{i}.txt')
    sys.path.insert(0, str(devkit))
    try:
        img_split = importlib.import_module('ImgSplit')
        splitter = img_split.splitbase(str(src), str(tmp_path / 'dev'), gap=100, subsize=400)
        splitter.splitdata(1)
        splitter.splitdata(0.5)
    finally:
        sys.path.remove(str(devkit))
        sys.modules.pop('ImgSplit', None)
        sys.modules.pop('dota_utils', None)
    split_dataset(str(src / 'images'), str(src / 'labelTxt'), str(tmp_path / 'ours'),
                  subsize=400, gap=100, rates=[1, 0.5], padding=False)
    dev, ours = tmp_path / 'dev', tmp_path / 'ours'
    names = sorted(os.listdir(dev / 'labelTxt'))
    assert names == sorted(os.listdir(ours / 'labelTxt'))
    assert 'P0706__1__0___0.txt' in names and 'P1888__0.5__0___0.txt' in names
    n_lines = n_partial = 0
    for n in names:
        a, b = _lines(dev / 'labelTxt' / n), _lines(ours / 'labelTxt' / n)
        assert a == b, n
        n_lines += len(a)
        n_partial += sum(line.endswith(' 2') for line in a)
        stem = n[:-4]
        np.testing.assert_array_equal(cv2.imread(str(dev / 'images' / f'{stem}.png'), -1),
                                      cv2.imread(str(ours / 'images' / f'{stem}.png'), -1))
    assert n_lines > 1000 and n_partial > 20  # cut objects were exercised
