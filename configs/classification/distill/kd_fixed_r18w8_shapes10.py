# Multi-teacher KD on Shapes-10 with fixed weights: the widest teacher counts most.
_base_ = [
    '../../_base_/distill/shapes10_three_teachers.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_6e.py', '../../_base_/default_runtime.py'
]
model = dict(weighting=dict(type='FixedWeighting', weights=[0.5, 0.3, 0.2]))
