"""Undoing what the pipeline did to a sample's pixel grid: padding, flips, quarter turns.

Predictions are compared, drawn and written at each sample's original size (``ori_shape``),
as in mmseg. Two things have to be brought back to that grid: the logits
(:meth:`~mmrs.models.change_detectors.BaseChangeDetector.restore_logits`) and the label maps
that went through the test pipeline's geometric transforms (:func:`restore_label_map`, used
by the metrics and the visualizer). Both use the functions here, so they cannot drift apart.

The metainfo describes the pipeline's geometry in one normal form, which the paired
transforms of :mod:`mmrs.datasets.transforms.geometric` maintain whatever order they run in::

    pipeline image = pad(rot90(flip(resize(original)), k))

- ``flip`` / ``flip_direction``: one of :data:`FLIP_DIRECTIONS`, applied first;
- ``rotate90_k``: counter-clockwise quarter turns (``np.rot90``) applied after the flip;
- ``img_padding_size``: ``(left, right, top, bottom)`` pixels of pipeline padding in the
  final frame (``PairedPad``), kept apart from ``img_shape`` as in mmseg;
- ``padding_size``: the data preprocessor's own ``(left, right, top, bottom)`` padding, on
  top of the pipeline's.

Resizing is not undone here: restored logits are finally resized to ``ori_shape``; a label
map that was resized is an error (load annotations after the resize instead).
"""
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

Array = TypeVar('Array', np.ndarray, torch.Tensor)

#: Flip directions of the paired transforms ('diagonal' flips both axes, as in mmcv).
FLIP_DIRECTIONS = ('horizontal', 'vertical', 'diagonal')

#: ``(flips columns, flips rows)`` of each direction; composing flips XORs them.
_FLIP_BITS = {None: (0, 0), 'horizontal': (1, 0), 'vertical': (0, 1), 'diagonal': (1, 1)}
_BITS_FLIP = {bits: name for name, bits in _FLIP_BITS.items()}

Padding = tuple[int, int, int, int]


def check_flip_direction(direction: str | None) -> None:
    """Raise ``ValueError`` for a flip direction that cannot be undone."""
    if direction not in _FLIP_BITS:
        raise ValueError(f'cannot undo flip direction {direction!r}; expected one of '
                         f'{FLIP_DIRECTIONS}')


def compose_flips(first: str | None, second: str | None) -> str | None:
    """The single flip equal to flipping by ``first`` and then by ``second``.

    ``None`` means no flip; e.g. horizontal then vertical is diagonal, and horizontal twice
    is ``None``.
    """
    check_flip_direction(first)
    check_flip_direction(second)
    a, b = _FLIP_BITS[first], _FLIP_BITS[second]
    return _BITS_FLIP[(a[0] ^ b[0], a[1] ^ b[1])]


def flip_padding(padding: Sequence[int], direction: str | None) -> Padding:
    """``(left, right, top, bottom)`` padding after flipping the padded image."""
    check_flip_direction(direction)
    left, right, top, bottom = (int(v) for v in padding)
    cols, rows = _FLIP_BITS[direction]
    if cols:
        left, right = right, left
    if rows:
        top, bottom = bottom, top
    return left, right, top, bottom


def rotate_padding(padding: Sequence[int], k: int) -> Padding:
    """``(left, right, top, bottom)`` padding after ``k`` counter-clockwise quarter turns.

    One turn (``np.rot90``) brings the right edge to the top, the top to the left, the left
    to the bottom and the bottom to the right.
    """
    left, right, top, bottom = (int(v) for v in padding)
    for _ in range(k % 4):
        left, right, top, bottom = top, bottom, right, left
    return left, right, top, bottom


def crop_padding(x: Array, padding: Sequence[int] | None) -> Array:
    """Cut ``(left, right, top, bottom)`` pixels off the last two axes of ``x``.

    Raises:
        ValueError: If the padding is negative or leaves nothing.
    """
    if padding is None:
        return x
    left, right, top, bottom = (int(v) for v in padding)
    h, w = x.shape[-2:]
    if min(left, right, top, bottom) < 0 or left + right >= w or top + bottom >= h:
        raise ValueError(f'padding (left, right, top, bottom) = {tuple(padding)} does not fit '
                         f'a {h}x{w} map')
    return x[..., top:h - bottom, left:w - right]


