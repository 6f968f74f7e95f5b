# Multi-teacher KD on Shapes-COCO with equal teacher weights (AVER).
_base_ = ['../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/methods/aver.py']
model = dict(weighting=_base_.pop('weighting'))
