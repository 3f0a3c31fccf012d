"""Pure numpy/cv2 helpers that turn bitemporal images and label maps into review panels.

Everything here takes and returns plain ``np.ndarray`` (RGB, ``uint8`` for pictures) so it can
be tested without a visualizer, a runner or a display.

Colour scheme for a binary change map compared with the ground truth (documented once, used
everywhere): **TP green**, **FP red**, **FN magenta**; true negatives are left as the image. A
change map with nothing to compare against is drawn in yellow, and ignored ground-truth
pixels (255) in grey.
"""
from collections.abc import Sequence

import cv2
import numpy as np

Color = tuple[int, int, int]

TP_COLOR: Color = (0, 255, 0)  # predicted change that is real change
FP_COLOR: Color = (255, 0, 0)  # predicted change where there is none (false alarm)
FN_COLOR: Color = (255, 0, 255)  # real change that was missed (magenta: shows on any cover)
CHANGE_COLOR: Color = (255, 255, 0)  # change with no counterpart to compare with
IGNORE_COLOR: Color = (128, 128, 128)  # ground truth 255 ("ignore")
BACKGROUND: Color = (32, 32, 32)  # separators and text strips
TEXT_COLOR: Color = (255, 255, 255)

GAP = 4  # pixels between panels and between rows
TITLE_HEIGHT = 18  # strip above every panel holding its title
CAPTION_HEIGHT = 20  # strip on top of the figure: file stem and per-image scores
LEGEND_HEIGHT = 18  # one line of the legend strip at the bottom

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_MIN_FONT_SCALE = 0.3
_SWATCH = 10  # side of a legend colour square


def percentile_stretch(band: np.ndarray,
                       percentiles: tuple[float, float] = (2., 98.)) -> np.ndarray:
    """Linearly map the ``percentiles`` range of one band to 0..255 (``uint8``).

    Non-finite values are ignored when computing the range and rendered black, so NaN nodata
    does not wash out the picture. A flat band renders black rather than dividing by zero.
    """
    band = band.astype(np.float64)
    finite = np.isfinite(band)
    if not finite.any():
        return np.zeros(band.shape, np.uint8)
    lo, hi = np.percentile(band[finite], percentiles)
    if hi <= lo:  # low-contrast band: fall back to the full range
        lo, hi = band[finite].min(), band[finite].max()
    if hi <= lo:
        return np.zeros(band.shape, np.uint8)
    out = (band - lo) / (hi - lo) * 255.
    out[~finite] = 0
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def to_display_rgb(img: np.ndarray,
                   rgb_bands: Sequence[int] = (0, 1, 2),
                   percentiles: tuple[float, float] = (2., 98.),
                   stretch: bool | None = None) -> np.ndarray:
    """Make an ``(H, W, 3) uint8`` RGB picture from an image of any band count and dtype.

    Args:
        img: ``(H, W)`` or ``(H, W, C)`` array, any dtype, in the pipeline's band order.
        rgb_bands: Bands shown as red, green, blue when the image has at least 3 bands.
            Images with 1 or 2 bands are shown in grey from band 0.
        percentiles: Low/high percentiles of the per-band linear stretch.
        stretch: Force the stretch on or off. ``None`` (default) stretches everything except
            ``uint8`` images with at most 3 bands, which are already displayable and whose
            photometric augmentation should stay visible as is.
    """
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f'expected an (H, W) or (H, W, C) image, got shape {img.shape}')
    n_bands = img.shape[2]
    if n_bands >= 3:
        bands = list(rgb_bands)
        if len(bands) != 3 or max(bands) >= n_bands or min(bands) < -n_bands:
            raise ValueError(f'rgb_bands={tuple(bands)} does not select 3 of the '
                             f'{n_bands} bands of the image')
    else:
        bands = [0, 0, 0]
    if stretch is None:
        stretch = not (img.dtype == np.uint8 and n_bands <= 3)
    if not stretch:
        return np.ascontiguousarray(np.clip(img[..., bands], 0, 255).astype(np.uint8))
    planes = {b: percentile_stretch(img[..., b], percentiles) for b in set(bands)}
    return np.stack([planes[b] for b in bands], axis=-1)


def to_grey_rgb(rgb: np.ndarray) -> np.ndarray:
    """Grey copy of an RGB picture, still 3 channels, for overlays that must stand out."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


def paint(image: np.ndarray, mask: np.ndarray, color: Sequence[int], alpha: float) -> np.ndarray:
    """Blend ``color`` into ``image`` where ``mask`` is True; other pixels are untouched."""
    out = image.copy()
    if mask.any():
        px = out[mask].astype(np.float32)
        out[mask] = np.round(px * (1. - alpha) + np.asarray(color, np.float32) * alpha).astype(
            np.uint8)
    return out


def confusion_masks(pred: np.ndarray, gt: np.ndarray,
                    ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean TP, FP, FN masks of a binary change map; ignored GT pixels belong to none."""
    valid = gt != ignore_index
    p, g = (pred == 1) & valid, (gt == 1) & valid
    return p & g, p & ~g, ~p & g


def change_scores(pred: np.ndarray, gt: np.ndarray,
                  ignore_index: int = 255) -> tuple[float | None, float | None]:
    """Per-image F1 and IoU of the change class, or ``None`` when neither map has change."""
    tp, fp, fn = (int(m.sum()) for m in confusion_masks(pred, gt, ignore_index))
    if tp + fp + fn == 0:
        return None, None
    return 2 * tp / (2 * tp + fp + fn), tp / (tp + fp + fn)


