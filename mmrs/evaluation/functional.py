"""Pure change-detection metric computations shared by the metrics and the tools.

Everything here works on label arrays (``numpy.ndarray`` or ``torch.Tensor``) or on confusion
matrices (``numpy.ndarray`` of integer counts) and has no mmengine dependency, so
:class:`~mmrs.evaluation.metrics.ChangeMetric`, :class:`~mmrs.evaluation.metrics.SCDMetric` and
``tools/analysis/eval_change.py`` compute exactly the same numbers.

Conventions (shared by every function):

- **Confusion matrix orientation**: ``cm[i, j]`` counts pixels whose *ground truth* is ``i``
  and whose *prediction* is ``j`` (rows = GT, columns = prediction, as scikit-learn).
- **Undefined ratios** (0/0) are reported as ``0.0``, the torchmetrics ``zero_division=0``
  convention, never NaN; Cohen's kappa is ``0.0`` when the expected agreement is 1 (the
  MambaCD/SCanNet ``cal_kappa`` convention; torchmetrics returns NaN there).
- Values are fractions in [0, 1] (kappa and SeK in [-1, 1]); percentages are the callers'
  business.

References:

- Cohen, "A coefficient of agreement for nominal scales", Educ. Psychol. Meas., 1960 (kappa).
- Yang et al., "Asymmetric Siamese Networks for Semantic Change Detection in Aerial Images",
  IEEE TGRS 60, 2022 (early access 2021): SECOND data set, mIoU, SeK and Score.
- Ding et al., "Bi-Temporal Semantic Reasoning for the Semantic Change Detection in HR Remote
  Sensing Images", IEEE TGRS 60, 2022, and "Joint Spatio-Temporal Modeling for Semantic Change
  Detection in Remote Sensing Images" (SCanNet), IEEE TGRS 62, 2024: Fscd.
- Chen et al., "ChangeMamba: Remote Sensing Change Detection With Spatiotemporal State Space
  Model", IEEE TGRS 62, 2024: the from-to ("37-class") evaluation of its training script.
"""
import math

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

#: Label value excluded from every count (padding, unlabelled pixels).
IGNORE_INDEX = 255

#: Keys returned by :func:`binary_metrics`.
BINARY_METRIC_KEYS = ('precision', 'recall', 'f1', 'iou', 'iou_unchanged', 'miou', 'oa',
                      'kappa')

_MAX_LISTED_VALUES = 10


