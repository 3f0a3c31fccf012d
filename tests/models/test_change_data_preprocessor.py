"""Tests of ChangeDataPreprocessor: per-band stats, padding, labels, batching."""
import pytest
import torch
from mmengine.model import ModuleList
from mmengine.structures import PixelData

from mmrs.models.data_preprocessors import ChangeDataPreprocessor
from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample


def make_sample(h: int, w: int, semantic: bool = False) -> ChangeDataSample:
    sample = ChangeDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
    sample.gt_sem_seg = PixelData(data=torch.ones(1, h, w, dtype=torch.long))
    if semantic:
        sample.gt_sem_seg_from = PixelData(data=torch.full((1, h, w), 2, dtype=torch.long))
        sample.gt_sem_seg_to = PixelData(data=torch.full((1, h, w), 3, dtype=torch.long))
    return sample


class TestChangeDataPreprocessor:

    def test_build_from_registry(self) -> None:
        pre = MODELS.build(dict(type='ChangeDataPreprocessor', mean=[0.] * 3, std=[1.] * 3))
        assert isinstance(pre, ChangeDataPreprocessor)

    def test_per_band_normalisation_four_bands(self) -> None:
        mean, std = [1., 2., 3., 4.], [1., 2., 4., 8.]
        pre = ChangeDataPreprocessor(mean=mean, std=std)
        x = torch.full((2, 4, 3, 3), 9, dtype=torch.uint16)
        out = pre(dict(inputs=[x]))['inputs']
        assert out.shape == (1, 2, 4, 3, 3) and out.dtype == torch.float32
        expected = torch.tensor([(9 - m) / s for m, s in zip(mean, std)])
        for date in range(2):
            torch.testing.assert_close(out[0, date, :, 0, 0], expected)

    def test_per_date_statistics(self) -> None:
        pre = ChangeDataPreprocessor(mean=[0., 0., 10., 10.], std=[1., 1., 2., 2.])
        x = torch.full((2, 2, 2, 2), 20.)
        out = pre(dict(inputs=[x]))['inputs'][0]
        assert torch.all(out[0] == 20.)
        assert torch.all(out[1] == 5.)

    def test_statistics_length_mismatch(self) -> None:
        pre = ChangeDataPreprocessor(mean=[0.] * 5, std=[1.] * 5)
        with pytest.raises(ValueError, match='5 values but the images have 4 bands'):
            pre(dict(inputs=[torch.zeros(2, 4, 2, 2)]))

    @pytest.mark.parametrize('kwargs', [
        dict(mean=[0.]),
        dict(mean=[0., 1.], std=[1.]),
        dict(size=(8, 8), size_divisor=4),
    ])
    def test_invalid_arguments(self, kwargs) -> None:
        with pytest.raises(ValueError):
            ChangeDataPreprocessor(**kwargs)

    def test_rejects_non_pair_inputs(self) -> None:
        with pytest.raises(ValueError, match=r'\(2, C, H, W\)'):
            ChangeDataPreprocessor()(dict(inputs=[torch.zeros(3, 4, 4)]))

    def test_padding_to_divisor_and_labels(self) -> None:
        pre = ChangeDataPreprocessor(mean=[0.] * 3, std=[1.] * 3, size_divisor=32,
                                     pad_val=-1, seg_pad_val=255)
        sample = make_sample(50, 60, semantic=True)
        out = pre(dict(inputs=[torch.ones(2, 3, 50, 60)], data_samples=[sample]), True)
        x = out['inputs']
        assert x.shape == (1, 2, 3, 64, 64)
        assert torch.all(x[..., :50, :60] == 1) and torch.all(x[..., 50:, :] == -1)
        assert torch.all(x[..., :, 60:] == -1)
        s = out['data_samples'][0]
        for field, value in (('gt_sem_seg', 1), ('gt_sem_seg_from', 2), ('gt_sem_seg_to', 3)):
            label = getattr(s, field).data
            assert label.shape == (1, 64, 64)
            assert torch.all(label[:, :50, :60] == value)
            assert torch.all(label[:, 50:] == 255) and torch.all(label[:, :, 60:] == 255)
        assert tuple(s.img_shape) == (50, 60)
        assert tuple(s.pad_shape) == (64, 64)
        assert tuple(s.batch_input_shape) == (64, 64)
        assert tuple(s.padding_size) == (0, 4, 0, 14)

    def test_fixed_size(self) -> None:
        pre = ChangeDataPreprocessor(size=(40, 48))
        out = pre(dict(inputs=[torch.ones(2, 1, 30, 20)], data_samples=[make_sample(30, 20)]))
        assert out['inputs'].shape == (1, 2, 1, 40, 48)
        with pytest.raises(ValueError, match='exceeds'):
            pre(dict(inputs=[torch.ones(2, 1, 50, 20)]))

    def test_test_time_batch_of_different_sizes(self) -> None:
        pre = ChangeDataPreprocessor(mean=[0.] * 3, std=[1.] * 3, size_divisor=32)
        samples = [make_sample(33, 20), make_sample(16, 70)]
        inputs = [torch.rand(2, 3, 33, 20), torch.rand(2, 3, 16, 70)]
        out = pre(dict(inputs=inputs, data_samples=samples), training=False)
        assert out['inputs'].shape == (2, 2, 3, 64, 96)
        assert [tuple(s.img_shape) for s in out['data_samples']] == [(33, 20), (16, 70)]
        torch.testing.assert_close(out['inputs'][1, :, :, :16, :70], inputs[1])

    def test_stacked_tensor_input(self) -> None:
        out = ChangeDataPreprocessor()(dict(inputs=torch.ones(3, 2, 1, 4, 4)))
        assert out['inputs'].shape == (3, 2, 1, 4, 4)

    def test_batch_augments_only_in_training(self) -> None:

        class AddOne(torch.nn.Module):

            def forward(self, inputs, data_samples):
                return inputs + 1, data_samples

        pre = ChangeDataPreprocessor()
        pre.batch_augments = ModuleList([AddOne()])
        data = dict(inputs=[torch.zeros(2, 1, 2, 2)])
        assert torch.all(pre(dict(data), training=True)['inputs'] == 1)
        assert torch.all(pre(dict(data), training=False)['inputs'] == 0)


