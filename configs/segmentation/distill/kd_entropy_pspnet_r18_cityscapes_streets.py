# Multi-teacher KD on Cityscapes-Streets with EBKD: teachers with confident
# (low-entropy) image-averaged class scores weigh more.
_base_ = [
    '../../_base_/distill/streets_two_teachers.py', '../../_base_/datasets/cityscapes_streets.py',
    '../../_base_/schedules/streets_1k.py', '../../_base_/seg_runtime.py'
]
model = dict(weighting=dict(type='EntropyWeighting'))
