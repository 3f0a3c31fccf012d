"""Zero-shot scene classification: prompt sets, the text classifier and the classifier model.

Evidence tests:

- a tiny real :class:`mmrs.models.clip.CLIP` whose image tower is set by hand so that images
  of class ``k`` (a stripe pattern) embed onto the text classifier vector of class ``k``:
  the pipeline must score 100%, and two controls (class names permuted, labels deranged)
  must score 0%;
- real remote-sensing pictures (``../shared/data/vl_samples``) through a ``Runner`` test
  loop with a tiny random model (shapes, scores sum to 1, metric keys);
- every shipped ``configs/clip/*_zeroshot_*.py`` parses, resolves its class names and
  templates, and one runs end to end on a fake release.
"""
import ast
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from torch import nn

from mmrs.evaluation.metrics.zero_shot_metric import ZeroShotAccuracy
from mmrs.models.clip.prompts import (PAPER_ENSEMBLE, PAPER_TEMPLATES, TEMPLATE_SETS,
                                      fill_templates, get_templates, paper_templates)
from mmrs.models.clip.zero_shot import CLIPZeroShotClassifier, build_text_classifier
from mmrs.registry import DATASETS
from tests.conftest import shared_data_root

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
SHARED = shared_data_root() / 'vl_samples'

TINY_CFG = dict(embed_dim=16,
                vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16,
                                head_width=16),
                text_cfg=dict(context_length=16, width=32, heads=2, layers=1))
TINY_CLIP = dict(type='CLIP', model_name='ViT-B-32', model_cfg=TINY_CFG, loss=None)

# om-ai-lab/RS5M inference/classname_and_prompt/RSAID.py, first 35 of 105 (verbatim)
RS5M_FIRST_35 = [
    'a remote sensing image of many {}.', 'a remote sensing image of a {}.',
    'a remote sensing image of the {}.', 'a remote sensing image of the hard to see {}.',
    'a remote sensing image of a hard to see {}.',
    'a low resolution remote sensing image of the {}.',
    'a low resolution remote sensing image of a {}.', 'a bad remote sensing image of the {}.',
    'a bad remote sensing image of a {}.', 'a cropped remote sensing image of the {}.',
    'a cropped remote sensing image of a {}.', 'a bright remote sensing image of the {}.',
    'a bright remote sensing image of a {}.', 'a dark remote sensing image of the {}.',
    'a dark remote sensing image of a {}.', 'a close-up remote sensing image of the {}.',
    'a close-up remote sensing image of a {}.',
    'a black and white remote sensing image of the {}.',
    'a black and white remote sensing image of a {}.',
    'a jpeg corrupted remote sensing image of the {}.',
    'a jpeg corrupted remote sensing image of a {}.', 'a blurry remote sensing image of the {}.',
    'a blurry remote sensing image of a {}.', 'a good remote sensing image of the {}.',
    'a good remote sensing image of a {}.', 'a remote sensing image of the large {}.',
    'a remote sensing image of a large {}.', 'a remote sensing image of the nice {}.',
    'a remote sensing image of a nice {}.', 'a remote sensing image of the small {}.',
    'a remote sensing image of a small {}.', 'a remote sensing image of the weird {}.',
    'a remote sensing image of a weird {}.', 'a remote sensing image of the cool {}.',
    'a remote sensing image of a cool {}.']


