"""Prompt templates of the remote-sensing CLIP papers, with where each list comes from.

A template is a string with one ``{}`` where the class name goes (CLIP_benchmark's ``{c}``
is written ``{}`` here). The lists are copied as published, typos included (CLIP_benchmark's
``'sattelite'``, SkyScript's second template without a full stop): a zero-shot number is only
comparable with the paper's when the prompts are the same strings.

Sources (repository, path):

- ``remoteclip_resisc45``, ``remoteclip_eurosat``, ``remoteclip_scene``: RemoteCLIP's
  evaluation code, ChenDelong1999/ITRA ``itra/data/classname_and_prompt/{RESISC45,EuroSAT,
  AID,UCMerced,WHURS19,PatternNet}.py`` (RemoteCLIP was trained and evaluated with ITRA; the
  RemoteCLIP repository itself ships no zero-shot code). The RESISC45 and EuroSAT lists are
  OpenAI CLIP's (openai/CLIP ``data/prompts.md``); AID, UC Merced, WHU-RS19 and PatternNet
  share the five "centered satellite photo / overhead view" templates.
- ``georsclip``: om-ai-lab/RS5M ``inference/classname_and_prompt/{RSAID,RSRESISC45,
  RSEuroSAT}.py`` (one list of 105 for all three data sets: 35 phrasings each of "remote
  sensing image", "aerial image" and "satellite image").
- ``skyscript``: wangzhecheng/SkyScript ``prompt_templates.py`` (the same two templates for
  every scene data set); FarSLIP uses the identical file (NJU-LHRS/FarSLIP
  ``open_clip_train/prompt_templates.py``).
- ``clip_benchmark_eurosat``, ``clip_benchmark_resisc45``: LAION-AI/CLIP_benchmark
  ``clip_benchmark/datasets/en_zeroshot_classification_templates.json``.

No paper here used OpenAI's 80 ImageNet templates on remote-sensing data, so they are not
included. RS-M-CLIP (DannielSilva/RS-M-CLIP, joaodaniel/RS-M-CLIP on the HF hub) publishes
no zero-shot templates; its configs use RemoteCLIP's lists and say so.

The class-text embedding of each paper's code is averaged differently
(:data:`PAPER_ENSEMBLE`): OpenAI CLIP, SkyScript and FarSLIP (open_clip
``build_zero_shot_classifier``) average the *normalised* template embeddings and
renormalise; ITRA (RemoteCLIP) and GeoRSCLIP average the *raw* embeddings, then normalise.
"""
from collections.abc import Sequence


def _georsclip_templates() -> tuple[str, ...]:
    """RS5M's list, in its order: for each of "a remote sensing image", "an aerial image",
    "a satellite image": 5 plain phrasings, 10 "a <quality> ... of the/a" pairs and 5
    "... of the/a <size>" pairs (35 each, 105 in all)."""
    qualities = ('low resolution', 'bad', 'cropped', 'bright', 'dark', 'close-up',
                 'black and white', 'jpeg corrupted', 'blurry', 'good')
    sizes = ('large', 'nice', 'small', 'weird', 'cool')
    out: list[str] = []
    for article, noun in (('a', 'remote sensing image'), ('an', 'aerial image'),
                          ('a', 'satellite image')):
        head = f'{article} {noun} of'
        out += [f'{head} many {{}}.', f'{head} a {{}}.', f'{head} the {{}}.',
                f'{head} the hard to see {{}}.', f'{head} a hard to see {{}}.']
        for quality in qualities:
            out += [f'a {quality} {noun} of the {{}}.', f'a {quality} {noun} of a {{}}.']
        for size in sizes:
            out += [f'{head} the {size} {{}}.', f'{head} a {size} {{}}.']
    return tuple(out)


_VIEWS = ('satellite imagery', 'aerial imagery', 'satellite photo', 'aerial photo',
          'satellite view', 'aerial view')

