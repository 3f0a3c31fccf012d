"""Describe the environment (for bug reports and run logs)."""
from mmengine.utils import get_git_hash
from mmengine.utils.dl_utils import collect_env as collect_base_env

import mmrs


def collect_env() -> dict[str, str]:
    """mmengine's environment report plus the mmrs and OpenMMLab library versions."""
    env = collect_base_env()
    env['mmrs'] = f'{mmrs.__version__}+{get_git_hash(digits=7)}'
    for module in ('mmcv', 'mmseg', 'mmdet', 'mmpretrain', 'mmrotate'):
        try:
            env[module] = __import__(module).__version__
        except Exception as error:  # a broken optional library must not hide the rest
            env[module] = f'unavailable ({type(error).__name__}: {error})'
    return env


if __name__ == '__main__':
    for key, value in collect_env().items():
        print(f'{key}: {value}')
