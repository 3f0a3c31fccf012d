"""Binary change-label encodings: a dataset setting, never a guess from one file's values.

Releases store binary change labels in different ways, and one file's values cannot tell
which: a no-change tile of a ``{0, 1, 255 = ignore}`` dataset that happens to hold only
``{0, 255}`` would be read as "changed" by a guess. So every dataset declares its encoding
(``label_encoding``) and every file is decoded with it; a value the encoding does not allow
is an error naming the file.

- ``'0/255'``: 0 unchanged, 255 changed (LEVIR-CD, WHU-CD, CLCD, SYSU-CD, S2Looking, DSIFN,
  the synthetic data);
- ``'0/1'``: 0 unchanged, 1 changed (many re-exports and conversions);
- ``'0/1/255'``: 0 unchanged, 1 changed, 255 ignore (what mmrs writes: 255 = nodata);
- ``'1/2'``: 1 unchanged, 2 changed (OSCD's ``<city>-cm.tif``);
- ``'threshold'``: any value, ``>= label_threshold`` changed (lossy JPEG labels: CDD).

Decoded maps are ``uint8`` with 0 unchanged, 1 changed, ``ignore_index`` (255) ignored.
"""
from collections.abc import Sequence

import numpy as np

IGNORE_INDEX = 255

#: Allowed file values of each strict encoding -> decoded value (0, 1 or ignore).
_STRICT = {
    '0/255': {0: 0, 255: 1},
    '0/1': {0: 0, 1: 1},
    '0/1/255': {0: 0, 1: 1, 255: IGNORE_INDEX},
    '1/2': {1: 0, 2: 1},
}
#: Every accepted ``label_encoding``.
LABEL_ENCODINGS = (*_STRICT, 'threshold')


def check_label_encoding(encoding: str) -> str:
    """Return ``encoding`` if it is one of :data:`LABEL_ENCODINGS`, else raise ``ValueError``."""
    if encoding not in LABEL_ENCODINGS:
        raise ValueError(f'label_encoding must be one of {LABEL_ENCODINGS}, got {encoding!r}')
    return encoding


def format_values(values: np.ndarray, limit: int = 10) -> str:
    """``[v0, v1, ...]`` of at most ``limit`` values, with the total when there are more."""
    more = f' ... ({len(values)} in all)' if len(values) > limit else ''
    return str([v.item() for v in values[:limit]]) + more


def _hint(encoding: str, found: set) -> str:
    """Name the encoding that would accept ``found``, when there is exactly one obvious one."""
    for other, allowed in _STRICT.items():
        if other != encoding and found <= set(allowed) and not found <= set(_STRICT[encoding]):
            return f" (they fit label_encoding={other!r}: is the dataset's setting right?)"
    return ''


def decode_change_label(label: np.ndarray, encoding: str, path: str = '<array>',
                        threshold: float = 128,
                        ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Decode a ``(H, W)`` change label stored with ``encoding`` into 0 / 1 / ignore (uint8).

    Args:
        label: The label values as stored in the file.
        encoding: One of :data:`LABEL_ENCODINGS`.
        path: File the label comes from, named in errors.
        threshold: For ``'threshold'``: values ``>= threshold`` are "changed".
        ignore_index: Decoded value of ignored pixels (255 in ``'0/1/255'``).

    Raises:
        ValueError: A value the encoding does not allow (message names ``path``, the odd
            values and all values found), or an unknown encoding.
    """
    check_label_encoding(encoding)
    label = np.asarray(label)
    if encoding == 'threshold':
        if label.dtype.kind == 'f' and np.isnan(label).any():
            raise ValueError(f'change label {path!r} has NaN values')
        return (label >= threshold).astype(np.uint8)
    table = _STRICT[encoding]
    values, inverse = np.unique(label, return_inverse=True)
    odd = values[~np.isin(values, list(table))]
    if odd.size:
        found = {v.item() for v in values}
        raise ValueError(
            f'change label {path!r} has values {format_values(odd)} that '
            f'label_encoding={encoding!r} does not allow (allowed: {sorted(table)}; all values '
            f'in the file: {format_values(values)}){_hint(encoding, found)}. Set the '
            f"dataset's label_encoding to one of {LABEL_ENCODINGS} ('threshold' with "
            'label_threshold for lossy JPEG labels).')
    lut = np.array([table[v.item()] for v in values], dtype=np.int64)
    out = lut[inverse.reshape(label.shape)]
    out[out == IGNORE_INDEX] = ignore_index
    return out.astype(np.uint8)


def single_channel(arr: np.ndarray) -> np.ndarray | None:
    """The ``(H, W)`` map of an ``(H, W, C)`` label, or ``None`` when it is in colour.

    One band is taken as is; 3 or 4 channels are accepted when R, G and B are equal (a grey
    mask saved as RGB(A)); anything else (different channels) is a colour image.
    """
    if arr.ndim == 2:
        return arr
    if arr.shape[2] == 1:
        return arr[..., 0]
    if arr.shape[2] in (3, 4):
        rgb = arr[..., :3]
        if (rgb == rgb[..., :1]).all():
            return rgb[..., 0]
    return None


def rgb_to_index(rgb: np.ndarray, palette: Sequence[Sequence[int]]) -> tuple[np.ndarray, list]:
    """Convert an ``(H, W, 3)`` RGB colour map to class ids via ``palette`` (id = position).

    Returns the index map and the colours found that are not in the palette.
    """
    rgb = rgb[..., :3].astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pal = np.array([(int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in palette])
    uniq, inverse = np.unique(codes, return_inverse=True)
    lut = np.full(len(uniq), -1, dtype=np.int64)
    for i, code in enumerate(uniq):
        hit = np.flatnonzero(pal == code)
        if hit.size:
            lut[i] = hit[0]
    unknown = [[int(c >> 16), int((c >> 8) & 255), int(c & 255)] for c in uniq[lut < 0]]
    return lut[inverse].reshape(codes.shape).clip(0).astype(np.uint8), unknown