#: Template lists by name (see the module docstring for each source).
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    # ITRA RESISC45.py (= OpenAI CLIP data/prompts.md, RESISC45): 6 views x ('', a, the)
    'remoteclip_resisc45': tuple(
        [f'{v} of {{}}.' for v in _VIEWS] + [f'{v} of a {{}}.' for v in _VIEWS]
        + [f'{v} of the {{}}.' for v in _VIEWS]),
    # ITRA EuroSAT.py (= OpenAI CLIP data/prompts.md, EuroSAT)
    'remoteclip_eurosat': ('a centered satellite photo of {}.',
                           'a centered satellite photo of a {}.',
                           'a centered satellite photo of the {}.'),
    # ITRA AID.py, UCMerced.py, WHURS19.py, PatternNet.py
    'remoteclip_scene': ('a centered satellite photo of a {}.',
                         'a centered satellite photo of the {} taken from above.',
                         'an overhead view of the {}.',
                         'an overhead view of a {}.',
                         'an overhead view of {}.'),
    'georsclip': _georsclip_templates(),
    'skyscript': ('a satellite photo of {}.', 'a satellite image of {}'),
    'clip_benchmark_eurosat': ('a centered satellite photo of {}.',
                               'a centered satellite photo of a {}.',
                               'a centered satellite photo of the {}.'),
    'clip_benchmark_resisc45': ('a sattelite image of {}', 'an aerial view of {}',
                                'a sattelite photo of {}', '{} from above'),
}

#: Template set of each paper's zero-shot evaluation, by family and data set key.
PAPER_TEMPLATES: dict[str, dict[str, str]] = {
    'remoteclip': dict(resisc45='remoteclip_resisc45', eurosat='remoteclip_eurosat',
                       aid='remoteclip_scene', ucm='remoteclip_scene',
                       whu_rs19='remoteclip_scene', patternnet='remoteclip_scene'),
    'georsclip': dict(aid='georsclip', resisc45='georsclip', eurosat='georsclip'),
    'skyclip': dict(aid='skyscript', eurosat='skyscript', patternnet='skyscript',
                    resisc45='skyscript'),
    'farslip': dict(aid='skyscript', eurosat='skyscript', patternnet='skyscript',
                    resisc45='skyscript'),
}

#: How each family's code averages the template embeddings of a class (see module doc).
PAPER_ENSEMBLE: dict[str, str] = dict(
    openai='normalized_mean', remoteclip='raw_mean', georsclip='raw_mean',
    skyclip='normalized_mean', farslip='normalized_mean', rsmclip='normalized_mean')


def get_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """A template list: a name of :data:`TEMPLATE_SETS` or the templates themselves.

    Raises:
        KeyError: Unknown set name (the message lists the known ones).
        ValueError: An empty list, or a template without exactly one ``{}``.
    """
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise KeyError(f'unknown template set {templates!r}; known: {sorted(TEMPLATE_SETS)}')
        return TEMPLATE_SETS[templates]
    out = tuple(str(t) for t in templates)
    if not out:
        raise ValueError('templates must not be empty')
    bad = [t for t in out if t.count('{}') != 1]
    if bad:
        raise ValueError(f"each template needs exactly one '{{}}' for the class name: {bad[:5]}")
    return out


def paper_templates(family: str, dataset: str) -> tuple[str, ...]:
    """The templates ``family``'s paper evaluated ``dataset`` with (keys of
    :data:`PAPER_TEMPLATES`)."""
    try:
        return TEMPLATE_SETS[PAPER_TEMPLATES[family][dataset]]
    except KeyError:
        known = {f: sorted(d) for f, d in PAPER_TEMPLATES.items()}
        raise KeyError(f'no published templates for family {family!r} on {dataset!r}; '
                       f'known: {known}') from None


def fill_templates(templates: Sequence[str], class_name: str) -> list[str]:
    """The prompts of one class: every ``{}`` replaced by ``class_name`` (``str.replace``,
    as ITRA and RS5M do, so braces in a class name are safe)."""
    return [t.replace('{}', class_name) for t in templates]
