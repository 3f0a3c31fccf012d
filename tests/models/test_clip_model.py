"""The registered CLIP model on open_clip: parity with open_clip, tokenizers, QuickGELU, modes,
strict checkpoint loading, training signal.

Oracles are independent of mmrs: open_clip models built by ``open_clip.create_model`` with the
same overrides and the same weights, open_clip's / transformers' own tokenizers and hand-known
token ids, the symmetric cross-entropy written out here.
"""
import socket
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

open_clip = pytest.importorskip('open_clip')

from mmrs.models.clip import CLIP, build_open_clip_model  # noqa: E402
from mmrs.models.clip.towers import HF_TEXT_CONFIGS, build_hf_text_config  # noqa: E402
from mmrs.registry import MODELS  # noqa: E402

torch.set_num_threads(1)

TINY_VISION = dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16)
TINY_TEXT = dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2)
TINY_VIT = dict(embed_dim=16, vision_cfg=TINY_VISION, text_cfg=TINY_TEXT)
# ModifiedResNet: heads = width * 32 // head_width, attention pool on a 1x1 grid at 32 px
TINY_RN = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=[1, 1, 1, 1], width=8,
                                             head_width=64, patch_size=None),
               text_cfg=TINY_TEXT)
TINY_XLMR = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, vocab_size=64)
TINY_HF = dict(embed_dim=16, vision_cfg=TINY_VISION,
               text_cfg=dict(context_length=16, hf_config=TINY_XLMR))
WORDS = ['a', 'plane', 'airport', 'runway', 'two', 'golf', 'course', 'green', 'many',
         'planes', 'on', 'the', 'ground', 'river', 'farmland']


LOSS = dict(type='CLIPContrastiveLoss')


def symmetric_ce(image_emb, text_emb, scale):
    """InfoNCE of CLIP written out: mean of the image->text and text->image cross-entropies."""
    logits = scale * image_emb @ text_emb.t()
    n = len(logits)
    i2t = -torch.log_softmax(logits, 1)[torch.arange(n), torch.arange(n)].mean()
    t2i = -torch.log_softmax(logits, 0)[torch.arange(n), torch.arange(n)].mean()
    return (i2t + t2i) / 2


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails: building must stay offline."""
    def refuse(*args, **kwargs):
        raise AssertionError('network access attempted')
    monkeypatch.setattr(socket.socket, 'connect', refuse)


@pytest.fixture(scope='module')
def hf_tokenizer_dir(tmp_path_factory) -> Path:
    """A tiny WordLevel tokenizer saved as a PreTrainedTokenizerFast folder (XLM-R ids:
    <s>=0, <pad>=1, </s>=2, <unk>=3)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    vocab = {'<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token='<unk>'))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single='<s> $A </s>', special_tokens=[('<s>', 0), ('</s>', 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token='<s>', eos_token='</s>',
                                   pad_token='<pad>', unk_token='<unk>')
    folder = tmp_path_factory.mktemp('tiny_hf_tokenizer')
    fast.save_pretrained(folder)
    return folder


def tiny_clip(config=TINY_VIT, name='ViT-B-32', **kwargs) -> CLIP:
    torch.manual_seed(0)
    kwargs.setdefault('loss', None)
    return CLIP(model_name=name, model_cfg=config, **kwargs)


def open_clip_twin(model: CLIP, name: str, **kwargs) -> nn.Module:
    """The same architecture built by open_clip itself, holding ``model``'s weights."""
    ref = open_clip.create_model(name, pretrained=None, **kwargs)
    ref.load_state_dict(model.clip.state_dict(), strict=True)
    return ref.eval()


