"""CDD (a.k.a. SVCD): seasonal-variation change detection."""
from mmrs.registry import DATASETS

from .base_change_dataset import BaseChangeDataset, split_prefix


@DATASETS.register_module()
class CDDDataset(BaseChangeDataset):
    """CDD / SVCD (Lebedev et al., 2018), the ``Real/subset`` 256×256 crops.

    Labels are JPEG, so they hold compression noise around 0 and 255: the dataset turns
    ``strict_labels`` off and the loader binarises with ``label_threshold`` (128).

    Layout (``data_root`` = ``ChangeDetectionDataset/Real/subset``)::

        {train,val,test}/A/<name>.jpg    date 1, RGB
        {train,val,test}/B/<name>.jpg    date 2, RGB
        {train,val,test}/OUT/<name>.jpg  change mask (JPEG), ~0 / ~255

    Args:
        data_root: Release root.
        split: ``'train'``, ``'val'`` or ``'test'``; ``None`` for a flat tree without split
            folders.
        data_prefix: Overrides the folders derived from ``split``.
        **kwargs: See :class:`BaseChangeDataset`.
    """

    FOLDERS = dict(img_path_from='A', img_path_to='B', seg_map_path='OUT')

    def __init__(self,
                 data_root: str = '',
                 split: str | None = 'train',
                 data_prefix: dict | None = None,
                 img_suffix: str | tuple = '.jpg',
                 seg_map_suffix: str | tuple = '.jpg',
                 strict_labels: bool = False,
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix or split_prefix(split, self.FOLDERS),
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            strict_labels=strict_labels,
            **kwargs)
