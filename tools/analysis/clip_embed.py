"""Embed images and texts with a CLIP-family config into one ``.npz`` file.

    python tools/analysis/clip_embed.py CONFIG [--checkpoint FILE] [--images IMG ...]
        [--texts TXT ...] [--text-file F] --out EMB.npz [--bands 4,3,2] [--value-max V]
        [--stretch none|percentile] [--batch-size 16] [--device cpu] [--overwrite]
        [--cfg-options key=value ...]

``CONFIG`` builds a :class:`mmrs.models.clip.CLIP` (``model = dict(type='CLIP', ...)``);
``--checkpoint`` replaces ``model.checkpoint`` (one of the two is required: embeddings of
random weights mean nothing). The output holds L2-normalised ``float32`` arrays ``image``
``(N_img, D)`` and ``text`` ``(N_txt, D)``, plus ``image_paths`` and ``texts`` (in input
order). It is written atomically (a temporary file renamed into place) and an existing file is
refused unless ``--overwrite``.

Images are read with mmrs' one raster reader (:func:`mmrs.datasets.io.read_raster`: JPEG/PNG
through OpenCV as RGB, GeoTIFF through rasterio with every band and the dtype kept) and
prepared as open_clip's evaluation transform does (:mod:`mmrs.models.clip.preprocess`, the
code the archive search's image queries use too): values mapped to 0–255 (``value_max``,
default the dtype's maximum, 1.0 for floats; or a per-band 2–98 % percentile stretch),
shortest side resized to the tower's input size with antialiased bicubic interpolation,
center crop, then the model's data-preprocessor mean/std (NaN pixels, float nodata, become
black). Multi-band rasters need three bands (``--bands`` or ``clip_embed = dict(bands=[...])``
in the config); one band is repeated three times; the alpha of an RGBA PNG is dropped (a
4-band GeoTIFF needs ``--bands``: its 4th band may be near-infrared). Settings come from the
config's optional ``clip_embed = dict(bands=..., value_max=..., stretch=...)`` and the command
line wins.
"""
import argparse
import os.path as osp
import sys
from collections.abc import Sequence
from typing import Any

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

# the preprocessing shared with the archive search (mmrs.apis.clip_encoder); re-exported here
from mmrs.models.clip.preprocess import (PERCENTILES, STRETCHES,  # noqa: E402,F401
                                         model_mean_std, prepare_image, resize_center_crop,
                                         to_byte_range)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='CLIP config (path, mmrs::path or shipped name)')
    parser.add_argument('--checkpoint', help='weights (replaces model.checkpoint)')
    parser.add_argument('--images', nargs='+', default=[], help='images (jpg, png, tif)')
    parser.add_argument('--texts', nargs='+', default=[], help='texts to embed')
    parser.add_argument('--text-file', help='UTF-8 file with one text per line')
    parser.add_argument('--out', required=True, help='output .npz')
    parser.add_argument('--bands', help='1-based bands of multi-band rasters, e.g. 4,3,2')
    parser.add_argument('--value-max', type=float,
                        help='pixel value shown as 255 (default: the dtype maximum)')
    parser.add_argument('--stretch', choices=STRETCHES,
                        help='percentile: per-band 2-98%% stretch instead of --value-max')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


# ---------------------------------------------------------------------- images
def to_three_bands(img: np.ndarray, path: str) -> np.ndarray:
    """``(H, W, 3)`` from an ``(H, W, C)`` image: 1 band repeated, RGBA alpha dropped.

    Raises:
        ValueError: Another band count (the message names the file and says how to choose).
    """
    count = img.shape[2]
    if count == 3:
        return img
    if count == 1:
        return np.repeat(img, 3, axis=2)
    if count == 4 and osp.splitext(path)[1].lower() not in ('.tif', '.tiff'):
        return img[..., :3]
    raise ValueError(f'{path!r} has {count} bands after band selection; CLIP towers take 3 '
                     '(choose them with --bands, e.g. --bands 4,3,2, or clip_embed.bands)')


def load_image(path: str, image_size: tuple[int, int], mean: torch.Tensor, std: torch.Tensor,
               bands: Sequence[int] | None = None, value_max: float | None = None,
               stretch: str = 'none') -> torch.Tensor:
    """Read ``path`` and return the normalised ``(3, H, W)`` model input.

    Args:
        path: JPEG/PNG/GeoTIFF (any dtype, any band count with ``bands``).
        image_size: The tower's ``(H, W)``.
        mean, std: Normalisation on the 0–255 scale, shape ``(3,)``.
        bands: 1-based bands to read.
        value_max: Pixel value mapped to 255 (default: dtype maximum; 1.0 for floats).
        stretch: ``'none'`` or ``'percentile'``.

    Raises:
        FileNotFoundError: Missing file. OSError: undecodable file. ValueError: bad bands.
        (Every message names ``path``.)
    """
    from mmrs.datasets.io import read_raster
    try:
        img, _ = read_raster(path, bands=bands)
    except (FileNotFoundError, ValueError):
        raise
    except Exception as err:  # noqa: BLE001 (decoder errors of OpenCV/GDAL vary)
        raise OSError(f'cannot read image {path!r}: {err}') from err
    img = to_three_bands(img, path)
    return prepare_image(to_byte_range(img, value_max, stretch), image_size, mean, std)


