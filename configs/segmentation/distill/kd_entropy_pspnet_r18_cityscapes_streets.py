# Multi-teacher KD on Cityscapes-Streets with EBKD: teachers with confident
# (low-entropy) image-averaged class scores weigh more.
_base_ = ['../../_base_/distill/streets_two_teachers.py', '../../_base_/methods/entropy.py']
model = dict(weighting=_base_.pop('weighting'))