class TestPrompts:

    def test_published_lists(self) -> None:
        sets = TEMPLATE_SETS
        assert sets['georsclip'][:35] == tuple(RS5M_FIRST_35)
        assert len(sets['georsclip']) == 105 == len(set(sets['georsclip']))
        assert sets['georsclip'][35] == 'an aerial image of many {}.'
        assert sets['georsclip'][40] == 'a low resolution aerial image of the {}.'
        assert sets['georsclip'][-1] == 'a satellite image of a cool {}.'
        assert len(sets['remoteclip_resisc45']) == 18
        assert sets['remoteclip_resisc45'][0] == 'satellite imagery of {}.'
        assert sets['remoteclip_resisc45'][11] == 'aerial view of a {}.'
        assert sets['remoteclip_resisc45'][-1] == 'aerial view of the {}.'
        assert sets['remoteclip_scene'][1] == ('a centered satellite photo of the {} taken '
                                               'from above.')
        assert sets['skyscript'] == ('a satellite photo of {}.', 'a satellite image of {}')
        assert sets['clip_benchmark_resisc45'][0] == 'a sattelite image of {}'  # sic
        assert sets['remoteclip_eurosat'] == sets['clip_benchmark_eurosat']
        for name, templates in sets.items():
            assert all(t.count('{}') == 1 for t in templates), name

    def test_paper_lookup_and_errors(self) -> None:
        assert paper_templates('georsclip', 'aid') == TEMPLATE_SETS['georsclip']
        assert paper_templates('remoteclip', 'ucm') == TEMPLATE_SETS['remoteclip_scene']
        assert set(PAPER_TEMPLATES) <= set(PAPER_ENSEMBLE)
        with pytest.raises(KeyError, match='no published templates'):
            paper_templates('georsclip', 'ucm')
        with pytest.raises(KeyError, match='unknown template set'):
            get_templates('imagenet_80')
        with pytest.raises(ValueError, match='exactly one'):
            get_templates(['a photo of a {} and a {}.'])
        with pytest.raises(ValueError, match='empty'):
            get_templates([])
        assert fill_templates(['an overhead view of {}.'], 'golf {course}') == [
            'an overhead view of golf {course}.']


class StubText(nn.Module):
    """Text tower stub: each text maps to a fixed vector (norms differ on purpose)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        super().__init__()
        self.table = table
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0)))
        self.calls = 0

    def encode_texts(self, texts, batch_size=256, normalize=True):
        self.calls += 1
        emb = torch.tensor([self.table[t] for t in texts], dtype=torch.float32)
        return torch.nn.functional.normalize(emb, dim=-1) if normalize else emb

    def encode_image(self, images, normalize=True):
        return torch.nn.functional.normalize(images.flatten(1)[:, :2], dim=-1)


def test_ensembles_against_hand_computation() -> None:
    table = {'p a': [10.0, 0.0], 'q a': [0.0, 1.0], 'p b': [1.0, 1.0], 'q b': [-3.0, 4.0]}
    stub = StubText(table)
    norm = build_text_classifier(stub, ['a', 'b'], ['p {}', 'q {}'], 'normalized_mean')
    raw = build_text_classifier(stub, ['a', 'b'], ['p {}', 'q {}'], 'raw_mean')
    # class a: normalised mean of (1,0),(0,1) -> (1,1)/sqrt2; raw mean (10,1)/2 -> (10,1)/|.|
    np.testing.assert_allclose(norm[0], [2 ** -0.5, 2 ** -0.5], atol=1e-6)
    np.testing.assert_allclose(raw[0], np.array([10, 1]) / np.hypot(10, 1), atol=1e-6)
    # class b: (1,1)/sqrt2 + (-0.6,0.8) -> normalised; raw (-2,5) -> normalised
    b = np.array([2 ** -0.5 - 0.6, 2 ** -0.5 + 0.8])
    np.testing.assert_allclose(norm[1], b / np.linalg.norm(b), atol=1e-6)
    np.testing.assert_allclose(raw[1], np.array([-2, 5]) / np.hypot(2, 5), atol=1e-6)
    with pytest.raises(ValueError, match='ensemble'):
        build_text_classifier(stub, ['a'], ['p {}'], 'median')


def test_classifier_cache_rebuilds_on_new_names_and_loaded_weights() -> None:
    table = {f'{t} {c}': [float(i + 1), float(j)] for i, t in enumerate('pq')
             for j, c in enumerate('abc')}
    stub = StubText(table)
    model = CLIPZeroShotClassifier(clip=stub, class_names=['a', 'b'], templates=['p {}', 'q {}'])
    images = torch.rand(2, 1, 2, 2)
    model.predict(images)
    model.predict(images)
    assert stub.calls == 1
    model.set_class_names(['a', 'c'])
    model.predict(images)
    assert stub.calls == 2
    model.load_state_dict(model.state_dict())
    model.predict(images)
    assert stub.calls == 3
    with pytest.raises(ValueError, match='repeat'):
        model.set_class_names(['a', 'a'])
    named = CLIPZeroShotClassifier(clip=stub, class_names='UCMercedDataset')
    assert len(named.class_names) == 21 and named.class_names[9] == 'golf course'
    named.set_class_names(dict(dataset='AIDDataset', style='georsclip'))
    assert named.class_names[8] == 'denseresidential'
    with pytest.raises(TypeError, match='encode_image'):
        CLIPZeroShotClassifier(clip=nn.Linear(2, 2), class_names=['a'])
    with pytest.raises(RuntimeError, match='only predicts'):
        model(images, mode='loss')
    with pytest.raises(RuntimeError, match='no class names'):
        CLIPZeroShotClassifier(clip=stub).predict(images)


class PatternTower(nn.Module):
    """Hand-set image tower: a linear map of the (normalised) pixels."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight


