# ResNet-18 for 32x32 inputs (CIFAR stem) with 8 base channels: 64-channel 4x4 last stage.
# Residual branches start at the BN layers' default scale (zero_init_residual=False): with
# mmpretrain's zero start the Shapes-10 student stays near chance for its first epochs
# (docs/en/advanced_guides/benchmark.md, "Residual initialisation").
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, num_stages=4, out_indices=(3, ),
                  stem_channels=8, base_channels=8, style='pytorch',
                  zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
