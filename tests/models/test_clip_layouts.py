"""Loading each remote-sensing CLIP family's checkpoint layout (mmrs.models.clip.layouts).

The checkpoints here are synthesised from recorded facts about the published files (key
names, wrappers, prefixes and how shapes follow from the architecture: OpenAI's CLIP state
dict format, open_clip's ModifiedResNet / HF text towers, ITRA's and FarSLIP's training
code; see docs/clip_layouts.md), not from the model they are loaded into, so a renamed key
on either side fails the strict load. Towers are tiny except in the meta-device tests,
which check full-size shapes without allocating them.
"""
import argparse
import functools
import http.server
import threading
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmrs.models.clip.layouts import (LAYOUTS, CLIPCheckpointError, describe_architecture,
                                      detect_layout, load_clip_checkpoint,
                                      load_clip_state_dict)
from mmrs.models.clip.towers import build_open_clip_model
from mmrs.utils.checkpoint import UnsafeCheckpointError, allow_unsafe_checkpoints

torch.set_num_threads(1)

CONFIG_DIR = Path(__file__).parents[2] / 'configs' / '_base_' / 'models' / 'clip'

# Tiny towers: ViT 32 px, patch 8 (4x4 grid + class token), width 32; text width 32.
TINY_VIT = dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16)
TINY_TEXT = dict(context_length=16, vocab_size=100, width=32, heads=2, layers=2)
TINY = dict(embed_dim=16, vision_cfg=TINY_VIT, text_cfg=TINY_TEXT)
TINY_FACTS = dict(width=32, layers=2, patch=8, image=32, embed=16, text_width=32,
                  text_layers=2, context=16, vocab=100)


# --------------------------------------------------------------------- recorded facts
def _block(prefix: str, w: int) -> dict[str, tuple[int, ...]]:
    """OpenAI CLIP ResidualAttentionBlock keys (nn.MultiheadAttention + c_fc/c_proj MLP)."""
    return {f'{prefix}.ln_1.weight': (w,), f'{prefix}.ln_1.bias': (w,),
            f'{prefix}.attn.in_proj_weight': (3 * w, w), f'{prefix}.attn.in_proj_bias': (3 * w,),
            f'{prefix}.attn.out_proj.weight': (w, w), f'{prefix}.attn.out_proj.bias': (w,),
            f'{prefix}.ln_2.weight': (w,), f'{prefix}.ln_2.bias': (w,),
            f'{prefix}.mlp.c_fc.weight': (4 * w, w), f'{prefix}.mlp.c_fc.bias': (4 * w,),
            f'{prefix}.mlp.c_proj.weight': (w, 4 * w), f'{prefix}.mlp.c_proj.bias': (w,)}


def text_shapes(text_width, text_layers, context, vocab, embed, **_) -> dict:
    """OpenAI CLIP text transformer keys (top level of the state dict)."""
    w = text_width
    shapes = {'token_embedding.weight': (vocab, w), 'positional_embedding': (context, w),
              'ln_final.weight': (w,), 'ln_final.bias': (w,), 'text_projection': (w, embed),
              'logit_scale': ()}
    for i in range(text_layers):
        shapes.update(_block(f'transformer.resblocks.{i}', w))
    return shapes


def vit_shapes(width, layers, patch, image, embed, **text) -> dict:
    """OpenAI CLIP ViT image tower keys plus the text keys."""
    w, grid = width, image // patch
    shapes = {'visual.class_embedding': (w,), 'visual.positional_embedding': (grid ** 2 + 1, w),
              'visual.proj': (w, embed), 'visual.conv1.weight': (w, 3, patch, patch),
              'visual.ln_pre.weight': (w,), 'visual.ln_pre.bias': (w,),
              'visual.ln_post.weight': (w,), 'visual.ln_post.bias': (w,)}
    for i in range(layers):
        shapes.update(_block(f'visual.transformer.resblocks.{i}', w))
    return {**shapes, **text_shapes(embed=embed, **text)}


def _bn(prefix: str, c: int) -> dict:
    return {f'{prefix}.weight': (c,), f'{prefix}.bias': (c,), f'{prefix}.running_mean': (c,),
            f'{prefix}.running_var': (c,), f'{prefix}.num_batches_tracked': ()}