class TestParity:
    @pytest.mark.parametrize('name,config', [('ViT-B-32', TINY_VIT), ('RN50', TINY_RN)])
    def test_embeddings_equal_open_clip(self, name, config):
        model = tiny_clip(config, name).eval()
        ref = open_clip_twin(model, name, **config)
        assert type(model.clip) is type(ref)
        images = torch.randn(2, 3, 32, 32)
        tokens = open_clip.get_tokenizer(name, context_length=16)(['an airport', 'a river'])
        with torch.no_grad():
            torch.testing.assert_close(model.encode_image(images),
                                       F.normalize(ref.encode_image(images), dim=-1))
            torch.testing.assert_close(model.encode_image(images, normalize=False),
                                       ref.encode_image(images))
            torch.testing.assert_close(model.encode_text(tokens),
                                       F.normalize(ref.encode_text(tokens), dim=-1))
        assert model.image_size == (32, 32) and model.context_length == 16
        assert model.embed_dim == 16

    def test_hf_text_tower_equals_open_clip(self, tmp_path, hf_tokenizer_dir, no_network):
        from transformers import XLMRobertaConfig
        model = tiny_clip(TINY_HF, 'xlm-roberta-base-ViT-B-32',
                          tokenizer=dict(type='hf', path=str(hf_tokenizer_dir))).eval()
        # open_clip's own path reads an explicit config from a local folder: the xlm-roberta-
        # base facts (config.json on the Hub) with the tiny sizes
        XLMRobertaConfig(max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                         pad_token_id=1, bos_token_id=0, eos_token_id=2,
                         **TINY_XLMR).save_pretrained(tmp_path / 'cfg')
        ref = open_clip_twin(
            model, 'xlm-roberta-base-ViT-B-32', pretrained_text=False, embed_dim=16,
            vision_cfg=TINY_VISION,
            text_cfg=dict(hf_model_name=str(tmp_path / 'cfg'), hf_pooler_type='mean_pooler',
                          hf_tokenizer_name=str(hf_tokenizer_dir), context_length=16,
                          hf_model_pretrained=False))
        assert isinstance(model.clip, open_clip.CustomTextCLIP)
        assert model.clip.text.config.hidden_size == 32
        assert model.context_length == 16
        tokens = model.tokenize(['many planes on the ground', 'a golf course'])
        images = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(model.encode_text(tokens),
                                       F.normalize(ref.encode_text(tokens), dim=-1))
            torch.testing.assert_close(model.encode_image(images),
                                       F.normalize(ref.encode_image(images), dim=-1))
        # the tokenizer's <pad> is the tower's pad_token_id, so padding is masked out: the
        # same text with less padding embeds the same
        short = model.tokenize(['a golf course'])
        assert short[0, 5:].eq(1).all()
        with torch.no_grad():
            torch.testing.assert_close(model.encode_text(short[:, :8]),
                                       model.encode_text(short))

    def test_full_size_xlmr_facts(self):
        config = build_hf_text_config(dict(hf_model_name='xlm-roberta-base'))
        assert (config.model_type, config.hidden_size, config.num_hidden_layers,
                config.num_attention_heads, config.vocab_size,
                config.max_position_embeddings) == ('xlm-roberta', 768, 12, 12, 250002, 514)
        assert HF_TEXT_CONFIGS['xlm-roberta-large']['hidden_size'] == 1024

    def test_unknown_hf_name_needs_config(self):
        with pytest.raises(ValueError, match='not known offline'):
            build_hf_text_config(dict(hf_model_name='some/unknown-bert'))


class TestTokenizers:
    def test_open_clip_tokenizer(self):
        model = tiny_clip()
        texts = ['Two runways', 'a  green golf course']
        tokens = model.tokenize(texts)
        expected = open_clip.get_tokenizer('ViT-B-32', context_length=16)(texts)
        assert tokens.dtype == torch.long and tokens.shape == (2, 16)
        torch.testing.assert_close(tokens, expected)
        assert (tokens[:, 0] == 49406).all()  # <start_of_text> of CLIP's BPE vocabulary
        assert set(tokens[0].tolist()) >= {49407}  # <end_of_text>

    def test_hf_tokenizer_from_local_dir(self, hf_tokenizer_dir, no_network):
        model = tiny_clip(TINY_HF, 'xlm-roberta-base-ViT-B-32',
                          tokenizer=dict(type='hf', path=str(hf_tokenizer_dir)))
        tokens = model.tokenize(['a plane', 'two planes on the runway'])
        ids = {w: i + 4 for i, w in enumerate(WORDS)}
        assert tokens[0].tolist() == [0, ids['a'], ids['plane'], 2] + [1] * 12
        assert tokens[1, :7].tolist() == [0, ids['two'], ids['planes'], ids['on'], ids['the'],
                                          ids['runway'], 2]

    def test_hf_tower_without_tokenizer_is_a_clear_error(self):
        model = tiny_clip(TINY_HF, 'xlm-roberta-base-ViT-B-32')
        with torch.no_grad():  # images need no tokenizer
            model.encode_image(torch.randn(1, 3, 32, 32))
        with pytest.raises(ValueError, match="type='hf'"):
            model.tokenize(['a plane'])

    def test_bad_tokenizer_configs(self, tmp_path):
        with pytest.raises(ValueError, match='path'):
            tiny_clip(tokenizer=dict(type='hf')).tokenize(['x'])
        with pytest.raises(FileNotFoundError, match='missing_dir'):
            tiny_clip(tokenizer=dict(type='hf', path=str(tmp_path / 'missing_dir'))).tokenize(
                ['x'])
        with pytest.raises(ValueError, match='tokenizer type'):
            tiny_clip(tokenizer=dict(type='sentencepiece')).tokenize(['x'])


