"""Tests of VMamba's four-direction cross-scan and cross-merge."""
import pytest
import torch

from mmrs.models.layers import cross_merge, cross_scan


@pytest.fixture
def feature_map() -> torch.Tensor:
    """(B=2, C=3, H=2, W=3): non-square so that rows and columns cannot be confused."""
    return torch.randn(2, 3, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


class TestCrossScan:

    def test_order_of_directions(self) -> None:
        x = torch.arange(6.).view(1, 1, 2, 3)  # [[0, 1, 2], [3, 4, 5]]
        y = cross_scan(x)
        assert y.shape == (1, 4, 1, 6)
        assert y[0, :, 0].tolist() == [
            [0, 1, 2, 3, 4, 5],  # row-major
            [0, 3, 1, 4, 2, 5],  # column-major
            [5, 4, 3, 2, 1, 0],  # row-major reversed
            [5, 2, 4, 1, 3, 0],  # column-major reversed
        ]

    def test_channel_last_layouts(self, feature_map) -> None:
        expected = cross_scan(feature_map)  # (B, 4, C, L)
        channel_last = feature_map.permute(0, 2, 3, 1)
        torch.testing.assert_close(cross_scan(channel_last, in_channel_first=False), expected)
        torch.testing.assert_close(cross_scan(feature_map, out_channel_first=False),
                                   expected.permute(0, 3, 1, 2))
        torch.testing.assert_close(
            cross_scan(channel_last, in_channel_first=False, out_channel_first=False),
            expected.permute(0, 3, 1, 2))

    def test_gradcheck(self, feature_map) -> None:
        assert torch.autograd.gradcheck(cross_scan, (feature_map.requires_grad_(), ))

    def test_rejects_non_maps(self) -> None:
        with pytest.raises(ValueError, match='4-D'):
            cross_scan(torch.zeros(2, 3, 4))


class TestCrossMerge:

    def test_inverts_each_direction(self) -> None:
        x = torch.arange(6.).view(1, 1, 2, 3)
        scans = cross_scan(x).view(1, 4, 1, 2, 3)
        for k in range(4):  # one direction at a time maps back to the row-major map
            only_k = torch.zeros_like(scans)
            only_k[:, k] = scans[:, k]
            assert cross_merge(only_k)[0, 0].tolist() == [0, 1, 2, 3, 4, 5], k

    def test_merge_of_scan_is_four_times_the_map(self, feature_map) -> None:
        b, c, h, w = feature_map.shape
        merged = cross_merge(cross_scan(feature_map).view(b, 4, c, h, w))
        torch.testing.assert_close(merged, 4 * feature_map.view(b, c, h * w))

    def test_is_the_adjoint_of_cross_scan(self, feature_map) -> None:
        b, c, h, w = feature_map.shape
        y = torch.randn(b, 4, c, h, w, dtype=torch.float64)
        lhs = (cross_scan(feature_map) * y.view(b, 4, c, h * w)).sum()
        rhs = (feature_map.view(b, c, h * w) * cross_merge(y)).sum()
        torch.testing.assert_close(lhs, rhs)

    def test_channel_last_layouts(self, feature_map) -> None:
        b, c, h, w = feature_map.shape
        y = torch.randn(b, 4, c, h, w, dtype=torch.float64)
        expected = cross_merge(y)  # (B, C, L)
        y_last = y.view(b, 4, c, h * w).permute(0, 3, 1, 2).reshape(b, h, w, 4, c)
        torch.testing.assert_close(cross_merge(y_last, out_channel_first=False), expected)
        torch.testing.assert_close(cross_merge(y, in_channel_first=False), expected.transpose(1, 2))

    def test_gradcheck(self) -> None:
        y = torch.randn(1, 4, 2, 2, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(cross_merge, (y, ))

    def test_rejects_wrong_direction_count(self) -> None:
        with pytest.raises(ValueError, match='4 directions'):
            cross_merge(torch.zeros(1, 2, 3, 2, 2))
