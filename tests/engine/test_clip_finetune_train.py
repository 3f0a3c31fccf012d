"""CLIP fine-tuning configs: they parse and build, and a tiny CLIP fine-tunes through
``tools/train.py`` on a Karpathy-style caption JSON of real remote-sensing images (the
vl_samples demo images) with the loss falling, under CPU AMP and with LoRA."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmrs.registry import MODELS
from tests.conftest import shared_data_root

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / 'configs' / 'clip'

#: real demo images of vl_samples and two captions each (what the images show)
IMAGES = {
    'airport.jpg': ('RemoteCLIP/assets/airport.jpg',
                    ['Many planes are parked next to the terminal of an airport.',
                     'An airport with aircraft, runways and buildings.']),
    'golf_course.jpg': ('RS-M-CLIP/figs/golf_course_004.jpg',
                        ['A golf course with green fairways and some trees.',
                         'Green lawns of a golf course surrounded by trees.']),
    'airplane.jpg': ('RS-M-CLIP/figs/airplane_004.jpg',
                     ['An airplane is parked on the ground.',
                      'A white plane on the grey apron.']),
    'beach.png': ('Falcon/image_samples/IMG_CLS/[IMG_CLS]_009_CLRS_14097_beach_178_Level3_4'
                  '_ori.png', ['Waves reach a sandy beach beside the sea.',
                               'A beach with white sand and blue water.']),
    'farmland.png': ('Falcon/image_samples/IMG_CLS/[IMG_CLS]_008_CLRS_12335_farmland_29_Level2'
                     '_1_ori.png', ['Rectangular fields of farmland.',
                                    'Farmland divided into many plots.']),
    'river.png': ('Falcon/image_samples/IMG_CLS/[IMG_CLS]_003_AID_3525_river_192_ori.png',
                  ['A river winds through the land.', 'A curved river with green banks.']),
    'playground.png': ('Falcon/image_samples/IMG_CAP/[IMG_CAP]_027_RSICD_599_playground_38'
                       '_ori.png', ['A playground with a red running track.',
                                    'A football field inside a running track.']),
    'church.png': ('Falcon/image_samples/IMG_CAP/[IMG_CAP]_010_RSICD_208_church_56_ori.png',
                   ['A church with a cross-shaped roof.', 'A large church among houses.']),
}

TINY_MODEL = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16),
    text_cfg=dict(context_length=16, width=32, heads=2, layers=2))

TINY_CONFIG = '''
_base_ = ['{base}']
data_root = '{data_root}'
model = dict(model_cfg={model}, checkpoint=None)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=32, crop_ratio_range=(0.9, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomCaption'),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['text']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=32, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['captions', 'img_id']),
]
loader = dict(batch_size=8, num_workers=0, persistent_workers=False)
train_dataloader = dict(**loader, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(**loader, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr={lr}))
param_scheduler = []
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters},
                 val_interval={iters})
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval={iters}, save_best=None))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''


@pytest.fixture(scope='module')
def captions_root(tmp_path_factory) -> Path:
    """An RSITMD-layout folder: ``dataset_RSITMD.json`` + ``images/`` (8 real images, each
    in the train and the test split)."""
    source = shared_data_root() / 'vl_samples'
    if not (source / 'RemoteCLIP').is_dir():
        pytest.skip(f'vl_samples not found at {source} (set MMRS_SHARED_DATA)')
    root = tmp_path_factory.mktemp('rsitmd')
    (root / 'images').mkdir()
    entries = []
    for split in ('train', 'test'):
        for name, (path, captions) in IMAGES.items():
            if split == 'train':
                shutil.copyfile(source / path, root / 'images' / name)
            index = len(entries)
            entries.append(dict(filename=name, imgid=index, split=split,
                                sentences=[dict(raw=c, imgid=index, sentid=2 * index + i)
                                           for i, c in enumerate(captions)]))
    (root / 'dataset_RSITMD.json').write_text(json.dumps(dict(images=entries,
                                                              dataset='rsitmd')))
    return root


def tiny_config(tmp_path: Path, base: str, data_root: Path, iters: int, lr: float) -> Path:
    path = tmp_path / f'tiny_{Path(base).stem}.py'
    path.write_text(TINY_CONFIG.format(base=CONFIGS / base, data_root=data_root,
                                       model=repr(TINY_MODEL), iters=iters, lr=lr))
    return path


def losses_of(work_dir: Path) -> list[float]:
    """The training losses of every iteration, from mmengine's ``vis_data/scalars.json``."""
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    rows = [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
    return [row['loss'] for row in rows if 'loss' in row]


#: RS-M-CLIP's XLM-RoBERTa text tower, tiny (with the tokenizer of :func:`tiny_hf_tokenizer`)
TINY_HF_MODEL = dict(
    embed_dim=32, vision_cfg=TINY_MODEL['vision_cfg'],
    text_cfg=dict(context_length=16, hf_config=dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        vocab_size=16)))