NAMES = ['airport', 'beach', 'dense residential', 'forest', 'river', 'tennis court']


def stripe_images(labels: list[int], seed: int = 0) -> list[torch.Tensor]:
    """Class k: rows 5k..5k+4 bright, the rest dark, plus +-3 grey levels of noise."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for k in labels:
        img = torch.full((3, 32, 32), 20.0)
        img[:, 5 * k:5 * k + 5] = 235.0
        if seed >= 0:
            img += torch.randint(-3, 4, img.shape, generator=gen).float()
        out.append(img.clamp(0, 255).to(torch.uint8))
    return out


@pytest.fixture(scope='module')
def known_answer_model() -> CLIPZeroShotClassifier:
    """Real tiny CLIP (random text tower); image tower solved so that the clean stripe image
    of class k embeds exactly onto class k's text classifier vector."""
    torch.manual_seed(0)
    model = CLIPZeroShotClassifier(clip=TINY_CLIP, class_names=NAMES,
                                   templates='remoteclip_scene', ensemble='raw_mean').eval()
    text = model.text_classifier()  # (C, D) from the real tokenizer + text tower
    clean = model.data_preprocessor(dict(inputs=stripe_images(range(6), seed=-1)))['inputs']
    weight = torch.linalg.pinv(clean.flatten(1).double()) @ text.double()
    model.clip.clip.visual = PatternTower(weight.float())
    return model


def run_metric(model, images, labels) -> dict[str, float]:
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    outputs = model.test_step(dict(inputs=images, data_samples=samples))
    metric = ZeroShotAccuracy(topk=(1, 5))
    metric.process(None, [o.to_dict() for o in outputs])
    return metric.compute_metrics(metric.results), outputs


def test_known_answer_scores_100_and_controls_fail(known_answer_model) -> None:
    model = known_answer_model
    labels = [k for k in range(6) for _ in range(3)]
    images = stripe_images(labels, seed=1)
    metrics, outputs = run_metric(model, images, labels)
    assert metrics['top1'] == 100.0 and metrics['mean_per_class'] == 100.0
    for out in outputs:
        assert out.pred_score.shape == (6, )
        assert float(out.pred_score.sum()) == pytest.approx(1.0, abs=1e-5)
    # control 1: the labels deranged (class k called k+1): nothing is right
    wrong = [(y + 1) % 6 for y in labels]
    assert run_metric(model, images, wrong)[0]['top1'] == 0.0
    # control 2: the class names rolled: the text side really decides the answer
    try:
        model.set_class_names(NAMES[1:] + NAMES[:1])
        assert run_metric(model, images, labels)[0]['top1'] == 0.0
    finally:
        model.set_class_names(NAMES)
    assert run_metric(model, images, labels)[0]['top1'] == 100.0


