"""Point a config's datasets at another folder: the ``--data-root`` option of the tools.

``--cfg-options data_root=...`` cannot do this: a config's ``data_root = '...'`` variable is
copied into every ``dataset=dict(data_root=data_root, ...)`` when the file is parsed, so
changing the variable afterwards changes nothing. :func:`set_data_root` instead walks every
dataloader's dataset, through wrappers (``RepeatDataset``/``ClassBalancedDataset``
``dataset=``, ``ConcatDataset`` ``datasets=[...]``), and sets ``data_root`` on each dataset
that has one. Paths that were built from the old root at parse time (``ann_file=data_root +
'/train.txt'``, ``data_prefix`` entries) are moved along with it.
"""
import os.path as osp
from collections.abc import Iterator, MutableMapping
from typing import Any

from mmengine.config import Config

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class DataRootError(ValueError):
    """``--data-root`` cannot be applied to this config (the message says why)."""


def _leaf_datasets(dataset: Any, where: str) -> Iterator[tuple[str, MutableMapping]]:
    """Yield ``(config path, dataset dict)`` of every dataset that is not a wrapper."""
    if not isinstance(dataset, MutableMapping):
        return
    if isinstance(dataset.get('dataset'), MutableMapping):
        yield from _leaf_datasets(dataset['dataset'], f'{where}.dataset')
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for i, child in enumerate(dataset['datasets']):
            yield from _leaf_datasets(child, f'{where}.datasets.{i}')
    if 'dataset' not in dataset and 'datasets' not in dataset:
        yield where, dataset


def _rebase(value: Any, old: str, new: str) -> Any:
    """``value`` with a leading ``old`` path replaced by ``new`` (whole components only)."""
    if not isinstance(value, str) or not old:
        return value
    old_norm = osp.normpath(old)
    norm = osp.normpath(value)
    if norm == old_norm:
        return new
    if norm.startswith(old_norm + osp.sep):
        return osp.join(new, osp.relpath(norm, old_norm))
    return value


def set_data_root(cfg: Config, root: str) -> list[str]:
    """Make every dataloader's datasets read from ``root``.

    Args:
        cfg: A parsed config; changed in place (also its top-level ``data_root``).
        root: The folder to read from.

    Returns:
        The config paths of the datasets that were changed
        (``['train_dataloader.dataset', 'val_dataloader.dataset.datasets.0', ...]``).

    Raises:
        DataRootError: No dataloader has a dataset with ``data_root`` (nothing to override), or
            the datasets read from different roots (one ``--data-root`` cannot be right for
            all of them; the message names each dataset and its root).
    """
    leaves = [(where, ds) for key in DATALOADERS if isinstance(cfg.get(key), MutableMapping)
              for where, ds in _leaf_datasets(cfg[key].get('dataset'), f'{key}.dataset')
              if ds.get('data_root') is not None]
    if not leaves:
        raise DataRootError('--data-root: no dataset in ' + '/'.join(DATALOADERS) +
                         ' has a data_root to override')
    roots = {osp.normpath(str(ds['data_root'])) for _, ds in leaves}
    if len(roots) > 1:
        listed = ', '.join(f'{where}: {ds["data_root"]!r}' for where, ds in leaves)
        raise DataRootError(
            f'--data-root: the datasets of this config read from different folders '
            f'({listed}); set each one with --cfg-options <path>.data_root=DIR instead')
    for _, ds in leaves:
        old = str(ds['data_root'])
        for key in ('ann_file', 'split_file'):
            if key in ds:
                ds[key] = _rebase(ds[key], old, root)
        if isinstance(ds.get('data_prefix'), MutableMapping):
            for key, value in ds['data_prefix'].items():
                ds['data_prefix'][key] = _rebase(value, old, root)
        ds['data_root'] = root
    if 'data_root' in cfg:
        cfg.data_root = root
    return [where for where, _ in leaves]
