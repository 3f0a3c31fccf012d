"""``tools/test.py`` with CLIP-family checkpoints: a family's own file (open_clip keys) and an
mmrs runner checkpoint of the same weights give the same metrics; a file that does not fit
the config's tower is refused with its name; ``--checkpoint-layout`` is checked."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmrs.models.clip.towers import build_open_clip_model

REPO = Path(__file__).resolve().parents[2]
TINY_CFG = dict(embed_dim=16,
                vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
                text_cfg=dict(context_length=16, width=32, heads=2, layers=1))


@pytest.fixture(scope='module')
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import cv2
    from mmrs.datasets.scene_classification import UCMercedDataset
    tmp = tmp_path_factory.mktemp('clip_test_tool')
    root = tmp / 'UCMerced_LandUse'
    rng = np.random.default_rng(0)
    for cls in UCMercedDataset.METAINFO['classes']:
        (root / 'Images' / cls).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(root / 'Images' / cls / f'{cls}{i:02d}.tif'),
                        rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    cfg = Config.fromfile(str(REPO / 'configs/clip/remoteclip_vit_b32_zeroshot_ucm.py'))
    cfg.model.clip = dict(cfg.model.clip, model_cfg=TINY_CFG, checkpoint=None, loss=None)
    loader = cfg.test_dataloader
    loader.update(batch_size=8, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = str(root)
    for step in loader.dataset.pipeline:
        if step['type'].endswith(('ResizeEdge', 'CenterCrop')):
            step.update({'scale' if 'scale' in step else 'crop_size': 32})
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.log_level = 'WARNING'
    cfg.dump(str(tmp / 'zeroshot_tiny.py'))
    torch.manual_seed(0)
    tower = build_open_clip_model('ViT-B-32', TINY_CFG, quick_gelu=True)
    family = tmp / 'RemoteCLIP-tiny.pt'
    torch.save(tower.state_dict(), family)  # RemoteCLIP: a bare open_clip state dict
    runner_ckpt = tmp / 'iter_10.pth'  # what tools/train.py writes for a fine-tuned CLIP
    torch.save(dict(meta=dict(iter=10), state_dict={f'clip.{k}': v
                                                    for k, v in tower.state_dict().items()}),
               runner_ckpt)
    wide = tmp / 'RemoteCLIP-wide.pt'
    torch.save(build_open_clip_model('ViT-B-32', dict(TINY_CFG, embed_dim=24),
                                     quick_gelu=True).state_dict(), wide)
    return dict(tmp=tmp, config=tmp / 'zeroshot_tiny.py', family=family,
                runner=runner_ckpt, wide=wide)


def run_test(setup: dict, checkpoint: Path, *extra: str) -> subprocess.CompletedProcess:
    out = setup['tmp'] / f'{checkpoint.stem}.json'
    return subprocess.run(
        [sys.executable, str(REPO / 'tools/test.py'), str(setup['config']), str(checkpoint),
         '--work-dir', str(setup['tmp'] / 'work'), '--out', str(out), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600)


def test_family_file_and_runner_checkpoint_give_the_same_metrics(setup: dict) -> None:
    metrics = []
    for ckpt, extra in ((setup['family'], ('--checkpoint-layout', 'remoteclip')),
                        (setup['runner'], ())):
        proc = run_test(setup, ckpt, *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        metrics.append(json.loads((setup['tmp'] / f'{ckpt.stem}.json').read_text()))
    assert {'accuracy/top1', 'accuracy/top5', 'accuracy/mean_per_class'} <= set(metrics[0])
    assert metrics[0] == metrics[1]


def test_misfit_family_file_is_refused_naming_it(setup: dict) -> None:
    proc = run_test(setup, setup['wide'])
    assert proc.returncode != 0
    assert 'RemoteCLIP-wide.pt' in proc.stderr and 'Traceback' not in proc.stderr[-400:]
    assert not (setup['tmp'] / 'RemoteCLIP-wide.json').exists()


def test_routing_rules(setup: dict) -> None:
    """Family files and CLIP runner checkpoints under a zero-shot config go to the CLIP
    loader; a runner checkpoint of the model under test keeps mmengine's ``load_from``."""
    from mmrs.models.clip.routing import route_clip_checkpoint
    clip_cfg = Config(dict(model=dict(type='CLIP', model_name='ViT-B-32')))
    zero_cfg = Config(dict(model=dict(type='mmrs.CLIPZeroShotClassifier',
                                      clip=dict(type='CLIP', model_name='ViT-B-32'))))
    assert not route_clip_checkpoint(clip_cfg, str(setup['runner']))  # its own keys
    assert 'checkpoint' not in clip_cfg.model
    assert route_clip_checkpoint(clip_cfg, str(setup['family']))
    assert clip_cfg.model.checkpoint == str(setup['family'])
    assert route_clip_checkpoint(zero_cfg, str(setup['runner']))  # clip.* is not clip.clip.*
    assert zero_cfg.model.clip.checkpoint == str(setup['runner'])
    url_cfg = Config(dict(model=dict(type='CLIP')))
    assert route_clip_checkpoint(url_cfg, 'https://example.org/RemoteCLIP-ViT-B-32.pt',
                                 'remoteclip')
    assert url_cfg.model.checkpoint_layout == 'remoteclip'
    other = Config(dict(model=dict(type='SiameseChangeDetector')))
    assert not route_clip_checkpoint(other, str(setup['family']))
