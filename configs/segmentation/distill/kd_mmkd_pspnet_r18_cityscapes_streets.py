# Multi-teacher KD on Cityscapes-Streets with MMKD. The feature net reads sorted,
# resampled similarity rows (batch-size independent) of the last backbone stage; hard
# images are those whose averaged scores rank an absent class above a present one.
_base_ = [
    '../../_base_/distill/streets_two_teachers.py', '../../_base_/datasets/cityscapes_streets.py',
    '../../_base_/schedules/streets_1k.py', '../../_base_/seg_runtime.py'
]
model = dict(weighting=dict(type='MetaWeightNet', batch_size=8,
                            feature_input='sorted_similarity'))
custom_hooks = [
    dict(type='mmkd_ext.MetaWeightHook', interval=5, buffer_size=64, quiz_batch_size=8,
         inner_kd_steps=2, inner_ce_steps=1,
         optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4)),
]
