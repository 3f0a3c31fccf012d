"""Models: data preprocessors, backbones, necks, decode heads, losses and change detectors.

Importing this package registers every mmrs model component in :data:`mmrs.registry.MODELS`.
"""
from .backbones import *  # noqa: F401,F403
from .change_detectors import *  # noqa: F401,F403
from . import clip  # noqa: F401 (registers the CLIP family)
from .data_preprocessors import *  # noqa: F401,F403
from .decode_heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from . import ops  # noqa: F401,E402 (installs the CPU paths of mmcv's rotated ops)
from . import task_utils  # noqa: F401,E402 (registers SparseRBboxOverlaps2D in TASK_UTILS)