def _flip(x: Array, axes: tuple[int, ...]) -> Array:
    if isinstance(x, torch.Tensor):
        return x.flip(dims=axes)
    return np.flip(x, axes)


def _rot90(x: Array, k: int) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.rot90(x, k, dims=(-2, -1))
    return np.rot90(x, k, axes=(-2, -1))


def undo_orientation(x: Array, meta: Mapping[str, Any]) -> Array:
    """Undo the recorded quarter turns, then the recorded flip, on the last two axes of ``x``.

    Raises:
        ValueError: If ``flip_direction`` is unknown.
    """
    k = int(meta.get('rotate90_k') or 0) % 4
    if k:
        x = _rot90(x, -k)
    if meta.get('flip', False):
        direction = meta.get('flip_direction', 'horizontal')
        check_flip_direction(direction)
        cols, rows = _FLIP_BITS[direction]
        axes = tuple(axis for axis, on in ((-1, cols), (-2, rows)) if on)
        if axes:
            x = _flip(x, axes)
    return x


def sample_meta(data_sample: Any) -> Mapping[str, Any]:
    """The metainfo of a ``ChangeDataSample``, or the sample itself if it is a dict.

    mmengine's evaluator hands metrics ``data_sample.to_dict()``, where the metainfo keys sit
    at the top level beside the fields.
    """
    if isinstance(data_sample, Mapping):
        return data_sample
    return data_sample.metainfo


def _hw(x: Any) -> tuple[int, int]:
    return tuple(int(v) for v in tuple(x.shape)[-2:])


def restore_label_map(label: Array,
                      meta: Mapping[str, Any],
                      target_shape: Sequence[int],
                      field: str = 'gt_sem_seg',
                      where: str = 'sample') -> Array:
    """Bring a ground-truth map back to the prediction's (original) grid.

    The loader reads labels at the original size. If it ran before the geometric transforms
    they moved with the image (the metainfo ``transformed_gt_fields`` names them, see
    ``PackChangeInputs``): their pipeline padding is cut off and their flip / quarter turns
    undone. Otherwise they are at the original size already. Samples without that record
    (built by hand) fall back to sizes: a map of ``target_shape`` is taken as is, one larger
    by exactly ``img_padding_size`` has that padding cut off.

    Args:
        label: ``(H, W)`` or ``(1, H, W)`` map (numpy or torch).
        meta: The sample's metainfo (see :func:`sample_meta`).
        target_shape: ``(H, W)`` of the prediction, i.e. ``ori_shape``.
        field: Name of the map, for error messages.
        where: Which sample (paths or index), for error messages.

    Returns:
        The map (a view where possible) with spatial size ``target_shape``.

    Raises:
        ValueError: If the map cannot be brought to ``target_shape`` by undoing padding,
            flips and turns, i.e. the test pipeline resized or cropped it.
    """
    target = tuple(int(v) for v in tuple(target_shape)[-2:])
    padding = meta.get('img_padding_size')
    padding = tuple(int(v) for v in padding) if padding is not None else None
    shape = _hw(label)
    hint = ('load the annotations after the geometric transforms in the test pipeline '
            '(LoadBitemporalImages, PairedResize/..., LoadChangeAnnotations, '
            'PackChangeInputs) so they stay at the original size')
    transformed = meta.get('transformed_gt_fields')
    if transformed is not None and field in transformed:
        restored = undo_orientation(crop_padding(label, padding), meta)
        if _hw(restored) == target:
            return restored
        raise ValueError(
            f'{field} of {where} went through the test pipeline\'s geometric transforms and '
            f'is {shape[0]}x{shape[1]} ({_hw(restored)[0]}x{_hw(restored)[1]} without its '
            f'padding), but the prediction is at the original size {target[0]}x{target[1]}: '
            f'the pipeline resized or cropped it; {hint}')
    if shape == target:
        return label
    if padding is not None and any(padding) and (
            shape[0] - padding[2] - padding[3], shape[1] - padding[0] - padding[1]) == target:
        return crop_padding(label, padding)
    raise ValueError(
        f'{field} of {where} is {shape[0]}x{shape[1]} but the prediction is at the original '
        f'size {target[0]}x{target[1]}, and the difference is not the recorded pipeline '
        f'padding img_padding_size={padding}; {hint}')
