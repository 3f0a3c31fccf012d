"""Tests of the bitemporal fusion neck and neck chaining."""
import pytest
import torch

from mmrs.models.necks import FeatureFusionNeck, SequentialNeck, fuse_features


@pytest.fixture
def pyramids() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x1 = [torch.randn(2, c, s, s, generator=g) for c, s in ((4, 8), (8, 4))]
    x2 = [torch.randn(2, c, s, s, generator=g) for c, s in ((4, 8), (8, 4))]
    return x1, x2


class TestFeatureFusionNeck:

    @pytest.mark.parametrize('policy, expected', [
        ('diff', lambda a, b: a - b),
        ('abs_diff', lambda a, b: (a - b).abs()),
        ('sum', lambda a, b: a + b),
        ('concat', lambda a, b: torch.cat([a, b], dim=1)),
    ])
    def test_policies(self, pyramids, policy, expected) -> None:
        x1, x2 = pyramids
        out = FeatureFusionNeck(policy=policy)(x1, x2)
        assert len(out) == 2
        for o, a, b in zip(out, x1, x2):
            torch.testing.assert_close(o, expected(a, b))

    def test_known_values(self) -> None:
        a = torch.tensor([1., -2.]).view(1, 2, 1, 1)
        b = torch.tensor([3., 5.]).view(1, 2, 1, 1)
        assert fuse_features(a, b, 'diff').flatten().tolist() == [-2., -7.]
        assert fuse_features(a, b, 'abs_diff').flatten().tolist() == [2., 7.]
        assert fuse_features(a, b, 'sum').flatten().tolist() == [4., 3.]
        assert fuse_features(a, b, 'concat').flatten().tolist() == [1., -2., 3., 5.]

    def test_out_channels(self) -> None:
        assert FeatureFusionNeck('diff', in_channels=[4, 8]).out_channels == [4, 8]
        assert FeatureFusionNeck('concat', in_channels=[4, 8]).out_channels == [8, 16]
        neck = FeatureFusionNeck('concat', in_channels=[4, 8], out_indices=[1])
        assert neck.out_channels == [16]
        assert FeatureFusionNeck('sum').out_channels is None

    def test_out_indices(self, pyramids) -> None:
        x1, x2 = pyramids
        out = FeatureFusionNeck('sum', out_indices=[1])(x1, x2)
        assert len(out) == 1
        torch.testing.assert_close(out[0], x1[1] + x2[1])

    def test_errors(self, pyramids) -> None:
        with pytest.raises(ValueError, match='unknown fusion policy'):
            FeatureFusionNeck(policy='product')
        x1, x2 = pyramids
        with pytest.raises(ValueError, match='feature levels'):
            FeatureFusionNeck()(x1, x2[:1])


class TestSequentialNeck:

    def test_fusion_then_fpn(self, pyramids) -> None:
        x1, x2 = pyramids
        neck = SequentialNeck(necks=[
            dict(type='FeatureFusionNeck', policy='concat'),
            dict(type='mmseg.FPN', in_channels=[8, 16], out_channels=4, num_outs=2),
        ])
        out = neck(x1, x2)
        assert [tuple(o.shape) for o in out] == [(2, 4, 8, 8), (2, 4, 4, 4)]

    def test_empty(self) -> None:
        with pytest.raises(ValueError):
            SequentialNeck(necks=[])