class TestQuickGELU:
    @staticmethod
    def activations(module):
        from open_clip.transformer import QuickGELU
        acts = [m for m in module.modules() if isinstance(m, (QuickGELU, nn.GELU))]
        return {type(m).__name__ for m in acts}, len(acts)

    def test_flag_reaches_both_towers(self):
        plain, quick = tiny_clip(), tiny_clip(quick_gelu=True)
        assert self.activations(plain.clip.visual) == ({'GELU'}, 2)
        assert self.activations(plain.clip.transformer) == ({'GELU'}, 2)
        assert self.activations(quick.clip.visual) == ({'QuickGELU'}, 2)
        assert self.activations(quick.clip.transformer) == ({'QuickGELU'}, 2)
        act = next(m for m in quick.clip.visual.modules() if type(m).__name__ == 'QuickGELU')
        x = torch.randn(50)
        torch.testing.assert_close(act(x), x * torch.sigmoid(1.702 * x))

    def test_outputs_differ(self):
        plain, quick = tiny_clip().eval(), tiny_clip(quick_gelu=True).eval()
        quick.clip.load_state_dict(plain.clip.state_dict())
        images = torch.randn(2, 3, 32, 32)
        tokens = plain.tokenize(['an airport', 'a river'])
        with torch.no_grad():
            assert (plain.encode_image(images) - quick.encode_image(images)).abs().max() > 1e-3
            assert (plain.encode_text(tokens) - quick.encode_text(tokens)).abs().max() > 1e-3

    def test_resnet_text_tower_gets_quick_gelu(self):
        model = tiny_clip(TINY_RN, 'RN50', quick_gelu=True)
        assert self.activations(model.clip.transformer) == ({'QuickGELU'}, 2)

    def test_quickgelu_architecture_name(self):
        assert tiny_clip(TINY_VIT, 'ViT-B-32-quickgelu').quick_gelu


class TestConfig:
    def test_registry_build(self):
        model = MODELS.build(dict(type='CLIP', model_name='ViT-B-16', model_cfg=TINY_VIT,
                                  loss=None))
        assert isinstance(model, CLIP) and model.model_name == 'ViT-B-16'
        pre = model.data_preprocessor
        torch.testing.assert_close(pre.mean.flatten(),
                                   torch.tensor([0.48145466, 0.4578275, 0.40821073]) * 255)
        assert pre.to_rgb

    def test_overrides_merge_into_open_clip_config(self):
        model = build_open_clip_model('ViT-L-14', dict(
            embed_dim=16, vision_cfg=dict(image_size=28, layers=1, width=32, head_width=16),
            text_cfg=dict(width=32, heads=2, layers=1)))
        # patch size 14 of ViT-L-14 is kept from open_clip's config
        assert model.visual.conv1.kernel_size == (14, 14)
        assert model.context_length == 77 and model.visual.preprocess_cfg['size'] == (28, 28)

    def test_bad_names_and_keys(self):
        with pytest.raises(ValueError, match='unknown open_clip architecture'):
            tiny_clip(name='ViT-Q-99')
        with pytest.raises(ValueError, match='hub'):
            tiny_clip(name='hf-hub:someone/model')
        with pytest.raises(ValueError, match="unknown vision_cfg key.*'widht'"):
            tiny_clip(dict(TINY_VIT, vision_cfg=dict(TINY_VISION, widht=3)))