def rn_shapes(width, stages, image, embed, **text) -> dict:
    """OpenAI ModifiedResNet keys: 3-conv stem, Bottlenecks (expansion 4), AttentionPool2d."""
    half = width // 2
    shapes = {'visual.conv1.weight': (half, 3, 3, 3), 'visual.conv2.weight': (half, half, 3, 3),
              'visual.conv3.weight': (width, half, 3, 3)}
    for i in (1, 2, 3):
        shapes.update(_bn(f'visual.bn{i}', half if i < 3 else width))
    inplanes = width
    for s, blocks in enumerate(stages):
        planes = width * 2 ** s
        for b in range(blocks):
            p = f'visual.layer{s + 1}.{b}'
            shapes.update({f'{p}.conv1.weight': (planes, inplanes, 1, 1),
                           f'{p}.conv2.weight': (planes, planes, 3, 3),
                           f'{p}.conv3.weight': (planes * 4, planes, 1, 1)})
            for i, c in ((1, planes), (2, planes), (3, planes * 4)):
                shapes.update(_bn(f'{p}.bn{i}', c))
            if b == 0:  # stride 2 or inplanes != 4 * planes: always for the first block
                shapes[f'{p}.downsample.0.weight'] = (planes * 4, inplanes, 1, 1)
                shapes.update(_bn(f'{p}.downsample.1', planes * 4))
            inplanes = planes * 4
    d, spacial = width * 32, image // 32
    shapes['visual.attnpool.positional_embedding'] = (spacial ** 2 + 1, d)
    for proj in ('k_proj', 'q_proj', 'v_proj'):
        shapes.update({f'visual.attnpool.{proj}.weight': (d, d),
                       f'visual.attnpool.{proj}.bias': (d,)})
    shapes.update({'visual.attnpool.c_proj.weight': (embed, d),
                   'visual.attnpool.c_proj.bias': (embed,)})
    return {**shapes, **text_shapes(embed=embed, **text)}


def hf_xlmr_text_shapes(hidden, layers, intermediate, vocab, positions, embed) -> dict:
    """open_clip HFTextEncoder over XLM-RoBERTa (no pooler: mean pooling) + 'mlp' proj."""
    h, p = hidden, 'text.transformer'
    shapes = {f'{p}.embeddings.word_embeddings.weight': (vocab, h),
              f'{p}.embeddings.position_embeddings.weight': (positions, h),
              f'{p}.embeddings.token_type_embeddings.weight': (1, h),
              f'{p}.embeddings.LayerNorm.weight': (h,), f'{p}.embeddings.LayerNorm.bias': (h,)}
    for i in range(layers):
        q = f'{p}.encoder.layer.{i}'
        for name in ('attention.self.query', 'attention.self.key', 'attention.self.value',
                     'attention.output.dense'):
            shapes.update({f'{q}.{name}.weight': (h, h), f'{q}.{name}.bias': (h,)})
        for name in ('attention.output.LayerNorm', 'output.LayerNorm'):
            shapes.update({f'{q}.{name}.weight': (h,), f'{q}.{name}.bias': (h,)})
        shapes.update({f'{q}.intermediate.dense.weight': (intermediate, h),
                       f'{q}.intermediate.dense.bias': (intermediate,),
                       f'{q}.output.dense.weight': (h, intermediate),
                       f'{q}.output.dense.bias': (h,)})
    mid = (h + embed) // 2
    shapes.update({'text.proj.0.weight': (mid, h), 'text.proj.2.weight': (embed, mid),
                   'logit_scale': ()})
    return shapes


