# ResNet-50 (bottleneck blocks) for 32x32 inputs with 8 base channels: 256-channel 4x4 last stage.
_base_ = './resnet18_w8.py'
model = dict(backbone=dict(depth=50, stem_channels=16), head=dict(in_channels=256))