FAMILY_CONFIGS = sorted((Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'models'
                         / 'clip').glob('*.py'))


@pytest.mark.parametrize('path', FAMILY_CONFIGS, ids=[p.stem for p in FAMILY_CONFIGS])
def test_family_configs_build(path):
    """Every family base config builds (architecture, activation, context length as
    configured) with towers shrunk to the tiny widths, and runs a loss step."""
    from mmengine.config import Config

    from mmrs.models.clip.towers import deep_merge
    model_cfg = Config.fromfile(str(path)).model.to_dict()
    assert model_cfg.pop('type') == 'CLIP'
    name = model_cfg['model_name']
    tiny = {'RN50': TINY_RN, 'xlm-roberta-base-ViT-B-32': TINY_HF}.get(name, TINY_VIT)
    tiny = deep_merge(tiny, {})
    tiny['text_cfg'].pop('context_length')  # keep the family's (FarSLIP-2: 248)
    model_cfg['model_cfg'] = deep_merge(tiny, model_cfg.get('model_cfg'))
    model_cfg['checkpoint'] = None
    hf = name.startswith('xlm-roberta')
    if hf:
        model_cfg['model_cfg']['text_cfg']['context_length'] = 16
    model = CLIP(**dict(model_cfg, loss=LOSS))
    assert model.quick_gelu == model_cfg['quick_gelu']
    expected_length = (model_cfg['model_cfg']['text_cfg'].get('context_length', 77))
    assert model.context_length == expected_length
    images = torch.randn(2, 3, *model.image_size)
    tokens = torch.randint(4, 60, (2, model.context_length))
    tokens[:, 0] = 0 if hf else 49406
    tokens[:, -1] = 2 if hf else 49407
    image_emb, text_emb = model.encode_image(images), model.encode_text(tokens)
    loss = model.loss_module(image_emb, text_emb, model.logit_scale.exp())
    loss.backward()
    assert torch.isfinite(loss)


