"""Refuse a checkpoint that does not fit the model, instead of loading it partially.

mmengine's ``Runner.load_checkpoint`` loads with ``strict=False``: keys missing from the
checkpoint keep their random initial values and unexpected or resized keys are dropped, with
only a warning in the log. For evaluation that silently measures a half-random model, so
``tools/test.py`` adds this hook (unless ``--allow-key-mismatch``). It runs on every rank,
so a distributed test fails everywhere at once instead of hanging the ranks that went on.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmrs.registry import HOOKS
from mmrs.utils.checkpoint import check_checkpoint_fits


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """After a checkpoint is read, raise if its weights do not fit the model exactly.

    Args:
        checkpoint: The checkpoint's path or URL, only to name it in the error.

    Raises:
        mmrs.utils.CheckpointKeyMismatchError: Listing the missing, unexpected and resized
            keys (from ``after_load_checkpoint``, before any weight is copied).
    """

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str | None = None) -> None:
        self.name = f'checkpoint {checkpoint!r}' if checkpoint else 'the checkpoint'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_checkpoint_fits(model, checkpoint, name=self.name)
