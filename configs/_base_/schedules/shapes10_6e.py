# The 10-epoch schedule shortened to 6 epochs (students).
_base_ = './shapes10_10e.py'
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=6, eta_min=1e-4,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=6)
