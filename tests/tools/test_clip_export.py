"""tools/model_converters/clip_export.py: runner checkpoint (LoRA or full fine-tune) -> plain
open_clip state dict.

Tiny random-weight CLIP towers built from the real fine-tuning configs. Oracles: the
fine-tuned model itself (its embeddings before export, adapters set non-zero), a fresh
open_clip model of the same architecture (the exported keys), and the same model with its
adapters zeroed (the export must not equal it).
"""
import importlib.util
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from ._runner import REPO_ROOT, run_tool

torch.set_num_threads(1)
TOOL = REPO_ROOT / 'tools' / 'model_converters' / 'clip_export.py'
CONFIGS = REPO_ROOT / 'configs' / 'clip'
TINY = dict(embed_dim=16,
            vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8, head_width=16),
            text_cfg=dict(context_length=16, width=32, heads=2, layers=2))
#: RS-M-CLIP's XLM-RoBERTa text tower, tiny (open_clip keys text.transformer.*, text.proj.*)
TINY_HF = dict(embed_dim=16, vision_cfg=TINY['vision_cfg'],
               text_cfg=dict(context_length=16, hf_config=dict(
                   hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=64, vocab_size=16)))
TINY_CONFIG = "_base_ = ['{base}']\nmodel = dict(model_cfg={tiny!r}{extra})\n"


class Opaque:
    """An object only full unpickling can rebuild."""


