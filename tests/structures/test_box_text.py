"""Tests of RotatedBoxTextCodec: quantisation bounds, presets, lenient parsing, class matching.

Oracles are independent of the codec: bounds derived from the quantiser's definition, corners
from mmrotate's ``rbox2qbox``, IoU from mmcv's ``box_iou_rotated``, tokens read back with a
plain regular expression, and hand-written model answers.
"""
import math
import random
import re

import numpy as np
import pytest
import torch
from mmcv.ops import box_iou_rotated
from mmrotate.structures.bbox import RotatedBoxes, qbox2rbox, rbox2qbox

from mmrs.structures.box_text import (BOX_TEXT_PRESETS, ClassMatcher, RotatedBoxTextCodec,
                                      regularize_rboxes)

DOTA = ('plane', 'baseball-diamond', 'bridge', 'ground-track-field', 'small-vehicle',
        'large-vehicle', 'ship', 'tennis-court', 'basketball-court', 'storage-tank',
        'soccer-ball-field', 'roundabout', 'harbor', 'swimming-pool', 'helicopter')
W, H = 1024, 768


def random_rboxes(n: int, seed: int = 0, margin: float = 120.0) -> torch.Tensor:
    """le90 boxes well inside a W x H image, width clearly longer than height."""
    g = torch.Generator().manual_seed(seed)
    cx = margin + torch.rand(n, generator=g) * (W - 2 * margin)
    cy = margin + torch.rand(n, generator=g) * (H - 2 * margin)
    h = 20 + torch.rand(n, generator=g) * 40
    w = h + 10 + torch.rand(n, generator=g) * 40
    t = (torch.rand(n, generator=g) - 0.5) * 0.95 * math.pi  # away from the +-pi/2 seam
    return torch.stack([cx, cy, w, h, t], dim=1)


class TestQuantisation:

    @pytest.mark.parametrize('mode,bins', [('floor', 1000), ('round', 100), ('floor', 37)])
    def test_error_at_most_half_a_bin(self, mode: str, bins: int) -> None:
        codec = RotatedBoxTextCodec(DOTA, bins=bins, quantize=mode)
        x = np.concatenate([np.random.default_rng(0).uniform(0, W, 5000), [0.0, W]])
        back = codec.dequantize_values(codec.quantize_values(x, W), W)
        # floor: x in [k, k+1) * W/bins comes back at (k + 0.5) W/bins; the last bin also
        # takes x = W. round: k = round(x bins / W), back at k W/bins. Both: <= W / (2 bins).
        assert np.abs(back - x).max() <= W / (2 * bins) + 1e-9

    def test_floor_tokens_stay_in_vocabulary(self) -> None:
        codec = RotatedBoxTextCodec(DOTA, bins=1000)
        q = codec.quantize_values(np.array([-5.0, 0.0, W - 1e-9, W, W + 50]), W)
        assert q.tolist() == [0, 0, 999, 999, 999]


