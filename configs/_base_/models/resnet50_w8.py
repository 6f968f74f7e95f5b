# ResNet-50 (bottleneck blocks) for 32x32 inputs with 8 base channels: 256-channel 4x4 last stage.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=50, num_stages=4, out_indices=(3, ),
                  stem_channels=16, base_channels=8, style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=256,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
