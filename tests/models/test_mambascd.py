"""MambaSCD (ChangeMamba, Chen et al., TGRS 2024): sizes, official names, losses, prediction.

Oracles: the official parameter counts of ``STMambaSCD`` (T/S/B, counted from
github.com/ChenHongruixuan/MambaCD ``changedetection/models/STMambaSCD.py`` with the vssm1
configs, ``output_cd=2``, ``output_clf=7``); the official decoder key layout written out from
``SemanticDecoder.py``; the official total loss of ``train_MambaSCD.py`` recomputed from the
model's raw logits with ``torch.nn.functional`` and a Lovász-softmax derived from the definition
of the Lovász extension (Berman et al., CVPR 2018), not from mmseg's code.
"""
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData

import mmrs.models  # noqa: F401  (fills the registry)
from mmrs.evaluation import SCDMetric
from mmrs.models.backbones.vmamba import SS2D
from mmrs.models.change_detectors import MAMBASCD_KEY_MAP, MambaSCDDetector
from mmrs.models.losses import SemanticConsistencyLoss
from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample
from mmrs.utils import safe_torch_load
from tests.models.test_mambabcd import _official_decoder_keys

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs' / 'changemamba'
#: Official STMambaSCD parameter counts (MambaSCD-Tiny / Small / Base, SECOND: 7 classes).
OFFICIAL_PARAMS = {'tiny': 37_125_641, 'small': 58_511_753, 'base': 97_034_889}
#: A small but complete MambaSCD: VMamba dims 8..64, decoders 16 wide.
TINY = {
    'model.backbone.arch': dict(depths=[1, 1, 2, 1], dims=8, drop_path_rate=0.2),
    'model.scan_backend': 'torch',
    'model.decode_head.in_channels': [16, 32, 64, 128],
    'model.decode_head.channels': 16,
    'model.semantic_head.in_channels': [8, 16, 32, 64],
    'model.semantic_head.channels': 16,
}
SIZE = (64, 64)


def _cfg(variant: str = 'tiny', dataset: str = 'second') -> Config:
    return Config.fromfile(CONFIGS / f'mambascd_{variant}_256x256_50k_{dataset}.py')


@pytest.fixture
def model() -> MambaSCDDetector:
    """The tiny MambaSCD built from the Tiny SECOND config."""
    cfg = _cfg()
    cfg.merge_from_dict(TINY)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.fixture
def tool() -> ModuleType:
    """``tools/model_converters/mambacd2mmrs.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        'mambacd2mmrs', ROOT / 'tools' / 'model_converters' / 'mambacd2mmrs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _samples(n: int, num_classes: int = 7, seed: int = 0) -> list[ChangeDataSample]:
    """SECOND-style labels: date classes 1..K inside changed areas, 0 outside, some 255."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        frm = torch.randint(0, num_classes, (1, *SIZE), generator=g)
        to = torch.where(frm > 0, torch.randint(1, num_classes, (1, *SIZE), generator=g), 0)
        frm[:, :3, :5] = 255
        to[:, :3, :5] = 255
        s = ChangeDataSample(metainfo=dict(img_shape=SIZE, ori_shape=SIZE, pad_shape=SIZE))
        s.gt_sem_seg_from = PixelData(data=frm)
        s.gt_sem_seg_to = PixelData(data=to)
        out.append(s)
    return out


def lovasz_bruteforce(probs: np.ndarray, labels: np.ndarray, ignore: int = 255) -> float:
    """Lovász-softmax from the definition: the Lovász extension of each class's Jaccard loss.

    For class ``c`` with foreground ``F`` the Jaccard loss of a prediction wrong exactly on a
    set ``S`` is ``|S| / |F ∪ S|``; its Lovász extension at the errors ``m = |1[F] - p_c|`` is
    ``sum_i m_(i) (Δ(S_i) - Δ(S_{i-1}))`` with ``S_i`` the ``i`` largest errors. Averaged over
    the classes present among the non-ignored pixels.
    """
    keep = labels != ignore
    probs, labels = probs[keep], labels[keep]
    losses = []
    for c in range(probs.shape[1]):
        fg = labels == c
        if not fg.any():
            continue
        errors = np.abs(fg.astype(float) - probs[:, c])
        fg_set, s, prev, total = set(np.flatnonzero(fg).tolist()), set(), 0.0, 0.0
        for i in np.argsort(-errors, kind='stable').tolist():
            s.add(i)
            delta = len(s) / len(fg_set | s)
            total += errors[i] * (delta - prev)
            prev = delta
        losses.append(total)
    return float(np.mean(losses)) if losses else 0.0


