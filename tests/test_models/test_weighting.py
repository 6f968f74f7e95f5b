import math

import pytest
import torch

from mmkd_ext.structures import KDBatch
from mmkd_ext.models.weighting import (ConfidenceWeighting, EntropyWeighting, FixedWeighting,
                                UniformWeighting)


def make_batch(teacher_logits, teacher_loss=None):
    teacher_logits = torch.as_tensor(teacher_logits, dtype=torch.float32)
    k, b, c = teacher_logits.shape
    return KDBatch(student_logits=torch.zeros(b, c), teacher_logits=teacher_logits,
                   logit_kd=torch.zeros(b, k),
                   teacher_loss=None if teacher_loss is None else torch.as_tensor(teacher_loss))


def entropy(p):
    return -sum(x * math.log(x) for x in p if x > 0)


@pytest.mark.parametrize('k', [1, 2, 5])
def test_uniform_rows_sum_to_one(k):
    w = UniformWeighting()(make_batch(torch.randn(k, 4, 3)))
    assert w.logit.shape == (4, k)
    assert torch.allclose(w.logit.sum(1), torch.ones(4))
    assert torch.equal(w.logit, w.feature)


def test_fixed_normalises_and_checks_teacher_count():
    weighting = FixedWeighting(weights=[3, 1], feature_weights=[1, 1])
    w = weighting(make_batch(torch.randn(2, 3, 4)))
    assert torch.allclose(w.logit, torch.tensor([[0.75, 0.25]] * 3))
    assert torch.allclose(w.feature, torch.tensor([[0.5, 0.5]] * 3))
    with pytest.raises(ValueError, match='3 teachers'):
        weighting.setup(num_teachers=3, num_classes=4)
    with pytest.raises(ValueError, match='non-negative'):
        FixedWeighting(weights=[1, -1])


def test_entropy_weights_match_hand_computation():
    # Teacher 0 is confident on sample 0, teacher 1 is uniform.
    logits = [[[4.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]]
    e4 = math.exp(4)
    h0 = entropy([e4 / (e4 + 2), 1 / (e4 + 2), 1 / (e4 + 2)])
    h1 = math.log(3)
    expected = [(1 - h0 / (h0 + h1)) / 2, (1 - h1 / (h0 + h1)) / 2]
    w = EntropyWeighting()(make_batch(logits)).logit
    assert w[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert w[0, 0] > w[0, 1]
    # normalize=True divides by K - 1: rows sum to 1.
    w_norm = EntropyWeighting(normalize=True)(make_batch(logits)).logit
    assert w_norm.sum().item() == pytest.approx(1.0, rel=1e-6)


def test_confidence_weights_match_hand_computation_and_sum_to_one():
    losses = torch.tensor([[0.1, 2.0, 1.0], [3.0, 3.0, 3.0]])
    w = ConfidenceWeighting()(make_batch(torch.zeros(3, 2, 4), teacher_loss=losses)).logit
    soft = torch.softmax(losses, dim=1)
    assert torch.allclose(w, (1 - soft) / 2)
    assert torch.allclose(w.sum(1), torch.ones(2))
    assert w[0].argmax() == 0  # lowest loss, highest weight
    assert torch.allclose(w[1], torch.full((3, ), 1 / 3))
    assert 'teacher_loss' in ConfidenceWeighting.requires


def test_single_teacher_gets_weight_one():
    batch = make_batch(torch.randn(1, 4, 3), teacher_loss=torch.rand(4, 1))
    for weighting in (EntropyWeighting(), ConfidenceWeighting()):
        assert torch.equal(weighting(batch).logit, torch.ones(4, 1))
