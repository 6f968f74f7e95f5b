# ResNet-50 (bottleneck blocks) for 32x32 inputs with 8 base channels: 256-channel 4x4 last stage.
_base_ = './resnet18_w8.py'
# Unlike the ResNet-18s, its residual branches start at zero (mmpretrain's default
# zero_init_residual=True): without it, Shapes-10 training collapsed to chance in its
# first epoch (docs/en/advanced_guides/benchmark.md, "Residual initialisation").
model = dict(backbone=dict(depth=50, stem_channels=16, zero_init_residual=True),
             head=dict(in_channels=256))
