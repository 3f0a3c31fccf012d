"""Find mmrs configs whether mmrs runs from a checkout or from an installed package."""
import os.path as osp
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def config_roots() -> list[Path]:
    """Folders that hold mmrs configs: the installed copy (``mmrs/.mim/configs``), then the
    checkout's ``configs/`` (editable installs and source trees)."""
    return [PACKAGE_ROOT / '.mim' / 'configs', PACKAGE_ROOT.parent / 'configs']


def resolve_config(path: str) -> str:
    """Return a path ``Config.fromfile`` can open.

    Accepts a real file path, ``mmrs::<relative path>`` (mmengine's cross-package form), or a
    path relative to the configs folder (``btc/btc_r18_levircd_samples.py``) so users of an
    installed mmrs can name shipped configs without knowing where pip put them.

    Raises:
        FileNotFoundError: Naming every place that was searched.
    """
    if osp.isfile(path):
        return path
    relative = path.split('::', 1)[1] if path.startswith('mmrs::') else path
    relative = relative.removeprefix('configs/')
    searched = [path]
    for root in config_roots():
        candidate = root / relative
        searched.append(str(candidate))
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f'config {path!r} not found; looked at: ' + ', '.join(searched))
