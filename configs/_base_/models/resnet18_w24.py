# ResNet-18 for 32x32 inputs (CIFAR stem) with 24 base channels: 192-channel 4x4 last stage.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, num_stages=4, out_indices=(3, ),
                  stem_channels=24, base_channels=24, style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=192,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
