# ResNet-18 for 32x32 inputs (CIFAR stem) with 8 base channels: 64-channel 4x4 last stage.
# Residual branches start at the BN layers' default scale (zero_init_residual=False): with
# mmpretrain's zero-initialised last BN per block, these narrow ResNets sit near chance
# for the first epochs of Shapes-10 (5 epochs alone: 26.5% top-1 against 53.6%;
# docs/en/advanced_guides/benchmark.md).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, num_stages=4, out_indices=(3, ),
                  stem_channels=8, base_channels=8, style='pytorch',
                  zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
