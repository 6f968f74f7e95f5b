"""Tiny mmdet and mmseg models, batches and distillers for the unit tests (built in
seconds on a CPU)."""
import torch

DET_CLASSES = 8
SEG_CLASSES = 19
IGNORE = 255


def tiny_distiller(student, teachers, probe_shape, **kwargs):
    """A seeded ``MultiTeacherDistiller`` in training mode, feature KD on by default."""
    from mmkd_ext.models.distillers import MultiTeacherDistiller
    kwargs.setdefault('feature_kd', dict(weight=1.0))
    torch.manual_seed(0)
    model = MultiTeacherDistiller(student=student, teachers=teachers, probe_shape=probe_shape,
                                  **kwargs)
    model.train()
    return model


def tiny_retinanet(width=8, num_classes=DET_CLASSES, ratios=(0.5, 1.0, 2.0)):
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


def tiny_dense_detector(head_type, width=8, num_classes=DET_CLASSES):
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
    """A distiller of a tiny RetinaNet (8 channels) from ``teachers``, sigmoid head KD."""
    kwargs.setdefault('logit_kd', dict(type='SigmoidKLDivergence', temperature=1.0, weight=1.0))
    return tiny_distiller(student or tiny_retinanet(8), teachers, (3, 64, 64), **kwargs)


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


def tiny_faster_rcnn(width=8, num_classes=DET_CLASSES):
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


def tiny_segmentor(width=8, head='PSPHead', output_stride=8, norm='BN',
                   num_classes=SEG_CLASSES):
    """An mmseg EncoderDecoder: a ResNetV1c-18 of ``width`` base channels at output
    stride 8 (dilated last stages) or 16, a PSP / ASPP decode head and an FCN
    auxiliary head."""
    norm_cfg = dict(type=norm, requires_grad=True)
    strides, dilations = ((1, 2, 1, 1), (1, 1, 2, 4)) if output_stride == 8 else \
        ((1, 2, 2, 1), (1, 1, 1, 2))
    decode = dict(type=head, in_channels=8 * width, in_index=3, channels=16,
                  dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm_cfg,
                  align_corners=False,
                  loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
    decode.update(pool_scales=(1, 2, 3, 6)) if head == 'PSPHead' else \
        decode.update(dilations=(1, 6, 12, 18))
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=IGNORE, size=(64, 128)),
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=width, base_channels=width,
                      num_stages=4, out_indices=(0, 1, 2, 3), strides=strides,
                      dilations=dilations, norm_cfg=norm_cfg, norm_eval=False,
                      style='pytorch', contract_dilation=True),
        decode_head=decode,
        auxiliary_head=dict(type='FCNHead', in_channels=4 * width, in_index=2, channels=8,
                            num_convs=1, concat_input=False, dropout_ratio=0.1,
                            num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False,
                            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                             loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def seg_distiller(teachers, student=None, **kwargs):
    """A distiller of a tiny PSPNet (8 channels) from ``teachers``, pixel KL."""
    kwargs.setdefault('logit_kd', dict(type='KLDivergence', temperature=1.0, weight=1.0))
    return tiny_distiller(student or tiny_segmentor(8), teachers, (3, 64, 128), **kwargs)


def seg_batch(model, batch_size=2, size=(64, 128), seed=0):
    """Random images; labels: left half class 0 (road), right half class 10 (sky) or
    13 (car), the bottom 5 rows ignored."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    h, w = size
    images, samples = [], []
    for i in range(batch_size):
        images.append(torch.randint(0, 256, (3, h, w), generator=g).float())
        label = torch.zeros(1, h, w, dtype=torch.long)
        label[..., w // 2:] = 10 if i % 2 == 0 else 13
        label[:, h - 5:] = IGNORE
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
    return data['inputs'], data['data_samples']


def per_image_kd_batch(model, inputs, samples, num_classes):
    """The distiller's KD batch of two images and two teachers with teacher and student
    losses, its per-image fields checked; returns ``(batch, student_losses)``."""
    batch, student_losses = model.compute_kd_batch(inputs, samples,
                                                  frozenset({'teacher_loss', 'student_loss'}))
    assert batch.student_logits.shape == (2, num_classes)
    assert batch.teacher_logits.shape == (2, 2, num_classes)
    assert batch.logit_kd.shape == batch.feature_kd.shape == batch.teacher_loss.shape == (2, 2)
    assert batch.student_loss.shape == (2, )
    return batch, student_losses
