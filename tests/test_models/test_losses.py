import math

import pytest
import torch

from mmkd_ext.models.losses import FeatureMSE, KLDivergence


def test_kl_matches_hand_computed_value():
    # T = 2: p_s = softmax([0, 0] / 2) = [.5, .5]; p_t = softmax([2, 0] / 2).
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0]])
    e = math.exp(1.0)
    pt = [e / (e + 1), 1 / (e + 1)]
    expected = 4 * sum(p * math.log(p / 0.5) for p in pt)
    out = KLDivergence(temperature=2.0)(student, teacher)
    assert out.shape == (1, )
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_zero_for_equal_logits_and_per_position_for_dense_maps():
    logits = torch.randn(2, 5, 3, 4)
    out = KLDivergence(temperature=4.0)(logits, logits.clone())
    assert out.shape == (2, 3, 4)
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6)


def test_kl_gradient_scale_is_kept_by_t_squared():
    torch.manual_seed(0)
    s = torch.randn(8, 10, requires_grad=True)
    t = torch.randn(8, 10)
    KLDivergence(temperature=1.0)(s, t).sum().backward()
    g1 = s.grad.norm().item()
    s.grad = None
    KLDivergence(temperature=8.0)(s, t).sum().backward()
    # T^2 scaling makes the gradient shrink like 1/T, not 1/T^2.
    assert 0.02 < s.grad.norm().item() / g1 < 1.0


def test_kl_rejects_shape_mismatch_and_bad_temperature():
    with pytest.raises(ValueError, match='equal shapes'):
        KLDivergence()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match='temperature'):
        KLDivergence(temperature=0)


def test_feature_mse_hand_values():
    s = torch.zeros(2, 1, 2, 2)
    t = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    t[1] = 0
    out = FeatureMSE()(s, t)
    assert out.tolist() == pytest.approx([(1 + 4 + 9 + 16) / 4, 0.0])


def test_feature_mse_normalized_ignores_scale_and_offset():
    x = torch.randn(3, 4, 5, 5)
    out = FeatureMSE(normalize=True)(x, 7 * x + 3)
    assert torch.allclose(out, torch.zeros(3), atol=1e-5)
    with pytest.raises(ValueError, match='adapter'):
        FeatureMSE()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 4, 4))
