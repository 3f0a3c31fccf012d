"""Whole-scene rotated detection (mmrs.apis.RotatedDetectionInferencer, tools/detect.py).

Most tests use a stub detector registered here: it "detects" the rectangles painted into a
synthetic scene (value 200 in band 1: class 0, in band 2: class 1) that lie wholly inside a
patch, in patch pixels, so the scene boxes to expect are known from the painting alone: a
rectangle in the overlap of two patches is found twice and must come out once, and two
overlapping rectangles of different classes must both stay. One test runs a real tiny Rotated
RetinaNet (random weights) end to end on a crop of a DOTA sample image.
"""
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from rasterio.transform import Affine
from scipy import ndimage

from mmrs.apis import RotatedDetectionInferencer
from mmrs.apis.rotated_inferencer import Overview, merge_detections, rbox_corners
from mmrs.registry import MODELS

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
DOTA_IMAGE = Path('/work/shared/data/dota_samples/example/images/P0706.png')
H, W, PATCH, OVERLAP = 160, 200, 64, 16
CLASSES = ('ship', 'plane')
# (class, row0, row1, col0, col1) of the painted rectangles, end exclusive
OBJECTS = [(0, 10, 20, 50, 60),     # in the overlap of the patches at x=0 and x=48
           (1, 100, 120, 150, 170),  # once (cut by the patch at y=48)
           (0, 60, 80, 20, 40),     # overlaps the next one, other class
           (1, 62, 82, 22, 42)]
SCORES = (0.9, 0.7)  # per class
PROFILE = dict(driver='GTiff', crs='EPSG:32632', transform=Affine(10, 0, 600000, 0, -10, 5e6))


@MODELS.register_module(force=True)
class StubPaintedDetector(BaseModel):
    """Finds the painted rectangles of each patch (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, *args, **kwargs):  # pragma: no cover (test_step is used)
        raise NotImplementedError

    def test_step(self, data: dict) -> list:
        from mmdet.structures import DetDataSample
        from mmrotate.structures.bbox import RotatedBoxes
        out = []
        for img, sample in zip(data['inputs'], data['data_samples']):
            self.calls += 1
            bgr = img.numpy()
            boxes, scores, labels = [[5.0, 5.0, 2.0, 2.0, 0.0]], [0.01], [0]  # below thr
            for label, band in ((0, bgr[2]), (1, bgr[1])):  # BGR: band 1 is channel 2
                comps, _ = ndimage.label(band == 200)
                for sy, sx in ndimage.find_objects(comps):
                    if sy.start == 0 or sx.start == 0 or sy.stop == band.shape[0] \
                            or sx.stop == band.shape[1]:
                        continue  # cut by the patch edge: not seen whole
                    boxes.append([(sx.start + sx.stop) / 2, (sy.start + sy.stop) / 2,
                                  sx.stop - sx.start, sy.stop - sy.start, 0.0])
                    scores.append(SCORES[label])
                    labels.append(label)
            result = DetDataSample(metainfo=sample.metainfo)
            result.pred_instances = InstanceData(
                bboxes=RotatedBoxes(torch.tensor(boxes)), scores=torch.tensor(scores),
                labels=torch.tensor(labels))
            out.append(result)
        return out


STUB_CONFIG = f'''
default_scope = 'mmrs'
model = dict(type='StubPaintedDetector')
test_pipeline = [dict(type='mmdet.LoadImageFromFile'),
                 dict(type='mmdet.LoadAnnotations', with_bbox=True, box_type='qbox'),
                 dict(type='mmdet.PackDetInputs',
                      meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape'))]
test_dataloader = dict(dataset=dict(metainfo=dict(classes={CLASSES!r}),
                                    pipeline=test_pipeline))
'''


def paint() -> np.ndarray:
    """``(3, H, W)`` uint8 scene with the rectangles of :data:`OBJECTS`."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 150, (3, H, W), dtype=np.uint8)
    for label, r0, r1, c0, c1 in OBJECTS:
        img[label, r0:r1, c0:c1] = 200
    return img