def draw_semantic(image: np.ndarray, label: np.ndarray, palette: Sequence[Sequence[int]],
                  alpha: float, ignore_index: int = 255) -> np.ndarray:
    """Colour semantic classes 1..K with ``palette``; class 0 ("no change") shows the image."""
    out = image
    for cls in np.unique(label):
        if cls == 0 or cls == ignore_index:
            continue
        out = paint(out, label == cls, palette[int(cls) % len(palette)], alpha)
    return out


def default_palette(n: int) -> list[Color]:
    """Deterministic, well separated colours for datasets without ``semantic_palette``."""
    hsv = np.zeros((1, n, 3), np.uint8)
    hsv[0, :, 0] = (np.arange(n) * 180 * 0.618) % 180  # golden-ratio hue steps
    hsv[0, :, 1], hsv[0, :, 2] = 200, 255
    return [tuple(int(v) for v in c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]]


def put_text(strip: np.ndarray, text: str, x: int, color: Color = TEXT_COLOR,
             max_width: int | None = None) -> int:
    """Write one line of text vertically centred in ``strip`` (in place); returns its width.

    The font shrinks, then the text is truncated with ``..``, so it never spills out of
    ``max_width`` (default: the rest of the strip).
    """
    max_width = strip.shape[1] - x if max_width is None else max_width
    scale = _FONT_SCALE
    while True:
        (w, h), _ = cv2.getTextSize(text, _FONT, scale, 1)
        if w <= max_width or (scale <= _MIN_FONT_SCALE and len(text) <= 3):
            break
        if scale > _MIN_FONT_SCALE:
            scale = max(_MIN_FONT_SCALE, scale - 0.05)
        else:
            text = text[:-3] + '..' if len(text) > 4 else text[:-1]
    if max_width <= 0 or not text:
        return 0
    y = (strip.shape[0] + h) // 2
    cv2.putText(strip, text, (x, y), _FONT, scale, color, 1, cv2.LINE_AA)
    return w


def text_strip(width: int, height: int, text: str) -> np.ndarray:
    """A background strip of ``(height, width)`` with left-aligned text."""
    strip = np.full((height, width, 3), BACKGROUND, np.uint8)
    put_text(strip, text, 3, max_width=width - 6)
    return strip


def titled(panel: np.ndarray, title: str) -> np.ndarray:
    """Stack a ``TITLE_HEIGHT`` title strip on top of ``panel``."""
    return np.concatenate([text_strip(panel.shape[1], TITLE_HEIGHT, title), panel], axis=0)


def hstack(panels: Sequence[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Place equally tall panels side by side with ``gap`` background pixels between them."""
    h = panels[0].shape[0]
    sep = np.full((h, gap, 3), BACKGROUND, np.uint8)
    parts = [p for panel in panels for p in (sep, panel)][1:]
    return np.concatenate(parts, axis=1)


def vstack(rows: Sequence[np.ndarray], gap: int = 0) -> np.ndarray:
    """Stack rows top to bottom, padding narrower ones on the right with background."""
    width = max(r.shape[1] for r in rows)
    parts = []
    for i, row in enumerate(rows):
        if i and gap:
            parts.append(np.full((gap, width, 3), BACKGROUND, np.uint8))
        pad = np.full((row.shape[0], width - row.shape[1], 3), BACKGROUND, np.uint8)
        parts.append(np.concatenate([row, pad], axis=1))
    return np.concatenate(parts, axis=0)


def legend_strip(width: int, items: Sequence[tuple[str, Sequence[int]] | None]) -> np.ndarray:
    """Colour swatches with labels, wrapped onto as many ``LEGEND_HEIGHT`` lines as needed.

    A ``None`` item starts a new line (keeps e.g. semantic classes apart from TP/FP/FN).
    """
    lines: list[list[tuple[str, Sequence[int], int]]] = [[]]
    x = 4
    for item in items:
        if item is None:
            if lines[-1]:
                lines.append([])
                x = 4
            continue
        label, color = item
        (tw, _), _ = cv2.getTextSize(label, _FONT, _FONT_SCALE, 1)
        item_w = _SWATCH + 4 + tw + 12
        if lines[-1] and x + item_w > width:
            lines.append([])
            x = 4
        lines[-1].append((label, color, x))
        x += item_w
    strips = []
    for line in lines:
        strip = np.full((LEGEND_HEIGHT, width, 3), BACKGROUND, np.uint8)
        top = (LEGEND_HEIGHT - _SWATCH) // 2
        for label, color, x in line:
            strip[top:top + _SWATCH, x:x + _SWATCH] = color
            put_text(strip, label, x + _SWATCH + 4, max_width=width - x - _SWATCH - 4)
        strips.append(strip)
    if len(strips) > 1 and not lines[-1]:
        strips.pop()
    return np.concatenate(strips, axis=0)


def read_image(path: str, backend_args: dict | None = None) -> np.ndarray:
    """Read one date as ``(H, W, C)`` in file band order (RGB for PNG/JPG, bands for GeoTIFF).

    The same reader as the data pipeline (:func:`mmrs.datasets.io.read_raster`: rasterio for
    GeoTIFF, OpenCV ``IMREAD_UNCHANGED`` otherwise, BGR(A) turned into RGB(A)), so a panel
    shows exactly the pixels the model saw. ``backend_args`` reads the bytes through
    :func:`mmengine.fileio.get`, so remote storage works too.
    """
    from mmrs.datasets.io import read_raster
    return read_raster(path, backend_args=backend_args)[0]
