# Multi-teacher KD on Shapes-COCO with fixed teacher weights.
_base_ = ['../../_base_/distill/coco_shapes_two_teachers.py', '../../_base_/methods/fixed.py']
model = dict(weighting=dict(_base_.pop('weighting'), weights=[0.6, 0.4]))