def preprocess_stats(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's data-preprocessor mean/std on the 0–255 scale (OpenAI CLIP's if absent)."""
    return model_mean_std(model)


# ---------------------------------------------------------------------- model + run
def build_clip(config: str, checkpoint: str | None, cfg_options: dict | None,
               device: str) -> tuple[Any, Any]:
    """Load the config, set the checkpoint, build the CLIP model in eval mode on ``device``.

    Raises:
        ValueError: No weights (neither ``--checkpoint`` nor ``model.checkpoint``) or the
            model is not a CLIP model.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmrs.registry import MODELS
    from mmrs.utils.config_path import resolve_config
    from mmrs.utils.setup_env import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(resolve_config(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not isinstance(cfg.get('model'), dict):
        raise ValueError(f'config {config!r} has no model dict')
    if checkpoint is not None:
        cfg.model.checkpoint = checkpoint
    if not cfg.model.get('checkpoint'):
        raise ValueError('no weights: give --checkpoint FILE (or model.checkpoint in the '
                         'config)')
    cfg.model.loss = None  # inference only
    init_default_scope(cfg.get('default_scope', 'mmrs'))
    model = MODELS.build(cfg.model)
    if not all(hasattr(model, a) for a in ('encode_image', 'encode_texts', 'image_size')):
        raise ValueError(f'config {config!r} does not build a CLIP model '
                         f'(got {type(model).__name__})')
    return cfg, model.to(device).eval()


def read_texts(texts: Sequence[str], text_file: str | None) -> list[str]:
    """``--texts`` followed by the non-blank lines of ``--text-file``."""
    out = list(texts)
    if text_file:
        if not osp.isfile(text_file):
            raise FileNotFoundError(f'text file not found: {text_file!r}')
        try:
            with open(text_file, encoding='utf-8') as f:
                out += [line.strip() for line in f if line.strip()]
        except UnicodeDecodeError as err:
            raise ValueError(f'text file {text_file!r} is not UTF-8: {err}') from err
    return out


@torch.no_grad()
def embed(model: Any, images: Sequence[str], texts: Sequence[str],
          settings: dict | None = None, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Normalised embeddings of ``images`` and ``texts`` (the arrays written to the .npz)."""
    settings = dict(settings or {})
    mean, std = preprocess_stats(model)
    device = model.device
    chunks = []
    for i in range(0, len(images), batch_size):
        batch = torch.stack([
            load_image(p, model.image_size, mean, std, settings.get('bands'),
                       settings.get('value_max'), settings.get('stretch') or 'none')
            for p in images[i:i + batch_size]])
        chunks.append(model.encode_image(batch.to(device)).float().cpu())
    image = torch.cat(chunks) if chunks else torch.zeros((0, model.embed_dim))
    text = model.encode_texts(list(texts)).float().cpu() \
        if texts else torch.zeros((0, model.embed_dim))
    return dict(image=image.numpy().astype(np.float32), text=text.numpy().astype(np.float32),
                image_paths=np.array([str(p) for p in images], dtype=str),
                texts=np.array(list(texts), dtype=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmrs.geo.atomic import atomic_output, check_outputs
    from mmrs.geo.raster import parse_bands
    from mmrs.utils.checkpoint import UnsafeCheckpointError
    try:
        if not args.out.endswith('.npz'):
            raise ValueError(f'--out must end with .npz, got {args.out!r}')
        check_outputs([args.out], args.overwrite)  # refuse before loading the model
        texts = read_texts(args.texts, args.text_file)
        if not args.images and not texts:
            raise ValueError('nothing to embed: give --images and/or --texts/--text-file')
        missing = [p for p in args.images if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(f'image file(s) not found: {missing}')
        if args.batch_size < 1:
            raise ValueError(f'--batch-size must be positive, got {args.batch_size}')
        cfg, model = build_clip(args.config, args.checkpoint, args.cfg_options, args.device)
        settings = dict(cfg.get('clip_embed', None) or {})
        for key in ('bands', 'value_max', 'stretch'):
            value = getattr(args, key)
            if value is not None:
                settings[key] = value
        settings['bands'] = parse_bands(settings.get('bands'))
        arrays = embed(model, args.images, texts, settings, args.batch_size)
        with atomic_output(args.out, overwrite=args.overwrite) as tmp:
            with open(tmp, 'wb') as f:
                np.savez(f, **arrays)
        print(f"wrote {args.out}: image {arrays['image'].shape}, text {arrays['text'].shape}")
    except KeyboardInterrupt:
        print('tools/analysis/clip_embed.py: interrupted; no partial output was left',
              file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, OSError, ValueError, RuntimeError,
            UnsafeCheckpointError) as error:
        print(f'tools/analysis/clip_embed.py: error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
