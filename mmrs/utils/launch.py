"""Launch settings shared by tools/train.py and tools/test.py."""
import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def prepare_launch(cfg: Config) -> None:
    """Make a distributed launch work on this machine, GPU or not.

    Configs say ``nccl`` (the GPU default) and mmengine's ``pytorch`` launcher pins a CUDA
    device per process. Without CUDA (CI, laptops, the CPU DDP test) we start the gloo
    process group ourselves (mmengine then skips its own initialisation) and wrap the model
    with :class:`~mmrs.engine.model_wrappers.DeviceAwareDistributedDataParallel`, which
    does not pass CUDA ``device_ids``.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if cfg.launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    import mmrs.engine.model_wrappers  # noqa: F401  (registers the wrapper)
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    if wrapper.get('type') == 'MMDistributedDataParallel':
        # mmengine looks wrappers up in its root registry, so the scope must be explicit.
        wrapper['type'] = 'mmrs.DeviceAwareDistributedDataParallel'
        wrapper.setdefault('find_unused_parameters', False)
        cfg.model_wrapper_cfg = wrapper
