# ResNet-18 for 32x32 inputs (CIFAR stem) with 24 base channels: 192-channel 4x4 last stage.
_base_ = './resnet18_w8.py'
model = dict(backbone=dict(stem_channels=24, base_channels=24), head=dict(in_channels=192))
