# The RetinaNet of retinanet_r18_w16.py with a ResNet-34 of 32 base channels.
_base_ = './retinanet_r18_w16.py'
model = dict(backbone=dict(depth=34, base_channels=32), neck=dict(in_channels=[64, 128, 256]))
