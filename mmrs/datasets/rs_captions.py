"""Remote-sensing image–caption datasets in Karpathy's JSON format: RSICD, RSITMD, UCM-Captions.

All three are distributed with one JSON file in the format of Karpathy & Fei-Fei's
``caption_datasets`` (Flickr8k/30k, COCO splits)::

    {"images": [{"filename": "airport_1.jpg", "imgid": 0, "split": "train",
                 "sentences": [{"raw": "Many aircraft are parked ...", "tokens": [...],
                                "imgid": 0, "sentid": 0}, ...],
                 "sentids": [0, 1, 2, 3, 4]}, ...],
     "dataset": "rsicd"}

- RSICD (Lu et al., "Exploring Models and Data for Remote Sensing Image Caption Generation",
  TGRS 2017): ``dataset_rsicd.json`` + ``RSICD_images/*.jpg``; 10,921 images, splits
  ``train`` / ``val`` / ``test`` (8,734 train, about 1,090 each val / test). Every image has
  5 sentences, but only 724 have five *different* ones: the rest repeat sentences to fill
  the five.
- RSITMD (Yuan et al., "Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote
  Sensing Image Retrieval", TGRS 2022; xiaoyuan1996/AMFMN ``RSITMD/README.md``):
  ``dataset_RSITMD.json`` + ``images/*.tif``; 4,743 images, splits ``train`` / ``test``
  (the 2021-10-28 update of the release corrected four blank sentences).
- UCM-Captions (Qu et al., "Deep semantic understanding of high resolution remote sensing
  image", CITS 2016): ``dataset.json`` + ``imgs/*.tif`` (2,100 UC Merced images, 5 sentences
  each), splits ``train`` / ``val`` / ``test``.

Captions are kept as distributed (duplicates included): the two retrieval protocols treat
duplicates differently (see ``docs/retrieval_protocols.md``), so the dataset must not decide.
"""
import json
import os.path as osp
from collections.abc import Sequence

from mmengine.dataset import BaseDataset

from mmrs.registry import DATASETS

#: Sentence fields a caption can be taken from.
TEXT_FIELDS = ('raw', 'tokens')