def materialise(shapes: dict, seed: int = 0, device: str = 'cpu') -> dict[str, torch.Tensor]:
    """Random tensors of those shapes (integer counters where BatchNorm has them)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith('num_batches_tracked'):
            out[key] = torch.zeros(shape, dtype=torch.long, device=device)
        elif device == 'meta':
            out[key] = torch.empty(shape, device='meta')
        else:
            out[key] = torch.randn(shape, generator=gen)
    return out


def tiny_vit_state(seed: int = 0, **overrides) -> dict[str, torch.Tensor]:
    return materialise(vit_shapes(**{**TINY_FACTS, **overrides}), seed)


def farslip2_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """FarSLIP-2 (Long-CLIP text): two (248, W) tables and 0/1 masks split at position 20."""
    state = tiny_vit_state(seed, context=248)
    state['positional_embedding_res'] = torch.randn(248, 32, generator=torch.Generator()
                                                    .manual_seed(seed + 1))
    state['mask1'] = torch.zeros(248, 1)
    state['mask1'][:20] = 1
    state['mask2'] = torch.zeros(248, 1)
    state['mask2'][20:] = 1
    return state


def training_file(state: dict, prefix: str = 'module.') -> dict:
    """open_clip / ITRA training checkpoint: epoch, name, state_dict, optimizer."""
    first = next(iter(state.values()))
    return {'epoch': 20, 'name': 'run', 'state_dict': {prefix + k: v for k, v in state.items()},
            'optimizer': {'state': {0: {'step': torch.tensor(3.0), 'exp_avg': first.clone()}},
                          'param_groups': [{'lr': 1e-9, 'weight_decay': 1.0, 'params': [0]}]}}


def assert_loaded(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value.reshape(loaded[key].shape),
                                   rtol=0, atol=0, msg=key)


def tiny_model(model_name: str = 'ViT-B-32', **cfg) -> torch.nn.Module:
    return build_open_clip_model(model_name, {**TINY, **cfg}, quick_gelu=True)


# ----------------------------------------------------------------------------- layouts
class TestFamilies:
    def test_remoteclip_plain_state_dict(self, tmp_path: Path) -> None:
        state = tiny_vit_state()
        path = tmp_path / 'RemoteCLIP-ViT-B-32.pt'
        torch.save(state, path)
        model = tiny_model()
        assert load_clip_checkpoint(model, path, 'remoteclip') == 'remoteclip'
        assert_loaded(model, state)
        assert load_clip_state_dict(path)[1] == 'openclip'

    def test_remoteclip_rn50(self) -> None:
        facts = dict(width=8, stages=(1, 1, 1, 1), image=64, embed=16, text_width=32,
                     text_layers=1, context=16, vocab=100)
        state = materialise(rn_shapes(**facts))
        model = build_open_clip_model('RN50', dict(
            embed_dim=16, vision_cfg=dict(image_size=64, layers=[1, 1, 1, 1], width=8),
            text_cfg=dict(TINY_TEXT, layers=1)), quick_gelu=True)
        assert load_clip_checkpoint(model, state, 'remoteclip') == 'remoteclip'
        assert_loaded(model, state)
        assert describe_architecture(state)['vision_layers'] == (1, 1, 1, 1)

    def test_georsclip_release_and_itra_training_file(self, tmp_path: Path) -> None:
        state = tiny_vit_state()
        model = tiny_model()
        assert load_clip_checkpoint(model, state, 'georsclip') == 'georsclip'
        # ITRA: ItraModel(text_backbone=CLIP without visual, image_backbone=CLIP.visual),
        # logit_scale moved to the top and saved as shape (1,).
        itra = {('image_backbone.' + k[len('visual.'):]) if k.startswith('visual.')
                else k if k == 'logit_scale' else 'text_backbone.' + k: v
                for k, v in state.items()}
        itra['logit_scale'] = state['logit_scale'].reshape(1)
        path = tmp_path / 'epoch_2.pt'
        torch.save(training_file(itra), path)
        assert detect_layout(torch.load(path, weights_only=True)) == 'georsclip'
        model = tiny_model()
        assert load_clip_checkpoint(model, path) == 'georsclip'
        assert_loaded(model, state)

    def test_skyclip_training_file(self, tmp_path: Path) -> None:
        state = tiny_vit_state(seed=3)
        path = tmp_path / 'epoch_20.pt'
        torch.save(training_file(state), path)
        model = tiny_model()
        assert load_clip_checkpoint(model, path, 'skyclip') == 'skyclip'
        assert_loaded(model, state)

    def test_farslip2_long_text_positions_merge(self, tmp_path: Path) -> None:
        state = farslip2_state()
        path = tmp_path / 'FarSLIP2_ViT-B-32.pt'
        torch.save(training_file(state, prefix=''), path)
        merged, layout = load_clip_state_dict(path)
        assert layout == 'farslip'
        assert not {'positional_embedding_res', 'mask1', 'mask2'} & set(merged)
        pos = merged['positional_embedding']
        assert pos.shape == (248, 32)
        torch.testing.assert_close(pos[:20], state['positional_embedding'][:20], rtol=0, atol=0)
        torch.testing.assert_close(pos[20:], state['positional_embedding_res'][20:],
                                   rtol=0, atol=0)
        model = tiny_model(text_cfg=dict(TINY_TEXT, context_length=248))
        assert load_clip_checkpoint(model, path, 'farslip') == 'farslip'
        assert model.context_length == 248

    def test_farslip2_through_the_mmrs_model(self, tmp_path: Path) -> None:
        from mmrs.models.clip import CLIP
        path = tmp_path / 'FarSLIP2_ViT-B-16.pt'
        torch.save(farslip2_state(), path)
        model = CLIP(model_name='ViT-B-32', model_cfg=dict(
            TINY, text_cfg=dict(TINY_TEXT, context_length=248)), quick_gelu=True,
            checkpoint=str(path), checkpoint_layout='farslip', loss=None)
        assert model.checkpoint_layout == 'farslip'
        assert model.tokenize(['a harbour with many boats']).shape == (1, 248)

    def test_farslip2_without_masks_uses_the_20_position_split(self) -> None:
        state = farslip2_state()
        del state['mask1'], state['mask2']
        merged, _ = load_clip_state_dict(state, 'farslip')
        torch.testing.assert_close(merged['positional_embedding'][19],
                                   state['positional_embedding'][19], rtol=0, atol=0)
        torch.testing.assert_close(merged['positional_embedding'][20],
                                   state['positional_embedding_res'][20], rtol=0, atol=0)

    def test_farslip2_into_a_77_token_model_says_what_to_set(self) -> None:
        model = tiny_model(text_cfg=dict(TINY_TEXT, context_length=77))
        with pytest.raises(CLIPCheckpointError, match=r'(?s)positional_embedding.*'
                           r'context_length=248'):
            load_clip_state_dict(farslip2_state(), model=model)

    def test_farslip1_is_plain_openclip(self) -> None:
        state = tiny_vit_state()
        assert load_clip_state_dict(state, 'farslip')[1] == 'farslip'
        assert detect_layout(state) == 'openclip'

    def test_rsmclip_hf_text_tower(self, tmp_path: Path) -> None:
        state = {k: v for k, v in tiny_vit_state().items()
                 if k.startswith('visual.')}
        text = hf_xlmr_text_shapes(hidden=32, layers=2, intermediate=64, vocab=100,
                                   positions=40, embed=16)
        state.update(materialise(text, seed=5))
        # transformers < 4.31 saved the derived position_ids buffer.
        with_ids = dict(state)
        with_ids['text.transformer.embeddings.position_ids'] = torch.arange(40)[None]
        path = tmp_path / 'open_clip_model.safetensors'
        from safetensors.torch import save_file
        save_file(with_ids, str(path))
        model = build_open_clip_model('xlm-roberta-base-ViT-B-32', dict(
            embed_dim=16, vision_cfg=TINY_VIT, text_cfg=dict(hf_config=dict(
                vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=40))))
        assert load_clip_checkpoint(model, path) == 'rsmclip'
        assert_loaded(model, state)
        # Without a model to compare with, the derived buffer is dropped all the same.
        assert set(load_clip_state_dict(path)[0]) == set(state)

    @pytest.mark.parametrize('make, expected', [
        (lambda: tiny_vit_state(), 'openclip'),
        (lambda: training_file(tiny_vit_state()), 'openclip'),
        (lambda: {'meta': {}, 'state_dict': {'clip.' + k: v for k, v in
                                             tiny_vit_state().items()}}, 'openclip'),
        (lambda: farslip2_state(), 'farslip'),
        (lambda: {'state_dict': {'image_backbone.conv1.weight': torch.zeros(1),
                                 'text_backbone.token_embedding.weight': torch.zeros(1)}},
         'georsclip'),
        (lambda: {'visual.conv1.weight': torch.zeros(1),
                  'text.transformer.embeddings.word_embeddings.weight': torch.zeros(1)},
         'rsmclip'),
    ])
    def test_detect_layout(self, make, expected: str) -> None:
        assert detect_layout(make()) == expected


class TestFullSizeShapes:
    """Full-size architectures on the meta device: shapes only, nothing allocated."""

    FACTS = {  # OpenAI / open_clip architectures (width, layers, patch, image, embed dim)
        'ViT-B-32': dict(width=768, layers=12, patch=32, image=224, embed=512,
                         text_width=512, text_layers=12),
        'ViT-B-16': dict(width=768, layers=12, patch=16, image=224, embed=512,
                         text_width=512, text_layers=12),
        'ViT-L-14': dict(width=1024, layers=24, patch=14, image=224, embed=768,
                         text_width=768, text_layers=12),
        'ViT-H-14': dict(width=1280, layers=32, patch=14, image=224, embed=1024,
                         text_width=1024, text_layers=24),
        'RN50': dict(width=64, stages=(3, 4, 6, 3), image=224, embed=1024,
                     text_width=512, text_layers=12),
    }

    @staticmethod
    def meta_model(model_name: str, model_cfg: dict | None = None,
                   quick_gelu: bool = False) -> torch.nn.Module:
        with torch.device('meta'):
            return build_open_clip_model(model_name, model_cfg, quick_gelu)

    def full_state(self, model_name: str, context: int = 77) -> dict[str, torch.Tensor]:
        facts = dict(self.FACTS[model_name], context=context, vocab=49408)
        shapes = rn_shapes(**facts) if 'stages' in facts else vit_shapes(**facts)
        return materialise(shapes, device='meta')

    def test_vit_b32_full_shapes_load_strictly(self) -> None:
        model = self.meta_model('ViT-B-32', quick_gelu=True)
        state = self.full_state('ViT-B-32')
        assert describe_architecture(state) == dict(
            vision='ViT', vision_width=768, patch_size=32, vision_layers=12, image_size=224,
            embed_dim=512, text='clip', vocab_size=49408, text_width=512, text_layers=12,
            context_length=77)
        assert load_clip_checkpoint(model, state, 'remoteclip') == 'remoteclip'

    def test_wrong_image_size_is_named_with_the_fix(self) -> None:
        model = self.meta_model('ViT-B-32')
        state = self.full_state('ViT-B-32')
        state['visual.positional_embedding'] = torch.empty(65, 768, device='meta')  # 256 px
        with pytest.raises(CLIPCheckpointError, match=r'(?s)visual\.positional_embedding: '
                           r'\(65, 768\) vs \(50, 768\).*image_size=256'):
            load_clip_state_dict(state, model=model)

    def test_wrong_architecture_lists_keys(self) -> None:
        with pytest.raises(CLIPCheckpointError, match=r'(?s)not in the model.*'
                           r'visual\.transformer\.resblocks\.12.*vision_layers: checkpoint 24'):
            load_clip_state_dict(self.full_state('ViT-L-14'), model=self.meta_model('ViT-L-14', {
                'vision_cfg': {'layers': 12}}))

    @pytest.mark.parametrize('config', sorted(p.name for p in CONFIG_DIR.glob('*.py')))
    def test_base_config_fits_its_release(self, config: str) -> None:
        cfg = Config.fromfile(str(CONFIG_DIR / config)).model
        assert cfg.type == 'CLIP' and cfg.checkpoint is None
        assert cfg.checkpoint_layout in LAYOUTS
        if cfg.checkpoint_layout == 'rsmclip':
            assert cfg.model_name == 'xlm-roberta-base-ViT-B-32' and not cfg.quick_gelu
            assert cfg.tokenizer['type'] == 'hf'
            return  # full-size HF tower: covered at tiny size in TestFamilies
        model_cfg = cfg.get('model_cfg') or {}
        context = model_cfg.get('text_cfg', {}).get('context_length', 77)
        model = self.meta_model(cfg.model_name, model_cfg, cfg.quick_gelu)
        state = self.full_state(cfg.model_name, context)
        if context == 248:  # FarSLIP-2: the published file has the Long-CLIP tables
            width = state['positional_embedding'].shape[1]
            state['positional_embedding_res'] = torch.empty(248, width, device='meta')
            state['mask1'] = state['mask2'] = torch.empty(248, 1, device='meta')
        load_clip_state_dict(state, cfg.checkpoint_layout, model=model)


# ------------------------------------------------------------------------ files, errors
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


class TestFiles:
    def test_pickled_object_is_refused_unless_opted_in(self, tmp_path: Path) -> None:
        path = tmp_path / 'epoch_5.pt'
        torch.save({'state_dict': tiny_vit_state(), 'args': argparse.Namespace(lr=1.0)}, path)
        with pytest.raises(UnsafeCheckpointError, match='epoch_5.pt'):
            load_clip_state_dict(path)
        with allow_unsafe_checkpoints():
            assert load_clip_state_dict(path)[1] == 'openclip'

    def test_http_url(self, tmp_path: Path) -> None:
        served = tmp_path / 'served'
        served.mkdir()
        torch.save(tiny_vit_state(), served / 'RemoteCLIP-ViT-B-32.pt')
        handler = functools.partial(_QuietHandler, directory=str(served))
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f'http://127.0.0.1:{server.server_port}/RemoteCLIP-ViT-B-32.pt'
            state, layout = load_clip_state_dict(url, 'remoteclip',
                                                 cache_dir=str(tmp_path / 'cache'))
        finally:
            server.shutdown()
            server.server_close()
        assert layout == 'remoteclip'
        assert (tmp_path / 'cache' / 'RemoteCLIP-ViT-B-32.pt').is_file()
        model = tiny_model()
        model.load_state_dict(state, strict=True)

    def test_file_url(self, tmp_path: Path) -> None:
        path = tmp_path / 'FarSLIP2_ViT-B-16.pt'
        torch.save(farslip2_state(), path)
        _, layout = load_clip_state_dict(path.as_uri(), cache_dir=str(tmp_path / 'cache'))
        assert layout == 'farslip'

    def test_truncated_file_is_named(self, tmp_path: Path) -> None:
        good = tmp_path / 'good.pt'
        torch.save(tiny_vit_state(), good)
        bad = tmp_path / 'RemoteCLIP-ViT-B-32.pt'
        bad.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
        with pytest.raises(CLIPCheckpointError, match=r'RemoteCLIP-ViT-B-32\.pt.*truncated'):
            load_clip_state_dict(bad)

    def test_legacy_pickle_format(self, tmp_path: Path) -> None:
        path = tmp_path / 'RemoteCLIP-ViT-B-32.pt'
        torch.save(tiny_vit_state(), path, _use_new_zipfile_serialization=False)
        assert load_clip_state_dict(path)[1] == 'openclip'
        cut = tmp_path / 'cut.pt'
        cut.write_bytes(path.read_bytes()[:3000])
        with pytest.raises(CLIPCheckpointError, match=r'cut\.pt is not a readable'):
            load_clip_state_dict(cut)

    def test_not_a_checkpoint(self, tmp_path: Path) -> None:
        path = tmp_path / 'notes.pt'
        path.write_text('these are not weights')
        with pytest.raises(CLIPCheckpointError, match=r'notes\.pt is not a PyTorch'):
            load_clip_state_dict(path)
        with pytest.raises(FileNotFoundError, match='missing.pt'):
            load_clip_state_dict(tmp_path / 'missing.pt')

    def test_no_tensors(self, tmp_path: Path) -> None:
        path = tmp_path / 'meta.pt'
        torch.save({'epoch': 3, 'name': 'run'}, path)
        with pytest.raises(CLIPCheckpointError, match=r'meta\.pt is not a CLIP checkpoint.*'
                           r"'epoch'"):
            load_clip_state_dict(path)

    def test_unknown_layout_lists_what_it_saw(self) -> None:
        state = {'backbone.stem.weight': torch.zeros(1), 'head.fc.weight': torch.zeros(1)}
        with pytest.raises(CLIPCheckpointError, match=r'unknown CLIP checkpoint layout.*'
                           r'backbone\.stem.*head\.fc'):
            load_clip_state_dict(state)
        with pytest.raises(CLIPCheckpointError, match='unknown checkpoint_layout'):
            load_clip_state_dict(tiny_vit_state(), 'clip-rs')

    def test_declared_family_must_match_structure(self) -> None:
        with pytest.raises(CLIPCheckpointError, match=r"layout 'remoteclip'.*'farslip'"):
            load_clip_state_dict(farslip2_state(), 'remoteclip')
