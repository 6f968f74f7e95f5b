"""Detection through the KD core: DenseDetectionView with tiny mmdet RetinaNets."""
import pytest
import torch
import torch.nn.functional as F

from conftest import save_checkpoint

NUM_CLASSES = 8


def tiny_retinanet(width=8, num_classes=NUM_CLASSES, ratios=(0.5, 1.0, 2.0)):
    """A RetinaNet with a ResNet-18 of ``width`` base channels, 16-channel FPN."""
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                               pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, base_channels=width, num_stages=4,
                      out_indices=(1, 2, 3), norm_cfg=dict(type='BN'), style='pytorch'),
        neck=dict(type='FPN', in_channels=[2 * width, 4 * width, 8 * width], out_channels=16,
                  start_level=0, add_extra_convs='on_output', num_outs=4),
        bbox_head=dict(
            type='RetinaHead', num_classes=num_classes, in_channels=16, stacked_convs=1,
            feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=1, ratios=list(ratios),
                                  strides=[8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                     min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
                       debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=20))


@pytest.fixture
def det_teachers(tmp_path):
    return [dict(name=f't{w}', config=tiny_retinanet(w),
                 checkpoint=save_checkpoint(tiny_retinanet(w), tmp_path / f'{w}.pth', w))
            for w in (12, 8)]


def tiny_dense_detector(head_type, width=8, num_classes=NUM_CLASSES):
    """An anchor-free FCOS or a one-anchor ATSS / GFL detector on the tiny RetinaNet's
    backbone and FPN: class scores of shape ``[B, C, H, W]`` per level, like a
    RetinaNet with one anchor per location."""
    base = tiny_retinanet(width, num_classes)
    head = dict(type=head_type, num_classes=num_classes, in_channels=16, stacked_convs=1,
                feat_channels=16, norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
    assigner = dict(type='ATSSAssigner', topk=9)
    anchors = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                   scales_per_octave=1, strides=[8, 16, 32, 64])
    if head_type == 'FCOSHead':
        head.update(strides=[8, 16, 32, 64], regress_ranges=((-1, 32), (32, 64), (64, 128),
                                                              (128, 1e8)),
                    loss_bbox=dict(type='IoULoss', loss_weight=1.0))
        assigner = dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                        min_pos_iou=0, ignore_iof_thr=-1)  # unused by FCOS, as in mmdet
    elif head_type == 'ATSSHead':
        head.update(anchor_generator=anchors, bbox_coder=base['bbox_head']['bbox_coder'],
                    loss_bbox=dict(type='GIoULoss', loss_weight=2.0))
    else:  # GFLHead
        head.update(anchor_generator=anchors, reg_max=8,
                    loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0,
                                  loss_weight=1.0),
                    loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
                    loss_bbox=dict(type='GIoULoss', loss_weight=2.0))
    return dict(base, type={'FCOSHead': 'FCOS', 'ATSSHead': 'ATSS', 'GFLHead': 'GFL'}[head_type],
                bbox_head=head, train_cfg=dict(assigner=assigner, allowed_border=-1,
                                               pos_weight=-1, debug=False))


def det_distiller(teachers, student=None, **kwargs):
    from mmkd_ext.distillers import MultiTeacherDistiller
    kwargs.setdefault('logit_kd', dict(type='SigmoidKLDivergence', temperature=1.0, weight=1.0))
    kwargs.setdefault('feature_kd', dict(weight=1.0))
    torch.manual_seed(0)
    model = MultiTeacherDistiller(student=student or tiny_retinanet(8), teachers=teachers,
                                  probe_shape=(3, 64, 64), **kwargs)
    model.train()
    return model


def det_batch(model, batch_size=2, size=64, seed=0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    images, samples = [], []
    for i in range(batch_size):
        images.append(torch.randint(0, 256, (3, size, size), generator=g).float())
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1.0, 1.0)))
        boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 20.0, 60.0, 50.0]])[:i + 1]
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([1, 5])[:i + 1])
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
    return data['inputs'], data['data_samples']


def test_sigmoid_kl_matches_the_bernoulli_formula():
    from mmkd_ext.losses import SigmoidKLDivergence
    s, t = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    p, q = torch.sigmoid(s / 2), torch.sigmoid(t / 2)
    expected = (q * (q / p).log() + (1 - q) * ((1 - q) / (1 - p)).log()).sum(1) * 4
    assert torch.allclose(SigmoidKLDivergence(temperature=2.0)(s, t), expected, atol=1e-5)
    assert SigmoidKLDivergence()(t, t).abs().max() < 1e-6


