# Multi-teacher KD on Shapes-COCO with EBKD: teachers with confident (low-entropy)
# per-image class scores weigh more.
_base_ = [
    '../../_base_/distill/coco_shapes_two_teachers.py',
    '../../_base_/methods/entropy.py'
]
model = dict(weighting=_base_.pop('weighting'))
