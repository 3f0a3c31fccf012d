"""Check that the installed stack is the one mmrs was tested with, before anything imports it.

The original mm* releases stopped in 2024; mmrs runs on the maintained ``onedl-*`` revival.
A wrong version usually fails far from its cause (an op missing from ``mmcv._ext``, a removed
``transformers`` symbol, a mmcv extension built against another torch), so ``import mmrs``
checks every package it relies on and says how to fix what is wrong.

The check is cheap on purpose: it reads installed versions with :mod:`importlib.metadata` and
locates modules with :mod:`importlib.util` / :class:`importlib.machinery.PathFinder`; it never
imports torch, mmcv or any other checked package (so it also works when one of them is
broken). The pins of ``requirements/torch.txt`` and ``requirements/mminstall.txt`` must lie
inside :data:`REQUIRED` (``tests/utils/test_version_check.py`` checks that).
"""
import importlib.machinery
import importlib.util
import re
from dataclasses import dataclass
from importlib import metadata

INSTALL_HINT = ('Run `make install` in the mmrs checkout (it creates .venv with the '
                'tested stack), or `pip install -r requirements/torch.txt` then '
                '`python tools/install/ensure_mmcv.py` and '
                '`pip install -r requirements/mminstall.txt`.')


@dataclass(frozen=True)
class Requirement:
    """One package ``import mmrs`` relies on.

    Attributes:
        dist: Distribution name as pip knows it (``onedl-mmcv``).
        module: Import name (``mmcv``).
        low: Lowest tested version (inclusive).
        high: First version known or assumed to break (exclusive).
        why: What mmrs needs it for (shown in the error).
    """

    dist: str
    module: str
    low: str
    high: str
    why: str

    @property
    def spec(self) -> str:
        """The range in pip syntax, e.g. ``>=2.3.6,<2.4.0``."""
        return f'>={self.low},<{self.high}'

    @property
    def fix(self) -> str:
        """A command that installs a version in range."""
        if self.dist == 'onedl-mmcv':
            return ('python tools/install/ensure_mmcv.py (builds or fetches onedl-mmcv with '
                    'its compiled ops for the installed torch)')
        return f'pip install "{self.dist}{self.spec}"'


#: Every package mmrs relies on, in the order a fix should be applied (torch first: the mmcv
#: ops are compiled against its ABI).
REQUIRED: tuple[Requirement, ...] = (
    Requirement('torch', 'torch', '2.14.0', '2.15.0',
                'tensors and autograd; onedl-mmcv\'s compiled ops are built against this '
                'torch ABI'),
    Requirement('torchvision', 'torchvision', '0.29.0', '0.30.0',
                'the torchvision release paired with torch 2.14 (mmcv and mmdet import it)'),
    Requirement('onedl-mmcv', 'mmcv', '2.3.6', '2.4.0',
                'compiled ops (rotated NMS/RoIAlign) and image transforms'),
    Requirement('onedl-mmengine', 'mmengine', '0.10.12', '0.11.0',
                'Runner, registries and checkpoint I/O (mmrs patches its checkpoint loader)'),
    Requirement('onedl-mmsegmentation', 'mmseg', '1.4.2', '1.5.0',
                'decode heads (UPerHead, FPNHead) and SegDataSample'),
    Requirement('onedl-mmdetection', 'mmdet', '3.5.1', '3.6.0',
                'detection heads and losses reached by the mmdet. prefix'),
    Requirement('onedl-mmpretrain', 'mmpretrain', '1.3.6', '1.4.0',
                'backbones reached by the mmpretrain. prefix'),
    Requirement('onedl-mmrotate', 'mmrotate', '1.2.1', '1.3.0',
                'rotated boxes and oriented detection'),
    Requirement('transformers', 'transformers', '4.57.0', '5.0.0',
                'text towers; 5.x removed find_pruneable_heads_and_indices, which '
                'onedl-mmpretrain imports'),
)


def parse_version(text: str) -> tuple[int, ...]:
    """The numeric release part of a version (``'2.14.1+cu130'`` -> ``(2, 14, 1)``).

    Pre-release and local suffixes are ignored: the ranges here are between releases.

    Raises:
        ValueError: ``text`` does not start with a number.
    """
    match = re.match(r'\s*v?(\d+(?:\.\d+)*)', text)
    if match is None:
        raise ValueError(f'not a version: {text!r}')
    parts = tuple(int(p) for p in match.group(1).split('.'))
    return parts + (0,) * (3 - len(parts))


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _module_found(module: str) -> bool:
    """Whether a top-level module can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _other_distributions(module: str, expected: str) -> list[str]:
    """Installed distributions other than ``expected`` that provide ``module``
    (e.g. the original ``mmcv`` instead of ``onedl-mmcv``). Only called on the error path:
    :func:`importlib.metadata.packages_distributions` reads every installed package."""
    names = metadata.packages_distributions().get(module, [])
    return [f'{name}=={_installed(name)}' for name in dict.fromkeys(names)
            if name.lower() != expected.lower()]


def mmcv_ops_found() -> bool:
    """Whether ``mmcv._ext`` (mmcv's compiled ops) exists, found without importing mmcv."""
    try:
        spec = importlib.util.find_spec('mmcv')
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    ext = importlib.machinery.PathFinder.find_spec('_ext',
                                                    list(spec.submodule_search_locations))
    return ext is not None and isinstance(ext.loader, importlib.machinery.ExtensionFileLoader)


def find_problems() -> list[str]:
    """One sentence (what is wrong + how to fix it) per package outside its tested range."""
    problems = []
    for req in REQUIRED:
        found = _installed(req.dist)
        if found is None:
            others = _other_distributions(req.module, req.dist) if _module_found(
                req.module) else []
            if others:
                problems.append(
                    f'{req.module} comes from {", ".join(others)}, not {req.dist}; mmrs needs '
                    f'{req.dist}{req.spec} for {req.why}. Fix: pip uninstall '
                    f'{" ".join(o.split("==")[0] for o in others)}, then {req.fix}.')
            else:
                problems.append(f'{req.dist} ({req.module}) is not installed; needed for '
                                f'{req.why}. Fix: {req.fix}.')
            continue
        try:
            version = parse_version(found)
        except ValueError:
            problems.append(f'{req.dist} reports an unreadable version {found!r}. '
                            f'Fix: {req.fix}.')
            continue
        if not parse_version(req.low) <= version < parse_version(req.high):
            problems.append(f'{req.dist}=={found} is installed; mmrs needs {req.spec} for '
                            f'{req.why}. Fix: {req.fix}.')
        elif req.dist == 'onedl-mmcv' and not mmcv_ops_found():
            problems.append(f'{req.dist}=={found} is installed without its compiled ops '
                            f'(mmcv._ext), needed for {req.why}. Fix: {req.fix}.')
    return problems


def check_versions() -> None:
    """Raise ``ImportError`` naming every package outside its tested range and the fix.

    Raises:
        ImportError: At least one package is missing, outside its range, or (mmcv) lacks
            its compiled ops. The message lists all of them, not only the first.
    """
    problems = find_problems()
    if problems:
        raise ImportError('mmrs found an incompatible environment:\n  - ' +
                          '\n  - '.join(problems) + '\n' + INSTALL_HINT)
