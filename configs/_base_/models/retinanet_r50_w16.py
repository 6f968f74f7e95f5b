# The RetinaNet of retinanet_r18_w16.py with a bottleneck ResNet-50 of 16 base channels.
_base_ = './retinanet_r18_w16.py'
model = dict(backbone=dict(depth=50, base_channels=16), neck=dict(in_channels=[128, 256, 512]))