def lovasz_cumulative(logits: torch.Tensor, labels: torch.Tensor,
                      ignore: int = 255) -> torch.Tensor:
    """:func:`lovasz_bruteforce` on softmax(logits), ``|S_i|`` and ``|F ∪ S_i|`` counted by
    cumulative sums (``|F ∪ S_i| = |F| + #background among the i largest errors``)."""
    probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    labels = labels.reshape(-1)
    probs, labels = probs[labels != ignore], labels[labels != ignore]
    losses = []
    for c in labels.unique().tolist():
        fg = (labels == c).double()
        errors, order = (fg - probs[:, c].double()).abs().sort(descending=True)
        size_s = torch.arange(1, len(fg) + 1, dtype=torch.float64)
        delta = size_s / (fg.sum() + torch.cumsum(1 - fg[order], 0))
        losses.append((errors * torch.diff(delta, prepend=delta.new_zeros(1))).sum())
    return torch.stack(losses).mean()


class TestConfigs:

    @pytest.mark.parametrize('variant', ['tiny', 'small', 'base'])
    def test_parameter_counts_equal_official(self, variant: str) -> None:
        with torch.device('meta'):
            model = MODELS.build(_cfg(variant).model)
            landsat = MODELS.build(_cfg(variant, 'landsatscd').model)
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[variant]
        # Landsat-SCD: 5 semantic outputs instead of 7, one shared 128-channel classifier
        assert sum(p.numel() for p in landsat.parameters()) == \
            OFFICIAL_PARAMS[variant] - 2 * (128 + 1)

    @pytest.mark.parametrize('dataset', ['second', 'landsatscd'])
    def test_configs_follow_the_official_recipe(self, dataset: str) -> None:
        for variant in ('tiny', 'small', 'base'):
            cfg = _cfg(variant, dataset)
            assert cfg.train_dataloader.batch_size == 16
            assert cfg.optim_wrapper.optimizer.lr == 1e-4
            assert cfg.optim_wrapper.optimizer.weight_decay == 5e-4
            assert cfg.train_cfg.max_iters == 50000  # 800k samples / batch 16
            (sched, ) = cfg.param_scheduler
            assert (sched.type, sched.step_size, sched.gamma) == ('StepLR', 10000, 0.5)
            weights = {d['type']: d['loss_weight'] for d in cfg.model.decode_head.loss_decode}
            assert weights == {'mmseg.CrossEntropyLoss': 1.0, 'mmseg.LovaszLoss': 0.75}
            weights = {d['type']: d['loss_weight'] for d in cfg.model.semantic_head.loss_decode}
            assert weights == {'mmseg.CrossEntropyLoss': 0.5, 'mmseg.LovaszLoss': 0.375}
            assert cfg.model.consistency_loss.loss_weight == 0.25
            assert cfg.model.semantic_head.num_classes == (7 if dataset == 'second' else 5)
            assert cfg.val_evaluator.num_semantic_classes == cfg.model.semantic_head.num_classes


def _official_semantic_keys(block_keys: list[str]) -> set[str]:
    """Keys of the official SemanticDecoder, from its module layout."""
    bn = ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    keys = {'st_block_4_semantic.0.weight', 'st_block_4_semantic.0.bias'}
    keys |= {f'st_block_4_semantic.2.{k}' for k in block_keys}  # conv, permute, VSSBlock
    for level in (3, 2, 1):
        keys |= {f'st_block_{level}_semantic.1.{k}' for k in block_keys}  # permute, VSSBlock
        keys |= {f'trans_layer_{level}.0.weight', f'trans_layer_{level}.0.bias'}
        keys |= {f'trans_layer_{level}.1.{k}' for k in bn}
    for level in (3, 2, 1, 0):
        name = f'smooth_layer_{level}_semantic'
        keys |= {f'{name}.conv1.weight', f'{name}.conv2.weight'}
        keys |= {f'{name}.bn{i}.{k}' for i in (1, 2) for k in bn}
    return keys


