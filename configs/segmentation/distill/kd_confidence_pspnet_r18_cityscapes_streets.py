# Multi-teacher KD on Cityscapes-Streets with CA-MKD: teachers with a lower pixel
# cross-entropy on the image weigh more.
_base_ = ['../../_base_/distill/streets_two_teachers.py', '../../_base_/methods/confidence.py']
model = dict(weighting=_base_.pop('weighting'))
