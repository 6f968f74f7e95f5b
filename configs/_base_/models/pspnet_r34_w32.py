# The PSPNet of pspnet_r18_w16.py with a ResNetV1c-34 of 32 base channels.
_base_ = './pspnet_r18_w16.py'
model = dict(backbone=dict(depth=34, stem_channels=32, base_channels=32),
             decode_head=dict(in_channels=256, channels=128),
             auxiliary_head=dict(in_channels=128, channels=64))
