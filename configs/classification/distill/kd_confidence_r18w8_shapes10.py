# Multi-teacher KD on Shapes-10 with CA-MKD, teachers with lower loss on the label weigh more.
_base_ = [
    '../../_base_/distill/shapes10_three_teachers.py',
    '../../_base_/methods/confidence.py'
]
model = dict(weighting=_base_.pop('weighting'))
