# ResNet-50 (bottleneck blocks) for 32x32 inputs with 8 base channels: 256-channel 4x4 last stage.
_base_ = './resnet18_w8.py'
# Unlike the ResNet-18s, its residual branches start at zero (mmpretrain's default
# zero_init_residual=True): from the BN layers' default scale its 16 bottleneck blocks
# diverge in the first epoch at the Shapes-10 schedules' learning rate.
model = dict(backbone=dict(depth=50, stem_channels=16, zero_init_residual=True),
             head=dict(in_channels=256))
