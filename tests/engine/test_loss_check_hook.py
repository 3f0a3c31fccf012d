"""NaN/Inf loss guard: a toy model whose ``loss_bbox`` turns NaN at iteration 3 of a Runner."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from torch import nn

import mmrs.engine  # noqa: F401  (registers the hook and the optim wrapper)
from mmrs.engine import FiniteCheckOptimWrapper, NonFiniteLossError
from mmrs.engine.hooks.loss_check_hook import non_finite_terms


class ToyDataset(torch.utils.data.Dataset):

    def __len__(self) -> int:
        return 16

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=torch.full((2,), float(idx)))


class NaNAtIteration(BaseModel):
    """Two loss terms; ``loss_bbox`` is NaN (or Inf) from forward call ``bad_at`` on."""

    def __init__(self, bad_at: int = 3, bad: float = float('nan')) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 1)
        self.bad_at, self.bad = bad_at, bad
        self.calls = 0
        self.weights_seen: list[torch.Tensor] = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.calls += 1
        self.weights_seen.append(self.fc.weight.detach().clone())
        out = self.fc(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        loss_bbox = out.abs().mean()
        if self.calls >= self.bad_at:
            loss_bbox = loss_bbox * self.bad
        return dict(loss_cls=out.pow(2).mean(), loss_bbox=loss_bbox)


def run(tmp_path, model: BaseModel, optim_wrapper: dict, hooks: list) -> None:
    runner = Runner(
        model=model, work_dir=str(tmp_path),
        train_dataloader=dict(dataset=ToyDataset(), batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=6), optim_wrapper=optim_wrapper,
        custom_hooks=hooks, default_hooks=dict(checkpoint=None, logger=None),
        default_scope='mmrs', experiment_name=tmp_path.name)
    runner.train()


def test_hook_names_iteration_and_term_and_skips_the_step(tmp_path) -> None:
    model = NaNAtIteration(bad_at=3)
    with pytest.raises(NonFiniteLossError, match=r'iteration 3: loss_bbox=nan') as err:
        run(tmp_path, model, dict(optimizer=dict(type='SGD', lr=0.1)),
            [dict(type='mmrs.LossCheckHook')])
    assert 'loss_cls' not in str(err.value)
    assert model.calls == 3
    # no optimizer step after the NaN forward: weights are those iteration 3 started with
    torch.testing.assert_close(model.fc.weight.detach(), model.weights_seen[-1])
    assert torch.isfinite(model.fc.weight).all()
    assert not torch.equal(model.weights_seen[0], model.weights_seen[-1])  # it did train


def test_hook_reports_inf(tmp_path) -> None:
    with pytest.raises(NonFiniteLossError, match=r'iteration 2: loss_bbox=inf'):
        run(tmp_path, NaNAtIteration(bad_at=2, bad=float('inf')),
            dict(optimizer=dict(type='SGD', lr=0.1)), [dict(type='mmrs.LossCheckHook')])


def test_without_guard_training_silently_continues(tmp_path) -> None:
    model = NaNAtIteration(bad_at=3)
    run(tmp_path, model, dict(optimizer=dict(type='SGD', lr=0.1)), [])
    assert model.calls == 6 and not torch.isfinite(model.fc.weight).all()


def test_optim_wrapper_refuses_nan_before_backward(tmp_path) -> None:
    model = NaNAtIteration(bad_at=3)
    with pytest.raises(NonFiniteLossError, match=r'iteration 3: total loss=nan'):
        run(tmp_path, model, dict(type='mmrs.FiniteCheckOptimWrapper',
                                  optimizer=dict(type='SGD', lr=0.1)), [])
    torch.testing.assert_close(model.fc.weight.detach(), model.weights_seen[-1])
    assert model.fc.weight.grad is None or torch.isfinite(model.fc.weight.grad).all()


def test_optim_wrapper_checks_gradients() -> None:
    layer = nn.Linear(2, 1)
    wrapper = build_optim_wrapper(layer, dict(type='mmrs.FiniteCheckOptimWrapper',
                                              check_grads=True,
                                              optimizer=dict(type='SGD', lr=0.1)))
    assert isinstance(wrapper, FiniteCheckOptimWrapper)
    before = layer.weight.detach().clone()
    # finite loss whose gradient is NaN
    loss = (layer.weight * float('nan')).nan_to_num().sum()
    with pytest.raises(NonFiniteLossError, match='Non-finite gradient at iteration 1'):
        wrapper.update_params(loss)
    torch.testing.assert_close(layer.weight.detach(), before)


def test_non_finite_terms() -> None:
    assert non_finite_terms(dict(loss=torch.tensor(float('nan')), loss_cls=torch.tensor(1.0),
                                 loss_iou=torch.tensor(float('-inf')))) == ['loss_iou=-inf']
    assert non_finite_terms(dict(loss=float('nan'), acc=torch.tensor(0.5))) == ['loss=nan']
    assert non_finite_terms(dict(loss=torch.tensor(0.1))) == []
    with pytest.raises(ValueError, match='interval'):
        mmrs.engine.LossCheckHook(interval=0)
