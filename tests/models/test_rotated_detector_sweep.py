"""Sweep of the rotated (oriented) detector configs, on the CPU.

Every ``configs/_base_/models/*.py`` whose model is an mmdet detector is built with random
weights, shrunk by its entry in :data:`TINY` (ResNet-18 with 8 base channels, 16-wide FPN and
heads: same architecture), and run on a tiny batch of rotated ground truth: a training step
(finite loss terms, a finite gradient for every trainable parameter, non-zero gradients in the
heads) and batched prediction (le90 rotated boxes, scores and labels per image). No CUDA is
touched: mmcv's CUDA-only rotated ops run on mmrs's CPU paths (:mod:`mmrs.models.ops`).
The shipped method configs are loaded and checked for the stability settings (gradient
clipping, :class:`mmrs.LossCheckHook`), and the DOTA configs' pipelines feed a real DOTA patch
(split by mmrs's tool) through a training step.
"""
import math
import os
from pathlib import Path

import pytest
import torch
from mmdet.models.detectors import BaseDetector
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmrs.models  # noqa: F401  (registers the CPU rotated ops)
from mmrs.models.ops import cpu_rotated_ops_enabled
from mmrs.registry import DATASETS, MODELS

torch.set_num_threads(2)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / 'configs' / '_base_' / 'models'
SHARED = Path(os.environ.get('MMRS_SHARED_DATA', REPO_ROOT.parent / 'shared' / 'data'))

_R18 = {'model.backbone.depth': 18, 'model.backbone.base_channels': 8,
        'model.backbone.stem_channels': 8, 'model.backbone.init_cfg': None,
        'model.neck.in_channels': [8, 16, 32, 64], 'model.neck.out_channels': 16}
# random heads score ~0.01: keep every box so that prediction returns some
_DENSE_TEST = {'model.test_cfg.score_thr': 0.0, 'model.test_cfg.nms_pre': 200,
               'model.test_cfg.max_per_img': 50}
_DENSE = {'model.bbox_head.in_channels': 16, 'model.bbox_head.feat_channels': 16,
          'model.bbox_head.stacked_convs': 1, **_DENSE_TEST}
_RPN = {'model.rpn_head.in_channels': 16, 'model.rpn_head.feat_channels': 16}
_ROI = dict(in_channels=16, fc_out_channels=32)
# fewer proposals and sampled RoIs: rotated RoIAlign and rotated NMS dominate the CPU time
_PROPOSALS = {'model.train_cfg.rpn_proposal.nms_pre': 200,
              'model.train_cfg.rpn_proposal.max_per_img': 100,
              'model.test_cfg.rpn.nms_pre': 200, 'model.test_cfg.rpn.max_per_img': 50,
              'model.test_cfg.rcnn.max_per_img': 50, 'model.test_cfg.rcnn.score_thr': 0.0}

#: ``Config.merge_from_dict`` overrides that shrink each detector config (by file name).
TINY: dict[str, dict] = {
    'rotated_retinanet_r50_fpn.py': {**_R18, **_DENSE},
    # the FCOS head's GroupNorm has 32 groups: 32 channels at least
    'rotated_fcos_r50_fpn.py': {**_R18, 'model.neck.out_channels': 32,
                                'model.bbox_head.in_channels': 32,
                                'model.bbox_head.feat_channels': 32,
                                'model.bbox_head.stacked_convs': 1, **_DENSE_TEST},
    'oriented_rcnn_r50_fpn.py': {
        **_R18, **_RPN, **_PROPOSALS, 'model.roi_head.bbox_roi_extractor.out_channels': 16,
        'model.train_cfg.rcnn.sampler.num': 64,
        **{f'model.roi_head.bbox_head.{k}': v for k, v in _ROI.items()}},
    'roi_trans_r50_fpn.py': {
        **_R18, **_RPN, **_PROPOSALS,
        **{f'model.train_cfg.rcnn.{i}.sampler.num': 64 for i in range(2)},
        **{f'model.roi_head.bbox_roi_extractor.{i}.out_channels': 16 for i in range(2)},
        **{f'model.roi_head.bbox_head.{i}.{k}': v for i in range(2) for k, v in _ROI.items()}},
}
METHODS = ('rotated_retinanet', 'rotated_fcos', 'oriented_rcnn', 'roi_trans')
NUM_CLASSES = 15
SIZE = 96