class TestRoundTrip:

    def test_rbox_format_within_derived_bound(self) -> None:
        bins, angle_bins = 1000, 180
        codec = RotatedBoxTextCodec(DOTA, format='rbox', bins=bins, angle_bins=angle_bins,
                                    image_size=(W, H))
        boxes = random_rboxes(50)
        labels = torch.randint(0, len(DOTA), (50,), generator=torch.Generator().manual_seed(1))
        out, out_labels, report = codec.decode(codec.encode(boxes, labels, order='first'))
        assert report.ok and report.num_clipped == 0
        # decode returns boxes grouped by class in first-appearance order, inputs in order
        perm = torch.cat([torch.nonzero(labels == c).flatten()
                          for c in dict.fromkeys(labels.tolist())])
        ref = boxes[perm]
        assert torch.equal(out_labels, labels[perm])
        err = (out - ref).abs()
        tol = 1e-3  # float32 boxes
        assert (err[:, [0, 2]] <= W / (2 * bins) + tol).all()
        assert (err[:, [1, 3]] <= H / (2 * bins) + tol).all()
        assert (err[:, 4] <= math.pi / (2 * angle_bins) + 1e-5).all()

    def test_poly_vertices_within_bound_and_min_area_rect(self) -> None:
        bins = 1000
        codec = RotatedBoxTextCodec.from_preset('lmmrotate', DOTA, image_size=(W, H))
        boxes = random_rboxes(40, seed=3)
        labels = torch.zeros(40, dtype=torch.int64)
        text = codec.encode(boxes, labels)
        assert text.startswith('plane<loc_') and text.count('<sep>') == 39
        # vertices read back independently of the codec: bin centres of the <loc_k> tokens
        k = np.array([int(v) for v in re.findall(r'<loc_(\d+)>', text)], dtype=float)
        verts = k.reshape(40, 8)
        verts[:, 0::2] = (verts[:, 0::2] + 0.5) * W / bins
        verts[:, 1::2] = (verts[:, 1::2] + 0.5) * H / bins
        corners = rbox2qbox(boxes.double()).numpy()
        assert np.abs(verts[:, 0::2] - corners[:, 0::2]).max() <= W / (2 * bins) + 1e-9
        assert np.abs(verts[:, 1::2] - corners[:, 1::2]).max() <= H / (2 * bins) + 1e-9
        out, out_labels, report = codec.decode(text)
        assert report.ok and out_labels.tolist() == [0] * 40
        # the min-area rectangle of corners each within eps of the true ones: same box up to
        # a few eps (checked loosely here) and IoU close to 1 for boxes >= 20 px wide
        eps = math.hypot(W, H) / (2 * bins)
        assert (out[:, :2] - boxes[:, :2]).abs().max() <= 2 * eps
        assert (out[:, 2:4] - boxes[:, 2:4]).abs().max() <= 4 * eps
        iou = box_iou_rotated(out, boxes, aligned=True)
        assert iou.min() > 0.9
        # LMMRotate's own path: its dequantised polygons through mmrotate's qbox2rbox
        ref = qbox2rbox(torch.as_tensor(verts, dtype=torch.float32))
        assert box_iou_rotated(out, ref, aligned=True).min() > 0.999

    @pytest.mark.parametrize('preset', sorted(BOX_TEXT_PRESETS))
    def test_every_preset_round_trips(self, preset: str) -> None:
        codec = RotatedBoxTextCodec.from_preset(preset, DOTA, image_size=(W, H))
        boxes = random_rboxes(12, seed=5)
        labels = torch.tensor([0, 5, 5, 9, 0, 14, 3, 3, 3, 12, 1, 6])
        out, out_labels, report = codec.decode(codec.encode(boxes, labels))
        assert report.ok, report
        order = torch.argsort(labels, stable=True)  # default order: class index
        assert torch.equal(out_labels, labels[order])
        iou = box_iou_rotated(out, boxes[order], aligned=True)
        # GeoChat's and EarthDial's 0..100 grid is 10x coarser (~5 px per step here): looser
        assert iou.min() > (0.5 if BOX_TEXT_PRESETS[preset]['bins'] == 100 else 0.9)

    def test_quadrilateral_input_keeps_vertex_order(self) -> None:
        codec = RotatedBoxTextCodec.from_preset('lmmrotate', DOTA, image_size=(1000, 1000))
        quad = torch.tensor([[100.2, 200.7, 300.1, 200.2, 300.9, 250.3, 100.6, 250.8]])
        text = codec.encode(quad, torch.tensor([2]))
        assert text == ('bridge<loc_100><loc_200><loc_300><loc_200><loc_300><loc_250>'
                        '<loc_100><loc_250>')

    def test_rbox_tensor_structures_accepted(self) -> None:
        codec = RotatedBoxTextCodec.from_preset('falcon', DOTA, image_size=(W, H))
        boxes = random_rboxes(3)
        assert codec.encode(RotatedBoxes(boxes), [1, 1, 2]) == codec.encode(boxes, [1, 1, 2])

    def test_empty(self) -> None:
        codec = RotatedBoxTextCodec(DOTA, image_size=(W, H))
        assert codec.encode(torch.zeros((0, 5)), torch.zeros(0)) == ''
        boxes, labels, report = codec.decode('')
        assert boxes.shape == (0, 5) and labels.shape == (0,) and report.ok


