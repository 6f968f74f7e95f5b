# ResNet-18 for 32x32 inputs (CIFAR stem) with 16 base channels: 128-channel 4x4 last stage.
_base_ = './resnet18_w8.py'
model = dict(backbone=dict(stem_channels=16, base_channels=16), head=dict(in_channels=128))
