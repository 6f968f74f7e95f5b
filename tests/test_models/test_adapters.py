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


def test_adapters_take_their_feature_kinds():
    from mmkd_ext.models.adapters import DEFAULT_ADAPTERS, IdentityAdapter, LinearAdapter, \
        TokenAdapter
    assert DEFAULT_ADAPTERS == dict(map='ConvAdapter', tokens='TokenAdapter',
                                    vector='LinearAdapter')
    assert ConvAdapter.kinds == ('map', ) and TokenAdapter.kinds == ('tokens', )
    assert LinearAdapter.kinds == ('vector', )
    assert set(IdentityAdapter.kinds) == {'map', 'tokens', 'vector'}


def test_linear_adapter_maps_vectors():
    from mmkd_ext.models.adapters import LinearAdapter
    adapter = LinearAdapter(2, 3)
    with torch.no_grad():
        adapter.proj.weight.copy_(torch.tensor([[1., 0.], [0., 1.], [1., 1.]]))
        adapter.proj.bias.copy_(torch.tensor([0., 0., 10.]))
    teacher = torch.randn(2, 3)
    s, t = adapter(torch.tensor([[1., 2.], [3., -4.]]), teacher)
    assert torch.equal(s, torch.tensor([[1., 2., 13.], [3., -4., 9.]]))  # no ReLU
    assert t is teacher


def test_token_adapter_maps_channels_token_by_token():
    from mmkd_ext.models.adapters import TokenAdapter
    adapter = TokenAdapter(2, 2)
    with torch.no_grad():
        adapter.proj.weight.copy_(torch.tensor([[0., 1.], [1., 0.]]))  # swap channels
        adapter.proj.bias.zero_()
    student = torch.arange(10.).reshape(1, 2, 5)  # [B, C, N], channels first
    s, t = adapter(student, torch.zeros(1, 2, 5))
    assert torch.equal(s, student.flip(1)) and t.shape == (1, 2, 5)


def test_token_adapter_matches_token_counts_through_the_patch_grid():
    from mmkd_ext.models.adapters import TokenAdapter
    adapter = TokenAdapter(3, 4)
    student = torch.randn(2, 3, 1 + 2 * 2)  # class token + a 2x2 grid
    teacher = torch.randn(2, 4, 2 + 4 * 4)  # class, distillation tokens + a 4x4 grid
    s, t = adapter(student, teacher)
    assert s.shape == t.shape == (2, 4, 1 + 2 * 2)
    assert torch.equal(t[:, :, 0], teacher[:, :, 0])  # the class tokens, compared
    pooled = torch.nn.functional.avg_pool2d(teacher[:, :, 2:].reshape(2, 4, 4, 4), 2)
    assert torch.allclose(t[:, :, 1:], pooled.flatten(2))  # the larger grid pooled
    projected = adapter.proj(student.transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(s, projected)
    # bilinear: the smaller (student) grid upsampled, the teacher's kept.
    s, t = TokenAdapter(3, 4, spatial='bilinear')(student, teacher)
    assert s.shape == t.shape == (2, 4, 1 + 16)
    assert torch.equal(t[:, :, 1:], teacher[:, :, 2:])


def test_token_counts_without_a_square_grid_are_refused_naming_the_fix():
    from mmkd_ext.models.adapters import TokenAdapter
    from mmkd_ext.models.adapters.token_adapter import split_tokens
    assert [split_tokens(n) for n in (196, 197, 198, 10, 7)] == [
        (0, 14), (1, 14), (2, 14), (1, 3), None]
    with pytest.raises(ValueError, match=r"student gives 7 tokens and the other model 5.*"
                       r"img_size / patch_size.*out_type='featmap'"):
        TokenAdapter(2, 2)(torch.randn(1, 2, 7), torch.randn(1, 2, 5))
    with pytest.raises(ValueError, match='spatial'):
        TokenAdapter(2, 2, spatial='nearest')


def test_identity_adapter_passes_any_kind():
    from mmkd_ext.models.adapters import IdentityAdapter
    tokens = torch.randn(2, 4, 5)
    assert IdentityAdapter.checked(tokens, tokens, 'x')(tokens, tokens) == (tokens, tokens)
    with pytest.raises(ValueError, match=r"tokens of shapes \[4, 5\] and \[4, 6\] \(C, N\).*"
                       r"dict\(type='TokenAdapter'\)"):
        IdentityAdapter.checked(tokens, torch.randn(2, 4, 6), 'x')


def test_token_adapter_takes_given_prefix_counts():
    """15 patches + a class token would read as a 4x4 grid; given counts read 1 + 4x4
    for the teacher and the student's 16 as a 4x4 grid without prefix."""
    from mmkd_ext.models.adapters import TokenAdapter
    adapter = TokenAdapter(2, 2, prefix_tokens=(0, 1))
    s, t = adapter(torch.randn(1, 2, 16), torch.randn(1, 2, 1 + 64))
    assert s.shape == t.shape == (1, 2, 16)  # no common prefix, the 8x8 grid pooled
    with pytest.raises(ValueError, match='teacher gives 65 tokens'):
        TokenAdapter(2, 2, prefix_tokens=(0, 2))(torch.randn(1, 2, 16), torch.randn(1, 2, 65))
