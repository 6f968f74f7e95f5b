# Multi-teacher KD on Shapes-10 with EBKD, confident (low-entropy) teachers weigh more.
_base_ = ['../../_base_/distill/shapes10_three_teachers.py', '../../_base_/methods/entropy.py']
model = dict(weighting=_base_.pop('weighting'))
