"""A DDP wrapper that also works for CPU processes (gloo), used by ``tools/*`` when there is
no CUDA: mmengine always passes ``device_ids=[LOCAL_RANK]``, which torch rejects for a module
on the CPU."""
from mmengine.model import MMDistributedDataParallel

from mmrs.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DeviceAwareDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that drops ``device_ids`` for CPU modules."""

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)