def test_logit_scale_learned_or_fixed(known_answer_model) -> None:
    model = known_answer_model
    batch = model.data_preprocessor(dict(inputs=stripe_images([0, 3], seed=2)))['inputs']
    learned = model(batch).double()  # logits with exp(logit_scale)
    model.fixed_logit_scale = 100.0
    try:
        fixed = model(batch).double()
    finally:
        model.fixed_logit_scale = None
    scale = float(model.clip.logit_scale.exp())
    np.testing.assert_allclose(fixed / 100.0, learned / scale, atol=1e-5)
    scores = model.predict(batch)[0].pred_score.double()
    log_ratio = (scores.log() - scores.log()[0]).numpy()
    np.testing.assert_allclose(log_ratio, (learned[0] - learned[0, 0]).numpy(), atol=1e-4)


@pytest.fixture
def vl_scenes(tmp_path: Path) -> Path:
    """Real pictures in a class-folder tree: Falcon's IMG_CLS samples, RS-M-CLIP's figs."""
    picks = {'beach': 'Falcon/image_samples/IMG_CLS/[IMG_CLS]_009_CLRS_14097_beach_178_Level3_4'
                      '_ori.png',
             'farmland': 'Falcon/image_samples/IMG_CLS/[IMG_CLS]_008_CLRS_12335_farmland_29_'
                         'Level2_1_ori.png',
             'river': 'Falcon/image_samples/IMG_CLS/[IMG_CLS]_003_AID_3525_river_192_ori.png',
             'airplane': 'RS-M-CLIP/figs/airplane_004.jpg',
             'golf_course': 'RS-M-CLIP/figs/golf_course_004.jpg'}
    if not all((SHARED / p).is_file() for p in picks.values()):
        pytest.skip(f'vl_samples not found under {SHARED}')
    root = tmp_path / 'scenes'
    for cls, rel in picks.items():
        (root / cls).mkdir(parents=True)
        shutil.copy(SHARED / rel, root / cls / Path(rel).name.replace('[', '').replace(']', ''))
    return root


def test_runner_end_to_end_on_real_pictures(vl_scenes: Path, tmp_path: Path) -> None:
    dump = tmp_path / 'preds.pkl'
    cfg = Config(dict(
        default_scope='mmrs',
        model=dict(type='CLIPZeroShotClassifier', clip=TINY_CLIP,
                   class_names=['airplane', 'beach', 'farmland', 'golf course', 'river'],
                   templates='remoteclip_scene'),
        test_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='SceneFolderDataset', data_root=str(vl_scenes), pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='mmpretrain.ResizeEdge', scale=32, edge='short', backend='pillow',
                     interpolation='bicubic'),
                dict(type='CenterCrop', crop_size=32),
                dict(type='mmpretrain.PackInputs')])),
        test_evaluator=[dict(type='ZeroShotAccuracy', topk=(1, 5), per_class_results=True),
                        dict(type='DumpResults', out_file_path=str(dump))],
        test_cfg=dict(type='TestLoop'),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
        work_dir=str(tmp_path / 'work')))
    metrics = Runner.from_cfg(cfg).test()
    assert metrics['accuracy/top5'] == 100.0  # 5 classes: every class is in the top 5
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    assert {f'accuracy/class/{n}' for n in ('airplane', 'golf course', 'river')} <= set(metrics)
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 5
    assert sorted(int(p['gt_label']) for p in preds) == [0, 1, 2, 3, 4]
    for p in preds:
        assert p['pred_score'].shape == (5, )
        assert float(p['pred_score'].sum()) == pytest.approx(1.0, abs=1e-5)
        assert int(p['pred_label']) == int(p['pred_score'].argmax())


