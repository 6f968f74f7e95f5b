# Multi-teacher KD on Shapes-COCO with CA-MKD: teachers with a lower per-image task
# loss (the view's focal proxy) weigh more.
_base_ = [
    '../../_base_/distill/coco_shapes_two_teachers.py',
    '../../_base_/methods/confidence.py'
]
model = dict(weighting=_base_.pop('weighting'))
