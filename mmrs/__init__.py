"""mmrs: an OpenMMLab-style toolbox for remote sensing.

Importing mmrs checks the OpenMMLab stack (see :mod:`mmrs.utils.version_check`) and installs
the checkpoint-loading policy (see :mod:`mmrs.utils.checkpoint`).
"""
from .utils.version_check import check_versions
from .version import __version__, version_info

check_versions()

from .utils.checkpoint import install_checkpoint_policy  # noqa: E402

install_checkpoint_policy()


def _register_config_package() -> None:
    """Let configs inherit shipped mmrs configs with ``mmrs::path`` (mmengine only knows the
    OpenMMLab packages in its MODULE2PACKAGE table)."""
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mmrs', 'mmrs')


_register_config_package()

__all__ = ['__version__', 'version_info']
