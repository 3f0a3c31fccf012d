"""``tools/analysis/eval_dota.py``: Task1 files against raw labelTxt, hand-worked numbers.

The scene is the one of ``tests/evaluation/test_dota_metric.py::hand_scene`` (worked out in
its docstring): plane AP 0.75 (area) / 8.5 / 11 (VOC07). A ship is annotated but its
prediction file is empty (AP 0); the other 13 DOTA-v1.0 classes have neither objects nor
files (AP 0, listed as missing).
"""
import importlib.util
import json
from pathlib import Path

import pytest

from ._runner import REPO_ROOT, run_tool

TOOL = REPO_ROOT / 'tools' / 'analysis' / 'eval_dota.py'


def sq(x: float, y: float, s: float = 10.) -> str:
    return f'{x} {y} {x + s} {y} {x + s} {y + s} {x} {y + s}'


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    ann = tmp_path / 'labelTxt'
    ann.mkdir()
    (ann / 'A.txt').write_text('imagesource:GoogleEarth\ngsd:0.5\n'
                               f'{sq(0, 0)} plane 0\n{sq(100, 100)} plane 1\n'
                               f'{sq(300, 0)} ship 0\n')
    (ann / 'B.txt').write_text(f'{sq(0, 0)} plane 0\n')  # no header lines
    det = tmp_path / 'det'
    det.mkdir()
    (det / 'Task1_plane.txt').write_text(
        f'A 0.9 {sq(0, 0)}\nA 0.8 {sq(1, 0)}\nA 0.7 {sq(100, 100)}\nA 0.6 {sq(500, 500)}\n'
        f'B 0.5 {sq(0, 1)}\n')
    (det / 'Task1_ship.txt').write_text('')
    return tmp_path


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('eval_dota_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_inproc(tool, capsys, *args: str) -> tuple[int, str, str]:
    rc = tool.main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_cli_end_to_end(scene: Path) -> None:
    out = scene / 'metrics.json'
    result = run_tool(str(TOOL), '--det-dir', str(scene / 'det'), '--ann-dir',
                      str(scene / 'labelTxt'), '--metric', 'area', '--out', str(out))
    report = json.loads(result.stdout)
    assert report == json.loads(out.read_text())
    assert report['AP']['plane'] == pytest.approx(0.75)
    assert report['AP']['ship'] == 0.0 and len(report['AP']) == 15
    assert report['mAP'] == pytest.approx(0.75 / 15)
    assert report['num_gts']['plane'] == 2 and report['num_dets']['plane'] == 5
    assert report['num_images'] == 2 and len(report['missing_det_files']) == 13
    assert 'Task1_harbor.txt' in report['missing_det_files']


def test_voc07_mmrotate_mode_and_imageset(tool, capsys, scene: Path) -> None:
    base = ('--det-dir', str(scene / 'det'), '--ann-dir', str(scene / 'labelTxt'))
    rc, out, _ = run_inproc(tool, capsys, *base)
    assert rc == 0 and json.loads(out)['AP']['plane'] == pytest.approx(8.5 / 11)
    rc, out, _ = run_inproc(tool, capsys, *base, '--mode', 'mmrotate', '--metric', 'area')
    report = json.loads(out)
    # mmrotate: mean over the classes with objects (plane 0.75, ship 0)
    assert rc == 0 and report['mAP'] == pytest.approx(0.375)
    # a stricter threshold: the 1-px shifted detection (IoU 90/110 = 0.818) no longer matches
    rc, out, _ = run_inproc(tool, capsys, *base, '--iou', '0.85', '--metric', 'area')
    # sequence TP, FP, -, FP, FP -> precision 1 at recall 1/2 and never recall 1: AP 0.5
    assert rc == 0 and json.loads(out)['AP']['plane'] == pytest.approx(0.5)
    imageset = scene / 'set.txt'
    imageset.write_text('A\n')
    rc, _, err = run_inproc(tool, capsys, *base, '--imageset', str(imageset))
    assert rc == 1 and 'not in the image set' in err and "['B']" in err


def test_malformed_inputs_name_file_and_line(tool, capsys, scene: Path) -> None:
    base = ('--det-dir', str(scene / 'det'), '--ann-dir', str(scene / 'labelTxt'))
    (scene / 'det' / 'Task1_ship.txt').write_text(f'A 0.5 {sq(0, 0)}\nA 0.4 1 2 3\n')
    rc, _, err = run_inproc(tool, capsys, *base)
    assert rc == 1 and 'Task1_ship.txt' in err and 'line 2' in err and '10 fields' in err
    (scene / 'det' / 'Task1_ship.txt').write_text(f'A high {sq(0, 0)}\n')
    rc, _, err = run_inproc(tool, capsys, *base)
    assert rc == 1 and 'line 1' in err and 'numbers' in err
    (scene / 'det' / 'Task1_ship.txt').write_text('')
    (scene / 'labelTxt' / 'B.txt').write_text(f'{sq(0, 0)} plane 0\n1 2 3 plane\n')
    rc, _, err = run_inproc(tool, capsys, *base)
    assert rc == 1 and 'B.txt' in err and 'line 2' in err
    rc, _, err = run_inproc(tool, capsys, '--det-dir', str(scene / 'nope'), '--ann-dir',
                            str(scene / 'labelTxt'))
    assert rc == 1 and 'nope' in err