def _official_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A random official-layout state dict built by inverting the key map."""
    official = {}
    for key, value in model.state_dict().items():
        src, dst = max(((s, d) for s, ds in MAMBASCD_KEY_MAP.items() for d in ds
                        if key.startswith(d)), key=lambda sd: len(sd[1]))
        official[src + key[len(dst):]] = torch.rand_like(value.float()).to(value.dtype)
    return official


class TestStateDict:

    def test_keys_mirror_the_official_layout(self, model: MambaSCDDetector,
                                             tool: ModuleType) -> None:
        sd = model.state_dict()
        block_keys = [k[len('backbone.layers.0.blocks.0.'):] for k in sd
                      if k.startswith('backbone.layers.0.blocks.0.')]
        official = {f'decoder_bcd.{k}' for k in _official_decoder_keys(block_keys)}
        for date in ('T1', 'T2'):
            official |= {f'decoder_{date}.{k}' for k in _official_semantic_keys(block_keys)}
        official |= {'main_clf_cd.weight', 'main_clf_cd.bias', 'aux_clf.weight', 'aux_clf.bias'}
        official |= {f'encoder.{k[len("backbone."):]}' for k in sd if k.startswith('backbone.')}
        converted = tool.convert_mambascd({k: torch.zeros(1) for k in official})
        assert set(converted) == set(sd)
        assert tool.detect_model(dict.fromkeys(official)) == 'mambascd'
        with pytest.raises(KeyError, match='MambaSCD'):
            tool.convert_mambascd({'decoder.st_block_11.0.weight': torch.zeros(1)})

    def test_official_shapes(self, model: MambaSCDDetector) -> None:
        """Shapes of the official modules for the tiny dims (8, 16, 32, 64), width 16."""
        sd = model.state_dict()
        assert sd['semantic_head_from.conv_seg.weight'].shape == (7, 16, 1, 1)  # aux_clf
        assert sd['decode_head.conv_seg.weight'].shape == (2, 16, 1, 1)  # main_clf_cd
        assert sd['semantic_head_to.st_block_4_semantic.0.weight'].shape == (16, 64, 1, 1)
        assert sd['semantic_head_to.trans_layer_1.0.weight'].shape == (16, 8, 1, 1)
        assert sd['semantic_head_to.smooth_layer_0_semantic.conv1.weight'].shape == \
            (16, 16, 3, 3)

    def test_converted_checkpoint_loads_strictly(self, model: MambaSCDDetector,
                                                 tool: ModuleType, tmp_path: Path) -> None:
        official = _official_state_dict(model)
        assert 'aux_clf.weight' in official and 'decoder_T2.trans_layer_3.1.running_var' in official
        torch.save(official, tmp_path / 'official.pth')  # bare state dict, as official
        state = tool.convert(tool.unwrap(safe_torch_load(tmp_path / 'official.pth')))
        model.load_state_dict(state, strict=True)
        head_from, head_to = model.semantic_head_from, model.semantic_head_to
        assert head_to.conv_seg is head_from.conv_seg  # one shared classifier
        assert torch.equal(head_to.conv_seg.weight, official['aux_clf.weight'])
        assert torch.equal(model.decode_head.conv_seg.bias, official['main_clf_cd.bias'])
        assert torch.equal(head_to.st_block_2_semantic[1].op.A_logs,
                           official['decoder_T2.st_block_2_semantic.1.op.A_logs'])
        assert not torch.equal(head_from.trans_layer_1[0].weight, head_to.trans_layer_1[0].weight)


class TestLosses:

    def test_mmseg_lovasz_equals_the_lovasz_extension(self) -> None:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 4, 3, 5, generator=g)
        labels = torch.randint(0, 3, (2, 3, 5), generator=g)  # class 3 absent
        labels[0, 0, :2] = 255
        loss = MODELS.build(dict(type='mmseg.LovaszLoss', loss_type='multi_class',
                                 classes='present', per_image=False, reduction='none'))
        got = loss(logits, labels, ignore_index=255).item()
        probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, 4).numpy().astype(float)
        want = lovasz_bruteforce(probs, labels.reshape(-1).numpy())
        assert got == pytest.approx(want, abs=1e-6)
        assert lovasz_cumulative(logits, labels).item() == pytest.approx(want, abs=1e-9)

    def test_consistency_loss_by_hand(self) -> None:
        a = torch.zeros(1, 2, 1, 2)  # softmax (0.5, 0.5) at both pixels
        b = torch.tensor([[[[np.log(3.0), 5.0]], [[0.0, -5.0]]]])  # (0.75, 0.25) at pixel 0
        mask = torch.tensor([[[True, False]]])  # pixel 1 is not compared
        # (0.25^2 + 0.25^2) / (B * C * H * W = 4)
        assert SemanticConsistencyLoss(loss_weight=2.0)(a, b, mask).item() == \
            pytest.approx(2.0 * 0.125 / 4)
        with pytest.raises(ValueError):
            SemanticConsistencyLoss()(a, b[..., :1], mask)

    def test_total_loss_equals_the_official_formula(self, model: MambaSCDDetector) -> None:
        model.eval()  # deterministic (no drop path, BN statistics fixed)
        x = torch.randn(2, 2, 3, *SIZE, generator=torch.Generator().manual_seed(1))
        samples = _samples(2)
        with torch.no_grad():
            losses = model.loss(x, samples)
            cd, t1, t2 = (F.interpolate(o, size=SIZE, mode='bilinear', align_corners=False)
                          for o in model._forward(x))
        frm = torch.cat([s.gt_sem_seg_from.data for s in samples])
        to = torch.cat([s.gt_sem_seg_to.data for s in samples])
        label_cd = torch.where(frm == 255, 255, (frm != 0).long())
        frm, to = frm.masked_fill(frm == 0, 255), to.masked_fill(to == 0, 255)
        mask = (frm == 255).float()[:, None]
        sim = F.mse_loss(t1.softmax(1) * mask, t2.softmax(1) * mask)
        want = (F.cross_entropy(cd, label_cd, ignore_index=255)
                + 0.5 * (F.cross_entropy(t1, frm, ignore_index=255)
                         + F.cross_entropy(t2, to, ignore_index=255) + 0.5 * sim)
                + 0.75 * (lovasz_cumulative(cd, label_cd)
                          + 0.5 * (lovasz_cumulative(t1, frm) + lovasz_cumulative(t2, to))))
        got = sum(v for k, v in losses.items() if 'loss' in k)
        assert {'decode.loss_ce', 'decode.loss_lovasz', 'sem_from.loss_ce', 'sem_to.loss_lovasz',
                'sem.loss_consistency'} <= set(losses)
        assert losses['sem.loss_consistency'].item() == pytest.approx(0.25 * sim.item(), rel=1e-5)
        assert got.item() == pytest.approx(want.item(), rel=1e-5)

    def test_training_reaches_every_parameter(self, model: MambaSCDDetector) -> None:
        model.train()
        losses = model.loss(torch.randn(2, 2, 3, *SIZE), _samples(2))
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


class TestPrediction:

    def test_predictions_follow_the_official_inference_and_feed_scd_metric(
            self, model: MambaSCDDetector) -> None:
        model.eval()
        x = torch.randn(2, 2, 3, *SIZE)
        samples = _samples(2)
        for s in samples:  # the dataset derives the change map from date 1
            frm = s.gt_sem_seg_from.data
            s.gt_sem_seg = PixelData(data=torch.where(frm == 255, 255, (frm != 0).long()))
        with torch.no_grad():
            preds = model.predict(x, samples)
            cd, t1, _ = model.encode_decode(x, [s.metainfo for s in samples]).split([2, 7, 7], 1)
        change = preds[0].pred_sem_seg.data
        assert torch.equal(change[0], cd[0].argmax(0))
        # the argmax over the land-cover classes 1..6 (the untrained class 0 left out)
        assert torch.equal(preds[0].pred_sem_seg_from.data[0],
                           (t1[0, 1:].argmax(0) + 1) * change[0])
        for p in preds:
            assert torch.all(p.pred_sem_seg_to.data[p.pred_sem_seg.data == 0] == 0)
        metric = SCDMetric(num_semantic_classes=7)
        metric.process({}, preds)
        results = metric.compute_metrics(metric.results)
        assert {'SeK', 'mambacd/SeK', 'mambacd/Fscd'} <= set(results)

    def test_one_scan_backend_knob_sets_encoder_and_decoders(self) -> None:
        cfg = _cfg()
        cfg.merge_from_dict({**TINY, 'model.backbone.scan_backend': 'cuda'})
        layers = [m for m in MODELS.build(cfg.model).modules() if isinstance(m, SS2D)]
        # encoder 5 + change decoder 12 + 2 semantic decoders x 4
        assert len(layers) == 5 + 12 + 8
        assert {m.scan_backend for m in layers} == {'torch'}
