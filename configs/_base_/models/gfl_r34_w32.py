# GFL (generalised focal loss) for 160x160 Shapes-COCO: the ResNet-34 (32 base channels)
# and 64-channel FPN of retinanet_r34_w32.py over strides 8-64, a 2-conv GN head with one
# anchor per location (16 px at stride 8) assigned by ATSS, IoU-aware sigmoid class
# scores (quality focal loss) and a distribution over box sides (reg_max 8).
_base_ = './retinanet_r34_w32.py'
model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True, type='GFLHead', num_classes=8, in_channels=64, stacked_convs=2,
        feat_channels=64, norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=2,
                              scales_per_octave=1, strides=[8, 16, 32, 64]),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=8,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(_delete_=True, assigner=dict(type='ATSSAssigner', topk=9),
                   allowed_border=-1, pos_weight=-1, debug=False))
