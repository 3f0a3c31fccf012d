"""apply_tuning: frozen towers, except_last_N, named parts, BatchNorm freezing and LoRA (peft)
on tiny random-weight open_clip models (ViT, ModifiedResNet, HF text tower)."""
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

from mmrs.models.clip import CLIP
from mmrs.models.clip.tuning import (LinearMultiheadAttention, TuningError, apply_tuning,
                                     count_parameters, lora_layers, merge_lora)
from mmrs.models.losses.contrastive import CLIPContrastiveLoss

torch.set_num_threads(1)

VOCAB = 64
TEXT = dict(context_length=8, vocab_size=VOCAB, width=32, heads=2, layers=3)
VIT = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=3, width=32, patch_size=8,
                                         head_width=16), text_cfg=TEXT)
RN = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=[1, 1, 1, 1], width=8,
                                        head_width=64, patch_size=None), text_cfg=TEXT)
HF = dict(embed_dim=16, vision_cfg=VIT['vision_cfg'],
          text_cfg=dict(context_length=8, hf_config=dict(
              hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=64, vocab_size=VOCAB)))


def tiny(config: dict = VIT, name: str = 'ViT-B-32', **kwargs) -> CLIP:
    torch.manual_seed(0)
    return CLIP(model_name=name, model_cfg=config, **kwargs)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(4, 3, 32, 32, generator=generator)
    tokens = torch.randint(3, VOCAB, (4, 8), generator=generator)
    return images, tokens


def loss_of(model: CLIP, seed: int = 0) -> torch.Tensor:
    images, tokens = batch(seed)
    return CLIPContrastiveLoss()(model.encode_image(images), model.encode_text(tokens),
                                 model.logit_scale.exp())


