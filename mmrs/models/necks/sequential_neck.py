"""Chain necks, e.g. a bitemporal fusion neck followed by mmseg's FPN.

The first neck receives whatever the detector passes (the two dates' pyramids for a Siamese
detector); every later neck receives the previous neck's output. This is how
``configs/_base_/models/btc_r18_fpn.py`` puts ``mmseg.FPN`` after the difference fusion.
"""
from collections.abc import Sequence

from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import ConfigType, OptMultiConfig


@MODELS.register_module()
class SequentialNeck(BaseModule):
    """Apply several necks one after the other.

    Args:
        necks: Configs of the necks, in order. The first takes the detector's neck inputs
            (``neck(x1, x2)`` for a Siamese detector); the others take one feature pyramid.
        init_cfg: Initialisation config.

    Raises:
        ValueError: If ``necks`` is empty.
    """

    def __init__(self, necks: Sequence[ConfigType], init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(necks) == 0:
            raise ValueError('SequentialNeck needs at least one neck config')
        self.necks = ModuleList([MODELS.build(cfg) for cfg in necks])

    def forward(self, *inputs: Sequence[Tensor]) -> Sequence[Tensor]:
        """Run the first neck on ``inputs`` and every later neck on the previous output."""
        x = self.necks[0](*inputs)
        for neck in self.necks[1:]:
            x = neck(x)
        return x