class TestHandWrittenAnswers:

    def test_lmmrotate_answer(self) -> None:
        codec = RotatedBoxTextCodec.from_preset('lmmrotate', DOTA, image_size=(1000, 500))
        text = ('<s>large vehicle<loc_10><loc_10><loc_29><loc_10><loc_29><loc_19><loc_10>'
                '<loc_19><sep><loc_100><loc_100><loc_119><loc_100><loc_119><loc_119><loc_100>'
                '<loc_119>plane<loc_500><loc_500><loc_509><loc_500><loc_509><loc_509>'
                '<loc_500><loc_509></s>')
        boxes, labels, report = codec.decode(text)
        assert report.ok and labels.tolist() == [5, 5, 0]
        # x = (k + 0.5) * 1000 / 1000, y = (k + 0.5) * 500 / 1000
        expected = torch.tensor([[20.0, 7.5, 19.0, 4.5, 0.0], [110.0, 55.0, 19.0, 9.5, 0.0],
                                 [505.0, 252.5, 9.0, 4.5, 0.0]])
        assert torch.allclose(boxes, expected, atol=1e-3)

    def test_concatenated_polygons_without_sep_are_cut_in_eights(self) -> None:
        codec = RotatedBoxTextCodec.from_preset('lmmrotate', DOTA, image_size=(1000, 1000))
        one = '<loc_10><loc_10><loc_20><loc_10><loc_20><loc_20><loc_10><loc_20>'
        boxes, labels, report = codec.decode('ship' + one + one)
        assert report.ok and labels.tolist() == [6, 6]

    def test_geochat_answer(self) -> None:
        codec = RotatedBoxTextCodec.from_preset('geochat', DOTA, image_size=(500, 1000))
        text = 'There are two <p>ships</p>{<10><20><30><40>|<30>}{<0><0><10><10>}'
        boxes, labels, report = codec.decode(text)
        assert labels.tolist() == [6, 6] and report.fuzzy_matches == {'ships': 'ship'}
        # x / 100 * 500, y / 100 * 1000: cx=100, cy=300, w=100, h=200, 30 deg; le90 makes the
        # long side the width: w=200, h=100, 30 + 90 = 120 deg = -60 deg in [-90, 90)
        assert torch.allclose(boxes[0], torch.tensor([100.0, 300.0, 200.0, 100.0,
                                                      math.radians(-60)]), atol=1e-4)
        # four values: GeoChat's horizontal box, angle 0
        assert torch.allclose(boxes[1, :2], torch.tensor([25.0, 50.0]))
        assert sorted(boxes[1, 2:4].tolist()) == [50.0, 100.0]

    def test_geochat_angle_sign(self) -> None:
        codec = RotatedBoxTextCodec.from_preset('geochat', DOTA, image_size=(500, 1000),
                                                angle_sign=-1)
        boxes, _, _ = codec.decode('<p>ship</p>{<10><20><30><40>|<30>}')
        # -30 deg, long side vertical: width 200 at -30 + 90 = 60 deg
        assert torch.allclose(boxes[0], torch.tensor([100.0, 300.0, 200.0, 100.0,
                                                      math.radians(60)]), atol=1e-4)
        boxes2, _, _ = codec.decode(codec.encode(boxes, [6]))
        assert torch.allclose(boxes2, boxes, atol=1e-4)

    def test_earthdial_answer_matches_its_evaluation_geometry(self) -> None:
        """EarthDial's ground-truth layout, labels with counts and attributes; the corners
        are EarthDial's own construction (rect - centre, times [[c, -s], [s, c]], + centre)."""
        codec = RotatedBoxTextCodec.from_preset(
            'earthdial', ('car', 'plane'), image_size=(800, 600),
            synonyms={'2 white small car': 'car', '1 gray large plane': 'plane'})
        text = ('In the image there is <ref>2 white small car </ref> <box>[[[10, 20, 30, 26, 35]]'
                '[[50, 50, 58, 70, 0]]]</box> located at left, <ref>1 gray large plane</ref> '
                '<box>[[[60, 10, 80, 30, 90]]]</box>.')
        boxes, labels, report = codec.decode(text)
        assert labels.tolist() == [0, 0, 1] and not report.malformed, report
        for box, vals in zip(boxes, ([10, 20, 30, 26, 35], [50, 50, 58, 70, 0],
                                     [60, 10, 80, 30, 90])):
            x1, y1, x2, y2 = (v / 100 * s for v, s in zip(vals[:4], (800, 600, 800, 600)))
            rect = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
            c, s_ = math.cos(math.radians(vals[4])), math.sin(math.radians(vals[4]))
            centre = rect.mean(axis=0)
            corners = (rect - centre) @ np.array([[c, -s_], [s_, c]]) + centre
            expected = qbox2rbox(torch.tensor(corners.reshape(1, 8), dtype=torch.float32))
            iou = box_iou_rotated(box[None], expected).item()
            assert iou > 0.999, (vals, box, expected)
        # encoding gives the same layout back; le90 writes the upright box as its long side at
        # -90 deg, so x and y swap grids (8 px vs 6 px steps of an 800 x 600 image): ~0.9 IoU
        again, labels2, _ = codec.decode(codec.encode(boxes, labels))
        assert labels2.tolist() == [0, 0, 1]
        assert box_iou_rotated(again, boxes, aligned=True).min() > 0.85

    def test_allseeing_answer_with_digit_class_names(self) -> None:
        classes = ('Boeing737', 'A220', 'Small Car')
        codec = RotatedBoxTextCodec.from_preset('allseeing', classes, image_size=(1000, 1000))
        text = ('<ref>boeing737</ref><box>[[10, 10, 30, 10, 30, 20, 10, 20]]</box>'
                '<ref>small cars</ref><box>[[100, 100, 120, 100, 120, 110, 100, 110], '
                '[5, 5, 9, 5, 9, 9, 5, 9]]</box>')
        boxes, labels, report = codec.decode(text)
        assert labels.tolist() == [0, 2, 2] and not report.malformed
        assert torch.allclose(boxes[0, :2], torch.tensor([20.5, 15.5]))