def test_kd_batch_has_per_image_terms_for_every_teacher(det_teachers):
    model = det_distiller(det_teachers)
    inputs, samples = det_batch(model)
    batch, student_losses = model.compute_kd_batch(inputs, samples,
                                                  frozenset({'teacher_loss', 'student_loss'}))
    assert batch.student_logits.shape == (2, NUM_CLASSES)
    assert batch.teacher_logits.shape == (2, 2, NUM_CLASSES)
    assert batch.logit_kd.shape == batch.feature_kd.shape == batch.teacher_loss.shape == (2, 2)
    assert batch.student_loss.shape == (2, )
    assert len(batch.student_features) == 4  # every FPN level
    assert {'loss_cls', 'loss_bbox'} <= set(student_losses)
    losses = model.loss(inputs, samples)
    total = sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert model.student.bbox_head.retina_cls.weight.grad.abs().sum() > 0
    assert all(p.grad is None for t in model.teachers for p in t.parameters())


def test_head_kd_is_the_mean_over_locations_of_the_sigmoid_kl(det_teachers):
    from mmkd_ext.losses import SigmoidKLDivergence
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


def test_incompatible_heads_are_refused_unless_only_features_are_distilled(tmp_path):
    other = tiny_retinanet(8, ratios=(1.0, ))  # one anchor per location
    teacher = [dict(name='one_anchor', config=other,
                    checkpoint=save_checkpoint(other, tmp_path / 'o.pth'))]
    with pytest.raises(ValueError, match='Align the configs, or distil features only'):
        det_distiller(teacher)
    det_distiller(teacher, logit_kd=None)  # feature KD only: fine
    more_classes = tiny_retinanet(8, num_classes=5)
    with pytest.raises(ValueError, match='share the label set'):
        det_distiller([dict(config=more_classes,
                            checkpoint=save_checkpoint(more_classes, tmp_path / 'c.pth'))],
                      logit_kd=None)


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
    total = sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if 'loss' in k)
    total.backward()
    head_weights = [p for n, p in model.student.bbox_head.named_parameters() if 'cls' in n]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head_weights)


@pytest.mark.parametrize('weighting', [
    dict(type='UniformWeighting'), dict(type='EntropyWeighting'),
    dict(type='ConfidenceWeighting'), dict(type='RLAgentWeighting', warmup_epochs=0),
    dict(type='MetaWeightNet', batch_size=2)])
def test_every_weighting_runs_on_detection(weighting, det_teachers):
    model = det_distiller(det_teachers, weighting=weighting)
    if weighting['type'] == 'RLAgentWeighting':
        model.weighting.begin_step(0.0, seed=0)
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    weights = model.last_step.weights
    assert weights.logit.shape == (2, 2) and torch.isfinite(losses['loss_kd'])
    if weighting['type'] != 'EntropyWeighting':
        assert torch.allclose(weights.logit.sum(1), torch.ones(2), atol=1e-5)


def test_mmkd_hypergradient_runs_through_a_detector(det_teachers):
    from mmkd_ext.hooks import MetaWeightHook
    model = det_distiller(det_teachers, weighting=dict(type='MetaWeightNet', batch_size=2))
    optimizer = torch.optim.SGD([p for n, p in model.named_parameters()
                                 if not n.startswith('weighting.')], lr=0.01, momentum=0.9)
    inputs, samples = det_batch(model)
    outer = MetaWeightHook().hypergradient(model, optimizer, inputs, samples)
    assert outer > 0
    grads = [p.grad for p in model.weighting.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_hard_images_are_those_with_a_missed_class():
    from mmkd_ext.task_views import DenseDetectionView
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


def tiny_faster_rcnn(width=8, num_classes=NUM_CLASSES):
    """A Faster R-CNN with the tiny RetinaNet's backbone and FPN."""
    base = tiny_retinanet(width)
    return dict(
        type='FasterRCNN', data_preprocessor=base['data_preprocessor'],
        backbone=base['backbone'], neck=base['neck'],
        rpn_head=dict(
            type='RPNHead', in_channels=16, feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', scales=[4], ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=7,
                                                   sampling_ratio=0),
                                    out_channels=16, featmap_strides=[8, 16, 32, 64]),
            bbox_head=dict(type='Shared2FCBBoxHead', in_channels=16, fc_out_channels=32,
                           roi_feat_size=7, num_classes=num_classes,
                           bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                                           target_means=[0., 0., 0., 0.],
                                           target_stds=[0.1, 0.1, 0.2, 0.2]),
                           reg_class_agnostic=False,
                           loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=1.0),
                           loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
        train_cfg=dict(
            rpn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3,
                                   min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
                     sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5,
                                  neg_pos_ub=-1, add_gt_as_proposals=False),
                     allowed_border=-1, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=200, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7),
                              min_bbox_size=0),
            rcnn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                    min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1),
                      sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25,
                                   neg_pos_ub=-1, add_gt_as_proposals=True),
                      pos_weight=-1, debug=False)),
        test_cfg=dict(
            rpn=dict(nms_pre=200, max_per_img=100, nms=dict(type='nms', iou_threshold=0.7),
                     min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=20)))


def test_faster_rcnn_distils_rpn_objectness_and_fpn_features(tmp_path):
    from mmkd_ext.distillers import MultiTeacherDistiller
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


def test_head_kd_can_weight_locations_by_teacher_confidence():
    from mmkd_ext.losses import SigmoidKLDivergence
    from mmkd_ext.task_views import DenseDetectionView
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
