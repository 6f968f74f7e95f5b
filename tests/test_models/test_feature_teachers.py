"""Teachers of another task (a model of another library): feature teachers, which
distil features only with the equal share 1/K_all of the feature weight, while the
weighting shares the rest among the teachers of the student's task."""
import pytest
import torch

from conftest import save_checkpoint, tiny_classifier
from tiny_models import det_batch, det_distiller, tiny_retinanet

LAYERS = dict(layers=['backbone[-1]'], weight=1.0)


def _classifier_entry(tmp_path, name='cls'):
    """An mmpretrain ResNet classifier (4 base channels, last map of 32 channels)."""
    classifier = tiny_classifier(4)
    return dict(name=name, config=classifier,
                checkpoint=save_checkpoint(classifier, tmp_path / f'{name}.pth', 5))


def _detector_entry(tmp_path, name='det', width=12):
    detector = tiny_retinanet(width)
    return dict(name=name, config=detector,
                checkpoint=save_checkpoint(detector, tmp_path / f'{name}.pth', 6))


def test_a_classifier_teaches_a_detector_its_backbone_features(tmp_path):
    """The classifier first in the pool, two detection teachers after it: the weighting
    (fixed 3:1) weighs the detectors, the classifier has the share 1/3."""
    teachers = [_classifier_entry(tmp_path), _detector_entry(tmp_path, 'det_a', 12),
                _detector_entry(tmp_path, 'det_b', 10)]
    model = det_distiller(teachers, feature_kd=LAYERS,
                          weighting=dict(type='FixedWeighting', weights=[3.0, 1.0]))
    assert model.teacher_pool.feature_only == [True, False, False]
    assert model.teacher_pool.task_indices == [1, 2]
    assert len(model.adapters) == 3  # one per teacher, the classifier's included
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    batch = model.last_step.batch
    # The weighting sees the detectors alone; the classifier has a feature term only.
    assert batch.teacher_logits.shape[0] == 2 and batch.logit_kd.shape == (2, 2)
    assert batch.feature_kd.shape == (2, 2) and batch.feature_teacher_kd.shape == (2, 1)
    # beta * (K_task / K_all * sum_k wF FeatKD_k + 1 / K_all * sum_j FeatKD_j)
    task_term = 0.75 * batch.feature_kd[:, 0] + 0.25 * batch.feature_kd[:, 1]
    expected = 2 / 3 * task_term + 1 / 3 * batch.feature_teacher_kd[:, 0]
    torch.testing.assert_close(losses['loss_feat'], expected.mean())
    kd = 0.75 * batch.logit_kd[:, 0] + 0.25 * batch.logit_kd[:, 1]
    torch.testing.assert_close(losses['loss_kd'], kd.mean())
    torch.testing.assert_close(losses['cls.w_feat'], torch.tensor(1 / 3))
    torch.testing.assert_close(losses['det_a.w_feat'], torch.tensor(2 / 3 * 0.75))
    torch.testing.assert_close(losses['det_b.w_logit'], torch.tensor(0.25))
    torch.testing.assert_close(losses['det_a.feat'], batch.feature_kd[:, 0].mean())
    torch.testing.assert_close(losses['cls.feat'], batch.feature_teacher_kd[:, 0].mean())
    assert not any(k.startswith('cls.') and k.endswith(('kd', 'w_logit')) for k in losses)
    # The classifier's term reaches the student's backbone through its adapter.
    batch, _ = model.compute_kd_batch(inputs, samples)
    params = [*model.adapters[0].parameters(), model.student.backbone.conv1.weight]
    grads = torch.autograd.grad(batch.feature_teacher_kd.sum(), params)
    assert all(g.abs().sum() > 0 for g in grads)


def test_a_pool_of_feature_teachers_only_or_without_feature_kd_is_refused(tmp_path):
    with pytest.raises(ValueError, match='Add at least one mmdet teacher'):
        det_distiller([_classifier_entry(tmp_path)], feature_kd=LAYERS)
    with pytest.raises(ValueError, match=r"Teachers \['cls'\] are models of another library"
                       ".*feature KD is off"):
        det_distiller([_detector_entry(tmp_path), _classifier_entry(tmp_path)],
                      feature_kd=None)
