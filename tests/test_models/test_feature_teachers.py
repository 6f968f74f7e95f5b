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
    teachers = [_detector_entry(tmp_path), _classifier_entry(tmp_path)]
    model = det_distiller(teachers, feature_kd=LAYERS,
                          weighting=dict(type='FixedWeighting', weights=[1.0]))
    assert model.teacher_pool.feature_only == [False, True]
    assert len(model.adapters) == 2  # one per teacher, the classifier's included
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    batch = model.last_step.batch
    # The weighting sees the detector alone; the classifier has a feature term only.
    assert batch.teacher_logits.shape[0] == 1 and batch.logit_kd.shape == (2, 1)
    assert batch.feature_kd.shape == batch.feature_teacher_kd.shape == (2, 1)
    # beta * (K_task / K_all * sum_k wF FeatKD_k + 1 / K_all * sum_j FeatKD_j)
    expected = 0.5 * batch.feature_kd[:, 0] + 0.5 * batch.feature_teacher_kd[:, 0]
    torch.testing.assert_close(losses['loss_feat'], expected.mean())
    assert losses['cls.w_feat'] == 0.5 and losses['det.w_feat'] == 0.5
    assert {'det.kd', 'det.w_logit', 'cls.feat'} <= set(losses)
    assert not any(k.startswith('cls.') and k.endswith(('kd', 'w_logit')) for k in losses)
    # The classifier's term reaches the student's backbone through its adapter.
    batch, _ = model.compute_kd_batch(inputs, samples)
    params = [*model.adapters[1].parameters(), model.student.backbone.conv1.weight]
    grads = torch.autograd.grad(batch.feature_teacher_kd.sum(), params)
    assert all(g.abs().sum() > 0 for g in grads)


def test_a_pool_of_feature_teachers_only_or_without_feature_kd_is_refused(tmp_path):
    with pytest.raises(ValueError, match='Add at least one mmdet teacher'):
        det_distiller([_classifier_entry(tmp_path)], feature_kd=LAYERS)
    with pytest.raises(ValueError, match=r"Teachers \['cls'\] are models of another library"
                       ".*feature KD is off"):
        det_distiller([_detector_entry(tmp_path), _classifier_entry(tmp_path)],
                      feature_kd=None)
