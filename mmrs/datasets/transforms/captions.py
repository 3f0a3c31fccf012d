"""Caption transforms for image–text datasets (``captions`` list → training ``text``).

- :class:`RandomCaption` picks the caption a training step contrasts the image with, as
  open_clip-style retrieval fine-tuning does (one random caption of the image per epoch).
- :class:`FormatCaptions` applies the text formatting of an evaluation protocol before the
  model encodes the captions: RemoteCLIP's ``raw.capitalize()``
  (ChenDelong1999/RemoteCLIP ``remoteclip_retrieval.py``), SkyScript / FarSLIP's
  ``'a satellite image. ' + caption`` (wangzhecheng/SkyScript ``cross_modal_retrieval.ipynb``,
  NJU-LHRS/FarSLIP ``tests/test_retrieval.py``).
"""
from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmrs.registry import TRANSFORMS


def _captions_of(results: dict, key: str) -> list[str]:
    captions = results.get(key)
    where = results.get('img_path', results.get('img_id', 'sample'))
    if captions is None:
        raise KeyError(f'{where}: no {key!r} in the results (keys: {sorted(results)})')
    if isinstance(captions, str):
        captions = [captions]
    if len(captions) == 0:
        raise ValueError(f'{where}: the image has no caption to choose from')
    return list(captions)


@TRANSFORMS.register_module()
class RandomCaption(BaseTransform):
    """Put one of ``results[key]`` into ``results[out_key]``.

    The choice uses numpy's global RNG, which mmengine seeds (``randomness=dict(seed=...)``
    and its dataloader ``worker_init_fn`` per worker), so runs with a seed repeat their
    caption choices. With ``mode='first'`` the first caption is taken (deterministic, e.g.
    to validate a training loss).

    Args:
        mode: ``'random'`` (uniform choice) or ``'first'``.
        key: Results key holding the captions. Defaults to ``'captions'``.
        out_key: Key written. Defaults to ``'text'`` (what ``CLIP.loss`` reads).

    Raises:
        KeyError / ValueError: On a sample without captions, naming its image.
    """

    MODES = ('random', 'first')

    def __init__(self, mode: str = 'random', key: str = 'captions',
                 out_key: str = 'text') -> None:
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got {mode!r}')
        self.mode = mode
        self.key = key
        self.out_key = out_key

    @cache_randomness
    def _choose(self, num: int) -> int:
        return int(np.random.randint(num))

    def transform(self, results: dict) -> dict:
        captions = _captions_of(results, self.key)
        index = 0 if self.mode == 'first' else self._choose(len(captions))
        results[self.out_key] = captions[index]
        results['caption_index'] = index
        return results

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(mode='{self.mode}', key='{self.key}', "
                f"out_key='{self.out_key}')")


@TRANSFORMS.register_module()
class FormatCaptions(BaseTransform):
    """Format every caption under ``keys``: optional ``str.capitalize`` then prefix/suffix.

    ``capitalize`` is Python's ``str.capitalize`` (first character upper-cased, *the rest
    lower-cased*), exactly what RemoteCLIP's evaluation applies to the raw sentences.

    Args:
        prefix: Text put before each caption (e.g. ``'a satellite image. '``).
        suffix: Text put after each caption.
        capitalize: Apply ``str.capitalize`` first.
        keys: Results keys to format, each a caption or a list of captions; keys absent from
            the results are skipped. Defaults to ``('captions', 'text')``.
    """

    def __init__(self, prefix: str = '', suffix: str = '', capitalize: bool = False,
                 keys: Sequence[str] = ('captions', 'text')) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.capitalize = capitalize
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)

    def format(self, caption: str) -> str:
        """The formatted form of one caption."""
        if self.capitalize:
            caption = caption.capitalize()
        return f'{self.prefix}{caption}{self.suffix}'

    def transform(self, results: dict) -> dict:
        for key in self.keys:
            if key not in results:
                continue
            value = results[key]
            results[key] = (self.format(value) if isinstance(value, str)
                            else [self.format(c) for c in value])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prefix={self.prefix!r}, suffix={self.suffix!r}, '
                f'capitalize={self.capitalize}, keys={self.keys})')