def _load_tool():
    spec = importlib.util.spec_from_file_location('clip_export_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def tiny_config(tmp_path: Path, base: str, tiny: dict = TINY, extra: str = '') -> Path:
    path = tmp_path / f'tiny_{Path(base).stem}.py'
    path.write_text(TINY_CONFIG.format(base=CONFIGS / base, tiny=tiny, extra=extra))
    return path


def build(config: Path) -> torch.nn.Module:
    from mmengine.registry import init_default_scope

    from mmrs.registry import MODELS
    from mmrs.utils.setup_env import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope('mmrs')
    cfg = Config.fromfile(str(config))
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def save_runner_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """What mmengine's CheckpointHook writes after training: one AdamW step on the
    trainable parameters, then meta / state_dict / optimizer / message_hub."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    loss = model.encode_image(images).sum() + model.encode_text(tokens(2)).sum()
    loss.backward()
    optimizer.step()
    hub = MessageHub.get_instance('clip_export_test')
    hub.update_scalar('train/loss', loss.item())
    save_checkpoint(dict(meta=dict(epoch=1, iter=5, seed=0, experiment_name='tiny'),
                         state_dict=weights_to_cpu(model.state_dict()),
                         optimizer=optimizer.state_dict(), message_hub=hub.state_dict()),
                    str(path))


def tokens(n: int) -> torch.Tensor:
    """Token ids ``(n, 16)`` valid for both tiny vocabularies, no special ids (< 4)."""
    return torch.randint(4, 16, (n, 16), generator=torch.Generator().manual_seed(n))


def embeddings(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens(3))


def run(*args) -> int:
    return tool.main([str(a) for a in args])


@pytest.fixture(scope='module')
def lora_run(tmp_path_factory) -> dict:
    """A LoRA train state (adapters non-zero) saved as a runner checkpoint."""
    pytest.importorskip('peft')
    from mmrs.models.clip.tuning import lora_layers
    root = tmp_path_factory.mktemp('clip_export')
    config = tiny_config(root, 'remoteclip_vit_b32_finetune_lora_rsitmd.py')
    model = build(config)
    assert lora_layers(model)
    save_runner_checkpoint(model, root / 'unused.pth')  # the optimiser step moves lora_B
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'lora_' in name:
                param.normal_(std=0.2)  # well away from the zero init of lora_B
        model.clip.logit_scale.add_(0.3)
    ckpt = root / 'epoch_1.pth'
    save_runner_checkpoint(model, ckpt)
    model.eval()
    state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
    model.load_state_dict(state)  # the saved state exactly (after the step)
    return dict(root=root, config=config, ckpt=ckpt, model=model, reference=embeddings(model))


class TestLoRAExport:

    @pytest.fixture(scope='class')
    def exported(self, lora_run) -> Path:
        out = lora_run['root'] / 'export' / 'tiny_lora_openclip.pt'
        assert run(lora_run['config'], lora_run['ckpt'], out) == 0
        return out

    def test_plain_open_clip_keys(self, exported) -> None:
        from mmrs.models.clip import build_open_clip_model
        state = torch.load(exported, map_location='cpu', weights_only=True)
        assert isinstance(state, dict) and all(torch.is_tensor(v) for v in state.values())
        fresh = build_open_clip_model('ViT-B-32', TINY, True)
        assert set(state) == set(fresh.state_dict())
        fresh.load_state_dict(state, strict=True)  # open_clip's own loader, without peft
        assert not any('lora' in k or 'base_layer' in k or 'q_proj' in k for k in state)

    @pytest.mark.parametrize('layout', ['auto', 'remoteclip', 'openclip'])
    def test_embeddings_equal_the_lora_model(self, lora_run, exported, layout) -> None:
        from mmrs.models.clip import CLIP
        plain = CLIP('ViT-B-32', TINY, quick_gelu=True, checkpoint=str(exported),
                     checkpoint_layout=layout, loss=None).eval()
        image, text = embeddings(plain)
        ref_image, ref_text = lora_run['reference']
        torch.testing.assert_close(image, ref_image, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(text, ref_text, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(plain.logit_scale.detach(),
                                   lora_run['model'].logit_scale.detach())

    def test_adapters_were_not_dropped(self, lora_run, exported) -> None:
        """Zeroed adapters give the base weights: the export must differ from them."""
        import copy
        base = copy.deepcopy(lora_run['model'])
        with torch.no_grad():
            for name, param in base.named_parameters():
                if 'lora_B' in name:
                    param.zero_()
        assert not torch.allclose(embeddings(base)[0], lora_run['reference'][0], atol=1e-3)
        assert not torch.allclose(embeddings(base)[1], lora_run['reference'][1], atol=1e-3)

    def test_zero_shot_config_loads_it(self, lora_run, exported) -> None:
        """What tools/test.py does with a zero-shot config and the exported file."""
        from mmrs.models.clip.routing import route_clip_checkpoint
        from mmrs.registry import MODELS
        cfg = Config.fromfile(str(CONFIGS / 'remoteclip_vit_b32_zeroshot_aid.py'))
        cfg.merge_from_dict(dict(model=dict(clip=dict(model_cfg=TINY))))
        assert route_clip_checkpoint(cfg, str(exported)) is True
        classifier = MODELS.build(cfg.model)
        assert classifier.clip.checkpoint_layout == 'remoteclip'
        image, _ = embeddings(classifier.clip.eval())
        torch.testing.assert_close(image, lora_run['reference'][0], rtol=1e-4, atol=1e-5)

    def test_refuses_to_overwrite(self, lora_run, capsys) -> None:
        out = lora_run['root'] / 'existing.pt'
        out.write_bytes(b'previous export')
        assert run(lora_run['config'], lora_run['ckpt'], out) == 2
        assert 'already exists' in capsys.readouterr().err
        assert out.read_bytes() == b'previous export'
        assert run(lora_run['config'], lora_run['ckpt'], out, '--overwrite') == 0
        assert 'LoRA layers merged' in capsys.readouterr().out
        assert set(torch.load(out, weights_only=True)) >= {'visual.proj', 'logit_scale'}

    def test_wrong_config_is_a_key_error(self, lora_run, capsys) -> None:
        full = tiny_config(lora_run['root'], 'remoteclip_vit_b32_finetune_rsitmd.py')
        out = lora_run['root'] / 'wrong.pt'
        assert run(full, lora_run['ckpt'], out) == 2
        err = capsys.readouterr().err
        assert 'does not fit' in err and 'lora_A' in err and 'model.tuning' in err
        assert not out.exists() and not list(lora_run['root'].glob('.mmrs-tmp-*'))


class TestFullFinetuneAndErrors:

    def test_without_lora(self, tmp_path, capsys) -> None:
        config = tiny_config(tmp_path, 'remoteclip_vit_b32_finetune_rsitmd.py')
        model = build(config)
        save_runner_checkpoint(model, tmp_path / 'epoch_1.pth')
        model.eval()
        out = tmp_path / 'full.pt'
        assert run(config, tmp_path / 'epoch_1.pth', out) == 0
        assert 'no LoRA adapters' in capsys.readouterr().out
        state = torch.load(out, weights_only=True)
        for key, value in model.clip.state_dict().items():
            assert torch.equal(state[key], value), key

    def test_bad_inputs(self, tmp_path, capsys) -> None:
        config = tiny_config(tmp_path, 'remoteclip_vit_b32_finetune_rsitmd.py')
        assert run(config, tmp_path / 'missing.pth', tmp_path / 'o.pt') == 2
        assert 'missing.pth' in capsys.readouterr().err
        # a pickle with arbitrary objects: refused by the weights-only loader
        torch.save(dict(state_dict=dict(w=torch.zeros(1)), extra=Opaque()),
                   tmp_path / 'pickle.pth')
        assert run(config, tmp_path / 'pickle.pth', tmp_path / 'o.pt') == 2
        assert 'Refusing to unpickle' in capsys.readouterr().err
        (tmp_path / 'det.py').write_text("model = dict(type='SiameseChangeDetector')\n")
        assert run(tmp_path / 'det.py', tmp_path / 'pickle.pth', tmp_path / 'o.pt') == 2
        assert 'exports CLIP models' in capsys.readouterr().err
        assert not (tmp_path / 'o.pt').exists()


def test_hf_text_tower_lora(tmp_path) -> None:
    """RS-M-CLIP's config with LoRA on both towers (XLM-RoBERTa linears adapted directly):
    the export has open_clip's text.* keys and loads with the 'rsmclip' layout."""
    pytest.importorskip('peft')
    from mmrs.models.clip import CLIP
    from mmrs.models.clip.tuning import lora_layers
    config = tiny_config(tmp_path, 'rsmclip_vit_b32_finetune_rsitmd.py', TINY_HF,
                         ', tuning=dict(lora=dict(r=4, alpha=8))')
    model = build(config)
    assert any(n.startswith('clip.text.') for n, _ in lora_layers(model))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'lora_' in name:
                param.normal_(std=0.2)
    save_runner_checkpoint(model, tmp_path / 'iter_5.pth')
    model.load_state_dict(torch.load(tmp_path / 'iter_5.pth', weights_only=False)['state_dict'])
    reference = embeddings(model.eval())
    out = tmp_path / 'rsmclip_lora.pt'
    assert run(config, tmp_path / 'iter_5.pth', out) == 0
    state = torch.load(out, weights_only=True)
    assert any(k.startswith('text.transformer.') for k in state)
    plain = CLIP('xlm-roberta-base-ViT-B-32', TINY_HF, checkpoint=str(out),
                 checkpoint_layout='rsmclip', loss=None).eval()
    for got, want in zip(embeddings(plain), reference):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_command_line(lora_run) -> None:
    """As a user runs it."""
    out = lora_run['root'] / 'cli.pt'
    result = run_tool(str(TOOL), str(lora_run['config']), str(lora_run['ckpt']), str(out))
    assert 'LoRA layers merged' in result.stdout and out.is_file()
