"""A 4-band (RGB + NIR) GeoTIFF pair goes through loading, transforms, per-band normalisation,
a Siamese detector's training step and prediction."""
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmrs.registry import DATASETS, MODELS
from mmrs.utils import register_all_modules

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_four_band_pipeline_trains_and_predicts(tmp_path: Path) -> None:
    register_all_modules()
    pipeline = [
        dict(type='LoadBitemporalImages'),
        dict(type='LoadChangeAnnotations'),
        dict(type='PairedRandomFlip', prob=0.5),
        dict(type='PackChangeInputs'),
    ]
    dataset = DATASETS.build(dict(
        type='SyntheticChangeDataset', data_root=str(tmp_path / 'data'), split='train',
        num_samples=dict(train=2, val=1, test=1), size=64, bands=4, pipeline=pipeline))
    batch = pseudo_collate([dataset[0], dataset[1]])
    assert batch['inputs'][0].shape == (2, 4, 64, 64)
    assert batch['data_samples'][0].metainfo['geo_meta'][0]['count'] == 4

    cfg = Config.fromfile(str(REPO_ROOT / 'configs/_base_/models/fc_siam_diff.py'))
    cfg.model.backbone.in_channels = 4
    cfg.model.data_preprocessor.mean = [100.0, 110.0, 90.0, 120.0]
    cfg.model.data_preprocessor.std = [50.0, 50.0, 50.0, 60.0]
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(batch, training=True)
    assert data['inputs'].shape == (2, 2, 4, 64, 64)
    expected = (batch['inputs'][0][:, 3].float() - 120.0) / 60.0
    assert torch.allclose(data['inputs'][0, :, 3], expected, atol=1e-5)

    losses = model(**data, mode='loss')
    total = sum(value for key, value in losses.items() if 'loss' in key)
    total.backward()
    first_conv = next(p for p in model.backbone.parameters() if p.dim() == 4)
    assert first_conv.shape[1] == 4 and torch.isfinite(first_conv.grad).all()

    model.eval()
    with torch.no_grad():
        predictions = model(**model.data_preprocessor(batch, training=False), mode='predict')
    assert predictions[0].pred_sem_seg.data.shape == (1, 64, 64)
