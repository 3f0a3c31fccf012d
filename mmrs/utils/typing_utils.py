"""Type aliases shared by mmrs modules (the OpenMMLab spelling, so signatures read alike)."""
from collections.abc import Sequence

from mmengine.config import ConfigDict

from mmrs.structures import ChangeDataSample

ConfigType = ConfigDict | dict
OptConfigType = ConfigType | None
MultiConfig = ConfigType | Sequence[ConfigType]
OptMultiConfig = MultiConfig | None
SampleList = Sequence[ChangeDataSample]
OptSampleList = SampleList | None