class TestModes:
    @pytest.fixture
    def model(self):
        return tiny_clip(loss=LOSS)

    @staticmethod
    def samples(captions=None, texts=None):
        from mmpretrain.structures import DataSample
        out = []
        for i in range(len(captions or texts)):
            s = DataSample()
            if captions is not None and captions[i] is not None:
                s.set_field(captions[i], 'captions')
            if texts is not None:
                s.set_field(texts[i], 'text')
            out.append(s)
        return out

    def test_tensor(self, model):
        emb = model(torch.randn(3, 3, 32, 32), mode='tensor')
        assert emb.shape == (3, 16)
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))

    def test_loss_matches_symmetric_cross_entropy(self, model):
        images = torch.randn(3, 3, 32, 32)
        texts = ['an airport', 'a golf course', 'a river']
        out = model(images, self.samples(texts=texts), mode='loss')
        assert set(out) == {'loss_contrastive', 'logit_scale'}
        torch.testing.assert_close(out['logit_scale'], torch.tensor(1 / 0.07))
        assert not out['logit_scale'].requires_grad
        expected = symmetric_ce(model.encode_image(images),
                                model.encode_text(model.tokenize(texts)), 1 / 0.07)
        torch.testing.assert_close(out['loss_contrastive'], expected)
        out['loss_contrastive'].backward()
        assert model.logit_scale.grad is not None

    def test_loss_key_follows_loss_name(self):
        model = tiny_clip(loss=dict(type='CLIPContrastiveLoss', loss_name='loss_itc'))
        out = model(torch.randn(2, 3, 32, 32), self.samples(texts=['a', 'b']), mode='loss')
        assert set(out) == {'loss_itc', 'logit_scale'}

    def test_logit_scale_clamped_as_open_clip_trains(self, model):
        with torch.no_grad():
            model.logit_scale.fill_(7.0)  # beyond ln(100)
        out = model(torch.randn(2, 3, 32, 32), self.samples(texts=['a', 'b']), mode='loss')
        torch.testing.assert_close(out['logit_scale'], torch.tensor(100.0))

    def test_loss_needs_captions(self, model):
        with pytest.raises(ValueError, match='data sample 1 has no caption'):
            model(torch.randn(2, 3, 32, 32), self.samples(texts=['a', None]), mode='loss')

    def test_predict(self, model):
        model.eval()
        images = torch.randn(3, 3, 32, 32)
        captions = [['an airport', 'planes'], None, ['a river', 'water', 'a bridge']]
        out = model(images, self.samples(captions=captions), mode='predict')
        with torch.no_grad():
            expected_img = model.encode_image(images)
        for i, sample in enumerate(out):
            assert sample.image_embedding.shape == (16,)
            torch.testing.assert_close(sample.image_embedding, expected_img[i])
            torch.testing.assert_close(sample.image_embedding.norm(), torch.tensor(1.0))
        assert 'text_embeddings' not in out[1]
        with torch.no_grad():
            for i in (0, 2):
                emb = out[i].text_embeddings
                assert emb.shape == (len(captions[i]), 16)
                torch.testing.assert_close(emb.norm(dim=-1), torch.ones(len(captions[i])))
                torch.testing.assert_close(emb, model.encode_texts(captions[i]))

    def test_test_step_through_data_preprocessor(self, model):
        model.eval()
        image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
        out = model.test_step(dict(inputs=[image],
                                   data_samples=self.samples(captions=[['an airport']])))
        bgr_to_rgb = image.flip(0).float()
        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1) * 255
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1) * 255
        with torch.no_grad():
            expected = model.encode_image(((bgr_to_rgb - mean) / std)[None])[0]
        torch.testing.assert_close(out[0].image_embedding, expected)

    def test_loss_decreases(self, model):
        torch.manual_seed(1)
        images = torch.randn(4, 3, 32, 32)
        samples = self.samples(texts=['an airport', 'a golf course', 'a river', 'farmland'])
        optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
        losses = []
        for _ in range(5):
            loss = model(images, samples, mode='loss')['loss_contrastive']
            optim.zero_grad()
            loss.backward()
            optim.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0] - 0.05, losses

    def test_bad_mode(self, model):
        with pytest.raises(ValueError, match='mode'):
            model(torch.randn(1, 3, 32, 32), mode='features')


