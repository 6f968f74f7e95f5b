# Multi-teacher KD on Cityscapes-Streets with fixed teacher weights.
_base_ = [
    '../../_base_/distill/streets_two_teachers.py', '../../_base_/datasets/cityscapes_streets.py',
    '../../_base_/schedules/streets_1k.py', '../../_base_/seg_runtime.py'
]
model = dict(weighting=dict(type='FixedWeighting', weights=[0.6, 0.4]))