def safe_divide(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator``, or ``0.0`` when the denominator is 0.

    This is the ``zero_division=0`` convention of torchmetrics: a ratio with nothing to
    measure (e.g. precision without any positive prediction) counts as 0, not NaN, so that
    averages and comparisons stay well defined.
    """
    if denominator == 0:
        return 0.0
    return float(numerator) / float(denominator)


def _flatten_labels(x: ArrayLike, name: str) -> ArrayLike:
    """Return ``x`` as a 1-D integer array (numpy or torch, unchanged device).

    Bool maps become 0/1; floating maps are accepted only when every value is integral, so a
    probability map passed by mistake is reported instead of being silently truncated.
    """
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool:
            x = x.long()
        elif x.is_floating_point():
            if not torch.equal(x, torch.round(x)):
                raise ValueError(f'{name} has non-integer values; threshold it to class ids '
                                 'first')
            x = x.long()
        return x.reshape(-1).long()
    x = np.asarray(x)
    if x.dtype == np.bool_:
        x = x.astype(np.int64)
    elif np.issubdtype(x.dtype, np.floating):
        if not np.array_equal(x, np.round(x)):
            raise ValueError(f'{name} has non-integer values; threshold it to class ids first')
    elif not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f'{name} has unsupported dtype {x.dtype}')
    return x.reshape(-1).astype(np.int64)


def _spatial_shape(x: ArrayLike) -> tuple[int, ...]:
    """Shape of a label map with a leading singleton channel axis dropped."""
    shape = tuple(x.shape)
    if len(shape) == 3 and shape[0] == 1:
        return shape[1:]
    return shape


def _unique_list(x: ArrayLike) -> list[int]:
    """Sorted unique values of ``x`` as Python ints (at most ``_MAX_LISTED_VALUES``)."""
    values = torch.unique(x).tolist() if isinstance(x, torch.Tensor) else np.unique(x).tolist()
    return [int(v) for v in values[:_MAX_LISTED_VALUES]]


def _check_range(values: ArrayLike, num_classes: int, name: str) -> None:
    """Raise ``ValueError`` naming the values of ``values`` outside ``[0, num_classes)``."""
    bad = values[(values < 0) | (values >= num_classes)]
    if len(bad):
        raise ValueError(f'{name} has values {_unique_list(bad)} outside the valid class ids '
                         f'0..{num_classes - 1} ({len(bad)} pixels)')


def confusion_matrix(pred: ArrayLike,
                     target: ArrayLike,
                     num_classes: int,
                     ignore_index: int | None = IGNORE_INDEX,
                     pred_name: str = 'prediction',
                     target_name: str = 'ground truth') -> np.ndarray:
    """Count (ground truth, prediction) pairs of two label maps.

    Pixels whose target equals ``ignore_index`` are left out; every other pixel must have a
    target *and* a prediction in ``0..num_classes-1``, otherwise the map is wrong for this
    metric and a ``ValueError`` names the offending values (silently dropping them would
    inflate every score). Torch inputs are counted on their own device, so GPU predictions
    are not copied to the host; only the ``num_classes**2`` counts are.

    Args:
        pred: Predicted class ids, shape ``(H, W)`` or ``(1, H, W)``; integer, bool, or float
            with integral values.
        target: Ground-truth class ids with the same spatial shape.
        num_classes: Number of classes ``C``.
        ignore_index: Target value to exclude, or ``None`` to count every pixel.
        pred_name: Name of ``pred`` used in error messages.
        target_name: Name of ``target`` used in error messages.

    Returns:
        ``(C, C)`` int64 matrix, rows = ground truth, columns = prediction.

    Raises:
        ValueError: On a shape mismatch or on values outside the class range.
    """
    if _spatial_shape(pred) != _spatial_shape(target):
        raise ValueError(f'{pred_name} shape {tuple(pred.shape)} does not match '
                         f'{target_name} shape {tuple(target.shape)}')
    pred = _flatten_labels(pred, pred_name)
    target = _flatten_labels(target, target_name)
    if isinstance(pred, torch.Tensor) != isinstance(target, torch.Tensor):
        pred = torch.as_tensor(pred)
        target = torch.as_tensor(target).to(pred.device)
    if isinstance(pred, torch.Tensor):
        target = target.to(pred.device)
    if ignore_index is not None:
        valid = target != ignore_index
        pred, target = pred[valid], target[valid]
    _check_range(target, num_classes, target_name)
    _check_range(pred, num_classes, pred_name)
    codes = target * num_classes + pred
    if isinstance(codes, torch.Tensor):
        counts = torch.bincount(codes, minlength=num_classes**2).cpu().numpy()
    else:
        counts = np.bincount(codes, minlength=num_classes**2)
    return counts.astype(np.int64).reshape(num_classes, num_classes)


def cohen_kappa(cm: np.ndarray) -> float:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` of a confusion matrix.

    ``p_o`` is the observed agreement (trace / total) and ``p_e`` the agreement expected by
    chance from the row and column marginals. Returns 0.0 for an empty matrix and when
    ``p_e == 1`` (a single class everywhere, where kappa is undefined).
    """
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    if total == 0:
        return 0.0
    p_o = np.trace(cm) / total
    p_e = float(cm.sum(axis=1) @ cm.sum(axis=0)) / total**2
    if p_e == 1:
        return 0.0
    return float((p_o - p_e) / (1 - p_e))


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU ``TP / (TP + FP + FN)`` of every class; 0.0 for a class absent from both maps."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    return np.array([safe_divide(t, u) for t, u in zip(tp, union)])


def binary_metrics(cm: np.ndarray) -> dict[str, float]:
    """Binary change-detection scores from a 2x2 confusion matrix.

    Class 1 ("changed") is the positive class. ``precision``, ``recall``, ``f1`` and ``iou``
    refer to it; ``iou_unchanged`` is the IoU of class 0 and ``miou`` the mean of both IoUs
    (the open-cd / MambaCD papers report it); ``oa`` is overall pixel accuracy and ``kappa``
    Cohen's kappa. Undefined ratios are 0.0 (see the module docstring), so e.g. a scene with
    no change in the ground truth and none predicted gets ``f1 = iou = 0`` and ``miou = 0.5``.

    Args:
        cm: ``[[TN, FP], [FN, TP]]`` (rows = ground truth, columns = prediction).

    Returns:
        Dict with the keys of :data:`BINARY_METRIC_KEYS`, values in [0, 1] (kappa in [-1, 1]).
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape != (2, 2):
        raise ValueError(f'binary metrics need a 2x2 confusion matrix, got {cm.shape}')
    (tn, fp), (fn, tp) = cm
    iou_unchanged = safe_divide(tn, tn + fp + fn)
    iou = safe_divide(tp, tp + fp + fn)
    return {
        'precision': safe_divide(tp, tp + fp),
        'recall': safe_divide(tp, tp + fn),
        'f1': safe_divide(2 * tp, 2 * tp + fp + fn),
        'iou': iou,
        'iou_unchanged': iou_unchanged,
        'miou': (iou + iou_unchanged) / 2,
        'oa': safe_divide(tp + tn, cm.sum()),
        'kappa': cohen_kappa(cm),
    }


def change_vs_unchanged(cm: np.ndarray) -> np.ndarray:
    """Collapse a semantic confusion matrix (class 0 = no change) into a 2x2 one.

    Class 0 stays "unchanged"; every class ``>= 1`` becomes "changed", whatever its land-cover
    label, so ``[[TN, FP], [FN, TP]]`` describes change detection alone.
    """
    cm = np.asarray(cm)
    tn = cm[0, 0]
    fp = cm[0, 1:].sum()
    fn = cm[1:, 0].sum()
    tp = cm[1:, 1:].sum()
    return np.array([[tn, fp], [fn, tp]], dtype=cm.dtype)


def separated_kappa(cm: np.ndarray) -> float:
    """SeK of a semantic confusion matrix (Yang et al., SECOND).

    ``SeK = kappa_n0 * exp(IoU_c - 1)``, where ``kappa_n0`` is Cohen's kappa of the matrix with
    its (no change, no change) entry set to 0 — so the dominant, easy "unchanged" pixels do not
    inflate agreement — and ``IoU_c`` is the changed-vs-unchanged IoU of the same matrix
    (:func:`change_vs_unchanged`).
    """
    cm_n0 = np.array(cm, dtype=np.float64)
    cm_n0[0, 0] = 0
    iou_changed = iou_per_class(change_vs_unchanged(cm))[1]
    return cohen_kappa(cm_n0) * math.exp(iou_changed - 1)


def semantic_change_f1(cm: np.ndarray) -> dict[str, float]:
    """Fscd: F1 of semantic change (Ding et al., BiSRNet / SCanNet).

    ``Psc`` = correctly classified changed pixels (diagonal of the class ``>= 1`` block) /
    pixels predicted as changed (prediction ``!= 0``); ``Rsc`` = the same count / pixels
    changed in the ground truth (GT ``!= 0``); ``Fscd = 2 Psc Rsc / (Psc + Rsc)``. All three
    are 0.0 when undefined.

    Returns:
        ``{'Psc': ..., 'Rsc': ..., 'Fscd': ...}``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    correct_changed = np.trace(cm[1:, 1:])
    pred_changed = cm[:, 1:].sum()
    gt_changed = cm[1:, :].sum()
    precision = safe_divide(correct_changed, pred_changed)
    recall = safe_divide(correct_changed, gt_changed)
    return {
        'Psc': precision,
        'Rsc': recall,
        'Fscd': safe_divide(2 * precision * recall, precision + recall),
    }


def scd_metrics(cm: np.ndarray) -> dict[str, float]:
    """SECOND-style semantic change scores of one semantic confusion matrix.

    Used as is for the SECOND convention (the (K+1)-class matrix of both dates) and for the
    from-to convention (the (K²+1)-class matrix of :func:`from_to_labels`).

    Returns:
        ``OA`` (pixel accuracy), ``IoU_nc`` / ``IoU_c`` (IoU of "unchanged" / "changed" after
        :func:`change_vs_unchanged`), ``mIoU`` (their mean), ``kappa_n0`` (kappa without the
        (0, 0) entry), ``SeK``, ``Psc``, ``Rsc``, ``Fscd`` and
        ``Score = 0.3 * mIoU + 0.7 * SeK``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    iou_nc, iou_c = iou_per_class(change_vs_unchanged(cm))
    cm_n0 = cm.copy()
    cm_n0[0, 0] = 0
    miou = (iou_nc + iou_c) / 2
    sek = separated_kappa(cm)
    return {
        'OA': safe_divide(np.trace(cm), cm.sum()),
        'IoU_nc': float(iou_nc),
        'IoU_c': float(iou_c),
        'mIoU': float(miou),
        'kappa_n0': cohen_kappa(cm_n0),
        'SeK': sek,
        **semantic_change_f1(cm),
        'Score': 0.3 * miou + 0.7 * sek,
    }


def nanmean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in prediction or ground truth (mmseg's mIoU).

    mmseg's ``IoUMetric`` (used by open-cd) averages with ``nanmean``: a class absent from
    both maps has IoU 0/0 = NaN and is skipped. Returns 0.0 when no class is present.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    present = union > 0
    if not present.any():
        return 0.0
    return float(np.mean(tp[present] / union[present]))


def opencd_sek(intersect: np.ndarray, pred_area: np.ndarray, label_area: np.ndarray) -> float:
    """SeK as open-cd's ``SCDMetric.get_sek`` derives it from per-class areas.

    open-cd keeps mmseg's per-class areas (intersection = TP, predicted area, label area),
    summed over both dates, rather than a confusion matrix. It removes the class-0 TP from
    all three, then ``po = sum(intersect) / sum(label)``,
    ``pe = sum(label * pred) / sum(pred)**2``, ``kappa0 = (po - pe) / (1 - pe)``,
    ``IoU_fg = (sum(label[1:]) - pred[0]) / sum(label)`` and
    ``SeK = kappa0 * exp(IoU_fg) / e``. Algebraically this is :func:`separated_kappa` of the
    same pixels; it is kept as a separate computation so the equivalence is tested, not
    assumed. Degenerate cases follow this module's conventions (0.0, not NaN).

    Args:
        intersect: Per-class TP counts, shape ``(C,)``.
        pred_area: Per-class predicted pixel counts, shape ``(C,)``.
        label_area: Per-class ground-truth pixel counts, shape ``(C,)``.
    """
    intersect = np.asarray(intersect, dtype=np.float64).copy()
    pred_area = np.asarray(pred_area, dtype=np.float64).copy()
    label_area = np.asarray(label_area, dtype=np.float64).copy()
    tp0 = intersect[0]
    for area in (intersect, pred_area, label_area):
        area[0] -= tp0
    total = label_area.sum()
    po = safe_divide(intersect.sum(), total)
    pe = safe_divide(float(label_area @ pred_area), pred_area.sum()**2)
    kappa0 = 0.0 if pe == 1 else (po - pe) / (1 - pe)
    iou_fg = safe_divide(label_area[1:].sum() - pred_area[0], total)
    return kappa0 * math.exp(iou_fg) / math.e


def opencd_metrics(binary_cm: np.ndarray, semantic_cm: np.ndarray) -> dict[str, float]:
    """Scores as open-cd's ``SCDMetric(cal_sek=True)`` reports them (as fractions).

    Args:
        binary_cm: 2x2 matrix of the binary change maps.
        semantic_cm: (K+1)x(K+1) matrix of the semantic maps, both dates summed.

    Returns:
        ``binary_mIoU`` (mmseg nanmean over the 2 binary classes), ``semantic_mIoU`` (nanmean
        over the K+1 semantic classes), ``SeK`` (:func:`opencd_sek`) and
        ``SCD_Score = 0.3 * binary_mIoU + 0.7 * SeK``.
    """
    semantic_cm = np.asarray(semantic_cm, dtype=np.float64)
    binary_miou = nanmean_iou(binary_cm)
    sek = opencd_sek(np.diag(semantic_cm), semantic_cm.sum(axis=0), semantic_cm.sum(axis=1))
    return {
        'binary_mIoU': binary_miou,
        'semantic_mIoU': nanmean_iou(semantic_cm),
        'SeK': sek,
        'SCD_Score': 0.3 * binary_miou + 0.7 * sek,
    }


def from_to_labels(change: ArrayLike,
                   sem_from: ArrayLike,
                   sem_to: ArrayLike,
                   num_landcover: int,
                   ignore_index: int | None = None,
                   name: str = 'prediction') -> ArrayLike:
    """Encode a (change, from-class, to-class) triple as one "from-to" class id.

    Unchanged pixels get 0; a changed pixel going from land-cover class ``A`` to ``B``
    (both in ``1..K``) gets ``(A - 1) * K + B``, i.e. ``1..K²`` (MambaCD's SECOND training
    script: ``(A - 1) * 6 + B``, 37 classes). A changed pixel whose from/to class is 0 or
    larger than K has no from-to class: MambaCD silently drops it, here it is a
    ``ValueError``. Pixels where any map equals ``ignore_index`` become ``ignore_index``.

    Args:
        change: Binary change map (0/1, optionally ``ignore_index``).
        sem_from: Land-cover classes of date 1 (0 = no change, 1..K).
        sem_to: Land-cover classes of date 2.
        num_landcover: K, the number of land-cover classes (6 for SECOND).
        ignore_index: Value marking ignored pixels, or ``None``.
        name: Prefix used in error messages ('prediction' or 'ground truth').

    Returns:
        Array of the same type and shape as ``change`` (int64) with ids in ``0..K²`` or
        ``ignore_index``.
    """
    maps = {'change': change, 'from': sem_from, 'to': sem_to}
    shapes = {key: _spatial_shape(m) for key, m in maps.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f'{name} change/from/to maps differ in shape: {shapes}')
    is_torch = isinstance(change, torch.Tensor)
    flat = {key: _flatten_labels(m, f'{name} {key} map') for key, m in maps.items()}
    if is_torch:
        flat = {key: torch.as_tensor(m).to(change.device) for key, m in flat.items()}
    chg, src, dst = flat['change'], flat['from'], flat['to']
    if ignore_index is not None and num_landcover**2 >= ignore_index:
        raise ValueError(f'{num_landcover}**2 from-to classes collide with ignore_index '
                         f'{ignore_index}')
    ignored = chg != chg  # all False, same array type and device as chg
    if ignore_index is not None:
        ignored = (chg == ignore_index) | (src == ignore_index) | (dst == ignore_index)
    _check_range(chg[~ignored], 2, f'{name} change map')
    changed = (chg == 1) & ~ignored
    for key, values in (('from', src), ('to', dst)):
        bad = values[changed & ((values < 1) | (values > num_landcover))]
        if len(bad):
            raise ValueError(
                f'{name} {key} map has values {_unique_list(bad)} at {len(bad)} changed pixels; '
                f'changed pixels need land-cover classes 1..{num_landcover}')
    codes = (src - 1) * num_landcover + dst
    codes = codes * changed
    if ignore_index is not None:
        codes[ignored] = ignore_index
    return codes.reshape(tuple(change.shape))
