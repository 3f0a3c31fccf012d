"""mmrs: an OpenMMLab-style toolbox for remote sensing.

Importing mmrs checks the OpenMMLab stack (see :mod:`mmrs.utils.version_check`) and installs
the checkpoint-loading policy (see :mod:`mmrs.utils.checkpoint`).
"""
from .utils.version_check import check_versions
from .version import __version__, version_info

check_versions()

from .utils.checkpoint import install_checkpoint_policy  # noqa: E402

install_checkpoint_policy()

__all__ = ['__version__', 'version_info']