def train_step(model: CLIP) -> dict[str, torch.Tensor]:
    """One AdamW step (weight decay on) over *all* parameters, as mmengine builds it;
    returns the parameters from before the step."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.1)))
    wrapper.update_params(loss_of(model))
    return before


def trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def names_under(module: torch.nn.Module, prefix: str) -> set[str]:
    return {f'{prefix}.{n}' for n, _ in module.named_parameters()}


class TestFreeze:

    def test_frozen_tower_gets_no_grad_and_does_not_move(self) -> None:
        model = tiny(tuning=dict(freeze=dict(image='all')))
        image = names_under(model.clip.visual, 'clip.visual')
        assert trainable(model) == {n for n, _ in model.named_parameters()} - image
        before = train_step(model)
        for name, param in model.named_parameters():
            if name in image:
                assert param.grad is None, name
                torch.testing.assert_close(param, before[name], rtol=0, atol=0)
            else:
                assert not torch.equal(param, before[name]), name

    def test_except_last_n_leaves_exactly_the_last_blocks_and_head(self) -> None:
        model = tiny(tuning=dict(freeze=dict(image='except_last_2', text='except_last_1')))
        visual, clip = model.clip.visual, model.clip
        blocks = 'clip.visual.transformer.resblocks'
        expected = (names_under(visual.transformer.resblocks[1], f'{blocks}.1')
                    | names_under(visual.transformer.resblocks[2], f'{blocks}.2')
                    | names_under(visual.ln_post, 'clip.visual.ln_post')
                    | {'clip.visual.proj'}
                    | names_under(clip.transformer.resblocks[2], 'clip.transformer.resblocks.2')
                    | names_under(clip.ln_final, 'clip.ln_final')
                    | {'clip.text_projection', 'clip.logit_scale'})
        assert trainable(model) == expected
        assert 'clip.token_embedding.weight' not in expected  # embeddings stay frozen
        before = train_step(model)
        for name, param in model.named_parameters():
            assert torch.equal(param, before[name]) == (name not in expected), name

    def test_except_last_0_trains_only_the_heads(self) -> None:
        model = tiny()
        apply_tuning(model, freeze=dict(image='except_last_0', text='all'))
        assert trainable(model) == ({'clip.visual.proj', 'clip.logit_scale'}
                                    | names_under(model.clip.visual.ln_post,
                                                  'clip.visual.ln_post'))

    def test_named_parts_and_logit_scale(self) -> None:
        model = tiny()
        apply_tuning(model, freeze=dict(image=['conv1', 'ln_pre', 'transformer.resblocks.0'],
                                        logit_scale=True))
        frozen = {n for n, _ in model.named_parameters()} - trainable(model)
        visual = model.clip.visual
        assert frozen == ({'clip.visual.conv1.weight', 'clip.logit_scale'}
                          | names_under(visual.ln_pre, 'clip.visual.ln_pre')
                          | names_under(visual.transformer.resblocks[0],
                                        'clip.visual.transformer.resblocks.0'))

    def test_hf_text_tower(self) -> None:
        model = tiny(HF, 'xlm-roberta-base-ViT-B-32',
                     tuning=dict(freeze=dict(image='all', text='except_last_1')))
        text = model.clip.text
        expected = (names_under(text.transformer.encoder.layer[1],
                                'clip.text.transformer.encoder.layer.1')
                    | names_under(text.proj, 'clip.text.proj') | {'clip.logit_scale'})
        assert trainable(model) == expected

    def test_resnet_batch_norms_stop_updating_when_frozen(self) -> None:
        from open_clip.utils import FrozenBatchNorm2d
        model = tiny(RN, 'RN50', tuning=dict(freeze=dict(image='except_last_1')))
        visual = model.clip.visual
        assert isinstance(visual.bn1, FrozenBatchNorm2d)
        assert isinstance(visual.layer1[0].bn1, FrozenBatchNorm2d)
        assert isinstance(visual.layer4[0].bn1, torch.nn.BatchNorm2d)  # trainable stage
        assert trainable(model) >= names_under(visual.layer4, 'clip.visual.layer4')
        assert not trainable(model) & names_under(visual.layer3, 'clip.visual.layer3')
        stats = visual.bn1.running_mean.clone()
        model.train()
        model.encode_image(batch()[0])
        torch.testing.assert_close(visual.bn1.running_mean, stats, rtol=0, atol=0)

    def test_counts_are_logged(self, tmp_path) -> None:
        log_file = tmp_path / 'tuning.log'
        MMLogger.get_instance('test_clip_tuning', log_file=str(log_file))
        model = tiny()
        counts = apply_tuning(model, freeze=dict(text='all'))
        image_total = sum(p.numel() for p in model.clip.visual.parameters())
        assert counts['image'] == dict(total=image_total, trainable=image_total)
        assert counts['text']['trainable'] == 0
        assert counts['total']['trainable'] == sum(
            p.numel() for p in model.parameters() if p.requires_grad)
        assert counts == count_parameters(model)
        logged = log_file.read_text()
        assert 'CLIP tuning' in logged and f'image: {image_total:,} of {image_total:,}' in logged

    @pytest.mark.parametrize('freeze,message', [
        (dict(image='except_last_4'), 'only 3 blocks'),
        (dict(vision='all'), 'unknown keys'),
        (dict(image='most'), 'except_last_N'),
        (dict(image=['conv9']), "no parameter is named 'conv9'"),
    ])
    def test_bad_settings(self, freeze: dict, message: str) -> None:
        with pytest.raises(TuningError, match=message):
            apply_tuning(tiny(), freeze=freeze)

    def test_needs_an_open_clip_model(self) -> None:
        with pytest.raises(TuningError, match='holds no open_clip model'):
            apply_tuning(torch.nn.Linear(2, 2), freeze=dict(image='all'))

    def test_freeze_and_lora_are_exclusive(self) -> None:
        with pytest.raises(TuningError, match='not both'):
            apply_tuning(tiny(), freeze=dict(image='all'), lora=dict(r=2))


class TestLoRA:

    @pytest.fixture(autouse=True)
    def _peft(self) -> None:
        pytest.importorskip('peft')

    def outputs(self, model: CLIP) -> tuple[torch.Tensor, torch.Tensor]:
        images, tokens = batch(1)
        with torch.no_grad():
            return (model.encode_image(images, normalize=False),
                    model.encode_text(tokens, normalize=False))

    def test_adapters_are_the_only_trainable_weights(self) -> None:
        model = tiny(tuning=dict(lora=dict(r=4, alpha=8)))
        layers = dict(lora_layers(model))
        expected = {f'clip.{tower}transformer.resblocks.{i}.{part}'
                    for tower in ('visual.', '') for i in range(3)
                    for part in ('attn.q_proj', 'attn.k_proj', 'attn.v_proj', 'attn.out_proj',
                                 'mlp.c_fc', 'mlp.c_proj')}
        assert set(layers) == expected
        names = trainable(model)
        assert 'clip.logit_scale' in names
        assert all('lora_' in n for n in names - {'clip.logit_scale'})
        before = train_step(model)
        for name, param in model.named_parameters():
            moved = not torch.equal(param, before[name])
            # lora_A starts random and lora_B at zero; one step moves every B (A gets no
            # gradient while B is zero), never a base weight
            if 'lora_' not in name and name != 'clip.logit_scale':
                assert not moved, name
            if 'lora_B' in name:
                assert moved, name

    def test_parameters_keep_their_identity(self) -> None:
        """Walking the module tree must not re-create parameters (peft's own
        MultiheadAttention layer does, and mmengine's init_weights then fails)."""
        model = tiny(tuning=dict(lora=dict(r=2)))
        ids = {n: id(p) for n, p in model.named_parameters()}
        model.state_dict()
        model.init_weights()  # what runner.train() calls first
        assert ids == {n: id(p) for n, p in model.named_parameters()}

    def test_every_adapter_changes_the_output(self) -> None:
        """No adapter is silently bypassed (as one on nn.MultiheadAttention.out_proj is)."""
        model = tiny(tuning=dict(lora=dict(r=4, alpha=8)))
        base = self.outputs(model)
        for name, layer in lora_layers(model):
            b_weights = [p for n, p in layer.named_parameters() if 'lora_B' in n]
            assert b_weights, name
            with torch.no_grad():
                for p in b_weights:
                    p.normal_()
            image, text = self.outputs(model)
            tower_out = image if name.startswith('clip.visual.') else text
            tower_base = base[0] if name.startswith('clip.visual.') else base[1]
            assert not torch.allclose(tower_out, tower_base, atol=1e-4), name
            with torch.no_grad():
                for p in b_weights:
                    p.zero_()
        # zero B: exactly the base model again
        for got, want in zip(self.outputs(model), base):
            torch.testing.assert_close(got, want)

    def test_merged_equals_unmerged(self) -> None:
        model = tiny(tuning=dict(lora=dict(r=4, alpha=8)))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if 'lora_B' in name:
                    param.normal_(std=0.1)
        model.eval()
        adapted = self.outputs(model)
        merge_lora(model)
        assert not lora_layers(model)
        assert set(model.clip.state_dict()) == set(tiny(loss=None).clip.state_dict())
        for got, want in zip(self.outputs(model), adapted):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(adapted[0], self.outputs(tiny())[0], atol=1e-4)

    def test_towers_targets_and_last_blocks(self) -> None:
        model = tiny(tuning=dict(lora=dict(r=2, towers=['image'], targets=['mlp'],
                                           last_blocks=1,
                                           trainable=['logit_scale', 'clip.visual.proj'])))
        assert {n for n, _ in lora_layers(model)} == {
            'clip.visual.transformer.resblocks.2.mlp.c_fc',
            'clip.visual.transformer.resblocks.2.mlp.c_proj'}
        assert {n for n in trainable(model) if 'lora_' not in n} == {
            'clip.logit_scale', 'clip.visual.proj'}

    def test_hf_text_tower_linears(self) -> None:
        model = tiny(HF, 'xlm-roberta-base-ViT-B-32',
                     tuning=dict(lora=dict(r=2, towers=['text'])))
        prefix = 'clip.text.transformer.encoder.layer'
        expected = {f'{prefix}.{i}.{part}' for i in range(2) for part in (
            'attention.self.query', 'attention.self.key', 'attention.self.value',
            'attention.output.dense', 'intermediate.dense', 'output.dense')}
        assert {n for n, _ in lora_layers(model)} == expected

    @pytest.mark.parametrize('lora,message', [
        (dict(targets=['qkv']), 'not among'),
        (dict(towers=['audio']), 'must be among'),
        (dict(rank=4), 'unknown keys'),
    ])
    def test_bad_settings(self, lora: dict, message: str) -> None:
        with pytest.raises(TuningError, match=message):
            apply_tuning(tiny(), lora=lora)


class TestLinearMultiheadAttention:
    """The Linear-projection attention LoRA adapts computes what nn.MultiheadAttention does."""

    @pytest.mark.parametrize('batch_first', [True, False])
    @pytest.mark.parametrize('mask', ['none', 'float', 'per_head', 'bool', 'padding'])
    def test_same_output_as_nn_multihead_attention(self, batch_first: bool, mask: str) -> None:
        torch.manual_seed(0)
        mha = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
        linear = LinearMultiheadAttention(mha).eval()
        x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
        kwargs = {}
        causal = torch.full((5, 5), float('-inf')).triu(1)
        if mask == 'float':
            kwargs['attn_mask'] = causal
        elif mask == 'per_head':
            kwargs['attn_mask'] = causal.expand(2 * 4, 5, 5) + torch.randn(8, 5, 5)
        elif mask == 'bool':
            kwargs['attn_mask'] = causal.isinf()
        elif mask == 'padding':
            kwargs['key_padding_mask'] = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
        want = mha(x, x, x, need_weights=False, **kwargs)[0]
        got = linear(x, x, x, need_weights=False, **kwargs)[0]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        back = linear.to_multihead_attention().eval()
        torch.testing.assert_close(back(x, x, x, need_weights=False, **kwargs)[0], want)
        assert set(back.state_dict()) == set(mha.state_dict())

    def test_refuses_what_it_does_not_reproduce(self) -> None:
        with pytest.raises(TuningError, match='bias_k'):
            LinearMultiheadAttention(torch.nn.MultiheadAttention(8, 2, add_bias_kv=True))
        with pytest.raises(TuningError, match='need_weights'):
            layer = LinearMultiheadAttention(torch.nn.MultiheadAttention(8, 2))
            x = torch.randn(3, 1, 8)
            layer(x, x, x, need_weights=True)
