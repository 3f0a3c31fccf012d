"""Launch settings shared by tools/train.py and tools/test.py."""
import torch
from mmengine.config import Config


def prepare_launch(cfg: Config) -> None:
    """Pick a distributed backend that works on this machine.

    Configs say ``nccl`` (the GPU default); a distributed run on a machine without CUDA
    (CI, laptops, the CPU DDP test) needs ``gloo``, so we switch and say so in the config.
    """
    if cfg.get('launcher', 'none') == 'none':
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if not torch.cuda.is_available() and dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
