"""Stop training at the first NaN/Inf loss, naming the iteration and the loss terms.

mmrotate 1.x users report runs whose losses turn NaN and then train on garbage for hours. Two
guards, usable together:

- :class:`LossCheckHook` checks every loss term of every iteration. mmengine has no hook point
  between the forward pass and ``backward``, so the hook wraps the model's ``parse_losses`` for
  the duration of training (the wrapper is an instance attribute, removed in ``after_train``):
  a bad term raises there, before ``backward`` and the optimizer step. ``after_train_iter``
  checks the returned log variables too, for models whose ``train_step`` skips
  ``parse_losses``.
- :class:`FiniteCheckOptimWrapper` refuses a non-finite total loss before ``backward`` and, with
  ``check_grads=True``, non-finite gradients before ``step``. It sees only the summed loss, so
  it cannot name the term; the hook does.
"""
from collections.abc import Callable, Mapping
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper

from mmrs.registry import HOOKS, OPTIM_WRAPPERS


class NonFiniteLossError(FloatingPointError):
    """Raised when a loss (or gradient) is NaN or infinite."""


def non_finite_terms(log_vars: Mapping[str, Any]) -> list[str]:
    """``'name=value'`` for every tensor or number in ``log_vars`` that is NaN or infinite.

    The summed ``'loss'`` entry is reported only when no single term explains it.
    """
    bad = []
    for name, value in log_vars.items():
        if isinstance(value, torch.Tensor):
            finite = bool(torch.isfinite(value.detach()).all())
            shown = value.detach().float().mean().item() if value.numel() else float('nan')
        elif isinstance(value, (int, float)):
            finite = bool(torch.isfinite(torch.tensor(float(value))))
            shown = float(value)
        else:
            continue
        if not finite:
            bad.append(f'{name}={shown}')
    terms = [b for b in bad if not b.startswith('loss=')]
    return terms or bad


def _message(iteration: int, terms: list[str]) -> str:
    return (f'Non-finite loss at iteration {iteration}: {", ".join(terms)}. Stopped before '
            'the optimizer step; lower the learning rate, enable gradient clipping or check '
            'the annotations of this batch.')


@HOOKS.register_module()
class LossCheckHook(Hook):
    """Raise :class:`NonFiniteLossError` naming the iteration (1-based) and the bad terms.

    Args:
        interval: check every ``interval`` iterations (1 = every iteration).
    """

    priority = 'VERY_HIGH'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'LossCheckHook interval must be >= 1, got {interval}')
        self.interval = interval
        self._patched: Any = None

    def _due(self, runner: Any) -> bool:
        return (runner.iter + 1) % self.interval == 0

    def before_train(self, runner: Any) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        original: Callable | None = getattr(model, 'parse_losses', None)
        if original is None:
            return

        def parse_losses(losses: Mapping[str, Any]) -> Any:
            parsed, log_vars = original(losses)
            if self._due(runner):
                terms = non_finite_terms(log_vars)
                if terms:
                    raise NonFiniteLossError(_message(runner.iter + 1, terms))
            return parsed, log_vars

        model.parse_losses = parse_losses
        self._patched = model

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Mapping[str, Any] | None = None) -> None:
        if outputs and self._due(runner):
            terms = non_finite_terms(outputs)
            if terms:
                raise NonFiniteLossError(_message(runner.iter + 1, terms))

    def after_train(self, runner: Any) -> None:
        if self._patched is not None:
            self._patched.__dict__.pop('parse_losses', None)
            self._patched = None


@OPTIM_WRAPPERS.register_module()
class FiniteCheckOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that never backpropagates a non-finite loss.

    Args:
        check_grads: also refuse to ``step`` when a gradient is NaN/Inf (costs one pass over
            the gradients per update).
        **kwargs: everything :class:`mmengine.optim.OptimWrapper` takes.
    """

    def __init__(self, check_grads: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.check_grads = check_grads

    def update_params(self, loss: torch.Tensor, step_kwargs: dict | None = None,
                      zero_kwargs: dict | None = None) -> None:
        iteration = self._inner_count + 1
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLossError(_message(iteration, [f'total loss={loss.detach().item()}']))
        loss = self.scale_loss(loss)
        self.backward(loss)
        if self.should_update():
            if self.check_grads:
                self._check_grads(iteration)
            self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def _check_grads(self, iteration: int) -> None:
        bad = [f'param[{i}] of group {g}'
               for g, group in enumerate(self.optimizer.param_groups)
               for i, p in enumerate(group['params'])
               if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if bad:
            raise NonFiniteLossError(
                f'Non-finite gradient at iteration {iteration} in {len(bad)} parameter(s) '
                f'({", ".join(bad[:5])}); stopped before the optimizer step.')