class TestCheckpoint:
    @pytest.fixture
    def fake_layouts(self, monkeypatch):
        """A stand-in for layouts.load_clip_state_dict (reads an open_clip state dict)."""
        calls = []

        def load_clip_state_dict(source, layout='auto', **kwargs):
            calls.append((source, layout))
            return torch.load(source, map_location='cpu', weights_only=True), 'openclip'

        from mmrs.models.clip import layouts
        monkeypatch.setattr(layouts, 'load_clip_state_dict', load_clip_state_dict)
        return calls

    def test_loads_strictly(self, tmp_path, fake_layouts):
        source = tiny_clip().eval()
        path = tmp_path / 'weights.pt'
        torch.save(source.clip.state_dict(), path)
        torch.manual_seed(123)
        model = CLIP('ViT-B-32', TINY_VIT, checkpoint=str(path), checkpoint_layout='openclip',
                     loss=None).eval()
        assert fake_layouts == [(str(path), 'openclip')]
        assert model.checkpoint_layout == 'openclip'
        images = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(model.encode_image(images), source.encode_image(images))

    def test_mismatch_names_file_and_keys(self, tmp_path, fake_layouts):
        state = tiny_clip().clip.state_dict()
        state.pop('ln_final.weight')
        state['visual.extra_head.weight'] = torch.zeros(1)
        path = tmp_path / 'bad_weights.pt'
        torch.save(state, path)
        with pytest.raises(RuntimeError) as err:
            CLIP('ViT-B-32', TINY_VIT, checkpoint=str(path), loss=None)
        message = str(err.value)
        assert 'bad_weights.pt' in message and 'ln_final.weight' in message
        assert 'visual.extra_head.weight' in message

    def test_shape_mismatch_names_file(self, tmp_path, fake_layouts):
        state = tiny_clip().clip.state_dict()
        state['text_projection'] = torch.zeros(3, 3)
        torch.save(state, tmp_path / 'wrong_shape.pt')
        with pytest.raises(RuntimeError, match='wrong_shape.pt'):
            CLIP('ViT-B-32', TINY_VIT, checkpoint=str(tmp_path / 'wrong_shape.pt'), loss=None)

    def test_derived_buffers_and_runner_prefix(self, tmp_path, fake_layouts):
        source = tiny_clip(TINY_HF, 'xlm-roberta-base-ViT-B-32').eval()
        state = {f'clip.{k}': v for k, v in source.clip.state_dict().items()}
        # older transformers saved the (derived) position ids of the text embeddings
        state['clip.text.transformer.embeddings.position_ids'] = torch.arange(514)[None]
        torch.save(state, tmp_path / 'mmrs_run.pt')
        model = CLIP('xlm-roberta-base-ViT-B-32', TINY_HF, loss=None,
                     checkpoint=str(tmp_path / 'mmrs_run.pt')).eval()
        images = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(model.encode_image(images), source.encode_image(images))

    def test_runner_init_weights_keeps_loaded_weights(self, tmp_path, fake_layouts,
                                                      hf_tokenizer_dir):
        """mmengine's Runner calls init_weights() after building; transformers models have an
        init_weights of their own that re-draws every weight: it must not be reached."""
        source = tiny_clip(TINY_HF, 'xlm-roberta-base-ViT-B-32').eval()
        torch.save(source.clip.state_dict(), tmp_path / 'w.pt')
        model = CLIP('xlm-roberta-base-ViT-B-32', TINY_HF, loss=None,
                     checkpoint=str(tmp_path / 'w.pt'),
                     tokenizer=dict(type='hf', path=str(hf_tokenizer_dir))).eval()
        model.init_weights()
        tokens = model.tokenize(['a golf course'])
        with torch.no_grad():
            torch.testing.assert_close(model.encode_text(tokens), source.encode_text(tokens))

    def test_real_layouts_round_trip(self, tmp_path):
        layouts = pytest.importorskip('mmrs.models.clip.layouts',
                                      reason='layouts.py (H1b) not written yet')
        assert hasattr(layouts, 'load_clip_state_dict')
        source = tiny_clip().eval()
        torch.save(source.clip.state_dict(), tmp_path / 'openclip.pt')
        model = CLIP('ViT-B-32', TINY_VIT, checkpoint=str(tmp_path / 'openclip.pt'),
                     loss=None).eval()
        images = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(model.encode_image(images), source.encode_image(images))

    def test_real_layouts_mismatch_names_file(self, tmp_path):
        pytest.importorskip('mmrs.models.clip.layouts', reason='layouts.py (H1b) not written')
        state = tiny_clip().clip.state_dict()
        state.pop('ln_final.weight')
        torch.save(state, tmp_path / 'partial.pt')
        with pytest.raises((RuntimeError, ValueError)) as err:
            CLIP('ViT-B-32', TINY_VIT, checkpoint=str(tmp_path / 'partial.pt'), loss=None)
        assert 'partial.pt' in str(err.value) and 'ln_final.weight' in str(err.value)

    def test_tuning_applied_after_loading(self, tmp_path, fake_layouts, monkeypatch):
        from mmrs.models.clip import tuning
        seen = []
        monkeypatch.setattr(tuning, 'apply_tuning', lambda model, **kw: seen.append(
            (model.checkpoint_layout, kw)))
        torch.save(tiny_clip().clip.state_dict(), tmp_path / 'w.pt')
        CLIP('ViT-B-32', TINY_VIT, checkpoint=str(tmp_path / 'w.pt'), loss=None,
             tuning=dict(freeze='image'))
        assert seen == [('openclip', dict(freeze='image'))]

    def test_real_tuning_freezes_image_tower(self):
        model = tiny_clip(tuning=dict(freeze=dict(image='all')))
        assert not any(p.requires_grad for p in model.clip.visual.parameters())
        assert all(p.requires_grad for p in model.clip.transformer.parameters())
