# Multi-teacher KD on Shapes-10 with AVER, every teacher weighs 1/K.
_base_ = ['../../_base_/distill/shapes10_three_teachers.py', '../../_base_/methods/aver.py']
model = dict(weighting=_base_.pop('weighting'))
