# Multi-teacher KD on Shapes-10 with fixed weights: the widest teacher counts most.
_base_ = ['../../_base_/distill/shapes10_three_teachers.py', '../../_base_/methods/fixed.py']
model = dict(weighting=dict(_base_.pop('weighting'), weights=[0.5, 0.3, 0.2]))
