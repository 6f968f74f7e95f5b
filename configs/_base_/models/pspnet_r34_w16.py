# The PSPNet of pspnet_r18_w8.py with a ResNetV1c-34 of 16 base channels (128 out).
_base_ = './pspnet_r18_w8.py'
model = dict(backbone=dict(depth=34, stem_channels=16, base_channels=16),
             decode_head=dict(in_channels=128, channels=64),
             auxiliary_head=dict(in_channels=64, channels=32))