def _is_detector(cfg: Config) -> bool:
    init_default_scope('mmrs')
    try:
        cls = MODELS.get(cfg.model.type)
    except Exception:  # noqa: BLE001  (not an mmdet model, or its package is missing)
        return False
    return isinstance(cls, type) and issubclass(cls, BaseDetector)


DETECTOR_CONFIGS = sorted(p.name for p in MODEL_DIR.glob('*.py')
                          if _is_detector(Config.fromfile(str(p))))


def tiny_model(name: str) -> BaseDetector:
    cfg = Config.fromfile(str(MODEL_DIR / name))
    cfg.merge_from_dict(TINY[name])
    init_default_scope('mmrs')
    model = MODELS.build(cfg.model)
    model.init_weights()  # the heads' prior biases: without them the focal loss starts at ~1e4
    return model


def _batch(n: int = 2) -> dict:
    """``n`` random images with two le90 rotated objects each (different angles and sizes)."""
    from mmrotate.structures.bbox import RotatedBoxes
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for i in range(n):
        inputs.append(torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8, generator=gen))
        sample = DetDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                                             scale_factor=(1.0, 1.0)))
        gt = InstanceData()
        gt.bboxes = RotatedBoxes(torch.tensor([[30.0 + 5 * i, 40.0, 36.0, 14.0, 0.4],
                                               [64.0, 60.0 - 4 * i, 24.0, 10.0, -1.1]]))
        gt.labels = torch.tensor([i, 6])
        sample.gt_instances = gt
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_cpu_ops_are_installed() -> None:
    assert cpu_rotated_ops_enabled()


def test_every_detector_config_has_a_tiny_variant() -> None:
    assert DETECTOR_CONFIGS == sorted(TINY), 'add new detector configs to TINY'


@pytest.mark.parametrize('name', sorted(TINY))
def test_train_step_and_batched_predict(name: str) -> None:
    torch.manual_seed(0)
    model = tiny_model(name)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000, 'TINY does not shrink it'
    model.train()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert any('cls' in k for k in log_vars) and any('bbox' in k for k in log_vars)
    for key, value in log_vars.items():
        assert math.isfinite(float(value.detach() if torch.is_tensor(value) else value)), \
            f'{name}: {key} = {value}'
    assert 0 < float(loss) < 100, f'{name}: implausible initial loss {float(loss)}'
    loss.backward()
    head_grad = 0.0
    for pname, param in model.named_parameters():
        if not param.requires_grad or param.grad is None:
            continue
        assert torch.isfinite(param.grad).all(), f'{name}: non-finite gradient in {pname}'
        if 'head' in pname:
            head_grad += float(param.grad.abs().sum())
    assert head_grad > 0, f'{name}: no gradient reaches the heads'

    model.eval()
    with torch.no_grad():
        results = model.test_step(_batch(3))
    assert len(results) == 3
    for result in results:
        pred = result.pred_instances
        boxes = getattr(pred.bboxes, 'tensor', pred.bboxes)
        assert boxes.ndim == 2 and boxes.shape[1] == 5  # (cx, cy, w, h, angle)
        assert len(boxes) == len(pred.scores) == len(pred.labels) > 0
        assert torch.isfinite(boxes).all()
        assert ((pred.scores >= 0) & (pred.scores <= 1)).all()
        assert ((pred.labels >= 0) & (pred.labels < NUM_CLASSES)).all()
        # le90: angle in [-pi/2, pi/2)
        angles = boxes[:, 4]
        assert (angles >= -math.pi / 2 - 1e-4).all() and (angles < math.pi / 2 + 1e-4).all()
    assert not torch.cuda.is_initialized()


def _method_configs() -> list[Path]:
    return sorted(p for m in METHODS for p in (REPO_ROOT / 'configs' / m).glob('*.py'))


def test_each_method_has_dota_config_and_readme() -> None:
    for method in METHODS:
        folder = REPO_ROOT / 'configs' / method
        assert (folder / f'{method}_r50_fpn_1x_dota_le90.py').is_file(), method
        assert (folder / 'README.md').is_file(), method
    names = {p.name for p in _method_configs()}
    assert {'rotated_retinanet_r50_fpn_1x_dior_r.py',
            'rotated_retinanet_r50_fpn_6x_hrsc2016.py'} <= names


