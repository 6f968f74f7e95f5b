# Multi-teacher KD on Cityscapes-Streets with equal teacher weights (AVER).
_base_ = ['../../_base_/distill/streets_two_teachers.py', '../../_base_/methods/aver.py']
model = dict(weighting=_base_.pop('weighting'))