def expected_corners() -> dict[int, list[np.ndarray]]:
    """Pixel-corner rectangles ``(4, 2)`` (x, y) of the objects, by class."""
    out: dict[int, list[np.ndarray]] = {0: [], 1: []}
    for label, r0, r1, c0, c1 in OBJECTS:
        out[label].append(np.array([[c0, r0], [c1, r0], [c1, r1], [c0, r1]], float))
    return out


def same_ring(ring: np.ndarray, rect: np.ndarray, tol: float = 1e-6) -> bool:
    ring = np.asarray(ring, float)[:4]
    return all(np.abs(ring - p).sum(axis=1).min() < tol for p in rect) and len(ring) == 4


@pytest.fixture(scope='module')
def inferencer(tmp_path_factory: pytest.TempPathFactory) -> RotatedDetectionInferencer:
    cfg = tmp_path_factory.mktemp('cfg') / 'stub.py'
    cfg.write_text(STUB_CONFIG)
    return RotatedDetectionInferencer(str(cfg))


@pytest.fixture
def geotiff(tmp_path: Path) -> Path:
    path = tmp_path / 'scene.tif'
    with rasterio.open(path, 'w', height=H, width=W, count=3, dtype='uint8',
                       **PROFILE) as dst:
        dst.write(paint())
    return path


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / 'scene.png'
    cv2.imwrite(str(path), paint().transpose(1, 2, 0)[..., ::-1])
    return path


class TestGeometry:
    def test_corners_match_opencv(self) -> None:
        # cv2.boxPoints takes degrees, turning +x towards +y as mmrotate's radians do
        boxes = np.array([[30.0, 20.0, 16.0, 6.0, 0.3], [5.0, 7.0, 3.0, 9.0, -1.2]])
        for box, corners in zip(boxes, rbox_corners(boxes)):
            ref = cv2.boxPoints(((box[0], box[1]), (box[2], box[3]), np.degrees(box[4])))
            assert all(np.abs(corners - p).sum(axis=1).min() < 1e-4 for p in ref)

    def test_merge_is_classwise_and_exact_across_chunks(self) -> None:
        rng = np.random.default_rng(1)
        n = 300
        boxes = np.column_stack([rng.uniform(0, 400, n), rng.uniform(0, 400, n),
                                 rng.uniform(5, 30, n), rng.uniform(5, 30, n),
                                 rng.uniform(-1.5, 1.5, n)])
        scores, labels = rng.random(n), rng.integers(0, 3, n)
        small = merge_detections(boxes, scores, labels, 0.1, chunk=8)
        whole = merge_detections(boxes, scores, labels, 0.1, chunk=10 ** 6)
        assert np.array_equal(small, whole)
        # oracle: greedy NMS class by class with mmcv's IoU
        from mmcv.ops import box_iou_rotated
        iou = box_iou_rotated(torch.from_numpy(boxes).float(),
                              torch.from_numpy(boxes).float()).numpy()
        kept = []
        for i in np.argsort(-scores):
            if all(labels[j] != labels[i] or iou[i, j] < 0.1 for j in kept):
                kept.append(i)
        assert sorted(kept) == sorted(small.tolist())


class TestOverview:
    def test_area_average_without_seams(self) -> None:
        img = np.random.default_rng(2).integers(0, 255, (H, W, 3)).astype(np.uint8)
        xs, ys = [0, 48, 96, 136], [0, 48, 96]
        ov = Overview(H, W, xs, ys, max_side=100)  # 2x2 footprints
        for y in ys:
            for x in xs:
                ov.add(y, x, img[y:y + PATCH, x:x + PATCH])
        ref = img.reshape(80, 2, 100, 2, 3).mean(axis=(1, 3))
        assert ov.picture().shape == (80, 100, 3)
        assert np.abs(ov.picture().astype(float) - ref).max() <= 0.5


