"""LEVIR-CD: building change detection on 1024×1024 Google Earth tiles (0.5 m)."""
from mmrs.registry import DATASETS

from .base_change_dataset import SplitFolderChangeDataset


@DATASETS.register_module()
class LEVIRCDDataset(SplitFolderChangeDataset):
    """LEVIR-CD (Chen & Shi, 2020) and its cropped 256×256 variants.

    Official layout (``data_root`` = the extracted release)::

        {train,val,test}/A/<name>.png      date 1, RGB
        {train,val,test}/B/<name>.png      date 2, RGB
        {train,val,test}/label/<name>.png  change mask, 0 = unchanged, 255 = changed

    Arguments: see :class:`SplitFolderChangeDataset` (``split`` picks the split folder).
    """

    FOLDERS = dict(img_path_from='A', img_path_to='B', seg_map_path='label')
    LABEL_ENCODING = '0/255'  # official release: 0 unchanged, 255 changed


@DATASETS.register_module()
class LEVIRCDPlusDataset(LEVIRCDDataset):
    """LEVIR-CD+ (Shen et al., 2021): 985 pairs of 1024×1024 Google Earth tiles, 0.5 m.

    The extension of LEVIR-CD used by ChangeMamba and most recent papers. Same folders and
    label encoding as LEVIR-CD, but the release has **no validation split**: 637 training and
    348 test pairs. Official layout (``data_root`` = the extracted ``LEVIR-CD+``)::

        {train,test}/A/<name>.png      date 1, RGB
        {train,test}/B/<name>.png      date 2, RGB
        {train,test}/label/<name>.png  change mask, 0 / 255

    ChangeMamba trains on random 256×256 crops of the training tiles and reports the test
    split (used for validation as well, as the official scripts do).

    Args:
        split: ``'train'`` or ``'test'`` (``None`` for a flat tree); ``'val'`` is an error
            naming the missing split rather than an empty dataset.
        **kwargs: See :class:`LEVIRCDDataset`.
    """

    SPLITS = ('train', 'test')

    def __init__(self, data_root: str = '', split: str | None = 'train', **kwargs) -> None:
        if split and split not in self.SPLITS and kwargs.get('data_prefix') is None:
            raise ValueError(
                f'LEVIR-CD+ has no {split!r} split (the release has {self.SPLITS}); '
                "evaluate on split='test' as the official ChangeMamba scripts do")
        super().__init__(data_root=data_root, split=split, **kwargs)