def tiny_hf_tokenizer(folder: Path) -> Path:
    """A WordLevel tokenizer saved as a PreTrainedTokenizerFast folder, XLM-R's special ids
    (<s>=0, <pad>=1, </s>=2, <unk>=3): what the config's ``tokenizer=dict(type='hf')`` reads."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    words = ['an', 'airport', 'a', 'golf', 'course']
    vocab = {'<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3, **{w: i + 4 for i, w in
                                                              enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token='<unk>'))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single='<s> $A </s>', special_tokens=[('<s>', 0), ('</s>', 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token='<s>', eos_token='</s>',
                            pad_token='<pad>', unk_token='<unk>').save_pretrained(folder)
    return folder

#: Fine-tuning config of each family -> (architecture, checkpoint layout, caption prefix of
#: its retrieval config, or None when its captions are unformatted)
FAMILY_FINETUNES = {
    'georsclip_vit_b32_finetune_rsitmd.py': ('ViT-B-32', 'georsclip', None),
    'skyclip_vit_b32_finetune_rsitmd.py': ('ViT-B-32', 'skyclip', 'a satellite image. '),
    'farslip_vit_b16_finetune_rsitmd.py': ('ViT-B-16', 'farslip', 'a satellite image. '),
    'rsmclip_vit_b32_finetune_rsitmd.py': ('xlm-roberta-base-ViT-B-32', 'rsmclip', None),
}


def build_tiny(config: str, **model: object) -> torch.nn.Module:
    cfg = Config.fromfile(str(CONFIGS / config))
    cfg.merge_from_dict(dict(model=dict(dict(model_cfg=TINY_MODEL, checkpoint=None), **model)))
    return MODELS.build(cfg.model)


class TestConfigs:

    def test_full_finetune_config(self) -> None:
        cfg = Config.fromfile(str(CONFIGS / 'remoteclip_vit_b32_finetune_rsitmd.py'))
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.model.loss == dict(type='CLIPContrastiveLoss', gather_across_ranks=True,
                                      local_loss=False, gather_with_grad=True)
        assert cfg.train_dataloader.dataset.type == 'RSITMDDataset'
        assert any(t['type'] == 'RandomCaption' for t in cfg.train_dataloader.dataset.pipeline)
        # no weight decay on logit_scale and 1-d parameters (open_clip_train)
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys['logit_scale'] == dict(decay_mult=0.)
        model = build_tiny('remoteclip_vit_b32_finetune_rsitmd.py')
        assert all(p.requires_grad for p in model.parameters())

    def test_partially_frozen_config(self) -> None:
        model = build_tiny('remoteclip_vit_b32_finetune_last2_rsitmd.py')
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        # the tiny towers have 2 blocks: the last 2 are all of them, embeddings stay frozen
        assert 'clip.visual.conv1.weight' not in trainable
        assert 'clip.token_embedding.weight' not in trainable
        assert 'clip.visual.transformer.resblocks.0.mlp.c_fc.weight' in trainable
        assert {'clip.visual.proj', 'clip.text_projection', 'clip.logit_scale'} <= trainable

    def test_lora_config(self) -> None:
        pytest.importorskip('peft')
        model = build_tiny('remoteclip_vit_b32_finetune_lora_rsitmd.py')
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all('lora_' in n for n in trainable - {'clip.logit_scale'})

    @pytest.mark.parametrize('config', sorted(FAMILY_FINETUNES))
    def test_family_finetune_configs(self, config: str, tmp_path: Path) -> None:
        """One full fine-tuning config per family, on the family's base model and retrieval
        config, with the RemoteCLIP recipe; built with tiny towers, one loss step."""
        from mmpretrain.structures import DataSample

        from mmrs.registry import TRANSFORMS
        arch, layout, prefix = FAMILY_FINETUNES[config]
        cfg = Config.fromfile(str(CONFIGS / config))
        reference = Config.fromfile(str(CONFIGS / 'remoteclip_vit_b32_finetune_rsitmd.py'))
        retrieval = Config.fromfile(str(CONFIGS / config.replace('_finetune_', '_retrieval_')))
        assert cfg.model.model_name == arch and cfg.model.checkpoint_layout == layout
        assert cfg.model.loss == reference.model.loss
        assert cfg.optim_wrapper == reference.optim_wrapper
        assert cfg.param_scheduler == reference.param_scheduler
        assert cfg.train_cfg == reference.train_cfg
        assert cfg.train_dataloader.batch_size == 64
        assert cfg.train_dataloader.dataset.type == 'RSITMDDataset'
        assert cfg.train_dataloader.dataset.split == 'train'
        assert cfg.val_dataloader.dataset.split == 'test'
        assert cfg.val_evaluator.type == 'RetrievalMetric'
        # validation captions exactly as the family's retrieval config formats them ...
        assert cfg.val_dataloader.dataset.pipeline == retrieval.test_dataloader.dataset.pipeline
        # ... and the training caption the same way
        train = [TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline
                 if t['type'] in ('RandomCaption', 'FormatCaptions')]
        sample = dict(captions=['Two planes on the apron.'], img_path='x.tif')
        for transform in train:
            sample = transform(sample)
        assert sample['text'] == (prefix or '') + 'Two planes on the apron.'
        val_formats = [t for t in retrieval.test_dataloader.dataset.pipeline
                       if t['type'] == 'FormatCaptions']
        assert [t.get('prefix') for t in val_formats] == ([prefix] if prefix else [])
        overrides = {}
        if layout == 'rsmclip':
            assert cfg.model.tokenizer.type == 'hf'
            overrides = dict(model_cfg=TINY_HF_MODEL, tokenizer=dict(
                path=str(tiny_hf_tokenizer(tmp_path / 'tokenizer'))))
        model = build_tiny(config, **overrides)
        assert all(p.requires_grad for p in model.parameters())
        images = torch.rand(2, 3, 32, 32) * 255
        samples = []
        for text in ('an airport', 'a golf course'):
            samples.append(DataSample())
            samples[-1].set_field(text, 'text')
        batch = model.data_preprocessor(dict(inputs=list(images), data_samples=samples), True)
        losses = model(**batch, mode='loss')
        losses['loss_contrastive'].backward()
        assert torch.isfinite(losses['loss_contrastive'])
        assert model.clip.logit_scale.grad is not None

    def test_fsdp_config(self, tmp_path: Path) -> None:
        from mmengine.registry import FUNCTIONS
        from mmrs.registry import RUNNERS
        cfg = Config.fromfile(str(CONFIGS / 'georsclip_vit_h14_finetune_rsicd_fsdp.py'))
        assert cfg.runner_type == 'FlexibleRunner'
        # the runner and its FSDP strategy build from the config (wrapping the model needs
        # CUDA and happens in runner.train())
        cfg.work_dir, cfg.launcher = str(tmp_path), 'none'
        cfg.visualizer.name = 'test_fsdp_config'  # not the shared 'visualizer' instance
        runner = RUNNERS.build(cfg)
        assert type(runner).__name__ == 'FlexibleRunner'
        assert type(runner.strategy).__name__ == 'FSDPStrategy'
        assert runner.strategy.state_dict_type.name == 'FULL_STATE_DICT'
        wrapper = cfg.strategy.model_wrapper
        assert callable(FUNCTIONS.get(wrapper.auto_wrap_policy.type))
        assert wrapper.use_orig_params is True
        assert wrapper.mixed_precision.param_dtype == 'bfloat16'
        assert cfg.model.model_name == 'ViT-H-14' and cfg.model.checkpoint_layout == 'georsclip'
        assert cfg.train_dataloader.dataset.type == 'RSICDDataset'
        assert cfg.optim_wrapper.type == 'OptimWrapper'  # FSDP casts, no float16 loss scaling


@pytest.mark.slow
class TestTrainTool:

    def test_amp_finetune_loss_falls(self, captions_root: Path, tmp_path: Path) -> None:
        from tests.tools._runner import run_tool
        config = tiny_config(tmp_path, 'remoteclip_vit_b32_finetune_rsitmd.py', captions_root,
                             iters=8, lr=2e-3)
        work_dir = tmp_path / 'amp'
        # the config says AmpOptimWrapper; --amp makes it bfloat16 autocast without CUDA
        result = run_tool('tools/train.py', str(config), '--work-dir', str(work_dir), '--amp')
        losses = losses_of(work_dir)
        print('AMP fine-tune losses', losses)
        assert len(losses) == 8, losses
        assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.1, losses
        assert (work_dir / 'iter_8.pth').is_file()
        log = result.stdout + result.stderr
        assert 'retrieval/A/mean_recall' in log  # the validation at the end ran
        assert 'CPUAmpOptimWrapper' in (work_dir / Path(config.name)).read_text() or \
            torch.cuda.is_available()

    def test_lora_finetune_loss_falls(self, captions_root: Path, tmp_path: Path) -> None:
        pytest.importorskip('peft')
        from tests.tools._runner import run_tool
        config = tiny_config(tmp_path, 'remoteclip_vit_b32_finetune_lora_rsitmd.py',
                             captions_root, iters=8, lr=1e-2)
        work_dir = tmp_path / 'lora'
        result = run_tool('tools/train.py', str(config), '--work-dir', str(work_dir),
                          '--cfg-options', 'optim_wrapper.type=OptimWrapper')
        losses = losses_of(work_dir)
        print('LoRA fine-tune losses', losses)
        assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.05, losses
        assert 'CLIP tuning' in result.stdout + result.stderr  # trainable counts logged
