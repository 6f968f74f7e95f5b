# Multi-teacher KD on Shapes-10 with AVER, every teacher weighs 1/K.
_base_ = [
    '../../_base_/distill/shapes10_three_teachers.py', '../../_base_/datasets/shapes10.py',
    '../../_base_/schedules/shapes10_6e.py', '../../_base_/default_runtime.py'
]
model = dict(weighting=dict(type='UniformWeighting'))