def read_karpathy_json(path: str) -> list[dict]:
    """The ``images`` list of a Karpathy-style caption JSON file.

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        ValueError: When it is not valid JSON or has no ``images`` list of entries with
            ``filename`` and ``sentences``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'caption annotation file not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            content = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f'{path} is not valid JSON: {err}') from err
    images = content.get('images') if isinstance(content, dict) else None
    if not isinstance(images, list):
        raise ValueError(f'{path}: expected a Karpathy-style JSON object with an "images" '
                         f'list, got {type(content).__name__} with keys '
                         f'{sorted(content) if isinstance(content, dict) else "-"}')
    for i, entry in enumerate(images):
        missing = [k for k in ('filename', 'sentences')
                   if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ValueError(f'{path}: images[{i}] lacks {missing}')
        if not isinstance(entry['sentences'], list):
            raise ValueError(f'{path}: images[{i}] ({entry["filename"]}) "sentences" is not '
                             'a list')
    return images


def sentence_text(sentence: dict, text_field: str, where: str) -> str:
    """The caption of one Karpathy ``sentences`` entry: ``raw`` as is, or ``tokens`` joined
    by single spaces (lower-cased, punctuation removed by the dataset authors)."""
    if not isinstance(sentence, dict) or text_field not in sentence:
        raise ValueError(f'{where}: sentence has no {text_field!r} field')
    value = sentence[text_field]
    if text_field == 'tokens':
        if not isinstance(value, list):
            raise ValueError(f'{where}: "tokens" is not a list')
        return ' '.join(str(t) for t in value)
    if not isinstance(value, str):
        raise ValueError(f'{where}: "raw" is not a string')
    return value


@DATASETS.register_module()
class KarpathyCaptionDataset(BaseDataset):
    """Images with all their captions, read from a Karpathy-style caption JSON.

    Each sample: ``img_path``, ``img_id`` (the file's ``imgid``, else the entry's position),
    ``captions`` (list of str, as distributed), ``sent_ids``, ``filename``, ``split``.
    Training pipelines pick one caption with ``RandomCaption``; test pipelines pack all of
    them (``PackInputs(algorithm_keys=['captions', 'img_id'])``) for ``RetrievalMetric``.

    Args:
        ann_file: The JSON file, relative to ``data_root``. Defaults to the class's
            ``ANN_FILE``.
        data_root: Dataset root.
        data_prefix: ``dict(img_path=folder)``; images are ``folder/[filepath/]filename``.
            Defaults to the class's ``IMG_DIR``.
        split: A split name (``'train'``, ``'val'``, ``'test'``), several, or ``None`` for
            every image in the file.
        text_field: ``'raw'`` (the sentence as written) or ``'tokens'`` (its tokens joined
            by spaces).
        check_images: Check at load time that every image file exists.
        **kwargs: Forwarded to :class:`mmengine.dataset.BaseDataset`.

    Raises:
        FileNotFoundError: Missing annotation file or images (naming the path).
        ValueError: Invalid JSON, a split the file does not have, an unknown text field.
    """

    ANN_FILE = ''
    IMG_DIR = ''
    METAINFO = dict(dataset_name='karpathy_captions')

    def __init__(self, ann_file: str | None = None, data_root: str = '',
                 data_prefix: dict | None = None, split: str | Sequence[str] | None = 'train',
                 text_field: str = 'raw', check_images: bool = True, **kwargs) -> None:
        if text_field not in TEXT_FIELDS:
            raise ValueError(f'text_field must be one of {TEXT_FIELDS}, got {text_field!r}')
        self.split = split
        self.text_field = text_field
        self.check_images = check_images
        ann_file = self.ANN_FILE if ann_file is None else ann_file
        if not ann_file:
            raise ValueError(f'{type(self).__name__} needs ann_file (the caption JSON)')
        if data_prefix is None:
            data_prefix = dict(img_path=self.IMG_DIR)
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix,
                         **kwargs)

    def _wanted_splits(self, images: list[dict]) -> set[str] | None:
        if self.split is None:
            return None
        wanted = {self.split} if isinstance(self.split, str) else set(self.split)
        available = {str(entry.get('split')) for entry in images}
        unknown = sorted(wanted - available)
        if unknown:
            raise ValueError(f'{self.ann_file} has no split {unknown}; its splits are '
                             f'{sorted(available)}')
        return wanted

    def load_data_list(self) -> list[dict]:
        """Read the JSON, keep the requested split(s), check the images exist."""
        images = read_karpathy_json(self.ann_file)
        wanted = self._wanted_splits(images)
        img_root = self.data_prefix.get('img_path', '')
        data_list, missing = [], []
        for position, entry in enumerate(images):
            if wanted is not None and str(entry.get('split')) not in wanted:
                continue
            where = f'{self.ann_file}: {entry["filename"]}'
            captions = [sentence_text(s, self.text_field, where) for s in entry['sentences']]
            img_path = osp.join(img_root, entry.get('filepath', ''), entry['filename'])
            if self.check_images and not osp.isfile(img_path):
                missing.append(img_path)
            data_list.append(dict(
                img_path=img_path, img_id=int(entry.get('imgid', position)),
                captions=captions,
                sent_ids=[s.get('sentid') for s in entry['sentences']],
                filename=entry['filename'], split=entry.get('split')))
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} images listed in {self.ann_file} are missing, first: '
                f'{missing[0]} (check data_root / data_prefix, or pass check_images=False)')
        return data_list


@DATASETS.register_module()
class RSICDDataset(KarpathyCaptionDataset):
    """RSICD: ``dataset_rsicd.json`` and ``RSICD_images/`` (see the module docstring)."""

    ANN_FILE = 'dataset_rsicd.json'
    IMG_DIR = 'RSICD_images'
    METAINFO = dict(dataset_name='rsicd')


@DATASETS.register_module()
class RSITMDDataset(KarpathyCaptionDataset):
    """RSITMD: ``dataset_RSITMD.json`` and ``images/`` (splits ``train`` / ``test``)."""

    ANN_FILE = 'dataset_RSITMD.json'
    IMG_DIR = 'images'
    METAINFO = dict(dataset_name='rsitmd')


@DATASETS.register_module()
class UCMCaptionsDataset(KarpathyCaptionDataset):
    """UCM-Captions: ``dataset.json`` and ``imgs/`` (see the module docstring)."""

    ANN_FILE = 'dataset.json'
    IMG_DIR = 'imgs'
    METAINFO = dict(dataset_name='ucm_captions')
