"""The bitemporal change sample: labels and predictions for one image pair."""
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


class ChangeDataSample(SegDataSample):
    """Annotations and predictions of one bitemporal pair.

    It extends mmseg's :class:`SegDataSample` (so mmseg decode heads, which read
    ``gt_sem_seg``, train on it unchanged) with the per-date semantic maps that
    semantic change detection needs.

    Fields (all :class:`PixelData` whose ``data`` is a ``(1, H, W)`` tensor):

    - ``gt_sem_seg`` / ``pred_sem_seg``: binary change map (0 unchanged, 1 changed,
      255 ignored).
    - ``seg_logits``: change logits ``(C, H, W)`` before argmax/threshold.
    - ``gt_sem_seg_from`` / ``gt_sem_seg_to``: semantic class of date 1 / date 2
      (class 0 means "no change", as in the SECOND release).
    - ``pred_sem_seg_from`` / ``pred_sem_seg_to``: predicted semantic maps in the
      same convention (0 where no change is predicted).
    - ``nodata_mask``: ``(1, H, W)`` bool, True where either date is nodata, at the
      original size (``ori_shape``; never transformed or padded). Prediction writers put
      the nodata value there.

    Meta information (``metainfo``) carries ``img_path`` (two paths), ``ori_shape``,
    ``img_shape``, ``geo_meta`` (per-date CRS/transform/nodata/band count of the pipeline's
    pixel grid) and, once a geometric transform changed that grid, ``ori_geo_meta`` (the
    same for the original grid), so a prediction can be written back as a georeferenced
    raster; and the pipeline geometry described in :mod:`mmrs.structures.geometry`.
    """

    @property
    def nodata_mask(self) -> PixelData:
        return self._nodata_mask

    @nodata_mask.setter
    def nodata_mask(self, value: PixelData) -> None:
        self.set_field(value, '_nodata_mask', dtype=PixelData)

    @nodata_mask.deleter
    def nodata_mask(self) -> None:
        del self._nodata_mask

    @property
    def gt_sem_seg_from(self) -> PixelData:
        return self._gt_sem_seg_from

    @gt_sem_seg_from.setter
    def gt_sem_seg_from(self, value: PixelData) -> None:
        self.set_field(value, '_gt_sem_seg_from', dtype=PixelData)

    @gt_sem_seg_from.deleter
    def gt_sem_seg_from(self) -> None:
        del self._gt_sem_seg_from

    @property
    def gt_sem_seg_to(self) -> PixelData:
        return self._gt_sem_seg_to

    @gt_sem_seg_to.setter
    def gt_sem_seg_to(self, value: PixelData) -> None:
        self.set_field(value, '_gt_sem_seg_to', dtype=PixelData)

    @gt_sem_seg_to.deleter
    def gt_sem_seg_to(self) -> None:
        del self._gt_sem_seg_to

    @property
    def pred_sem_seg_from(self) -> PixelData:
        return self._pred_sem_seg_from

    @pred_sem_seg_from.setter
    def pred_sem_seg_from(self, value: PixelData) -> None:
        self.set_field(value, '_pred_sem_seg_from', dtype=PixelData)

    @pred_sem_seg_from.deleter
    def pred_sem_seg_from(self) -> None:
        del self._pred_sem_seg_from

    @property
    def pred_sem_seg_to(self) -> PixelData:
        return self._pred_sem_seg_to

    @pred_sem_seg_to.setter
    def pred_sem_seg_to(self, value: PixelData) -> None:
        self.set_field(value, '_pred_sem_seg_to', dtype=PixelData)

    @pred_sem_seg_to.deleter
    def pred_sem_seg_to(self) -> None:
        del self._pred_sem_seg_to