class TestLabelsPaddedForTrainingOnly:
    """mmseg's rule: labels are padded in training; at test time they stay as they are."""

    @staticmethod
    def batch(training: bool) -> dict:
        pre = ChangeDataPreprocessor(mean=[0.] * 3, std=[1.] * 3, size_divisor=32,
                                     seg_pad_val=255)
        samples = [make_sample(250, 250, semantic=True), make_sample(256, 200, semantic=True)]
        for s in samples:
            h, w = s.img_shape
            s.nodata_mask = PixelData(data=torch.zeros(1, h, w, dtype=torch.bool))
        inputs = [torch.rand(2, 3, 250, 250), torch.rand(2, 3, 256, 200)]
        return pre(dict(inputs=inputs, data_samples=samples), training)

    def test_eval_pads_images_only_and_records_padding(self) -> None:
        out = self.batch(training=False)
        assert out['inputs'].shape == (2, 2, 3, 256, 256)
        for s, (h, w) in zip(out['data_samples'], [(250, 250), (256, 200)]):
            for field in ('gt_sem_seg', 'gt_sem_seg_from', 'gt_sem_seg_to', 'nodata_mask'):
                assert tuple(getattr(s, field).data.shape) == (1, h, w), field
            assert tuple(s.padding_size) == (0, 256 - w, 0, 256 - h)
            assert tuple(s.img_shape) == (h, w)

    def test_training_pads_labels_with_seg_pad_val(self) -> None:
        out = self.batch(training=True)
        for s, (h, w) in zip(out['data_samples'], [(250, 250), (256, 200)]):
            for field, value in (('gt_sem_seg', 1), ('gt_sem_seg_from', 2),
                                 ('gt_sem_seg_to', 3)):
                label = getattr(s, field).data
                assert tuple(label.shape) == (1, 256, 256)
                assert torch.all(label[:, :h, :w] == value)
                assert torch.all(label[:, h:] == 255) and torch.all(label[:, :, w:] == 255)
            assert tuple(s.nodata_mask.data.shape) == (1, h, w)  # never padded

    def test_training_rejects_labels_off_the_image_grid(self) -> None:
        pre = ChangeDataPreprocessor(size_divisor=32)
        sample = make_sample(40, 40)
        with pytest.raises(ValueError, match='same geometric transforms'):
            pre(dict(inputs=[torch.rand(2, 3, 20, 20)], data_samples=[sample]), True)