ZERO_SHOT_CONFIGS = sorted((REPO / 'configs' / 'clip').glob('*_zeroshot_*.py'))


def _load(path: Path) -> Config:
    """Parse a config; skip while a base file it names (another helper's) is absent."""
    tree = ast.parse(path.read_text())
    base = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
            and any(getattr(t, 'id', None) == '_base_' for t in node.targets)]
    for rel in (base[0] if base else []):
        if not (path.parent / rel).is_file():
            pytest.skip(f'{path.name}: base config {rel} not written yet')
    return Config.fromfile(str(path))


def test_zero_shot_configs_exist_per_family() -> None:
    families = {p.name.split('_')[0] for p in ZERO_SHOT_CONFIGS}
    assert families >= {'remoteclip', 'georsclip', 'skyclip', 'farslip', 'rsmclip'}


@pytest.mark.parametrize('path', ZERO_SHOT_CONFIGS, ids=lambda p: p.name)
def test_zero_shot_config_resolves(path: Path) -> None:
    from mmrs.models.clip.zero_shot import resolve_class_names
    cfg = _load(path)
    family, key = path.stem.split('_')[0], path.stem.split('_zeroshot_')[1]
    model = cfg.model
    assert model.type == 'CLIPZeroShotClassifier' and model.clip.type == 'CLIP'
    assert model.ensemble == PAPER_ENSEMBLE[family]
    dataset = cfg.test_dataloader.dataset
    names = resolve_class_names(model.class_names)
    assert len(names) == len(DATASETS.get(dataset.type).METAINFO['classes'])
    assert model.class_names['dataset'] == dataset.type
    get_templates(model.templates)
    if family in PAPER_TEMPLATES and key in PAPER_TEMPLATES[family]:
        assert TEMPLATE_SETS[model.templates] == paper_templates(family, key)
    assert cfg.test_evaluator.type == 'ZeroShotAccuracy'


def test_shipped_config_runs_on_a_fake_release(tmp_path: Path) -> None:
    """``remoteclip_vit_b32_zeroshot_ucm.py`` as tools/test.py would run it, with a tiny
    random CLIP and a UC Merced tree of 21 classes x 5 tiny TIFFs."""
    import cv2
    path = REPO / 'configs/clip/remoteclip_vit_b32_zeroshot_ucm.py'
    cfg = _load(path)
    from mmrs.datasets.scene_classification import UCMercedDataset
    root = tmp_path / 'UCMerced_LandUse'
    for k, cls in enumerate(UCMercedDataset.METAINFO['classes']):
        (root / 'Images' / cls).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(root / 'Images' / cls / f'{cls}{i:02d}.tif'),
                        np.full((40, 40, 3), 10 * k + i, np.uint8))
    cfg.model.clip = dict(cfg.model.clip, model_cfg=TINY_CFG, checkpoint=None, loss=None)
    cfg.model.clip.pop('tuning', None)
    loader = cfg.test_dataloader
    loader.update(batch_size=8, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = str(root)
    for step in loader.dataset.pipeline:
        if step['type'].endswith(('ResizeEdge', 'CenterCrop')):
            step.update({'scale' if 'scale' in step else 'crop_size': 32})
    cfg.work_dir = str(tmp_path / 'work')
    cfg.log_level = 'WARNING'
    cfg.env_cfg = dict(dist_cfg=dict(backend='gloo'))
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    assert len(runner.test_dataloader.dataset) == 21  # the last 20% of 5 = 1 per class
    metrics = runner.test()
    assert set(metrics) >= {'accuracy/top1', 'accuracy/top5', 'accuracy/mean_per_class'}
    assert runner.model.class_names[2] == 'baseball diamond'
    assert runner.model.templates == TEMPLATE_SETS['remoteclip_scene']
