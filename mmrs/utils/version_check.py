"""Check that the installed OpenMMLab stack is the one mmrs was tested with.

The original mm* releases stopped in 2024; mmrs runs on the maintained ``onedl-*`` revival.
A wrong version usually fails far from its cause (an op missing from ``mmcv._ext``, a removed
``transformers`` symbol), so we check at import time and say how to fix it.
"""
from importlib import metadata

from mmengine.utils import digit_version

#: distribution name -> (import name, minimum inclusive, maximum exclusive, why)
REQUIRED: dict[str, tuple[str, str, str, str]] = {
    'onedl-mmcv': ('mmcv', '2.3.6', '2.4.0',
                   'compiled ops (rotated NMS/RoIAlign) built against torch 2.14'),
    'onedl-mmengine': ('mmengine', '0.10.12', '0.11.0',
                       'Runner, registries and checkpoint I/O'),
    'onedl-mmsegmentation': ('mmseg', '1.4.2', '1.5.0',
                             'decode heads (UPerHead, FPNHead) and SegDataSample'),
}
#: packages that break others when too new: name -> (maximum exclusive, why)
UPPER_BOUNDS: dict[str, tuple[str, str]] = {
    'transformers': ('5.0.0', 'transformers 5.x removed symbols that '
                     'onedl-mmpretrain (and mmdet models through it) import'),
}

INSTALL_HINT = ('Run `make install` in the mmrs checkout (it creates .venv with the '
                'tested stack), or `pip install -r requirements/mminstall.txt`.')


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> None:
    """Raise ``ImportError`` naming every package outside its tested range."""
    problems = []
    for dist, (module, low, high, why) in REQUIRED.items():
        found = _installed(dist)
        if found is None:
            problems.append(f'{dist} ({module}) is not installed; needed for {why}.')
        elif not digit_version(low) <= digit_version(found) < digit_version(high):
            problems.append(f'{dist}=={found} is installed; mmrs needs >={low},<{high} '
                            f'for {why}.')
    for dist, (high, why) in UPPER_BOUNDS.items():
        found = _installed(dist)
        if found is not None and digit_version(found) >= digit_version(high):
            problems.append(f'{dist}=={found} is installed; mmrs needs <{high}: {why}.')
    if problems:
        raise ImportError('mmrs found an incompatible environment:\n  - ' +
                          '\n  - '.join(problems) + '\n' + INSTALL_HINT)
