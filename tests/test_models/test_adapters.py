import pytest
import torch

from mmkd_ext.models.adapters import ConvAdapter


@pytest.mark.parametrize('kind', ['conv1x1', 'convs'])
def test_channels_and_pooling_of_the_larger_map(kind):
    adapter = ConvAdapter(8, 32, kind=kind, spatial='pool')
    s, t = adapter(torch.randn(2, 8, 8, 8), torch.randn(2, 32, 2, 2))
    assert s.shape == t.shape == (2, 32, 2, 2)
    # Teacher larger than the student: the teacher map is pooled instead.
    t_big = torch.randn(2, 32, 16, 16)
    s, t = adapter(torch.randn(2, 8, 4, 4), t_big)
    assert s.shape == t.shape == (2, 32, 4, 4)
    assert torch.allclose(t, torch.nn.functional.avg_pool2d(t_big, 4), atol=1e-6)


def test_bilinear_upsamples_the_smaller_map():
    adapter = ConvAdapter(4, 6, spatial='bilinear')
    s, t = adapter(torch.randn(1, 4, 2, 2), torch.randn(1, 6, 8, 8))
    assert s.shape == t.shape == (1, 6, 8, 8)


def test_adapter_trains():
    adapter = ConvAdapter(4, 6)
    s, t = adapter(torch.randn(2, 4, 3, 3), torch.randn(2, 6, 3, 3))
    (s - t).pow(2).mean().backward()
    assert all(p.grad is not None for p in adapter.parameters())


def test_bad_options_are_named():
    with pytest.raises(ValueError, match='kind'):
        ConvAdapter(1, 1, kind='mlp')
    with pytest.raises(ValueError, match='spatial'):
        ConvAdapter(1, 1, spatial='nearest')
