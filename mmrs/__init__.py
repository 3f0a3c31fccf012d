"""mmrs: an OpenMMLab-style toolbox for remote sensing.

``import mmrs`` does three things, in this order:

1. checks every package of the stack it relies on (torch, torchvision, onedl-mmcv with its
   compiled ops, onedl-mmengine, -mmsegmentation, -mmdetection, -mmpretrain, -mmrotate,
   transformers) against its tested range, from package metadata only, and raises one
   ``ImportError`` listing every problem and its fix (:mod:`mmrs.utils.version_check`);
   this runs before anything heavy is imported, so a missing package is reported by name;
2. routes every mmengine checkpoint load, local files and URLs alike, through the safe
   loader (:mod:`mmrs.utils.checkpoint`);
3. lets configs inherit shipped configs as ``mmrs::path``.
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
