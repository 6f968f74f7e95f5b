# DeepLabV3 for 128x256 street scenes: the PSPNet of pspnet_r18_w8.py with a bottleneck
# ResNetV1c-50 of 16 base channels (512 out) and an ASPP decode head (64 channels,
# rates 1/6/12/18 at this resolution) instead of the PSP head.
_base_ = './pspnet_r18_w8.py'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(depth=50, stem_channels=16, base_channels=16),
    decode_head=dict(_delete_=True, type='ASPPHead', in_channels=512, in_index=3, channels=64,
                     dilations=(1, 6, 12, 18), dropout_ratio=0.1, num_classes=19,
                     norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                      loss_weight=1.0)),
    auxiliary_head=dict(in_channels=256, channels=32))