class TestMalformedText:

    @pytest.fixture
    def codec(self) -> RotatedBoxTextCodec:
        return RotatedBoxTextCodec.from_preset('lmmrotate', DOTA, image_size=(1000, 1000))

    def test_truncated_box_reported_complete_ones_kept(self, codec) -> None:
        text = ('plane<loc_1><loc_1><loc_9><loc_1><loc_9><loc_9><loc_1><loc_9><sep>'
                '<loc_5><loc_5><loc_7>')
        boxes, labels, report = codec.decode(text)
        assert labels.tolist() == [0]
        assert len(report.malformed) == 1 and '3 values' in report.malformed[0]
        assert '<loc_5><loc_5><loc_7>' in report.malformed[0]

    def test_label_without_boxes_and_boxes_without_label(self, codec) -> None:
        _, labels, report = codec.decode('<loc_1><loc_1><loc_9><loc_1><loc_9><loc_9><loc_1>'
                                         '<loc_9>harbor')
        assert labels.numel() == 0
        assert any('before any label' in m for m in report.malformed)
        assert any("label 'harbor' without boxes" in m for m in report.malformed)

    def test_unknown_class_dropped_and_listed(self, codec) -> None:
        box = '<loc_1><loc_1><loc_9><loc_1><loc_9><loc_9><loc_1><loc_9>'
        _, labels, report = codec.decode('dinosaur' + box + 'ship' + box)
        assert labels.tolist() == [6] and report.unknown_labels == ['dinosaur']
        assert not report.ok

    def test_out_of_range_values_clipped_and_counted(self) -> None:
        codec = RotatedBoxTextCodec.from_preset('geochat', DOTA, image_size=(100, 100))
        boxes, _, report = codec.decode('<p>plane</p>{<-10><20><30><140>|<0>}')
        assert report.num_clipped == 1
        assert torch.allclose(boxes[0, :4], torch.tensor([15.0, 60.0, 80.0, 30.0]), atol=1e-4)

    def test_never_raises_on_token_soup(self, codec) -> None:
        rng = random.Random(0)
        pieces = ['<loc_3>', '<loc_999>', '<loc_1500>', '<sep>', 'plane', 'Ship', ' ', '<s>',
                  '<poly>', '</poly>', '<loc_>', '<loc_-4>', '{', '}', '|', '\n', 'é', '<']
        for _ in range(300):
            text = ''.join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
            boxes, labels, report = codec.decode(text)
            assert boxes.shape == (len(labels), 5) and torch.isfinite(boxes).all()
        _, _, report = codec.decode(None)  # type: ignore[arg-type]
        assert report.malformed


class TestClassMatching:

    def test_spellings(self) -> None:
        m = ClassMatcher(DOTA)
        assert m.match('large-vehicle') == (5, False)
        assert m.match('Large Vehicle') == (5, False)
        assert m.match('storage tanks') == (9, True)
        assert m.match('swiming pool') == (13, True)
        assert m.match('helicoptor') == (14, True)
        assert m.match('dog') == (None, False)

    def test_threshold_and_synonyms(self) -> None:
        assert ClassMatcher(DOTA, threshold=0.0).match('dog')[0] is not None
        m = ClassMatcher(DOTA, synonyms={'airplane': 'plane', 'car': 'small-vehicle'})
        assert m.match('airplanes') == (0, True) and m.match('Car') == (4, False)
        with pytest.raises(ValueError, match='no such class'):
            ClassMatcher(DOTA, synonyms={'x': 'spaceship'})

    def test_dior_names_without_spaces(self) -> None:
        m = ClassMatcher(('storagetank', 'expressway-service-area'))
        assert m.match('storage tank')[0] == 0 and m.match('expressway service area')[0] == 1


def test_regularize_matches_mmrotate() -> None:
    boxes = torch.tensor([[5.0, 5, 4, 9, 0.3], [5, 5, 9, 4, 2.0], [1, 1, 3, 2, -2.5],
                          [0, 0, 2, 6, 1.6]], dtype=torch.float64)
    for version in ('le90', 'le135', 'oc'):
        ours = regularize_rboxes(boxes.numpy(), version)
        ref = RotatedBoxes(boxes.clone()).regularize_boxes(version).numpy()
        assert np.allclose(ours, ref, atol=1e-9), version


def test_bad_configuration_raises() -> None:
    with pytest.raises(ValueError, match='format'):
        RotatedBoxTextCodec(DOTA, format='ellipse')
    with pytest.raises(ValueError, match='preset'):
        RotatedBoxTextCodec.from_preset('nope', DOTA)
    with pytest.raises(ValueError, match='image_size'):
        RotatedBoxTextCodec(DOTA).decode('plane')
    with pytest.raises(ValueError, match='labels'):
        RotatedBoxTextCodec(DOTA, image_size=(W, H)).encode(random_rboxes(1), [15])
