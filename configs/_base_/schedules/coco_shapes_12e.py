# AdamW, linear warm-up, x0.1 at epochs 8 and 11 of 12 (mmdet's 1x, shortened).
# The backbones start from scratch: on these 800 images AdamW reaches in 4 epochs
# about what SGD (lr 0.02, momentum 0.9) reaches in 12. MMKD's look-ahead mirrors it.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=12, milestones=[8, 11], gamma=0.1),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=8)
