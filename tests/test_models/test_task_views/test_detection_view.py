"""Detection through the KD core: DenseDetectionView with tiny mmdet RetinaNets."""
import pytest
import torch

from conftest import save_checkpoint
from tiny_models import DET_CLASSES as NUM_CLASSES
from tiny_models import (det_batch, det_distiller, per_image_kd_batch, tiny_dense_detector,
                         tiny_faster_rcnn, tiny_retinanet)


def test_sigmoid_kl_matches_the_bernoulli_formula():
    from mmkd_ext.models.losses import SigmoidKLDivergence
    s, t = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    p, q = torch.sigmoid(s / 2), torch.sigmoid(t / 2)
    expected = (q * (q / p).log() + (1 - q) * ((1 - q) / (1 - p)).log()).sum(1) * 4
    assert torch.allclose(SigmoidKLDivergence(temperature=2.0)(s, t), expected, atol=1e-5)
    assert SigmoidKLDivergence()(t, t).abs().max() < 1e-6


def test_kd_batch_has_per_image_terms_for_every_teacher(det_teachers):
    model = det_distiller(det_teachers)
    inputs, samples = det_batch(model)
    batch, student_losses = per_image_kd_batch(model, inputs, samples, NUM_CLASSES)
    assert len(batch.student_features) == 4  # every FPN level
    assert {'loss_cls', 'loss_bbox'} <= set(student_losses)
    losses = model.loss(inputs, samples)
    total = sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert model.student.bbox_head.retina_cls.weight.grad.abs().sum() > 0
    assert all(p.grad is None for t in model.teachers for p in t.parameters())


def test_head_kd_is_the_mean_over_locations_of_the_sigmoid_kl(det_teachers):
    from mmkd_ext.models.losses import SigmoidKLDivergence
    model = det_distiller(det_teachers)
    inputs, samples = det_batch(model)
    with torch.no_grad():
        s_cls = model.student(inputs, samples, mode='tensor')[0]
        t_cls = det_teachers and model.teachers[0](inputs, samples, mode='tensor')[0]
    per_image = []
    for i in range(2):
        terms = []
        for s, t in zip(s_cls, t_cls):
            s = s[i].reshape(3, NUM_CLASSES, -1)  # 3 anchors per location
            t = t[i].reshape(3, NUM_CLASSES, -1)
            q, p = t.sigmoid(), s.sigmoid()
            kl = q * (q / p).log() + (1 - q) * ((1 - q) / (1 - p)).log()
            terms.append(kl.sum(1).flatten())
        per_image.append(torch.cat(terms).mean())
    got = model.task_view.logit_kd(SigmoidKLDivergence(), (s_cls, ), (t_cls, ), samples)
    assert torch.allclose(got, torch.stack(per_image), rtol=1e-4)


def test_task_loss_proxy_is_low_for_scores_that_match_the_boxes(det_teachers):
    model = det_distiller(det_teachers)
    view = model.task_view
    inputs, samples = det_batch(model)
    levels = model.student(inputs, samples, mode='tensor')[0]
    perfect = []
    for x in levels:
        b, _, h, w = x.shape
        stride = 64 / h
        target = view._centre_targets(samples, h, w, stride, stride,
                                      x.reshape(b, 3, NUM_CLASSES, -1))
        perfect.append((target[:, None].expand(b, 3, -1, -1) * 20 - 10).reshape(x.shape))
    good = view.sample_loss((perfect, ), samples)
    bad = view.sample_loss(([-p for p in perfect], ), samples)
    assert good.shape == (2, ) and (good < 1e-3).all() and (bad > 1).all()


@pytest.mark.parametrize('num_classes', [NUM_CLASSES, 1])  # 1: an RPN's objectness
def test_centre_targets_mark_the_classes_of_the_boxes_containing_each_centre(
        det_teachers, num_classes):
    import copy
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData
    model = det_distiller(det_teachers)
    view = copy.copy(model.task_view)
    view.num_classes = num_classes
    _, samples = det_batch(model)
    empty = DetDataSample(metainfo=samples[0].metainfo)
    empty.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.zeros(0, 4)),
                                      labels=torch.zeros(0, dtype=torch.long))
    samples = [samples[0], empty, samples[1]]  # an image without boxes in the middle
    # 64 px padded input, an 8 x 8 map: centres at 4, 12, ..., 60 px.
    got = view._centre_targets(samples, 8, 8, 8.0, 8.0, torch.zeros(1))
    assert got.shape == (3, num_classes, 64)
    centres = torch.arange(8) * 8 + 4.0
    for i, sample in enumerate(samples):
        expected = torch.zeros(num_classes, 8, 8)
        boxes = sample.gt_instances.bboxes
        boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), sample.gt_instances.labels.tolist()):
            rows = (centres >= y1) & (centres <= y2)
            cols = (centres >= x1) & (centres <= x2)
            expected[label % num_classes] += (rows[:, None] & cols[None]).float()
        assert torch.equal(got[i], expected.clamp_max(1).reshape(num_classes, 64))
    assert got[0].sum() > 0 and got[1].sum() == 0 and got[2].sum() > 0


def test_sample_losses_of_several_heads_equal_each_heads_own(det_teachers):
    model = det_distiller(det_teachers)
    view = model.task_view
    inputs, samples = det_batch(model)
    with torch.no_grad():
        heads = [view.teacher_forward(m, inputs, samples)
                 for m in (model.student, *model.teachers)]
    together = view.sample_losses(heads, samples)
    assert together.shape == (2, 3)
    for k, head in enumerate(heads):
        assert torch.allclose(together[:, k], view.sample_loss(head, samples))


