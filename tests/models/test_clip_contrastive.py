"""CLIPContrastiveLoss: against hand-computed InfoNCE and open_clip's ClipLoss, and the
distributed gather (2 gloo processes) against the single-process full-batch loss."""
import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmrs.models.losses.contrastive import CLIPContrastiveLoss, gather_embeddings
from mmrs.registry import MODELS


def normalised(*shape: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=dtype), dim=-1)


def log_softmax_diag(logits: np.ndarray) -> np.ndarray:
    """log p(i | row i) by an explicit, shifted log-sum-exp."""
    shift = logits.max(axis=1, keepdims=True)
    lse = shift[:, 0] + np.log(np.exp(logits - shift).sum(axis=1))
    return np.diag(logits) - lse


class TestAgainstOracles:

    def test_hand_computed_3x3(self) -> None:
        images = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
        texts = np.array([[0.8, 0.6], [0.0, 1.0], [0.6, -0.8]])
        scale = 2.5
        logits = scale * images @ texts.T  # cosine similarities times the scale
        expected = -(log_softmax_diag(logits).mean() + log_softmax_diag(logits.T).mean()) / 2
        loss = CLIPContrastiveLoss()(torch.tensor(images, dtype=torch.float32),
                                     torch.tensor(texts, dtype=torch.float32), scale)
        assert loss.item() == pytest.approx(expected, rel=1e-6)
        # the asymmetric example: the two directions really differ and both count
        assert log_softmax_diag(logits).mean() != pytest.approx(log_softmax_diag(logits.T).mean())

    def test_equals_open_clip_cliploss(self) -> None:
        from open_clip.loss import ClipLoss
        images, texts = normalised(8, 16, seed=1), normalised(8, 16, seed=2)
        scale = torch.tensor(1 / 0.07)
        ours_img, ref_img = images.clone().requires_grad_(), images.clone().requires_grad_()
        ours = CLIPContrastiveLoss()(ours_img, texts, scale)
        reference = ClipLoss()(ref_img, texts, scale)
        torch.testing.assert_close(ours, reference)
        ours.backward()
        reference.backward()
        torch.testing.assert_close(ours_img.grad, ref_img.grad)

    def test_gradient_reaches_logit_scale(self) -> None:
        images, texts = normalised(6, 8, seed=3), normalised(6, 8, seed=4)
        logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        loss_fn = CLIPContrastiveLoss()
        loss_fn(images, texts, logit_scale.exp()).backward()
        grad = logit_scale.grad.item()
        assert grad != 0 and math.isfinite(grad)
        # central finite difference of the loss in the log-scale
        eps = 1e-3
        with torch.no_grad():
            up = loss_fn(images, texts, math.exp(logit_scale.item() + eps))
            down = loss_fn(images, texts, math.exp(logit_scale.item() - eps))
        assert grad == pytest.approx(((up - down) / (2 * eps)).item(), rel=1e-2, abs=1e-4)

    def test_matching_pairs_beat_shuffled_ones(self) -> None:
        texts = normalised(5, 8, seed=5)
        images = F.normalize(texts + 0.05 * normalised(5, 8, seed=6), dim=-1)
        loss_fn = CLIPContrastiveLoss()
        assert loss_fn(images, texts, 20.0) < loss_fn(images.roll(1, 0), texts, 20.0)

    def test_weight_and_registry(self) -> None:
        images, texts = normalised(4, 8, seed=7), normalised(4, 8, seed=8)
        loss = MODELS.build(dict(type='CLIPContrastiveLoss', loss_weight=0.5))
        assert loss.loss_name == 'loss_contrastive'
        torch.testing.assert_close(loss(images, texts, 10.0),
                                   0.5 * CLIPContrastiveLoss()(images, texts, 10.0))

    def test_float32_under_autocast(self) -> None:
        images = normalised(4, 8, seed=9).bfloat16()
        texts = normalised(4, 8, seed=10).bfloat16()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            loss = CLIPContrastiveLoss()(images, texts, 30.0)
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, CLIPContrastiveLoss()(images.float(), texts.float(),
                                                               30.0))

    def test_bad_inputs(self) -> None:
        loss = CLIPContrastiveLoss()
        with pytest.raises(ValueError, match='one shape'):
            loss(torch.zeros(3, 4), torch.zeros(2, 4), 1.0)
        with pytest.raises(ValueError, match='one shape'):
            loss(torch.zeros(0, 4), torch.zeros(0, 4), 1.0)
        with pytest.raises(ValueError, match='one value'):
            loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.ones(2))
        with pytest.raises(ValueError, match='loss_'):
            CLIPContrastiveLoss(loss_name='contrastive')

    def test_gather_is_identity_without_process_group(self) -> None:
        x = normalised(3, 4)
        gathered, offset = gather_embeddings(x)
        assert gathered is x and offset == 0


# ---------------------------------------------------------------- two gloo processes
WORLD = 2
#: rank -> rows of the global batch of 6 pairs it holds (DefaultSampler: equal shares)
SLICES = {0: slice(0, 3), 1: slice(3, 6)}
#: uneven shares (a last, short batch), checked for the loss value
UNEVEN = {0: slice(0, 4), 1: slice(4, 6)}
SETTINGS = [dict(local_loss=False, gather_with_grad=True),
            dict(local_loss=True, gather_with_grad=True),
            dict(local_loss=False, gather_with_grad=False),
            dict(local_loss=True, gather_with_grad=False)]
IDS = [f'local_loss={s["local_loss"]}-with_grad={s["gather_with_grad"]}' for s in SETTINGS]