class TestStubScene:
    def test_geotiff_gpkg_in_image_crs(self, inferencer: RotatedDetectionInferencer,
                                       geotiff: Path, tmp_path: Path) -> None:
        import fiona
        out = tmp_path / 'dets.gpkg'
        summary = inferencer(str(geotiff), out, patch=PATCH, overlap=OVERLAP, batch=3,
                             quiet=True)
        assert summary.patches == 12 and summary.detections == 4
        assert summary.raw_detections == 5  # A twice (overlap), B, C, D once
        with fiona.open(out) as src:
            assert src.crs.to_epsg() == 32632
            feats = list(src)
        transform = PROFILE['transform']
        expected = expected_corners()
        for label, rects in expected.items():
            rings = [np.array(f['geometry']['coordinates'][0]) for f in feats
                     if f['properties']['label'] == label]
            assert len(rings) == len(rects)
            assert {f['properties']['class'] for f in feats
                    if f['properties']['label'] == label} == {CLASSES[label]}
            for rect in rects:
                world = np.array([transform @ tuple(p) for p in rect])
                assert any(same_ring(r, world, 1e-3) for r in rings)
        assert sorted(f['properties']['score'] for f in feats) == \
            pytest.approx([0.7, 0.7, 0.9, 0.9])

    def test_png_pixel_geojson_overview_task1(self, inferencer: RotatedDetectionInferencer,
                                              png: Path, tmp_path: Path) -> None:
        out, ov, task1 = tmp_path / 'dets.geojson', tmp_path / 'ov.png', tmp_path / 'task1'
        summary = inferencer(str(png), out, overview=ov, task1_dir=task1, patch=PATCH,
                             overlap=OVERLAP, batch=4, quiet=True)
        assert summary.crs == 'pixel' and summary.detections == 4
        doc = json.loads(out.read_text())
        assert 'pixel' in doc['crs_note']
        rings = {0: [], 1: []}
        for f in doc['features']:
            rings[f['properties']['label']].append(np.array(f['geometry']['coordinates'][0]))
        for label, rects in expected_corners().items():
            assert len(rings[label]) == len(rects)
            for rect in rects:
                assert any(same_ring(r, rect) for r in rings[label])
        pic = cv2.imread(str(ov))
        assert pic.shape == (H, W, 3)
        scene = paint().transpose(1, 2, 0)[..., ::-1]
        assert np.array_equal(pic[140:160, 0:100], scene[140:160, 0:100])  # no box there
        assert not np.array_equal(pic[8:22, 48:62], scene[8:22, 48:62])  # box A drawn
        lines = (task1 / 'Task1_ship.txt').read_text().splitlines()
        assert len(lines) == 2 and all(line.split()[0] == 'scene' for line in lines)
        assert len((task1 / 'Task1_plane.txt').read_text().splitlines()) == 2

    def test_reads_windows_never_the_scene(self, inferencer: RotatedDetectionInferencer,
                                           geotiff: Path, png: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
        from mmrs.geo.single import SingleRaster
        calls = []
        original = SingleRaster.read_window
        monkeypatch.setattr(SingleRaster, 'read_window',
                            lambda self, y, x, h, w: calls.append((h, w)) or
                            original(self, y, x, h, w))
        inferencer(str(geotiff), tmp_path / 'a.gpkg', patch=PATCH, overlap=OVERLAP, quiet=True)
        assert len(calls) == 12 and max(calls) == (PATCH, PATCH)
        calls.clear()  # PNG: one strip of patch rows per patch row
        inferencer(str(png), tmp_path / 'b.gpkg', patch=PATCH, overlap=OVERLAP, quiet=True)
        assert calls == [(PATCH, W)] * 3

    def test_score_threshold_and_merge(self, inferencer: RotatedDetectionInferencer,
                                       geotiff: Path, tmp_path: Path) -> None:
        summary = inferencer(str(geotiff), tmp_path / 'd.gpkg', patch=PATCH, overlap=OVERLAP,
                             score_thr=0.0, quiet=True)
        # every patch's 0.01 box survives the threshold; they do not overlap each other
        assert summary.detections == 4 + 12
        summary = inferencer(str(geotiff), tmp_path / 'e.gpkg', patch=PATCH, overlap=OVERLAP,
                             score_thr=0.8, quiet=True)
        assert summary.per_class == {'ship': 2, 'plane': 0}


def _detect_main():
    spec = importlib.util.spec_from_file_location('detect_cli', REPO / 'tools' / 'detect.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


class TestBadInputs:
    def test_unreadable_image(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        cfg = tmp_path / 'stub.py'
        cfg.write_text(STUB_CONFIG)
        bad = tmp_path / 'broken.tif'
        bad.write_text('not a raster')
        assert _detect_main()([str(cfg), 'none', '--image', str(bad), '--out',
                               str(tmp_path / 'd.gpkg'), '--quiet']) == 2
        assert 'broken.tif' in capsys.readouterr().err
        assert not (tmp_path / 'd.gpkg').exists()

    def test_existing_output_refused(self, tmp_path: Path, geotiff: Path,
                                     capsys: pytest.CaptureFixture) -> None:
        cfg = tmp_path / 'stub.py'
        cfg.write_text(STUB_CONFIG)
        out = tmp_path / 'd.geojson'
        out.write_text('keep me')
        args = [str(cfg), 'none', '--image', str(geotiff), '--out', str(out),
                '--patch', str(PATCH), '--overlap', str(OVERLAP), '--quiet']
        assert _detect_main()(args) == 2
        assert 'already exists' in capsys.readouterr().err and out.read_text() == 'keep me'
        assert _detect_main()(args + ['--overwrite']) == 0
        doc = json.loads(out.read_text())  # EPSG:4326 lon/lat near 9 E, 45 N
        lon, lat = np.array(doc['features'][0]['geometry']['coordinates'][0]).T
        assert 8 < lon.min() and lon.max() < 11 and 44 < lat.min() and lat.max() < 46


@pytest.mark.skipif(not DOTA_IMAGE.is_file(), reason='DOTA sample image not available')
def test_tiny_rotated_retinanet_end_to_end(tmp_path: Path) -> None:
    crop = cv2.imread(str(DOTA_IMAGE))[:500, :600]
    image = tmp_path / 'P0706_crop.png'
    cv2.imwrite(str(image), crop)
    cfg = tmp_path / 'tiny_retinanet.py'
    cfg.write_text(f'''
_base_ = ['{REPO}/configs/_base_/models/rotated_retinanet_r50_fpn.py']
default_scope = 'mmrs'
model = dict(
    backbone=dict(depth=18, base_channels=8, stem_channels=8, init_cfg=None, frozen_stages=-1),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    bbox_head=dict(num_classes=15, in_channels=16, feat_channels=16, stacked_convs=1),
    test_cfg=dict(nms_pre=200, score_thr=0.0, max_per_img=30))
test_pipeline = [dict(type='mmdet.LoadImageFromFile'),
                 dict(type='mmdet.Resize', scale=(256, 256), keep_ratio=True),
                 dict(type='mmdet.PackDetInputs',
                      meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                 'scale_factor'))]
test_dataloader = dict(dataset=dict(type='mmrotate.DOTADataset', pipeline=test_pipeline))
''')
    torch.manual_seed(0)
    det = RotatedDetectionInferencer(str(cfg))
    assert len(det.classes) == 15 and det.classes[:2] == ('plane', 'baseball-diamond')
    out, ov = tmp_path / 'dets.gpkg', tmp_path / 'ov.jpg'
    summary = det(str(image), out, overview=ov, patch=256, overlap=64, batch=2,
                  score_thr=0.0, quiet=True)
    assert summary.patches == 3 * 3 and summary.detections > 0
    import fiona
    with fiona.open(out) as src:
        feats = list(src)
    assert len(feats) == summary.detections
    for f in feats[:50]:
        ring = np.array(f['geometry']['coordinates'][0])
        assert ring.shape == (5, 2) and np.isfinite(ring).all()
        assert f['properties']['class'] in det.classes and 0 <= f['properties']['score'] <= 1
    assert cv2.imread(str(ov)).shape == (500, 600, 3)
    # weights and class names through mmrs' safe loader (a plain mmengine-style checkpoint)
    ckpt = tmp_path / 'tiny.pth'
    names = tuple(f'obj{i}' for i in range(15))
    torch.save(dict(state_dict=det.model.state_dict(), meta=dict(dataset_meta=dict(
        classes=names))), ckpt)
    torch.manual_seed(1)
    loaded = RotatedDetectionInferencer(str(cfg), str(ckpt))
    assert loaded.classes == names
    for key, value in det.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