@pytest.mark.parametrize('path', _method_configs(), ids=lambda p: p.name)
def test_method_config_is_stable_and_resolvable(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmrs'
    assert cfg.optim_wrapper.clip_grad.max_norm > 0
    assert any(h.type == 'mmrs.LossCheckHook' for h in cfg.custom_hooks)
    init_default_scope('mmrs')
    assert issubclass(MODELS.get(cfg.model.type), BaseDetector)
    datasets = [cfg.train_dataloader.dataset, cfg.val_dataloader.dataset]
    datasets = [d for ds in datasets for d in ds.get('datasets', [ds])]
    for dataset in datasets:
        assert DATASETS.get(dataset.type) is not None, dataset.type
    num_classes = (cfg.model.get('bbox_head') or cfg.model.roi_head.bbox_head)
    num_classes = (num_classes[0] if isinstance(num_classes, list) else num_classes).num_classes
    classes = DATASETS.get(datasets[0].type).METAINFO['classes']
    if 'hrsc' in path.name:
        assert num_classes == 1
    else:
        assert num_classes == len(classes), (path.name, num_classes, len(classes))


@pytest.fixture(scope='module')
def dota_patch_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real DOTA scene P1888 split into 512x512 patches by mmrs's split tool.

    (mmrotate's sample crops are no use here: their labels lie outside the crops.)
    """
    from mmrs.datasets.dota_split import split_dataset
    src = SHARED / 'dota_samples' / 'example'
    if not (src / 'images' / 'P1888.png').is_file():
        pytest.skip(f'DOTA sample scenes not found at {src} (set MMRS_SHARED_DATA)')
    root = tmp_path_factory.mktemp('dota_p1888')
    for sub, ext in (('images', '.png'), ('labelTxt', '.txt')):
        (root / 'raw' / sub).mkdir(parents=True)
        (root / 'raw' / sub / f'P1888{ext}').symlink_to(src / sub / f'P1888{ext}')
    split_dataset(str(root / 'raw' / 'images'), str(root / 'raw' / 'labelTxt'),
                  str(root / 'split'), subsize=512, gap=100)
    return root / 'split'


CPU_SAMPLE_CONFIGS = sorted(p for p in _method_configs() if p.name.endswith('_cpu_dota_samples.py'))


@pytest.mark.parametrize(
    'path', [REPO_ROOT / 'configs' / 'rotated_retinanet' /
             'rotated_retinanet_r50_fpn_1x_dota_le90.py', *CPU_SAMPLE_CONFIGS],
    ids=lambda p: p.name)
def test_config_pipeline_trains_on_a_real_patch(path: Path, dota_patch_root: Path) -> None:
    """The config's own DOTA pipeline and model (shrunk for the R50 one; input 256 px)."""
    cfg = Config.fromfile(str(path))
    if '_r50_' in path.name:
        cfg.merge_from_dict(TINY['rotated_retinanet_r50_fpn.py'])
    init_default_scope('mmrs')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(dota_patch_root)
    ds_cfg.data_prefix = dict(img_path='images/', ann_path='labelTxt/')
    for step in ds_cfg.pipeline:
        if step.type == 'mmdet.Resize':
            step.scale = (256, 256)
    ds_cfg.ann_file = ''
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == 4  # P1888 (712x557): 2 x 2 patches of 512 with 100 overlap
    item = dataset[0]
    gt = item['data_samples'].gt_instances
    assert type(gt.bboxes).__name__ == 'RotatedBoxes' and len(gt.bboxes) > 10
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(pseudo_collate([item]), True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert all(math.isfinite(float(v)) for v in log_vars.values())
    bbox_terms = [float(v) for k, v in log_vars.items() if 'loss_bbox' in k]
    assert bbox_terms and max(bbox_terms) > 0  # objects were matched
    loss.backward()


@pytest.mark.parametrize('name,num_classes', [('roi_trans_r50_fpn_1x_dior_r.py', 20),
                                              ('roi_trans_r50_fpn_6x_hrsc2016.py', 1)])
def test_restated_cascade_heads_follow_the_base(name: str, num_classes: int) -> None:
    """The dataset variants restate RoI Transformer's head list (a list is replaced whole):
    apart from ``num_classes`` it must stay the base model's."""
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'roi_trans' / name))
    base = Config.fromfile(str(MODEL_DIR / 'roi_trans_r50_fpn.py'))
    for head, ref in zip(cfg.model.roi_head.bbox_head, base.model.roi_head.bbox_head,
                         strict=True):
        assert head.pop('num_classes') == num_classes
        ref.pop('num_classes')
        assert head == ref
