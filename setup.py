"""Packaging for mmrs.

Configs and tools ship inside the installed package under ``mmrs/.mim`` (as OpenMMLab's
``.mim`` does), so an installed mmrs finds its configs with ``mmrs::btc/...`` paths:
a wheel build copies them in; an editable install links them to the checkout.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
MIM_FOLDERS = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(HERE, 'mmrs', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), namespace)
    return namespace['__version__']


def parse_requirements(name: str) -> list[str]:
    """Requirement lines of ``requirements/<name>`` without comments or -r includes."""
    lines = []
    with open(osp.join(HERE, 'requirements', name), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                lines.append(line)
    return lines


def add_mim_extension() -> None:
    """Place configs/ and tools/ under mmrs/.mim: links for editable installs, copies else."""
    editable = any(arg in sys.argv for arg in ('develop', 'editable_wheel'))
    building = any(arg in sys.argv for arg in ('bdist_wheel', 'sdist', 'build', 'install'))
    if not (editable or building):
        return
    mim_root = osp.join(HERE, 'mmrs', '.mim')
    os.makedirs(mim_root, exist_ok=True)
    for folder in MIM_FOLDERS:
        source, target = osp.join(HERE, folder), osp.join(mim_root, folder)
        if osp.islink(target) or osp.isfile(target):
            os.remove(target)
        elif osp.isdir(target):
            shutil.rmtree(target)
        if editable:
            os.symlink(osp.relpath(source, mim_root), target)
        elif osp.isfile(source):
            shutil.copy2(source, target)
        else:
            shutil.copytree(source, target, ignore=shutil.ignore_patterns('__pycache__'))


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmrs',
        version=read_version(),
        description='OpenMMLab-style toolbox for remote sensing: change detection, oriented '
        'detection, vision-language models',
        long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        python_requires='>=3.11',
        packages=find_packages(include=('mmrs', 'mmrs.*')),
        include_package_data=True,
        # every file of configs/ and tools/ (whatever its type: .py, .sh, .txt pair lists,
        # .md, metafiles), checked against the repository tree by
        # tests/install/test_wheel_contents.py
        package_data={'mmrs': ['.mim/model-index.yml', '.mim/configs/**/*', '.mim/tools/**/*']},
        exclude_package_data={'mmrs': ['**/__pycache__/*', '**/*.pyc']},
        install_requires=parse_requirements('runtime.txt') + parse_requirements(
            'mminstall.txt'),
        extras_require={
            'tests': parse_requirements('tests.txt'),
            'optional': parse_requirements('optional.txt'),
        },
        license='Apache-2.0',
        zip_safe=False,
    )