def global_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embeddings of 6 pairs, the log scale, and the raw inputs of two linear towers."""
    return normalised(6, 6, seed=11), normalised(6, 6, seed=12), torch.tensor(math.log(10.0))


class Towers(torch.nn.Module):
    """Two linear 'towers', so DDP has parameters whose gradients it averages."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.image, self.text = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)

    def forward(self, images: torch.Tensor, texts: torch.Tensor):
        return F.normalize(self.image(images), dim=-1), F.normalize(self.text(texts), dim=-1)


def evaluate(loss_fn, rows: slice | None = None) -> dict:
    """Loss and gradients of the pairs ``rows`` (all without a slice); in a rank, DDP."""
    raw_images, raw_texts, log_scale = global_batch()
    rows = rows or slice(None)
    images = raw_images[rows].clone().requires_grad_()
    texts = raw_texts[rows].clone().requires_grad_()
    scale = log_scale.clone().requires_grad_()
    loss = loss_fn(images, texts, scale.exp())
    loss.backward()
    towers = Towers()
    model = (torch.nn.parallel.DistributedDataParallel(towers)
             if torch.distributed.is_initialized() else towers)
    loss_fn(*model(raw_images[rows], raw_texts[rows]), log_scale.exp()).backward()
    return dict(loss=loss.detach(), image_grad=images.grad, text_grad=texts.grad,
                scale_grad=scale.grad,
                param_grads={n: p.grad.clone() for n, p in towers.named_parameters()})


def run_rank(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                         rank=rank, world_size=WORLD)
    try:
        results = [evaluate(CLIPContrastiveLoss(**s), SLICES[rank]) for s in SETTINGS]
        uneven = []
        for local_loss in (False, True):
            raw_images, raw_texts, log_scale = global_batch()
            uneven.append(CLIPContrastiveLoss(local_loss=local_loss)(
                raw_images[UNEVEN[rank]], raw_texts[UNEVEN[rank]], log_scale.exp()))
        torch.save(dict(even=results, uneven=uneven), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def ranks(tmp_path_factory) -> list[dict]:
    out_dir = str(tmp_path_factory.mktemp('gather'))
    # fork: the ranks inherit the imported modules (a spawned rank re-imports mmrs, ~10 s)
    mp.start_processes(run_rank, args=(free_port(), out_dir), nprocs=WORLD, join=True,
                       start_method='fork')
    return [torch.load(os.path.join(out_dir, f'rank{r}.pt')) for r in range(WORLD)]


@pytest.fixture(scope='module')
def reference() -> dict:
    """The single-process loss of all 6 pairs and its gradients."""
    return evaluate(CLIPContrastiveLoss())


def stacked(per_rank: list[dict], key: str) -> torch.Tensor:
    return torch.cat([r[key] for r in per_rank])


@pytest.mark.parametrize('index', range(len(SETTINGS)), ids=IDS)
def test_gathered_loss_matches_full_batch(ranks, reference, index: int) -> None:
    setting = SETTINGS[index]
    per_rank = [ranks[r]['even'][index] for r in range(WORLD)]
    losses = torch.stack([r['loss'] for r in per_rank])
    if setting['local_loss']:  # each rank: its own rows against the global batch
        torch.testing.assert_close(losses.mean(), reference['loss'])
        assert not torch.allclose(losses[0], losses[1])
    else:  # every rank: the full global matrix
        torch.testing.assert_close(losses, reference['loss'].expand(WORLD))
    for result in per_rank:  # the gradient reaches this rank's own embeddings
        assert result['image_grad'].abs().sum() > 0 and result['text_grad'].abs().sum() > 0
    scale_grads = torch.stack([r['scale_grad'] for r in per_rank])
    # DDP averages: the mean over ranks of the logit-scale gradient is the full-batch one
    torch.testing.assert_close(scale_grads.mean(), reference['scale_grad'])


@pytest.mark.parametrize('index', [0, 1], ids=IDS[:2])
def test_gather_with_grad_gives_the_full_batch_gradient(ranks, reference, index: int) -> None:
    per_rank = [ranks[r]['even'][index] for r in range(WORLD)]
    for key in ('image_grad', 'text_grad'):
        # every rank's loss reaches each slice: W times the full-batch gradient, which DDP's
        # averaging over W ranks turns into exactly the full-batch parameter gradient
        torch.testing.assert_close(stacked(per_rank, key), WORLD * reference[key])
    for name, grad in reference['param_grads'].items():
        for result in per_rank:
            torch.testing.assert_close(result['param_grads'][name], grad)


def test_gather_without_grad_is_open_clips_default(ranks, reference) -> None:
    per_rank = [ranks[r]['even'][2] for r in range(WORLD)]  # local_loss=False
    for key in ('image_grad', 'text_grad'):
        # only the own (full) loss reaches the own slice: the full-batch gradient itself
        torch.testing.assert_close(stacked(per_rank, key), reference[key])
    for name, grad in reference['param_grads'].items():
        # ... so DDP's average is 1/W of the full-batch parameter gradient
        torch.testing.assert_close(per_rank[0]['param_grads'][name], grad / WORLD)
    # with local_loss the other ranks' rows never reach this slice: not the full gradient
    local = [ranks[r]['even'][3] for r in range(WORLD)]
    assert not torch.allclose(stacked(local, 'image_grad'), WORLD * reference['image_grad'])


def test_uneven_batches(ranks, reference) -> None:
    full = [ranks[r]['uneven'][0] for r in range(WORLD)]
    torch.testing.assert_close(torch.stack(full), reference['loss'].expand(WORLD))
    local = [ranks[r]['uneven'][1] for r in range(WORLD)]
    sizes = torch.tensor([4.0, 2.0])  # per-pair mean over ranks = full-batch mean
    torch.testing.assert_close((torch.stack(local) * sizes).sum() / 6, reference['loss'])