def test_a_teacher_of_another_anchor_layout_distils_its_best_anchor(tmp_path):
    """A teacher of one anchor per location into the 3-anchor student: the student's
    best anchor per location and class is distilled (the rule's own hand checks are in
    test_dense_head_layouts.py)."""
    other = tiny_retinanet(8, ratios=(1.0, ))
    teacher = [dict(name='one_anchor', config=other,
                    checkpoint=save_checkpoint(other, tmp_path / 'o.pth'))]
    model = det_distiller(teacher)
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    assert (model.last_step.batch.logit_kd > 0).all()
    grad = torch.autograd.grad(losses['loss_kd'], model.student.bbox_head.retina_cls.weight)[0]
    assert grad.abs().sum() > 0


@pytest.mark.parametrize('student_head', ['RetinaHead', 'FCOSHead', 'ATSSHead', 'GFLHead'])
def test_fcos_and_gfl_teachers_distil_into_any_dense_head_of_the_same_layout(
        student_head, tmp_path):
    """Teachers of different dense-head families (anchor-free FCOS, GFL with its
    quality scores) distil into a student of each family with one prior per location."""
    teachers = [dict(name=head, config=tiny_dense_detector(head, 12),
                     checkpoint=save_checkpoint(tiny_dense_detector(head, 12),
                                                tmp_path / f'{head}.pth', 3))
                for head in ('FCOSHead', 'GFLHead')]
    student = (tiny_retinanet(8, ratios=(1.0, )) if student_head == 'RetinaHead'
               else tiny_dense_detector(student_head, 8))
    model = det_distiller(teachers, student=student,
                          weighting=dict(type='ConfidenceWeighting'))
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    batch = model.last_step.batch
    assert batch.logit_kd.shape == batch.teacher_loss.shape == (2, 2)
    assert (batch.logit_kd > 0).all() and torch.isfinite(batch.teacher_loss).all()
    assert batch.teacher_logits.shape == (2, 2, NUM_CLASSES)
    head_weights = [p for n, p in model.student.bbox_head.named_parameters() if 'cls' in n]
    kd_grads = torch.autograd.grad(losses['loss_kd'], head_weights, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in kd_grads)  # head KD alone


def test_hard_images_are_those_with_a_missed_class():
    from mmkd_ext.models.task_views import DenseDetectionView
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    view = DenseDetectionView()
    samples = []
    for labels in ([1], [2], []):
        s = DetDataSample()
        s.gt_instances = InstanceData(bboxes=torch.zeros(len(labels), 4),
                                      labels=torch.tensor(labels, dtype=torch.long))
        samples.append(s)
    logits = torch.full((3, 4), -3.0)
    logits[0, 1] = 2.0  # image 0 finds its class; image 1 misses it; image 2 has none
    assert view.hard_samples(logits, samples).tolist() == [False, True, False]


def test_faster_rcnn_distils_rpn_objectness_and_fpn_features(tmp_path):
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    teachers = [dict(name=f'f{w}', config=tiny_faster_rcnn(w),
                     checkpoint=save_checkpoint(tiny_faster_rcnn(w), tmp_path / f'{w}.pth', w))
                for w in (12, 8)]
    torch.manual_seed(0)
    model = MultiTeacherDistiller(
        student=tiny_faster_rcnn(8), teachers=teachers, probe_shape=(3, 64, 64),
        logit_kd=dict(type='SigmoidKLDivergence', weight=1.0), feature_kd=dict(weight=1.0),
        weighting=dict(type='ConfidenceWeighting'))
    model.train()
    assert model.task_view.head_module == 'rpn_head'
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    batch = model.last_step.batch
    assert batch.student_logits.shape == (2, 1) and batch.logit_kd.shape == (2, 2)
    assert len(batch.student_features) == 4
    assert {'student.loss_rpn_cls', 'student.loss_cls', 'loss_kd', 'loss_feat'} <= set(losses)
    assert (batch.logit_kd > 0).all() and torch.isfinite(batch.teacher_loss).all()
    distill = model(inputs, samples, mode='distill')  # through the RPN, no RoI head
    assert torch.allclose(distill['loss_kd'], losses['loss_kd'], rtol=1e-5)


def test_head_kd_can_weight_locations_by_teacher_confidence():
    from mmkd_ext.models.losses import SigmoidKLDivergence
    from mmkd_ext.models.task_views import DenseDetectionView
    view = DenseDetectionView(weight_by_teacher_score=True)
    view.num_classes = 2
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(2, 3 * 2, 4, 4, generator=g), torch.randn(2, 3 * 2, 2, 2, generator=g)]
    teacher = [torch.randn(2, 3 * 2, 4, 4, generator=g), torch.randn(2, 3 * 2, 2, 2, generator=g)]
    got = view.logit_kd(SigmoidKLDivergence(), (student, ), (teacher, ), None)
    expected = []
    for i in range(2):
        terms, weights = [], []
        for s, t in zip(student, teacher):
            s, t = s[i].reshape(3, 2, -1), t[i].reshape(3, 2, -1)  # anchors, classes, HW
            q, p = t.sigmoid(), s.sigmoid()
            terms.append((q * (q / p).log() + (1 - q) * ((1 - q) / (1 - p)).log()).sum(1).flatten())
            weights.append(q.amax(1).flatten())  # the teacher's best class probability
        terms, weights = torch.cat(terms), torch.cat(weights)
        expected.append((terms * weights).sum() / weights.sum())
    assert torch.allclose(got, torch.stack(expected), rtol=1e-5)
